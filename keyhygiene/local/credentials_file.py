"""Edit `~/.aws/credentials` and `~/.aws/config` without breaking them or losing anything.

These two files are read by every boto3 session and every `aws` command on the
computer: one bad byte and all of them fail. So this editor

- parses exactly as botocore does (`configparser.RawConfigParser`, strict, with
  botocore's extra reading of indented sub-settings) and refuses, with the line
  number, a file botocore could not read, without writing anything;
- changes only the lines of the target profile and keeps every other byte
  (comments, order, blank lines, line endings, the spelling of key names and
  of section headers);
- re-parses its own result and checks that every other profile reads the same,
  and the target as botocore resolves it ([DEFAULT] included), before anything
  reaches the disk;
- writes through a temp file in the same folder (write, flush, fsync,
  `os.replace`, fsync of the folder), leaves the file at mode 0600 with its
  owner and group, writes the target of a symlink, refuses a hard-linked file,
  and holds an `flock` on `<name>.keyhygiene.lock` for the whole
  read-modify-write so that two keyhygiene writers cannot interleave.

Other programs take no lock: `aws configure set` truncates the file and writes
it again in place. So an edit also

- never starts from a read that may be torn: a file that reads empty, shorter
  than this process last saw it, changing during the read, or modified very
  recently by someone else is read again after a short settle until two reads
  agree (bounded; an idle file is read once, with no sleep); content that
  looks unfinished (empty, ending mid-line, missing names seen before) must
  also be idle, or written the same way twice by the other program;
- compares and swaps: just before the rename, the file must still be exactly
  the version the edit started from (inode, size, mtime, SHA-256), or the edit
  starts again from the new version, a bounded number of times;
- refuses a result that drops a section or key it was not asked to touch,
  compared with the base and with the last version this process saw of the
  file (names only are remembered, never values);
- after the rename, when another writer seems active, checks that the edit is
  still in the file and redoes it when an in-place rewrite lost it.

What this cannot do: an in-place writer that read the file before the
rename and writes after the check still wins (its change, not ours, stays);
only a lock that writer also took would prevent that.

Key names match case-insensitively, as botocore lower-cases them. A replaced
value keeps its line's original key spelling; new keys are written in lower
case as `key = value` (`key =` for an empty value).

No value ever appears in a message or a repr: values can be secrets.
"""

from __future__ import annotations

import configparser
import hashlib
import logging
import os
import re
import shlex
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from keyhygiene.core.errors import BadInput
from keyhygiene.core.formatting import shown_path

SESSION_TOKEN_KEYS = ("aws_session_token", "aws_security_token")
ACCOUNT_ID_KEY = "aws_account_id"  # botocore's SharedCredentialProvider reads it too
FILE_MODE = 0o600
FOLDER_MODE = 0o700
LOCK_SUFFIX = ".keyhygiene.lock"

# Bounds of an edit racing another writer. Module constants so tests can lower them.
MAX_ATTEMPTS = 8  # reads + compare-and-swap tries (redos after a lost edit included)
SETTLE_SECONDS = 0.01  # pause before reading again a file that may be mid-write
SETTLE_LIMIT_SECONDS = 2.5  # total settling one call may spend before refusing
RECENT_WRITE_SECONDS = 1.0  # an mtime this close to now means a writer may be active
RECHECK_SECONDS = 0.05  # after the rename, how long an active writer's file is watched
LOCK_NOTICE_SECONDS = 1.0  # waiting this long for the lock says so, once
LOCK_TIMEOUT_SECONDS = 30.0  # waiting this long for the lock refuses

# Called once with a sentence when an edit has waited LOCK_NOTICE_SECONDS for
# the lock (the CLI prints it to stderr). Never given a value.
lock_wait_notice: Callable[[str], None] | None = None

_log = logging.getLogger(__name__)

# botocore reads both files with a default RawConfigParser: reuse its own
# patterns so that "what botocore accepts" is decided by the same code.
_SECTION_RE = configparser.RawConfigParser.SECTCRE
_OPTION_RE = configparser.RawConfigParser.OPTCRE
_NONSPACE_RE = configparser.RawConfigParser.NONSPACECRE
_COMMENT_PREFIXES = ("#", ";")
_DEFAULT_SECTION = configparser.DEFAULTSECT
_LINE_BREAK_RE = re.compile(r"\r\n|\r|\n")  # universal newlines, as open() reads
_KEY_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_ACCOUNT_ID_RE = re.compile(r"^[0-9]{12}$")
_UTF8_BOM = b"\xef\xbb\xbf"
_ENV_VAR_RE = re.compile(r"\$(\w+|\{[^}]*\})")

