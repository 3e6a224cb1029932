"""Prove a key works: several GetCallerIdentity successes in a row, with backoff, under a bound."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from keyhygiene.aws.connection import (
    error_code,
)
from keyhygiene.aws.errors import BotoCoreError, ClientError
from keyhygiene.aws.held_key_clients import client_with_key
from keyhygiene.core.errors import KeyHygieneError
from keyhygiene.local.key_location import HeldKey, KeyLocation, held_key
from keyhygiene.workflows.rotation.model import FIRST_BACKOFF, MAX_BACKOFF, VerificationFailed
from keyhygiene.workflows.rotation_defaults import (
    DEFAULT_VERIFY_INTERVAL,
    DEFAULT_VERIFY_SUCCESSES,
    DEFAULT_VERIFY_TIMEOUT,
)

# --------------------------------------------------------------------------- verification


def verify_held_key(
    clients: Any,
    location: KeyLocation,
    key_id: str,
    user_arn: str,
    *,
    successes: int = DEFAULT_VERIFY_SUCCESSES,
    timeout: float = DEFAULT_VERIFY_TIMEOUT,
    interval: float = DEFAULT_VERIFY_INTERVAL,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Prove that the profile holds `key_id` and that it signs as `user_arn`,
    `successes` times in a row; on failure retry with exponential backoff
    (0.5 s, 1 s, 2 s ... 8 s) until `timeout` seconds have passed."""
    started = clock()
    deadline = started + timeout
    in_a_row = tries = 0
    backoff = FIRST_BACKOFF
    last_problem = ""
    while True:
        held = held_key(location)
        if held is None or held.access_key_id != key_id:
            raise VerificationFailed(
                f"Profile {location.profile!r} does not hold the new key {key_id} "
                f"(it holds {held.access_key_id if held else 'no key'})."
            )
        tries += 1
        arn, problem = _who_am_i(clients, held)
        if problem:
            in_a_row, last_problem = 0, problem
            pause, backoff = backoff, min(backoff * 2, MAX_BACKOFF)
        elif arn != user_arn:
            raise VerificationFailed(f"The new key {key_id} signs as {arn}, not as {user_arn}.")
        else:
            in_a_row += 1
            if in_a_row >= successes:
                return {
                    "Arn": arn,
                    "AccessKeyId": key_id,
                    "Tries": tries,
                    "Seconds": round(clock() - started, 3),
                }
            pause = interval
        if clock() + pause > deadline:
            raise VerificationFailed(
                f"The new key {key_id} did not answer as {user_arn} {successes} time(s) in a row "
                f"within {timeout:g} s ({tries} tries; last problem: {last_problem or 'none'})."
            )
        sleep(pause)


def _who_am_i(clients: Any, key: HeldKey) -> tuple[str, str]:
    """(ARN, "") on success, ("", what went wrong) on failure."""
    try:
        client = client_with_key(clients, "sts", key)
        return str(client.get_caller_identity()["Arn"]), ""
    except ClientError as exc:
        return "", error_code(exc) or "ClientError"
    except (BotoCoreError, KeyHygieneError) as exc:
        return "", type(exc).__name__
