"""The one "N successes in a row" loop that proves a new key works.

AWS is eventually consistent: a new access key can be refused for seconds
after CreateAccessKey, and one success proves little, since another endpoint
may not know the key yet (rhyeal/aws-rotate-iam-keys#81). So a key counts as
working only after `successes` answers in a row; a refusal after a success
starts the count again. Refusals back off exponentially, successes are spaced
by a fixed pause, and the loop is bounded by a number of tries, a timeout, or
both. An answer naming an identity the caller does not accept stops at once:
waiting cannot fix a key that belongs to someone else.

The probe is the caller's (rotation asks with the key as the profile holds
it, enrollment through the profile just written); it returns the ARN that
answered, or the reason it did not, and raises for what no retry can fix.
The loop has no clock or sleep of its own, so tests run it instantly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Answer:
    """One probe: the ARN that answered, or "" and what went wrong."""

    arn: str = ""
    problem: str = ""


@dataclass(frozen=True)
class Tally:
    """How a verification ended. `proven` when `in_a_row` reached the goal;
    `stranger` holds an ARN that answered but was not accepted."""

    proven: bool
    arn: str
    tries: int
    in_a_row: int
    last_problem: str
    seconds: float
    stranger: str = ""


@dataclass(frozen=True)
class Pacing:
    """How often to ask: `spacing` after a success, backoff from
    `first_backoff` doubling up to `max_backoff` after a refusal; stop after
    `max_tries` tries or when the next pause would end past `timeout` seconds
    (None: no such bound; at least one bound must be given)."""

    spacing: float
    first_backoff: float
    max_backoff: float
    max_tries: int | None = None
    timeout: float | None = None

    def __post_init__(self) -> None:
        if self.max_tries is None and self.timeout is None:
            raise ValueError("A verification needs a bound: max_tries, timeout, or both.")


def successes_in_a_row(
    probe: Callable[[], Answer],
    accept: Callable[[str], bool],
    *,
    successes: int,
    pacing: Pacing,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Tally:
    """Ask `probe` until `successes` accepted answers in a row, or a bound."""
    needed = max(1, successes)
    started = clock()
    deadline = None if pacing.timeout is None else started + pacing.timeout
    in_a_row = tries = 0
    backoff = pacing.first_backoff
    last_problem = arn = ""

    def tally(proven: bool, stranger: str = "") -> Tally:
        seconds = round(clock() - started, 3)
        return Tally(proven, arn, tries, in_a_row, last_problem, seconds, stranger)

    while True:
        answer = probe()
        tries += 1
        if answer.problem:
            in_a_row, last_problem = 0, answer.problem
            pause, backoff = backoff, min(backoff * 2, pacing.max_backoff)
        elif not accept(answer.arn):
            return tally(False, stranger=answer.arn)
        else:
            arn = answer.arn
            in_a_row += 1
            if in_a_row >= needed:
                return tally(True)
            pause = pacing.spacing
        if pacing.max_tries is not None and tries >= pacing.max_tries:
            return tally(False)
        if deadline is not None and clock() + pause > deadline:
            return tally(False)
        sleep(pause)
