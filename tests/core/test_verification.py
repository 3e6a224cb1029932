"""The one successes-in-a-row loop shared by rotation and enrollment."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from keyhygiene.core.verification import Answer, Pacing, Tally, successes_in_a_row

ME = "arn:aws:iam::123456789012:user/alice-laptop"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.pauses: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


def answers(*items: str) -> Iterator[Answer]:
    for item in items:
        yield Answer(problem=item[1:]) if item.startswith("!") else Answer(arn=item)


def run(items: Iterator[Answer], pacing: Pacing, successes: int = 3) -> tuple[Tally, Clock]:
    clock = Clock()
    tally = successes_in_a_row(
        lambda: next(items),
        ME.__eq__,
        successes=successes,
        pacing=pacing,
        clock=clock,
        sleep=clock.sleep,
    )
    return tally, clock


def test_a_refusal_after_a_success_starts_the_count_again() -> None:
    pacing = Pacing(spacing=1, first_backoff=0.5, max_backoff=8, timeout=60)
    tally, clock = run(answers(ME, "!InvalidClientTokenId", ME, ME, ME), pacing)
    assert tally.proven and tally.tries == 5 and tally.in_a_row == 3
    # spacing after a success, backoff after the refusal
    assert clock.pauses == [1, 0.5, 1, 1]


def test_backoff_doubles_up_to_its_ceiling() -> None:
    pacing = Pacing(spacing=1, first_backoff=1, max_backoff=4, max_tries=6)
    tally, clock = run(answers(*["!AccessDenied"] * 6), pacing)
    assert not tally.proven and tally.tries == 6
    assert tally.last_problem == "AccessDenied"
    assert clock.pauses == [1, 2, 4, 4, 4]  # no pause after the last try


def test_the_timeout_bounds_the_loop_before_a_pause_would_pass_it() -> None:
    pacing = Pacing(spacing=1, first_backoff=4, max_backoff=8, timeout=10)
    tally, clock = run(answers(*["!InvalidClientTokenId"] * 10), pacing)
    assert not tally.proven
    assert clock.pauses == [4]  # 4 + 8 would end past 10 s
    assert tally.seconds == 4


def test_another_identity_stops_at_once() -> None:
    other = "arn:aws:iam::123456789012:user/bob-laptop"
    pacing = Pacing(spacing=1, first_backoff=1, max_backoff=1, max_tries=9)
    tally, clock = run(answers(ME, other, ME), pacing)
    assert not tally.proven and tally.stranger == other
    assert tally.tries == 2 and clock.pauses == [1]


def test_a_probe_error_no_retry_can_fix_propagates() -> None:
    def probe() -> Answer:
        raise RuntimeError("ExpiredToken")

    with pytest.raises(RuntimeError):
        successes_in_a_row(
            probe, ME.__eq__, successes=2, pacing=Pacing(1, 1, 1, max_tries=3), sleep=lambda s: None
        )


def test_a_loop_without_a_bound_is_refused() -> None:
    with pytest.raises(ValueError):
        Pacing(spacing=1, first_backoff=1, max_backoff=1)
