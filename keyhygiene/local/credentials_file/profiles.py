"""Profiles and their sections, spelled as each file spells them."""

from __future__ import annotations

import shlex

from keyhygiene.core.errors import BadInput
from keyhygiene.local.credentials_file.parsing import (
    _DEFAULT_SECTION,
    _SECTION_RE,
    _Document,
    _name,
    _Section,
)


def _config_profile_of(section_name: str) -> str | None:
    """The profile a config-file section defines, as botocore's
    `build_profile_map` decides it (`[profile NAME]`, or `[default]`)."""
    if section_name.startswith("profile"):
        try:
            parts = shlex.split(section_name)
        except ValueError:
            return None
        return parts[1] if len(parts) == 2 else None
    if section_name == "default":
        return "default"
    return None


def _profile_of(section_name: str, config_style: bool) -> str | None:
    if config_style:
        return _config_profile_of(section_name)
    return None if section_name == _DEFAULT_SECTION else section_name


def _section_name_for(profile: str, config_style: bool) -> str:
    """The header to write for a new profile, after checking that botocore reads
    it back as that very profile. A config-file name that needs it is quoted as
    a shell word (botocore maps `[profile ...]` with `shlex.split`), so
    `two  spaces` becomes `[profile 'two  spaces']`. Refused: what no header can
    carry through configparser (an empty name, spaces at either end, brackets,
    control characters) and, in the credentials file, DEFAULT, which
    configparser keeps for inherited settings."""
    bad = (
        not profile
        or profile != profile.strip()
        or not profile.isprintable()
        or any(char in profile for char in "[]")
        or (not config_style and profile == _DEFAULT_SECTION)
    )
    if not config_style or profile == "default":
        name = profile
    else:
        name = f"profile {shlex.quote(profile)}"
    header = _SECTION_RE.match(f"[{name}]")
    reads_back = header is not None and header.group("header") == name
    if bad or not reads_back or _profile_of(name, config_style) != profile:
        raise BadInput(
            f"{_name(profile)} cannot be used as a profile name here.",
            hint=(
                "A profile name is not empty, has no spaces at either end, no brackets "
                "and no control characters; in the credentials file it is not DEFAULT."
            ),
        )
    return name


def _target_section(doc: _Document, profile: str, config_style: bool) -> _Section | None:
    matches = [s for s in doc.sections if _profile_of(s.name, config_style) == profile]
    if len(matches) > 1:
        lines = ", ".join(str(doc.lines[s.header].number) for s in matches)
        raise BadInput(
            f"Profile {_name(profile)} is defined by several sections (lines {lines}); "
            "keyhygiene will not guess which one to edit.",
            hint="Merge them into one section and retry.",
        )
    return matches[0] if matches else None
