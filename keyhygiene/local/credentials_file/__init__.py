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

The parts: `tuning` (bounds, the lock notice, test hooks: set them there),
`model`, `paths`, `parsing`, `profiles`, `settled_read` (a version that is
whole), `reading`, `editing`, `backup`, `ownership` and `safe_write`. This
module re-exports the public functions.
"""

from __future__ import annotations

# Bounds, the lock notice and the test hooks: set them on `tuning` itself.
from keyhygiene.local.credentials_file import tuning as tuning
from keyhygiene.local.credentials_file.backup import backup_bytes, check_writable, restore_bytes
from keyhygiene.local.credentials_file.editing import (
    set_access_key,
    set_config_values,
    write_profile_values,
)
from keyhygiene.local.credentials_file.model import (
    ACCOUNT_ID_KEY,
    FILE_MODE,
    FOLDER_MODE,
    LOCK_SUFFIX,
    SESSION_TOKEN_KEYS,
    CredentialsFileRefused,
    Fingerprint,
    ProfileValues,
    WriteResult,
)
from keyhygiene.local.credentials_file.paths import config_path, credentials_path
from keyhygiene.local.credentials_file.reading import (
    default_session_keys,
    inherited_overrides,
    list_profiles,
    overrides_sentence,
    read_profile,
    validate,
)
from keyhygiene.local.credentials_file.settled_read import forget

__all__ = [
    "ACCOUNT_ID_KEY",
    "CredentialsFileRefused",
    "FILE_MODE",
    "FOLDER_MODE",
    "Fingerprint",
    "LOCK_SUFFIX",
    "ProfileValues",
    "SESSION_TOKEN_KEYS",
    "WriteResult",
    "backup_bytes",
    "check_writable",
    "config_path",
    "credentials_path",
    "default_session_keys",
    "forget",
    "inherited_overrides",
    "list_profiles",
    "overrides_sentence",
    "read_profile",
    "restore_bytes",
    "set_access_key",
    "set_config_values",
    "validate",
    "write_profile_values",
]
