"""The files' fixed names and modes, and what an edit returns or refuses."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from keyhygiene.core.errors import BadInput

SESSION_TOKEN_KEYS = ("aws_session_token", "aws_security_token")
ACCOUNT_ID_KEY = "aws_account_id"  # botocore's SharedCredentialProvider reads it too
FILE_MODE = 0o600
FOLDER_MODE = 0o700
LOCK_SUFFIX = ".keyhygiene.lock"


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


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _stat_key(info: os.stat_result) -> tuple[int, int, int]:
    return (info.st_ino, info.st_size, info.st_mtime_ns)
