"""Owner, group and links: the file stays the user's, a hard link is refused."""

from __future__ import annotations

import os
from pathlib import Path

from keyhygiene.core.errors import BadInput
from keyhygiene.local.credentials_file.settled_read import _Snapshot


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
