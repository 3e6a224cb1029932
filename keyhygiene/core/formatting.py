"""How keyhygiene shows paths, key ids and times to people, the same everywhere.

Pure functions, no Textual: the command line, the plans and the screens all
use them, so that one key reads `…WXYZ` and one file `~/.aws/credentials`
wherever it appears.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone


def shown_path(path: str | os.PathLike[str], home: str | os.PathLike[str] | None = None) -> str:
    """The path as people write it: `~/.aws/credentials`.

    `home` is the home folder to abbreviate (default: this user's); a path
    outside it, or a home of `/`, is shown whole.
    """
    text = os.fspath(path)
    folder = os.fspath(home) if home is not None else os.path.expanduser("~")
    folder = folder.rstrip(os.sep)
    if folder and (text == folder or text.startswith(folder + os.sep)):
        return "~" + text[len(folder) :]
    return text


def key_tail(key_id: str) -> str:
    """`…WXYZ`: the last four characters of an access key id, which is how
    people tell keys apart (the id is not secret, but long)."""
    return "…" + key_id[-4:]


def utc_z(moment: datetime) -> str:
    """`2026-11-28T21:00:00Z`: UTC, whole seconds, the form of keyhygiene's tags
    and of `aws:CurrentTime` conditions.

    A naive datetime is refused (ValueError): it names no defined instant.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("A time without a time zone cannot be compared with an expiry.")
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc(text: str | None) -> datetime | None:
    """An ISO 8601 time (`…Z` or with an offset) as an aware datetime, naive
    ones taken as UTC; None when empty or unreadable."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def describe_duration(duration: timedelta) -> str:
    """A short human form: `2 h`, `3 d 4 h`, `45 min`."""
    minutes = int(duration.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [
        f"{days} d" if days else "",
        f"{hours} h" if hours else "",
        f"{minutes} min" if minutes else "",
    ]
    return " ".join(part for part in parts if part) or "less than a minute"


def remaining_text(expiry: str | None, now: datetime) -> str:
    """A loan's countdown: `1 h 59 min left`, `expired 3 min ago`, or `unreadable expiry`."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("A time without a time zone cannot be compared with an expiry.")
    moment = parse_utc(expiry)
    if moment is None:
        return "unreadable expiry"
    delta = moment.astimezone(timezone.utc) - now.astimezone(timezone.utc)
    if delta <= timedelta():
        return f"expired {describe_duration(-delta)} ago"
    return f"{describe_duration(delta)} left"
