"""Rotation's step names, exit codes, bounds and errors."""

from __future__ import annotations

from datetime import timedelta

from keyhygiene.core import formatting
from keyhygiene.core.errors import BadInput, KeyHygieneError
from keyhygiene.local import credentials_file
from keyhygiene.local.key_location import KeyLocation, Store
from keyhygiene.local.vault import (
    serves_mfa_sessions,
)

STORES: tuple[Store, ...] = ("file", "keyring")

PLAN_KIND = "rotate"
STEP_DELETE_OTHER = "delete-other"
STEP_CREATE = "create"
STEP_WRITE = "write"
STEP_VERIFY = "verify"
STEP_DEACTIVATE = "deactivate"
STEP_VERIFY_AGAIN = "verify-again"
STEP_DELETE_OLD = "delete-old"
VERIFY_STEPS = (STEP_VERIFY, STEP_VERIFY_AGAIN)
NEW_KEY_PATH = "AccessKey.AccessKeyId"

FIRST_BACKOFF = 0.5
MAX_BACKOFF = 8.0

EXIT_ROTATED = 0
EXIT_VERIFY_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_AWS = 3

# Test hook: `KEYHYGIENE_TEST_CRASH_AT=<step id>` kills the process (SIGKILL)
# right after that step took effect and before the journal records it;
# `<step id>:before` kills it as the step starts. Inert unless
# `KEYHYGIENE_TESTING=1` is set too: a stray variable must never kill a real
# rotation halfway.
CRASH_ENV = "KEYHYGIENE_TEST_CRASH_AT"
TESTING_ENV = "KEYHYGIENE_TESTING"

# A CreateAccessKey whose outcome is unknown (timeout, 5xx, connection error,
# retried, or a crash before its answer was journaled) may have made a key
# all the same: a key of the user that nothing knows, created after the step
# started (give or take this clock skew between this computer and AWS) and
# never used, is the one it made.
ORPHAN_CLOCK_SKEW = timedelta(seconds=60)

# The rollback's own retries: switching the old key back on, and proving it
# works before the old content goes back.
REACTIVATE_TIMEOUT = 30.0
RESTORE_CHECK_TIMEOUT = 20.0

CREDENTIAL_KEYS = (
    "aws_access_key_id",
    "aws_secret_access_key",
    *credentials_file.SESSION_TOKEN_KEYS,
)


class VerificationFailed(KeyHygieneError):
    """The new key did not authenticate as the user within the bound."""


class SecretLost(KeyHygieneError):
    """A step needs the new key's secret, which died with an earlier process."""


class RotationBusy(BadInput):
    """Another rotation of the same profile is running; nothing was changed."""


class OldKeyNotRestored(KeyHygieneError):
    """The rollback kept the new key: the old one is not active or does not answer."""


def _serves_mfa_sessions(location: KeyLocation) -> bool:
    """Whether the profile's keyhygiene credential_process serves MFA sessions
    (a strict computer's): a rotation keeps that."""
    config = credentials_file.read_profile(
        location.config_file, location.profile, config_style=True
    )
    return serves_mfa_sessions(config.get("credential_process", ""))


def key_tail(key_id: str | None) -> str:
    """`formatting.key_tail`, and a bare `…` while there is no key id yet."""
    return formatting.key_tail(key_id or "")


# --------------------------------------------------------------------------- clients