# Test hooks, None in use. `_after_read` runs once per attempt, after the edit
# is computed and before anything is written (widens the read-to-rename window);
# `_before_replace` gets the finished temp file just before the rename, after
# the compare-and-swap check; `_after_replace` runs right after the rename.
_after_read: Callable[[], None] | None = None
_before_replace: Callable[[Path], None] | None = None
_after_replace: Callable[[], None] | None = None


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


@dataclass(frozen=True)
class Fingerprint:
    """One version of a file. Equal fingerprints mean the same bytes in the same
    inode with the same mtime: an in-place rewrite keeps the inode but changes
    the digest (and usually mtime and size), a rename changes the inode. The
    digest is of bytes that hold secrets, so it stays out of the repr."""

    inode: int
    size: int
    mtime_ns: int
    digest: str = field(repr=False)


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


# ---------------------------------------------------------------------------
# Reading: a version that is whole, never a torn one


@dataclass(frozen=True)
class _Snapshot:
    """One read of the file. `steady`: nothing about the file changed while it
    was read (same inode, size and mtime before and after, all bytes read)."""

    data: bytes | None = field(repr=False)  # None: no file
    fingerprint: Fingerprint | None
    steady: bool
    mode: int = 0
    uid: int = -1
    gid: int = -1
    links: int = 1


@dataclass(frozen=True)
class _Seen:
    """What this process last saw of a file: its fingerprint and the names of
    its sections and keys. Never values."""

    fingerprint: Fingerprint | None
    shape: Mapping[str, frozenset[str]]


# Per file (resolved path), for the life of the process; read by every edit.
_seen: dict[Path, _Seen] = {}
# Per file: the mtime of the last version someone else wrote, when recent.
_other_writes: dict[Path, int] = {}
_seen_lock = threading.Lock()


def forget(path: str | os.PathLike[str] | None = None) -> None:
    """Drop what this process remembers of a file (of every file: None). The
    next edit then takes the file as it is, for when a person says it was
    changed on purpose (and for tests that rewrite a file by hand)."""
    with _seen_lock:
        if path is None:
            _seen.clear()
            _other_writes.clear()
        else:
            target = _resolve(Path(path).expanduser())
            _seen.pop(target, None)
            _other_writes.pop(target, None)


def _remembered(target: Path) -> _Seen | None:
    with _seen_lock:
        return _seen.get(target)


def _remember(target: Path, fingerprint: Fingerprint | None, doc: _Document | None) -> None:
    shape = _shape(doc) if doc is not None else {}
    with _seen_lock:
        _seen[target] = _Seen(fingerprint, shape)


def _shape(doc: _Document) -> dict[str, frozenset[str]]:
    return {name: frozenset(values) for name, values in doc.values().items()}


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _stat_key(info: os.stat_result) -> tuple[int, int, int]:
    return (info.st_ino, info.st_size, info.st_mtime_ns)


