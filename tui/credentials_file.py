"""Edit `~/.aws/credentials` and `~/.aws/config` without breaking them.

These two files are read by every boto3 session and every `aws` command on the
computer: one bad byte and all of them fail. So this editor

- parses exactly as botocore does (`configparser.RawConfigParser`, strict, with
  botocore's extra reading of indented sub-settings) and refuses, with the line
  number, a file botocore could not read, without writing anything;
- changes only the lines of the target profile and keeps every other byte
  (comments, order, blank lines, line endings, the spelling of key names);
- re-parses its own result and checks that every other profile reads the same
  before anything reaches the disk;
- writes through a temp file in the same folder (write, flush, fsync,
  `os.replace`, fsync of the folder), leaves the file at mode 0600, writes the
  target of a symlink, and holds an `flock` on `<name>.keyhygiene.lock` for the
  whole read-modify-write so that two writers cannot interleave.

Key names match case-insensitively, as botocore lower-cases them. A replaced
value keeps its line's original key spelling; new keys are written in lower
case as `key = value`.

No value ever appears in a message or a repr: values can be secrets.
"""

from __future__ import annotations

import configparser
import fcntl
import os
import re
import shlex
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from tui.errors import BadInput
from tui.formatting import shown_path

SESSION_TOKEN_KEYS = ("aws_session_token", "aws_security_token")
FILE_MODE = 0o600
FOLDER_MODE = 0o700
LOCK_SUFFIX = ".keyhygiene.lock"

# botocore reads both files with a default RawConfigParser: reuse its own
# patterns so that "what botocore accepts" is decided by the same code.
_SECTION_RE = configparser.RawConfigParser.SECTCRE
_OPTION_RE = configparser.RawConfigParser.OPTCRE
_NONSPACE_RE = configparser.RawConfigParser.NONSPACECRE
_COMMENT_PREFIXES = ("#", ";")
_DEFAULT_SECTION = configparser.DEFAULTSECT
_LINE_BREAK_RE = re.compile(r"\r\n|\r|\n")  # universal newlines, as open() reads
_KEY_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_UTF8_BOM = b"\xef\xbb\xbf"
_ENV_VAR_RE = re.compile(r"\$(\w+|\{[^}]*\})")

# Tests set this to a callable to widen the window between read and write.
_after_read: Callable[[], None] | None = None


class CredentialsFileRefused(BadInput):
    """The file is one botocore could not parse; keyhygiene leaves it alone."""

    def __init__(self, shown_path: str, line: int, reason: str) -> None:
        super().__init__(
            f"{shown_path} line {line}: {reason}; botocore would refuse this file, "
            "so keyhygiene will not edit it. Fix that line and retry."
        )
        self.shown_path = shown_path
        self.line = line
        self.reason = reason


@dataclass(frozen=True)
class WriteResult:
    """What a write did. `path` is the path asked for, `target` the file written
    (they differ when `path` is a symlink). `tightened_from` holds the old
    permission bits when they were wider than 0600 and have been narrowed."""

    path: Path
    target: Path
    created: bool
    changed: bool
    tightened_from: int | None = None


class ProfileValues(dict[str, str]):
    """A profile's settings (lower-cased keys). Its repr shows keys only,
    because values such as `aws_secret_access_key` are secrets."""

    def __repr__(self) -> str:
        return f"ProfileValues(keys={sorted(self)!r})"


# ---------------------------------------------------------------------------
# Paths


def credentials_path(env: Mapping[str, str] = os.environ) -> Path:
    """The shared credentials file botocore reads (`AWS_SHARED_CREDENTIALS_FILE`)."""
    return _env_path(env, "AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials")


def config_path(env: Mapping[str, str] = os.environ) -> Path:
    """The config file botocore reads (`AWS_CONFIG_FILE`)."""
    return _env_path(env, "AWS_CONFIG_FILE", "~/.aws/config")


