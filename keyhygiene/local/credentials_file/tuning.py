"""The editor's bounds, its lock notice and its test hooks: read at call time, so
that a front end or a test can set them here."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

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

# Test hooks, None in use. `after_read` runs once per attempt, after the edit
# is computed and before anything is written (widens the read-to-rename window);
# `before_replace` gets the finished temp file just before the rename, after
# the compare-and-swap check; `after_replace` runs right after the rename.
after_read: Callable[[], None] | None = None
before_replace: Callable[[Path], None] | None = None
after_replace: Callable[[], None] | None = None