def _take_snapshot(target: Path, shown: str) -> _Snapshot:
    try:
        named = os.stat(target)
    except FileNotFoundError:
        return _Snapshot(None, None, steady=True)
    except OSError as exc:
        raise _os_problem("read", shown, exc) from None
    if not stat.S_ISREG(named.st_mode):
        raise _not_regular(shown)
    # O_NONBLOCK: a FIFO swapped in after the stat must not hang the open.
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(target, flags | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        return _Snapshot(None, None, steady=False)  # gone between stat and open
    except OSError as exc:
        raise _os_problem("read", shown, exc) from None
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            raise _not_regular(shown)
        chunks: list[bytes] = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        after = os.fstat(fd)
    except OSError as exc:
        raise _os_problem("read", shown, exc) from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    steady = (
        _stat_key(before) == _stat_key(after)
        and named.st_ino == after.st_ino
        and len(data) == after.st_size
    )
    return _Snapshot(
        data,
        Fingerprint(after.st_ino, after.st_size, after.st_mtime_ns, _digest(data)),
        steady,
        mode=stat.S_IMODE(after.st_mode),
        uid=after.st_uid,
        gid=after.st_gid,
        links=after.st_nlink,
    )


def _recent(mtime_ns: int) -> bool:
    # Both ways: a clock ahead of ours (a network share) is no proof of idleness.
    return abs(time.time_ns() - mtime_ns) < RECENT_WRITE_SECONDS * 1e9


def _quiet(snapshot: _Snapshot, seen: _Seen | None) -> bool:
    """A read that can be used as it is, with no second read: whole, and either
    the version this process last saw or one nobody touched recently. An empty
    or shrunk file is always confirmed by a second read: that is what a
    truncating writer leaves behind."""
    if not snapshot.steady:
        return False
    fingerprint = snapshot.fingerprint
    if fingerprint is None:
        return True
    if seen is not None and fingerprint == seen.fingerprint:
        return True
    if fingerprint.size == 0:
        return False
    last = seen.fingerprint if seen is not None else None
    if last is not None and fingerprint.size < last.size:
        return False
    return not _recent(fingerprint.mtime_ns)


def _complete_shape(snapshot: _Snapshot) -> dict[str, frozenset[str]] | None:
    """The names in a read that looks like a finished file: steady, not empty,
    ending with a line break (aws-cli ends its files with one) and readable
    for botocore. None otherwise."""
    data = snapshot.data
    if not snapshot.steady or not data or not data.endswith((b"\n", b"\r")):
        return None
    try:
        return _shape(_parse(_decode(data, ""), ""))
    except CredentialsFileRefused:
        return None


def _doubtful(snapshot: _Snapshot, seen: _Seen | None) -> bool:
    """Content that may be a writer's unfinished work: empty, ending mid-line,
    or missing a section or key this process saw. Two equal reads are not
    enough for it (a writer can stall between truncating and writing, under
    load for tens of ms). A broken file that is whole otherwise is not
    doubtful: the caller refuses it as botocore would."""
    data = snapshot.data
    if data is None or (seen is not None and snapshot.fingerprint == seen.fingerprint):
        return False
    if not data.endswith((b"\n", b"\r")):
        return True
    if seen is None:
        return False
    shape = _complete_shape(snapshot)
    return shape is not None and bool(_missing(seen.shape, shape))


def _settled_read(
    target: Path,
    shown: str,
    deadline: float,
    *,
    after_write: bool = False,
    doubt: bool = True,
) -> tuple[_Snapshot, bool]:
    """A read that is not torn, and whether another writer seemed active.

    A read that is not quiet is repeated every SETTLE_SECONDS until two
    consecutive steady reads have the same fingerprint. Doubtful content
    (`doubt`) needs more: the file idle for RECENT_WRITE_SECONDS, or the same
    names in two different finished versions (another writer that keeps
    writing it so has really dropped the missing names; a torn read does not
    repeat itself across versions). That content then becomes what was seen:
    it is what the other writer writes. Past `deadline` (time.monotonic),
    refuses."""
    seen = _remembered(target)
    snapshot = _take_snapshot(target, shown)
    _note_other_writer(target, snapshot, seen)
    if _quiet(snapshot, seen):
        # Ours, or idle: doubtful content needs no settle then. Our own last
        # write does not prove the others are done: one may be mid-rewrite.
        return snapshot, _other_writer_recent(target)
    versions: dict[Fingerprint, dict[str, frozenset[str]]] = {}
    while True:
        if snapshot.fingerprint is not None and doubt:
            shape = _complete_shape(snapshot)
            if shape is not None:
                versions[snapshot.fingerprint] = shape
        if time.monotonic() >= deadline:
            raise _kept_rewriting(shown, after_write)
        time.sleep(SETTLE_SECONDS)
        again = _take_snapshot(target, shown)
        _note_other_writer(target, again, seen)
        fingerprint = again.fingerprint
        agreed = snapshot.steady and again.steady and fingerprint == snapshot.fingerprint
        if not agreed:
            snapshot = again
            continue
        if (
            fingerprint is None
            or not _recent(fingerprint.mtime_ns)
            or not (doubt and _doubtful(again, seen))
        ):
            return again, True
        shape = versions.get(fingerprint)
        if shape is not None and any(
            other != fingerprint and names == shape for other, names in versions.items()
        ):
            with _seen_lock:
                _seen[target] = _Seen(fingerprint, shape)
            return again, True
        snapshot = again


def _note_other_writer(target: Path, snapshot: _Snapshot, seen: _Seen | None) -> None:
    """Remember when someone else last wrote the file (a recent version that is
    not the one this process last saw)."""
    fingerprint = snapshot.fingerprint
    if fingerprint is None or not _recent(fingerprint.mtime_ns):
        return
    if seen is not None and fingerprint == seen.fingerprint:
        return
    with _seen_lock:
        _other_writes[target] = max(_other_writes.get(target, 0), fingerprint.mtime_ns)


def _other_writer_recent(target: Path) -> bool:
    with _seen_lock:
        written = _other_writes.get(target)
    return written is not None and _recent(written)


def _read_current(file: Path) -> tuple[_Snapshot, _Document]:
    """A whole version of the file, parsed, and remembered as seen."""
    shown = shown_path(file)
    target = _resolve(file)
    snapshot, _ = _settled_read(target, shown, time.monotonic() + SETTLE_LIMIT_SECONDS)
    doc = _parse(_decode(snapshot.data or b"", shown), shown)
    _remember(target, snapshot.fingerprint, doc)
    return snapshot, doc


def _kept_rewriting(shown: str, written: bool) -> BadInput:
    outcome = "keyhygiene's change did not stay in it" if written else "nothing was written"
    return BadInput(
        f"Another program kept rewriting {shown} while keyhygiene tried to edit it; {outcome}.",
        hint="Retry when it has finished (an `aws configure set` loop or a file sync, say).",
    )


def _not_regular(shown: str) -> BadInput:
    return BadInput(f"{shown} is not a regular file; keyhygiene will not edit it.")


# ---------------------------------------------------------------------------
# Reading, public


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


# ---------------------------------------------------------------------------
# Editing

# What an edit asks, computed from the version it starts from (so that a retry
# after another writer's change asks again): keys to set, keys to remove, and
# values the target must resolve to as botocore reads it ("" also for absent).
_Request = Callable[[_Document, _Section | None], tuple[dict[str, str], set[str], dict[str, str]]]


def set_access_key(
    path: str | os.PathLike[str],
    profile: str,
    access_key_id: str,
    secret_access_key: str,
    *,
    account_id: str | None = None,
) -> WriteResult:
    """Write a long-term key into a profile of the credentials file, so that
    botocore resolves exactly that key and no session token.

    A session token of the profile's own goes. One the profile inherits from
    [DEFAULT] (botocore reads the file with configparser, so every profile
    inherits [DEFAULT]) cannot be removed from the profile: it is overridden
    with an empty value (`aws_session_token =`), which botocore's signers do
    not send; [DEFAULT] itself and the other profiles are left as they are.

    `aws_account_id` (botocore passes it with the key, for account-based
    endpoints) is kept: a rotation does not change the account. Given
    `account_id`, a different one botocore would resolve for the profile (own
    or inherited) is replaced by it. An empty override is not an option there:
    botocore treats "" as a set account id, and DynamoDB's endpoint rules then
    fail ("Credentials-sourced account ID parameter is invalid")."""
    new = {"aws_access_key_id": access_key_id, "aws_secret_access_key": secret_access_key}
    _checked_request(new, ())
    if account_id is not None and not _ACCOUNT_ID_RE.match(account_id):
        raise BadInput("An AWS account id is 12 digits.")

    def request(
        doc: _Document, section: _Section | None
    ) -> tuple[dict[str, str], set[str], dict[str, str]]:
        defaults = _defaults(doc)
        own = {key: option.value for key, option in section.options.items()} if section else {}
        wanted = dict(new)
        unwanted: set[str] = set()
        for key in SESSION_TOKEN_KEYS:
            if key in defaults:
                wanted[key] = ""
            else:
                unwanted.add(key)
        resolved = {**new, **dict.fromkeys(SESSION_TOKEN_KEYS, "")}
        if account_id is not None:
            current = own.get(ACCOUNT_ID_KEY, defaults.get(ACCOUNT_ID_KEY))
            if current is not None and current != account_id:
                wanted[ACCOUNT_ID_KEY] = account_id
                resolved[ACCOUNT_ID_KEY] = account_id
        return wanted, unwanted, resolved

    return _edit(path, profile, request, config_style=False)


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
    """Set and remove settings of one profile's own section, leaving every
    other byte as is. A missing profile is appended after a blank line (not
    created when there is nothing to set). Raises `CredentialsFileRefused` or
    `BadInput` with nothing written."""
    wanted, unwanted = _checked_request(set_values, remove)
    return _edit(
        path,
        profile,
        lambda doc, section: (wanted, unwanted, {}),
        config_style=config_style,
    )


def _edit(
    path: str | os.PathLike[str], profile: str, request: _Request, *, config_style: bool
) -> WriteResult:
    """Read, edit, verify, compare-and-swap, check: see the module docstring.
    Invariant: the file is replaced only by a verified edit of the version it
    holds at the moment of the rename (as far as a stat and a digest can tell),
    and never by a result missing a name this process saw in it."""
    section_name = _section_name_for(profile, config_style)
    file = Path(path).expanduser()
    shown = shown_path(file)
    target = _resolve(file)
    with _locked(target, shown):
        deadline = time.monotonic() + SETTLE_LIMIT_SECONDS
        active = False  # another writer seems to be at work
        written = created = False
        tightened: int | None = None  # from the first version that had wider bits
        for _ in range(MAX_ATTEMPTS):
            base, settled = _settled_read(target, shown, deadline, after_write=written)
            active = active or settled
            _check_target(base, shown)
            doc = _parse(_decode(base.data or b"", shown), shown)
            section = _target_section(doc, profile, config_style)
            wanted, unwanted, resolved = request(doc, section)
            name = section.name if section else section_name
            text = _edited_text(doc, section, section_name, wanted, unwanted)
            after = _verify(doc, text, name, wanted, unwanted, resolved, shown)
            _check_nothing_lost(target, base, doc, after, name, unwanted, shown)
            _remember(target, base.fingerprint, doc)
            if _after_read is not None:
                _after_read()
            data = text.encode("utf-8")
            if tightened is None and base.data is not None and base.mode & ~FILE_MODE:
                tightened = base.mode
            if base.data is None and not data:
                # Nothing to write into a file that does not exist: do not create it.
                return WriteResult(file, target, created=False, changed=False)
            if base.data == data:
                if tightened is not None:
                    _chmod(target, shown)
                return WriteResult(
                    file, target, created=created, changed=written, tightened_from=tightened
                )
            ours = _atomic_write(
                target, data, shown, owner=_owner_for(target, base), expected=base.fingerprint
            )
            if ours is None:
                active = True  # changed under us: start again from the new version
                continue
            written = True
            created = created or base.data is None
            _remember(target, ours, after)
            if _edit_stayed(
                target, ours, doc, after, name, wanted, unwanted, active, deadline, shown
            ):
                return WriteResult(
                    file, target, created=created, changed=True, tightened_from=tightened
                )
            active = True
        raise _kept_rewriting(shown, written)


def _edit_stayed(
    target: Path,
    ours: Fingerprint,
    base: _Document,
    after: _Document,
    section_name: str,
    wanted: dict[str, str],
    unwanted: set[str],
    active: bool,
    deadline: float,
    shown: str,
) -> bool:
    """After the rename: is the edit still in the file? An in-place writer that
    read the old version just before the rename writes it back just after. So
    when a writer seems active, watch the file: it is safe once another
    version holding the edit appears (that writer read after the rename, and
    its later writes start from there) or once it stayed ours for
    RECHECK_SECONDS; a version without the edit means redo.

    A version that lost the edit and nothing else (the older version written
    back) becomes what was seen, so that the redo can start from it; any other
    loss is left for the next edit's guard."""
    if _after_replace is not None:
        _after_replace()
    try:
        unchanged = _stat_key(os.stat(target)) == (ours.inode, ours.size, ours.mtime_ns)
    except FileNotFoundError:
        unchanged = False
    if unchanged and not active:
        return True
    watched_until = time.monotonic() + RECHECK_SECONDS
    while True:
        if active:
            time.sleep(SETTLE_SECONDS)
        snapshot, _ = _settled_read(target, shown, deadline, after_write=True, doubt=False)
        if snapshot.fingerprint != ours:
            break
        if time.monotonic() >= watched_until:
            return True
        active = True
    try:
        doc = _parse(_decode(snapshot.data or b"", shown), shown)
    except CredentialsFileRefused:
        return False  # the next attempt reports it
    own = doc.values().get(section_name)
    kept = own is not None and all(own.get(k) == v for k, v in wanted.items())
    kept = kept and own is not None and not unwanted & set(own)
    lost = set(_missing(_shape(after), _shape(doc)))
    added = set(_missing(_shape(after), _shape(base)))  # what the edit itself added
    if not lost or (not kept and lost <= added):
        _remember(target, snapshot.fingerprint, doc)
    return kept


def _missing(
    reference: Mapping[str, frozenset[str]],
    result: Mapping[str, frozenset[str]],
    section_name: str | None = None,
    removed: set[str] | frozenset[str] = frozenset(),
) -> list[tuple[str, str | None]]:
    """Sections (key None) and keys of `reference` absent from `result`, except
    the `removed` keys of `section_name`."""
    missing: list[tuple[str, str | None]] = []
    for name, keys in reference.items():
        if name not in result:
            missing.append((name, None))
            continue
        gone = keys - result[name] - (removed if name == section_name else frozenset())
        missing += [(name, key) for key in sorted(gone)]
    return missing


def _check_nothing_lost(
    target: Path,
    base: _Snapshot,
    before: _Document,
    after: _Document,
    section_name: str,
    unwanted: set[str],
    shown: str,
) -> None:
    """The last guard against a torn base: the result keeps every section and
    key of the base and of the last version this process saw, except the keys
    the edit removes. On a refusal the base becomes what was seen, so that the
    same command run again, when the change was meant, goes through; but only
    a base nobody has written for RECENT_WRITE_SECONDS: one still being written
    could be torn, and the next run would take it as it is."""
    result = _shape(after)
    seen = _remembered(target)
    references = [_shape(before)] + ([seen.shape] if seen is not None else [])
    lost: dict[str, None] = {}
    for reference in references:
        for name, key in _missing(reference, result, section_name, unwanted):
            shown_name = _name(name, "[", "]")
            lost[shown_name if key is None else f"{_name(key)} in {shown_name}"] = None
    if not lost:
        return
    if base.fingerprint is None or not _recent(base.fingerprint.mtime_ns):
        _remember(target, base.fingerprint, before)
    names = list(lost)
    listed = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    raise BadInput(
        f"{shown} no longer holds {listed}, which keyhygiene saw in it earlier: another "
        "program may be rewriting it, or it was edited meanwhile; nothing was written.",
        hint=(
            "Check the file. If the change is intended, run the same command again: "
            "keyhygiene then takes the file as it is."
        ),
    )


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
    indent = _indent_for(doc, section)
    inserted = [(indent + _setting(k, v), doc.newline) for k, v in new_keys.items()]
    after = section.end()
    output: list[tuple[str, str]] = []
    for index, line in enumerate(lines):
        if index not in dropped:
            output.append(line)
        if index == after:
            output.extend(inserted)
    return _joined(output, doc.newline)


def _setting(key: str, value: str) -> str:
    # An empty value is written `key =`: no trailing space for editors to strip.
    return f"{key} = {value}" if value else f"{key} ="


def _appended(doc: _Document, section_name: str, wanted: dict[str, str]) -> str:
    if not wanted:
        return doc.text()
    output = [(line.text, line.ending) for line in doc.lines]
    if output and output[-1][0].strip():
        output.append(("", doc.newline))  # the blank line before a new profile
    output.append((f"[{section_name}]", doc.newline))
    output.extend((_setting(key, value), doc.newline) for key, value in wanted.items())
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
    if not value:
        return prefix.rstrip()  # "key = old" becomes "key =", not "key = "
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
    resolved: Mapping[str, str],
    shown: str,
) -> _Document:
    """Re-read the result: every other section must read the same, the target
    exactly as asked, and the target as botocore resolves it ([DEFAULT]
    inherited, own settings first) must give `resolved` ("" standing for
    absent too). A failure here is a bug; the file stays untouched."""
    try:
        after = _parse(text, shown)
    except CredentialsFileRefused:
        after = None
    expected = before.values()
    own = {k: v for k, v in expected.get(section_name, {}).items() if k not in unwanted}
    if section_name in expected or wanted:
        expected[section_name] = {**own, **wanted}
    good = after is not None and after.values() == expected
    if after is not None and good and resolved:
        view = {**_defaults(after), **after.values().get(section_name, {})}
        good = all(view.get(key, "") == value for key, value in resolved.items())
    if after is None or not good:
        raise BadInput(
            f"keyhygiene's edit of {shown} did not read back as intended; nothing was written.",
            hint="Please report this with the file's layout (not its values).",
        )
    return after