def _env_path(env: Mapping[str, str], variable: str, default: str) -> Path:
    # botocore expands variables, then `~` (configloader.raw_config_parse).
    raw = env.get(variable) or default
    raw = _ENV_VAR_RE.sub(lambda m: _env_value(env, m), raw)
    if raw == "~" or raw.startswith("~/"):
        home = env.get("HOME") or os.path.expanduser("~")
        raw = home + raw[1:]
    return Path(os.path.expanduser(raw))


def _env_value(env: Mapping[str, str], match: re.Match[str]) -> str:
    name = match.group(1).strip("{}")
    return env.get(name, match.group(0))


# ---------------------------------------------------------------------------
# Parsing, exactly as botocore reads


@dataclass(frozen=True)
class _Line:
    number: int  # 1-based, as a person counts
    text: str = field(repr=False)  # without its line break
    ending: str  # "\r\n", "\n", "\r" or "" (last line without one)


@dataclass(eq=False)
class _Option:
    key: str  # lower-cased, as botocore sees it
    first: int  # index of the `key = value` line
    last: int  # index of its last continuation line
    parts: list[str] = field(repr=False)
    part_lines: list[int] = field(repr=False)

    @property
    def value(self) -> str:
        return "\n".join(self.parts).rstrip()


@dataclass(eq=False)
class _Section:
    name: str
    header: int  # line index
    options: dict[str, _Option] = field(default_factory=dict)

    def end(self) -> int:
        """Index of the last line holding a setting of this section."""
        return max([self.header] + [option.last for option in self.options.values()])


@dataclass(eq=False)
class _Document:
    lines: list[_Line] = field(repr=False)
    sections: list[_Section]
    newline: str

    def text(self) -> str:
        return "".join(line.text + line.ending for line in self.lines)

    def values(self) -> dict[str, dict[str, str]]:
        """Own settings of every section; the [DEFAULT] blocks merged."""
        result: dict[str, dict[str, str]] = {}
        for section in self.sections:
            own = result.setdefault(section.name, {})
            own.update({key: option.value for key, option in section.options.items()})
        return result


def _split_lines(text: str) -> list[_Line]:
    lines: list[_Line] = []
    start = 0
    for match in _LINE_BREAK_RE.finditer(text):
        lines.append(_Line(len(lines) + 1, text[start : match.start()], match.group()))
        start = match.end()
    if start < len(text):
        lines.append(_Line(len(lines) + 1, text[start:], ""))
    return lines


