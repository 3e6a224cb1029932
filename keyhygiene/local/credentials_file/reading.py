"""Reading, public: validate, list profiles, read one, what [DEFAULT] passes on."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from keyhygiene.local.credentials_file.model import (
    ACCOUNT_ID_KEY,
    SESSION_TOKEN_KEYS,
    ProfileValues,
)
from keyhygiene.local.credentials_file.parsing import _DEFAULT_SECTION, _Document
from keyhygiene.local.credentials_file.profiles import _profile_of, _target_section
from keyhygiene.local.credentials_file.settled_read import _read_current


def validate(path: str | os.PathLike[str]) -> None:
    """Raise `CredentialsFileRefused` when botocore could not read the file.
    A missing file is fine (botocore treats it as empty)."""
    _read_current(Path(path).expanduser())


def list_profiles(path: str | os.PathLike[str], *, config_style: bool = False) -> list[str]:
    """Profile names in file order (for the config file, as botocore maps sections)."""
    _, doc = _read_current(Path(path).expanduser())
    names = (_profile_of(s.name, config_style) for s in doc.sections)
    return list(dict.fromkeys(name for name in names if name is not None))


def read_profile(
    path: str | os.PathLike[str], profile: str, *, config_style: bool = False
) -> ProfileValues:
    """A profile's settings with lower-cased keys, as botocore reads them
    ([DEFAULT] settings included; the last section wins in the config file).
    Empty when the file or the profile does not exist."""
    _, doc = _read_current(Path(path).expanduser())
    defaults: dict[str, str] = {}
    own: dict[str, str] = {}
    for section in doc.sections:
        values = {key: option.value for key, option in section.options.items()}
        if section.name == _DEFAULT_SECTION:
            defaults.update(values)
        elif _profile_of(section.name, config_style) == profile:
            own = values
    return ProfileValues({**defaults, **own})


def inherited_overrides(
    path: str | os.PathLike[str], profile: str, *, account_id: str | None = None
) -> list[str]:
    """Key names that `set_access_key(path, profile, ..., account_id=account_id)`
    writes into the profile only because [DEFAULT] supplies them: botocore would
    otherwise send [DEFAULT]'s session token with the new key. For a plan to
    say "also overrides [DEFAULT]'s aws_session_token in [work]"."""
    _, doc = _read_current(Path(path).expanduser())
    section = _target_section(doc, profile, False)
    own = {key: option.value for key, option in section.options.items()} if section else {}
    defaults = _defaults(doc)
    keys = _session_keys(defaults)
    if (
        account_id is not None
        and ACCOUNT_ID_KEY not in own
        and defaults.get(ACCOUNT_ID_KEY, account_id) != account_id
    ):
        keys.append(ACCOUNT_ID_KEY)
    return keys


def default_session_keys(path: str | os.PathLike[str]) -> list[str]:
    """The session-token keys of the credentials file's [DEFAULT]: what every
    profile inherits, a new one included, and `set_access_key` overrides."""
    _, doc = _read_current(Path(path).expanduser())
    return _session_keys(_defaults(doc))


def _session_keys(defaults: Mapping[str, str]) -> list[str]:
    return [key for key in SESSION_TOKEN_KEYS if key in defaults]


def overrides_sentence(profile: str, keys: Sequence[str]) -> str:
    """The plan's words for `inherited_overrides`: "" when there is none."""
    if not keys:
        return ""
    names = ", ".join(keys)
    return (
        f", and {names} = (empty) in [{profile}] to override [DEFAULT]'s, which botocore would "
        "send with the new key ([DEFAULT] itself is left as it is)"
    )


def _defaults(doc: _Document) -> dict[str, str]:
    """The settings every section inherits, as configparser merges [DEFAULT]."""
    return doc.values().get(_DEFAULT_SECTION, {})