# ---------------------------------------------------------------------------
# Preflight, backup and restore


def check_writable(path: str | os.PathLike[str]) -> None:
    """Raise the refusals an edit of `path` would meet on the file system, without
    writing anything: not a regular file, a hard link, an owner or group
    keyhygiene may not keep, a file or lock it cannot read, a folder it cannot
    write. Cheap, for plans to refuse before touching AWS; `validate` checks
    the content."""
    file = Path(path).expanduser()
    shown = shown_path(file)
    target = _resolve(file)
    try:
        info = os.stat(target)
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise _os_problem("read", shown, exc) from None
    if info is not None:
        if not stat.S_ISREG(info.st_mode):
            raise _not_regular(shown)
        _check_target(
            _Snapshot(None, None, True, uid=info.st_uid, gid=info.st_gid, links=info.st_nlink),
            shown,
        )
        if not _may(target, os.R_OK):
            raise BadInput(f"Could not read {shown}: permission denied.")
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not _may(folder, os.W_OK | os.X_OK):
        raise BadInput(
            f"Could not write {shown}: keyhygiene may not create files in "
            f"{shown_path(folder)}, and it writes through a temp file there."
        )
    lock = _lock_path(target)
    if lock.exists() and not _may(lock, os.R_OK | os.W_OK):
        raise BadInput(
            f"Could not lock {shown}: {shown_path(lock)} belongs to someone else.",
            hint=f"Delete {shown_path(lock)} (no keyhygiene is using it then) and retry.",
        )