def _decode(data: bytes, shown: str) -> str:
    if data.startswith(_UTF8_BOM):
        raise CredentialsFileRefused(shown, 1, "the file starts with a UTF-8 byte-order mark (BOM)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = len(_split_lines(data[: exc.start].decode("utf-8") + "x"))
        raise CredentialsFileRefused(shown, line, "the file is not valid UTF-8") from None


def _parse(text: str, shown: str) -> _Document:
    """Mirror `RawConfigParser._read` (strict, `=` and `:`, full-line comments,
    blank lines inside values) and refuse what it would refuse."""
    lines = _split_lines(text)
    sections: list[_Section] = []
    first_seen: dict[str, int] = {}
    keys_seen: dict[tuple[str, str], int] = {}
    section: _Section | None = None
    option: _Option | None = None
    indent_level = 0
    for index, line in enumerate(lines):
        stripped = line.text.strip()
        if stripped.startswith(_COMMENT_PREFIXES):
            continue
        if not stripped:
            if option is not None:
                option.parts.append("")
                option.part_lines.append(line.number)
            continue
        first = _NONSPACE_RE.search(line.text)
        level = first.start() if first else 0
        if option is not None and level > indent_level:
            option.parts.append(stripped)
            option.part_lines.append(line.number)
            option.last = index
            continue
        indent_level = level
        header = _SECTION_RE.match(stripped)
        if header:
            name = header.group("header")
            if name != _DEFAULT_SECTION and name in first_seen:
                raise CredentialsFileRefused(
                    shown,
                    line.number,
                    f"duplicate section {_name(name, '[', ']')} (first at line {first_seen[name]})",
                )
            first_seen.setdefault(name, line.number)
            section = _Section(name, index)
            sections.append(section)
            option = None
            continue
        if section is None:
            raise CredentialsFileRefused(
                shown, line.number, "a setting before any [section] header"
            )
        option = _parse_option(section, index, line, stripped, keys_seen, shown)
    # botocore parses nested values section by section; [DEFAULT]'s options reach
    # that parsing only through the sections that inherit them, so alone it passes.
    profiles = any(section.name != _DEFAULT_SECTION for section in sections)
    for section in sections:
        if section.name == _DEFAULT_SECTION and not profiles:
            continue
        for option in section.options.values():
            _check_nested(option, section, shown)
    return _Document(lines, sections, _newline_of(lines))


def _parse_option(
    section: _Section,
    index: int,
    line: _Line,
    stripped: str,
    keys_seen: dict[tuple[str, str], int],
    shown: str,
) -> _Option:
    match = _OPTION_RE.match(stripped)
    if not match:
        raise CredentialsFileRefused(
            shown,
            line.number,
            "a line that is not a [section], a comment or a 'key = value' setting",
        )
    if not match.group("option"):
        raise CredentialsFileRefused(shown, line.number, "a setting with no key name before '='")
    key = match.group("option").rstrip().lower()
    seen = keys_seen.get((section.name, key))
    if seen is not None:
        raise CredentialsFileRefused(
            shown,
            line.number,
            f"duplicate key {_name(key)} in {_name(section.name, '[', ']')} (first at line {seen})",
        )
    keys_seen[(section.name, key)] = line.number
    option = _Option(key, index, index, [match.group("value").strip()], [line.number])
    section.options[key] = option
    return option


def _check_nested(option: _Option, section: _Section, shown: str) -> None:
    """botocore reads a value that starts on the next, indented line as
    sub-settings and fails when one of those lines has no `=`."""
    if not option.value.startswith("\n"):
        return
    for part, number in zip(option.parts, option.part_lines, strict=True):
        for piece in part.splitlines():
            if piece.strip() and "=" not in piece:
                raise CredentialsFileRefused(
                    shown,
                    number,
                    f"an indented line under {_name(option.key)} in "
                    f"{_name(section.name, '[', ']')} has no '=' (botocore reads indented "
                    "lines as sub-settings)",
                )


def _name(name: str, left: str = "'", right: str = "'") -> str:
    """A key or section name for a message. A long one is not shown: a pasted
    secret (40 characters) must never reach a message, even as a key name."""
    if len(name) <= 32 and name.isprintable():
        return f"{left}{name}{right}"
    return "(a name too long to show)"


def _newline_of(lines: list[_Line]) -> str:
    for line in lines:
        if line.ending:
            return line.ending
    return "\n"


def _read_document(path: Path, shown: str) -> tuple[bytes | None, _Document]:
    data = _read_bytes(path, shown)
    return data, _parse(_decode(data or b"", shown), shown)


# ---------------------------------------------------------------------------
# Profiles and sections


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
    """The header to write for a new profile, after checking that it reads back
    as that very profile."""
    bad = (
        not profile
        or profile != profile.strip()
        or not profile.isprintable()
        or any(char in profile for char in "[]")
        or (not config_style and profile == _DEFAULT_SECTION)
    )
    name = profile if not config_style or profile == "default" else f"profile {profile}"
    if bad or (config_style and _config_profile_of(name) != profile):
        raise BadInput(
            f"{_name(profile)} cannot be used as a profile name here.",
            hint=(
                "A profile name is not empty, has no spaces at either end, no brackets, "
                "no control characters, and is not DEFAULT; in the config file it has no "
                "spaces or quotes at all."
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


# ---------------------------------------------------------------------------
# Reading


def validate(path: str | os.PathLike[str]) -> None:
    """Raise `CredentialsFileRefused` when botocore could not read the file.
    A missing file is fine (botocore treats it as empty)."""
    file = Path(path).expanduser()
    _read_document(_resolve(file), shown_path(file))


def list_profiles(path: str | os.PathLike[str], *, config_style: bool = False) -> list[str]:
    """Profile names in file order (for the config file, as botocore maps sections)."""
    file = Path(path).expanduser()
    _, doc = _read_document(_resolve(file), shown_path(file))
    names = (_profile_of(s.name, config_style) for s in doc.sections)
    return list(dict.fromkeys(name for name in names if name is not None))


def read_profile(
    path: str | os.PathLike[str], profile: str, *, config_style: bool = False
) -> ProfileValues:
    """A profile's settings with lower-cased keys, as botocore reads them
    ([DEFAULT] settings included; the last section wins in the config file).
    Empty when the file or the profile does not exist."""
    file = Path(path).expanduser()
    _, doc = _read_document(_resolve(file), shown_path(file))
    defaults: dict[str, str] = {}
    own: dict[str, str] = {}
    for section in doc.sections:
        values = {key: option.value for key, option in section.options.items()}
        if section.name == _DEFAULT_SECTION:
            defaults.update(values)
        elif _profile_of(section.name, config_style) == profile:
            own = values
    return ProfileValues({**defaults, **own})


# ---------------------------------------------------------------------------
# Editing


def set_access_key(
    path: str | os.PathLike[str], profile: str, access_key_id: str, secret_access_key: str
) -> WriteResult:
    """Write a long-term key into a profile; a stale session token goes, or
    botocore would send it with the new key."""
    return write_profile_values(
        path,
        profile,
        {"aws_access_key_id": access_key_id, "aws_secret_access_key": secret_access_key},
        remove=SESSION_TOKEN_KEYS,
    )


def set_config_values(
    path: str | os.PathLike[str],
    profile: str,
    values: Mapping[str, str],
    remove: Iterable[str] = (),
) -> WriteResult:
    """Edit a profile of the config file (`[profile NAME]`, or `[default]`),
    e.g. `region` or `credential_process`."""
    return write_profile_values(path, profile, values, remove, config_style=True)


def write_profile_values(
    path: str | os.PathLike[str],
    profile: str,
    set_values: Mapping[str, str],
    remove: Iterable[str] = (),
    *,
    config_style: bool = False,
) -> WriteResult:
    """Set and remove settings of one profile, leaving every other byte as is.
    A missing profile is appended after a blank line (not created when there
    is nothing to set). Raises `CredentialsFileRefused` or `BadInput` with
    nothing written."""
    wanted, unwanted = _checked_request(set_values, remove)
    section_name = _section_name_for(profile, config_style)
    file = Path(path).expanduser()
    shown = shown_path(file)
    target = _resolve(file)
    with _locked(target, shown):
        before, doc = _read_document(target, shown)
        section = _target_section(doc, profile, config_style)
        text = _edited_text(doc, section, section_name, wanted, unwanted)
        _verify(doc, text, section.name if section else section_name, wanted, unwanted, shown)
        if _after_read is not None:
            _after_read()
        return _commit(file, target, before, text.encode("utf-8"), shown)


def _checked_request(
    set_values: Mapping[str, str], remove: Iterable[str]
) -> tuple[dict[str, str], set[str]]:
    wanted: dict[str, str] = {}
    for key, value in set_values.items():
        _check_key(key)
        if not isinstance(value, str) or value != value.strip() or not value.isprintable():
            # Never the value itself in the message: it may be a secret.
            raise BadInput(
                f"The value for {_name(key)} has surrounding spaces or a control "
                "character (such as a line break); it cannot be written as one line."
            )
        wanted[key.lower()] = value
    unwanted = set()
    for key in remove:
        _check_key(key)
        unwanted.add(key.lower())
    both = sorted(unwanted & set(wanted))
    if both:
        raise BadInput(f"{_name(both[0])} is both set and removed in one edit.")
    return wanted, unwanted


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not _KEY_NAME_RE.match(key):
        raise BadInput(
            f"{_name(str(key))} is not a key name keyhygiene writes "
            "(letters, digits, '_', '.', '-')."
        )


def _edited_text(
    doc: _Document,
    section: _Section | None,
    section_name: str,
    wanted: dict[str, str],
    unwanted: set[str],
) -> str:
    if section is None:
        return _appended(doc, section_name, wanted)
    lines: list[tuple[str, str]] = [(line.text, line.ending) for line in doc.lines]
    dropped: set[int] = set()
    new_keys = dict(wanted)
    for key, option in section.options.items():
        if key in wanted:
            lines[option.first] = (
                _with_value(lines[option.first][0], wanted[key]),
                lines[option.first][1],
            )
            dropped.update(_value_lines(doc, option.first + 1, option.last))
            del new_keys[key]
        elif key in unwanted:
            dropped.update(_value_lines(doc, option.first, option.last))
    inserted = [(f"{_indent_for(doc, section)}{k} = {v}", doc.newline) for k, v in new_keys.items()]
    after = section.end()
    output: list[tuple[str, str]] = []
    for index, line in enumerate(lines):
        if index not in dropped:
            output.append(line)
        if index == after:
            output.extend(inserted)
    return _joined(output, doc.newline)


def _appended(doc: _Document, section_name: str, wanted: dict[str, str]) -> str:
    if not wanted:
        return doc.text()
    output = [(line.text, line.ending) for line in doc.lines]
    if output and output[-1][0].strip():
        output.append(("", doc.newline))  # the blank line before a new profile
    output.append((f"[{section_name}]", doc.newline))
    output.extend((f"{key} = {value}", doc.newline) for key, value in wanted.items())
    return _joined(output, doc.newline)


def _joined(lines: list[tuple[str, str]], newline: str) -> str:
    # Only the file's last line can lack a break; it needs one if lines follow.
    last = len(lines) - 1
    return "".join(
        text + (ending or (newline if i < last else "")) for i, (text, ending) in enumerate(lines)
    )


def _value_lines(doc: _Document, first: int, last: int) -> set[int]:
    """The lines of a setting to drop: its lines except comments inside it,
    which are the person's own words."""
    return {
        index
        for index in range(first, last + 1)
        if not doc.lines[index].text.strip().startswith(_COMMENT_PREFIXES)
    }


def _with_value(text: str, value: str) -> str:
    """The same line with a new value: indentation, key spelling and the
    delimiter stay as they were."""
    lead = len(text) - len(text.lstrip())
    match = _OPTION_RE.match(text.strip())
    assert match is not None  # the line parsed as a setting
    prefix = text[: lead + match.start("value")]
    if not prefix[-1].isspace() and len(prefix) > 1 and prefix[-2].isspace():
        prefix += " "  # "key =" becomes "key = value", not "key =value"
    return prefix + value


def _indent_for(doc: _Document, section: _Section) -> str:
    """Indentation for a new setting. A new line must not be read as the
    continuation of the setting before it, nor make the next section header a
    continuation of itself: the last setting's indentation satisfies both."""
    if section.options:
        last = max(section.options.values(), key=lambda option: option.first)
        return _leading_space(doc.lines[last.first].text)
    following = [s.header for s in doc.sections if s.header > section.header]
    return _leading_space(doc.lines[min(following)].text) if following else ""


def _leading_space(text: str) -> str:
    return text[: len(text) - len(text.lstrip())]


def _verify(
    before: _Document,
    text: str,
    section_name: str,
    wanted: dict[str, str],
    unwanted: set[str],
    shown: str,
) -> None:
    """Re-read the result: every other section must read the same, the target
    exactly as asked. A failure here is a bug; the file stays untouched."""
    try:
        after = _parse(text, shown)
    except CredentialsFileRefused:
        after = None
    expected = before.values()
    own = {k: v for k, v in expected.get(section_name, {}).items() if k not in unwanted}
    if section_name in expected or wanted:
        expected[section_name] = {**own, **wanted}
    if after is None or after.values() != expected:
        raise BadInput(
            f"keyhygiene's edit of {shown} did not read back as intended; nothing was written.",
            hint="Please report this with the file's layout (not its values).",
        )


# ---------------------------------------------------------------------------
# Safe writing


def backup_bytes(path: str | os.PathLike[str]) -> bytes | None:
    """The file's bytes for a later `restore_bytes`; None when it does not exist.
    The bytes hold secrets: keep them in memory only."""
    file = Path(path).expanduser()
    return _read_bytes(_resolve(file), shown_path(file))


def restore_bytes(path: str | os.PathLike[str], data: bytes | None) -> None:
    """Put back what `backup_bytes` saw, atomically and under the lock; None
    removes the file, as it did not exist."""
    file = Path(path).expanduser()
    shown = shown_path(file)
    target = _resolve(file)
    with _locked(target, shown):
        if data is not None:
            _atomic_write(target, data, shown)
            return
        try:
            target.unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise _os_problem("remove", shown, exc) from None
        _fsync_folder(target.parent)


def _resolve(path: Path) -> Path:
    """Write through a symlink: the link stays, its target is replaced."""
    return Path(os.path.realpath(path))


def _read_bytes(path: Path, shown: str) -> bytes | None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _os_problem("read", shown, exc) from None
    if not stat.S_ISREG(info.st_mode):
        raise BadInput(f"{shown} is not a regular file; keyhygiene will not edit it.")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise _os_problem("read", shown, exc) from None


def _os_problem(doing: str, shown: str, exc: OSError) -> BadInput:
    return BadInput(f"Could not {doing} {shown}: {exc.strerror or type(exc).__name__}.")


@contextmanager
def _locked(target: Path, shown: str) -> Iterator[None]:
    """An exclusive lock on a separate file next to the target, so that the
    lock survives the target being replaced."""
    _ensure_folder(target.parent, shown)
    lock_path = target.with_name(target.name + LOCK_SUFFIX)
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(lock_path, flags, FILE_MODE)
    except OSError as exc:
        raise _os_problem("lock", shown, exc) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _ensure_folder(folder: Path, shown: str) -> None:
    """Create missing folders with mode 0700 (mkdir -p would use the umask)."""
    missing: list[Path] = []
    current = folder
    while not current.exists():
        missing.append(current)
        current = current.parent
    for part in reversed(missing):
        try:
            part.mkdir(mode=FOLDER_MODE)
        except FileExistsError:
            continue
        except OSError as exc:
            raise _os_problem("create the folder of", shown, exc) from None
        os.chmod(part, FOLDER_MODE)


def _commit(file: Path, target: Path, before: bytes | None, data: bytes, shown: str) -> WriteResult:
    old_mode = _mode_of(target)
    tightened = old_mode if old_mode is not None and old_mode & ~FILE_MODE else None
    if before is None and not data:
        # Nothing to write into a file that does not exist: do not create it.
        return WriteResult(file, target, created=False, changed=False)
    if before is not None and data == before:
        if tightened is not None:
            try:
                os.chmod(target, FILE_MODE)
            except OSError as exc:
                raise _os_problem("change the mode of", shown, exc) from None
        return WriteResult(file, target, created=False, changed=False, tightened_from=tightened)
    _atomic_write(target, data, shown)
    return WriteResult(file, target, created=before is None, changed=True, tightened_from=tightened)


def _mode_of(path: Path) -> int | None:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return None


def _atomic_write(target: Path, data: bytes, shown: str) -> None:
    """Temp file in the same folder, fsync, rename over the target, fsync the
    folder: a crash leaves either the old file or the new one, never a torn
    one (aws-cli truncates in place: aws-cli issue 10648)."""
    try:
        fd, temp_name = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=".keyhygiene.tmp"
        )
    except OSError as exc:
        raise _os_problem("write", shown, exc) from None
    try:
        try:
            os.fchmod(fd, FILE_MODE)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp_name, target)
    except OSError as exc:
        _remove_quietly(temp_name)
        raise _os_problem("write", shown, exc) from None
    except BaseException:
        _remove_quietly(temp_name)
        raise
    _fsync_folder(target.parent)


def _remove_quietly(name: str) -> None:
    with suppress(OSError):
        os.unlink(name)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
