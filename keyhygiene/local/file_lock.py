"""Whole-file locks that the system releases when the process dies, on every platform.

POSIX has flock(2); Windows has byte-range locks (`msvcrt.locking`), which
behave the same for keyhygiene's use: one byte at offset 0 of a lock file
that holds nothing else. Each platform's module is imported when a lock is
taken, not at import time, so that every keyhygiene module (and so
`keyhygiene --version`) imports on either.
"""

from __future__ import annotations

import os
import sys

# Flags for os.open that not every platform has (Windows lacks both).
CLOEXEC = getattr(os, "O_CLOEXEC", 0)
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def try_lock(fd: int) -> bool:
    """Take the exclusive lock on `fd` without waiting: True when taken, False
    when another process holds it. Other failures raise OSError."""
    if sys.platform == "win32":
        return _try_lock_windows(fd)
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def lock(fd: int) -> None:
    """Take the exclusive lock on `fd`, waiting as long as another process holds it."""
    if sys.platform == "win32":
        import time

        # msvcrt's LK_LOCK gives up after 10 s: loop for a wait without bound.
        while not _try_lock_windows(fd):
            time.sleep(0.05)
        return
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_EX)


def _try_lock_windows(fd: int) -> bool:  # pragma: no cover - Windows only
    import errno
    import msvcrt

    os.lseek(fd, 0, os.SEEK_SET)
    try:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
    except OSError as exc:
        # Held by another process: EACCES, or EDEADLOCK (36) on the C runtime.
        if exc.errno in (errno.EACCES, getattr(errno, "EDEADLOCK", 36)):
            return False
        raise
    return True