def _may(path: Path, mode: int) -> bool:
    # The effective ids decide under sudo, as they do for the real open().
    if os.access in os.supports_effective_ids:
        return os.access(path, mode, effective_ids=True)
    return os.access(path, mode)


def backup_bytes(path: str | os.PathLike[str]) -> bytes | None:
    """The file's bytes for a later `restore_bytes`; None when it does not exist.
    Never a torn version (see the module docstring). The bytes hold secrets:
    keep them in memory only."""
    file = Path(path).expanduser()
    shown = shown_path(file)
    target = _resolve(file)
    snapshot, _ = _settled_read(target, shown, time.monotonic() + SETTLE_LIMIT_SECONDS)
    with suppress(CredentialsFileRefused):
        _remember(
            target,
            snapshot.fingerprint,
            _parse(_decode(snapshot.data or b"", shown), shown),
        )
    return snapshot.data


def restore_bytes(path: str | os.PathLike[str], data: bytes | None) -> None:
    """Put back what `backup_bytes` saw, atomically and under the lock, keeping
    owner and group; None removes the file, as it did not exist. No
    compare-and-swap: a restore puts back a whole version on purpose."""
    file = Path(path).expanduser()
    shown = shown_path(file)
    target = _resolve(file)
    with _locked(target, shown):
        current = _take_snapshot(target, shown)
        _check_target(current, shown)
        if data is not None:
            ours = _atomic_write(target, data, shown, owner=_owner_for(target, current))
            try:
                doc: _Document | None = _parse(_decode(data, shown), shown)
            except CredentialsFileRefused:
                doc = None
            _remember(target, ours, doc)
            return
        try:
            target.unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise _os_problem("remove", shown, exc) from None
        _remember(target, None, None)
        _fsync_folder(target.parent)


