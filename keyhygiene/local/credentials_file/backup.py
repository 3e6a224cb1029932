"""Preflight, backup and restore of a whole file."""

from __future__ import annotations

import os
import stat
import time
from contextlib import suppress
from pathlib import Path

from keyhygiene.core.errors import BadInput
from keyhygiene.core.formatting import shown_path
from keyhygiene.local.credentials_file import tuning
from keyhygiene.local.credentials_file.model import CredentialsFileRefused
from keyhygiene.local.credentials_file.ownership import _check_target, _owner_for
from keyhygiene.local.credentials_file.parsing import _decode, _Document, _parse
from keyhygiene.local.credentials_file.paths import _os_problem, _resolve
from keyhygiene.local.credentials_file.safe_write import (
    _atomic_write,
    _fsync_folder,
    _lock_path,
    _locked,
)
from keyhygiene.local.credentials_file.settled_read import (
    _not_regular,
    _remember,
    _settled_read,
    _Snapshot,
    _take_snapshot,
)


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
    snapshot, _ = _settled_read(target, shown, time.monotonic() + tuning.SETTLE_LIMIT_SECONDS)
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
