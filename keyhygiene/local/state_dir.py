"""Where keyhygiene keeps its own state (plan journals), readable by this user only.

`$KEYHYGIENE_STATE_DIR` wins (tests, several accounts side by side); otherwise
the platform's user state directory for "keyhygiene" (`~/.local/state/keyhygiene`
on Linux). The state holds no secret, but it does name users, keys and
policies of the account, so it is private to the user like `~/.aws` is.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import platformdirs

ENV_VAR = "KEYHYGIENE_STATE_DIR"
APP_NAME = "keyhygiene"
PRIVATE_DIR_MODE = 0o700


def state_dir() -> Path:
    """The state directory, created (mode 0700) if it does not exist yet."""
    override = os.environ.get(ENV_VAR, "").strip()
    if override:
        # A directory the user chose may be shared on purpose (or be /tmp):
        # create it private, but never change the mode of one that exists.
        return private_dir(Path(override).expanduser(), tighten=False)
    return private_dir(Path(platformdirs.user_state_dir(APP_NAME, appauthor=False)), tighten=True)


def private_dir(path: Path, *, tighten: bool = True) -> Path:
    """Create `path` (and its parents) with mode 0700; `tighten` an existing one too."""
    if not path.is_dir():
        path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
        # mkdir's mode is filtered by the umask; set it exactly.
        os.chmod(path, PRIVATE_DIR_MODE)
    elif tighten and os.name == "posix" and stat.S_IMODE(path.stat().st_mode) & 0o077:
        os.chmod(path, PRIVATE_DIR_MODE)
    return path