# ---------------------------------------------------------------------------
# Owner, group, links


def _euid() -> int | None:
    """The effective user id; None where there is none (Windows)."""
    geteuid = getattr(os, "geteuid", None)
    return geteuid() if geteuid is not None else None


def _check_target(snapshot: _Snapshot, shown: str) -> None:
    """Refuse what replacing the file would get wrong."""
    if snapshot.uid < 0:
        return  # no file (or no owners on this system)
    # A hard link is refused rather than written in place: a rename gives the
    # path a new inode and would leave the other name with the old key, and an
    # in-place write is exactly the torn file every concurrent reader (boto3,
    # aws) must never see; a crash midway would leave it torn on disk too.
    if snapshot.links > 1:
        raise BadInput(
            f"{shown} has another hard link ({snapshot.links} names); keyhygiene replaces "
            "the file atomically, which would leave the other name with the old key.",
            hint="Replace the hard link by a symlink (ln -sf) and retry.",
        )
    euid = _euid()
    if euid is None or euid == 0:
        return  # root can give the new file the old owner and group
    if snapshot.uid != euid:
        raise BadInput(
            f"{shown} belongs to another user (uid {snapshot.uid}); keyhygiene runs as "
            f"uid {euid} and would make the rewritten file its own; nothing was written.",
            hint="Run keyhygiene as the file's owner.",
        )
    if snapshot.gid not in {os.getegid(), *os.getgroups()}:
        raise BadInput(
            f"{shown} has group {snapshot.gid}, which keyhygiene (uid {euid}, not a member) "
            "cannot give to the rewritten file; nothing was written.",
            hint="Give the file one of your groups (chgrp) or run keyhygiene as root.",
        )


