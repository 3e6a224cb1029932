"""Loan durations and expiries: parsed, bounded, always in UTC."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from keyhygiene.core.errors import BadInput
from keyhygiene.core.formatting import describe_duration, parse_utc, utc_z
from keyhygiene.workflows.membership.model import DEFAULT_MAX_DURATION

_DURATION_PART = re.compile(r"(\d+)\s*([a-z]+)")
_UNITS: dict[str, timedelta] = {
    "m": timedelta(minutes=1),
    "min": timedelta(minutes=1),
    "mins": timedelta(minutes=1),
    "minute": timedelta(minutes=1),
    "minutes": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "hour": timedelta(hours=1),
    "hours": timedelta(hours=1),
    "d": timedelta(days=1),
    "day": timedelta(days=1),
    "days": timedelta(days=1),
    "w": timedelta(weeks=1),
    "week": timedelta(weeks=1),
    "weeks": timedelta(weeks=1),
}


# --------------------------------------------------------------------------- time


def parse_duration(text: str, *, maximum: timedelta = DEFAULT_MAX_DURATION) -> timedelta:
    """`30m`, `2h`, `3d`, `1w`, `1d12h` -> a timedelta in (0, maximum].

    Raises BadInput for anything else: empty, unparseable, zero, negative, too long.
    """
    cleaned = text.strip().lower()
    if not cleaned:
        raise BadInput("No duration given.", hint=_DURATION_HINT)
    if cleaned.startswith("-"):
        raise BadInput(f"The duration {text.strip()!r} is negative.", hint=_DURATION_HINT)
    position = 0
    total = timedelta()
    for match in _DURATION_PART.finditer(cleaned):
        if cleaned[position : match.start()].strip():
            break
        unit = _UNITS.get(match.group(2))
        if unit is None:
            raise BadInput(
                f"The duration {text.strip()!r} has an unknown unit {match.group(2)!r}.",
                hint=_DURATION_HINT,
            )
        total += int(match.group(1)) * unit
        position = match.end()
    if position == 0 or cleaned[position:].strip():
        raise BadInput(f"The duration {text.strip()!r} is not understood.", hint=_DURATION_HINT)
    if total <= timedelta():
        raise BadInput(f"The duration {text.strip()!r} is zero.", hint=_DURATION_HINT)
    if total > maximum:
        raise BadInput(
            f"The duration {text.strip()!r} ({describe_duration(total)}) is longer than the "
            f"longest loan allowed, {describe_duration(maximum)}.",
            hint="Lend for less and extend the loan later, or add the computer to the group "
            "permanently.",
        )
    return total


_DURATION_HINT = "Give a number and a unit: 30m, 2h, 3d or 1w (combinations like 1d12h work too)."


def utc(moment: datetime) -> datetime:
    """`moment` in UTC; a naive datetime is refused, as it has no defined instant."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("A time without a time zone cannot be compared with an expiry.")
    return moment.astimezone(timezone.utc)


def format_expiry(moment: datetime) -> str:
    """The tag's and the policy's form: `2026-11-28T21:00:00Z` (UTC, whole seconds)."""
    return utc_z(moment)


def parse_expiry(text: str | None) -> datetime | None:
    """An expiry tag's value as a UTC datetime; None when it is not a readable ISO 8601 time.

    A time without a zone is taken as UTC: keyhygiene always writes UTC.
    """
    moment = parse_utc(text)
    return moment.astimezone(timezone.utc) if moment is not None else None


def parse_now(text: str) -> datetime:
    """The injected clock of the command line (`--now`, `KEYHYGIENE_NOW`)."""
    moment = parse_expiry(text)
    if moment is None:
        raise BadInput(
            f"{text!r} is not an ISO 8601 time.", hint="For example 2026-11-28T21:00:00Z."
        )
    return moment
