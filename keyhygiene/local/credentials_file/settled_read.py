"""Reading a version that is whole, never a torn one: settle, compare, remember what was seen."""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from keyhygiene.core.errors import BadInput
from keyhygiene.core.formatting import shown_path
from keyhygiene.local.credentials_file import tuning
from keyhygiene.local.credentials_file.model import (
    CredentialsFileRefused,
    Fingerprint,
    _digest,
    _stat_key,
)
from keyhygiene.local.credentials_file.parsing import _decode, _Document, _parse
from keyhygiene.local.credentials_file.paths import _os_problem, _resolve


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
    return abs(time.time_ns() - mtime_ns) < tuning.RECENT_WRITE_SECONDS * 1e9


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

    A read that is not quiet is repeated every tuning.SETTLE_SECONDS until two
    consecutive steady reads have the same fingerprint. Doubtful content
    (`doubt`) needs more: the file idle for tuning.RECENT_WRITE_SECONDS, or the same
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
        time.sleep(tuning.SETTLE_SECONDS)
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
    snapshot, _ = _settled_read(target, shown, time.monotonic() + tuning.SETTLE_LIMIT_SECONDS)
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