def _owner_for(target: Path, snapshot: _Snapshot) -> tuple[int, int] | None:
    """The owner and group the new file must have: the old file's, or, for a
    new file written by root, its folder's (`sudo keyhygiene` with HOME kept
    must not leave a root-owned file in the user's ~/.aws). None: leave it."""
    if snapshot.uid >= 0:
        return (snapshot.uid, snapshot.gid)
    if _euid() != 0:
        return None
    info = os.stat(target.parent)
    return (info.st_uid, info.st_gid)


def _give_owner(fd: int, owner: tuple[int, int] | None, shown: str) -> None:
    """Give the temp file `owner` before it holds anything. Root always calls
    fchown (cheap, and its new files are its own); others can only keep the
    group, which `_check_target` checked."""
    if owner is None:
        return
    uid, gid = owner
    euid = _euid()
    if euid == 0:
        os.fchown(fd, uid, gid)
        return
    if euid is not None and os.fstat(fd).st_gid != gid:
        try:
            os.fchown(fd, -1, gid)
        except PermissionError:
            raise BadInput(
                f"keyhygiene cannot give the rewritten {shown} its group ({gid}); "
                "nothing was written.",
                hint="Give the file one of your groups (chgrp) or run keyhygiene as root.",
            ) from None


# ---------------------------------------------------------------------------
# Safe writing


def _resolve(path: Path) -> Path:
    """Write through a symlink: the link stays, its target is replaced."""
    return Path(os.path.realpath(path))


def _os_problem(doing: str, shown: str, exc: OSError) -> BadInput:
    return BadInput(f"Could not {doing} {shown}: {exc.strerror or type(exc).__name__}.")


def _lock_path(target: Path) -> Path:
    return target.with_name(target.name + LOCK_SUFFIX)


