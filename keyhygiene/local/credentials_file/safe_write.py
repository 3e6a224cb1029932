"""Safe writing: the lock, the folder, and the atomic replace."""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from keyhygiene.core.errors import BadInput
from keyhygiene.core.formatting import shown_path
from keyhygiene.local import file_lock
from keyhygiene.local.credentials_file import tuning
from keyhygiene.local.credentials_file.model import (
    FILE_MODE,
    FOLDER_MODE,
    LOCK_SUFFIX,
    Fingerprint,
    _digest,
    _stat_key,
)
from keyhygiene.local.credentials_file.ownership import _euid, _give_owner
from keyhygiene.local.credentials_file.paths import _os_problem

log = logging.getLogger(__name__)


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
    flags = os.O_RDWR | os.O_CREAT | file_lock.CLOEXEC | file_lock.NOFOLLOW
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
            # Windows has no owners to keep (and no os.fchown).
            if hasattr(os, "fchown") and (created or (current.st_uid, current.st_gid) != owner):
                os.fchown(fd, *owner)
        _acquire(fd, lock_path, shown)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _acquire(fd: int, lock_path: Path, shown: str) -> None:
    """Take the flock, waiting for another holder with a notice after
    tuning.LOCK_NOTICE_SECONDS and a refusal after tuning.LOCK_TIMEOUT_SECONDS. Non-blocking
    attempts in a loop: a blocking flock could neither say it waits nor stop."""
    started = time.monotonic()
    pause = 0.001
    noticed = False
    while True:
        try:
            if file_lock.try_lock(fd):
                return
        except OSError as exc:
            raise _os_problem("lock", shown, exc) from None
        waited = time.monotonic() - started
        lock_shown = shown_path(lock_path)
        if waited >= tuning.LOCK_TIMEOUT_SECONDS:
            raise BadInput(
                f"{lock_shown} stayed locked for {tuning.LOCK_TIMEOUT_SECONDS:g} s: another "
                f"keyhygiene seems to be editing {shown}; nothing was written.",
                hint=(
                    "Retry when it has finished. If no keyhygiene is running, the lock is "
                    f"stale: delete {lock_shown} and retry."
                ),
            )
        if not noticed and waited >= tuning.LOCK_NOTICE_SECONDS:
            noticed = True
            notice = (
                f"Waiting for {lock_shown}: another keyhygiene seems to be editing {shown} "
                f"(keyhygiene gives up after {tuning.LOCK_TIMEOUT_SECONDS:g} s)."
            )
            log.warning("%s", notice)
            if tuning.lock_wait_notice is not None:
                tuning.lock_wait_notice(notice)
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
        if tuning.before_replace is not None:
            tuning.before_replace(Path(temp_name))
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
