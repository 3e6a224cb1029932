"""Prove the rotated key works: GetCallerIdentity with the key as the profile
holds it, through the one successes-in-a-row loop (`keyhygiene.core.verification`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from keyhygiene.aws.connection import error_code
from keyhygiene.aws.errors import BotoCoreError, ClientError
from keyhygiene.aws.held_key_clients import client_with_key
from keyhygiene.core.errors import KeyHygieneError
from keyhygiene.core.verification import Answer, Pacing, successes_in_a_row
from keyhygiene.local.key_location import HeldKey, KeyLocation, held_key
from keyhygiene.workflows.rotation.model import FIRST_BACKOFF, MAX_BACKOFF, VerificationFailed
from keyhygiene.workflows.rotation_defaults import (
    DEFAULT_VERIFY_INTERVAL,
    DEFAULT_VERIFY_SUCCESSES,
    DEFAULT_VERIFY_TIMEOUT,
)


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

    def probe() -> Answer:
        # Read again at every try: the key as the profile holds it *now*.
        held = held_key(location)
        if held is None or held.access_key_id != key_id:
            raise VerificationFailed(
                f"Profile {location.profile!r} does not hold the new key {key_id} "
                f"(it holds {held.access_key_id if held else 'no key'})."
            )
        arn, problem = _who_am_i(clients, held)
        return Answer(arn, problem)

    pacing = Pacing(interval, FIRST_BACKOFF, MAX_BACKOFF, timeout=timeout)
    tally = successes_in_a_row(
        probe, user_arn.__eq__, successes=successes, pacing=pacing, clock=clock, sleep=sleep
    )
    if tally.stranger:
        raise VerificationFailed(
            f"The new key {key_id} signs as {tally.stranger}, not as {user_arn}."
        )
    if not tally.proven:
        raise VerificationFailed(
            f"The new key {key_id} did not answer as {user_arn} {successes} time(s) in a row "
            f"within {timeout:g} s ({tally.tries} tries; last problem: "
            f"{tally.last_problem or 'none'})."
        )
    return {"Arn": tally.arn, "AccessKeyId": key_id, "Tries": tally.tries, "Seconds": tally.seconds}


def _who_am_i(clients: Any, key: HeldKey) -> tuple[str, str]:
    """(ARN, "") on success, ("", what went wrong) on failure."""
    try:
        client = client_with_key(clients, "sts", key)
        return str(client.get_caller_identity()["Arn"]), ""
    except ClientError as exc:
        return "", error_code(exc) or "ClientError"
    except (BotoCoreError, KeyHygieneError) as exc:
        return "", type(exc).__name__