@contextmanager
def _locked(target: Path, shown: str) -> Iterator[None]:
    """An exclusive lock on a separate file next to the target, so that the
    lock survives the target being replaced. The lock file gets the target's
    owner and group (its folder's when the target does not exist yet) so that
    a root run does not leave a lock the owner cannot open."""
    _ensure_folder(target.parent, shown)
    lock_path = _lock_path(target)
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        try:
            fd = os.open(lock_path, flags | os.O_EXCL, FILE_MODE)
            created = True
        except FileExistsError:
            fd = os.open(lock_path, flags, FILE_MODE)
            created = False
    except OSError as exc:
        raise _os_problem("lock", shown, exc) from None
    try:
        if _euid() == 0:
            try:
                info = os.stat(target)
            except FileNotFoundError:
                info = os.stat(target.parent)
            owner = (info.st_uid, info.st_gid)
            current = os.fstat(fd)
            if created or (current.st_uid, current.st_gid) != owner:
                os.fchown(fd, *owner)
        _acquire(fd, lock_path, shown)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _acquire(fd: int, lock_path: Path, shown: str) -> None:
    """Take the flock, waiting for another holder with a notice after
    LOCK_NOTICE_SECONDS and a refusal after LOCK_TIMEOUT_SECONDS. Non-blocking
    attempts in a loop: a blocking flock could neither say it waits nor stop."""
    import fcntl  # here, not at the top: the module must import on Windows

    started = time.monotonic()
    pause = 0.001
    noticed = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        except OSError as exc:
            raise _os_problem("lock", shown, exc) from None
        waited = time.monotonic() - started
        lock_shown = shown_path(lock_path)
        if waited >= LOCK_TIMEOUT_SECONDS:
            raise BadInput(
                f"{lock_shown} stayed locked for {LOCK_TIMEOUT_SECONDS:g} s: another "
                f"keyhygiene seems to be editing {shown}; nothing was written.",
                hint=(
                    "Retry when it has finished. If no keyhygiene is running, the lock is "
                    f"stale: delete {lock_shown} and retry."
                ),
            )
        if not noticed and waited >= LOCK_NOTICE_SECONDS:
            noticed = True
            notice = (
                f"Waiting for {lock_shown}: another keyhygiene seems to be editing {shown} "
                f"(keyhygiene gives up after {LOCK_TIMEOUT_SECONDS:g} s)."
            )
            _log.warning("%s", notice)
            if lock_wait_notice is not None:
                lock_wait_notice(notice)
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def _ensure_folder(folder: Path, shown: str) -> None:
    """Create missing folders with mode 0700 (mkdir -p would use the umask);
    root gives them the owner of the folder they are made in."""
    missing: list[Path] = []
    current = folder
    while not current.exists():
        missing.append(current)
        current = current.parent
    as_root = _euid() == 0
    for part in reversed(missing):
        try:
            part.mkdir(mode=FOLDER_MODE)
        except FileExistsError:
            continue
        except OSError as exc:
            raise _os_problem("create the folder of", shown, exc) from None
        os.chmod(part, FOLDER_MODE)
        if as_root:
            parent = os.stat(part.parent)
            os.chown(part, parent.st_uid, parent.st_gid)


def _chmod(target: Path, shown: str) -> None:
    try:
        os.chmod(target, FILE_MODE)
    except OSError as exc:
        raise _os_problem("change the mode of", shown, exc) from None


def _unchanged(target: Path, expected: Fingerprint | None) -> bool:
    """Is the file still exactly `expected` (None: still absent)?"""
    if expected is None:
        return not os.path.lexists(target)
    try:
        if _stat_key(os.stat(target)) != (expected.inode, expected.size, expected.mtime_ns):
            return False
        with open(target, "rb") as handle:
            return _digest(handle.read()) == expected.digest
    except OSError:
        return False


_NO_CHECK = Fingerprint(-1, -1, -1, "")  # `expected` for a write that is no swap


def _atomic_write(
    target: Path,
    data: bytes,
    shown: str,
    *,
    owner: tuple[int, int] | None,
    expected: Fingerprint | None = _NO_CHECK,
) -> Fingerprint | None:
    """Temp file in the same folder, fsync, rename over the target, fsync the
    folder: a crash leaves either the old file or the new one, never a torn
    one (aws-cli truncates in place: aws-cli issue 10648).

    Compare-and-swap: unless `expected` is left out, the rename happens only
    while the target is still that version (None: still absent); otherwise the
    temp file goes and None is returned. Returns the new file's fingerprint,
    taken from the temp file itself (a rename keeps inode and mtime), so that a
    writer quick after the rename cannot pass for us."""
    try:
        fd, temp_name = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=".keyhygiene.tmp"
        )
    except OSError as exc:
        raise _os_problem("write", shown, exc) from None
    try:
        try:
            os.fchmod(fd, FILE_MODE)
            _give_owner(fd, owner, shown)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
            info = os.fstat(fd)
        finally:
            os.close(fd)
        if expected is not _NO_CHECK and not _unchanged(target, expected):
            _remove_quietly(temp_name)
            return None
        if _before_replace is not None:
            _before_replace(Path(temp_name))
        os.replace(temp_name, target)
    except OSError as exc:
        _remove_quietly(temp_name)
        raise _os_problem("write", shown, exc) from None
    except BaseException:
        _remove_quietly(temp_name)
        raise
    _fsync_folder(target.parent)
    return Fingerprint(info.st_ino, info.st_size, info.st_mtime_ns, _digest(data))


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
