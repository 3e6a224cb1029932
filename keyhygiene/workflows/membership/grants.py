"""The loans a snapshot shows: who holds which group until when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from keyhygiene.core.model import (
    TAG_GRANT_PREFIX,
    Snapshot,
)
from keyhygiene.workflows.membership.durations import parse_expiry, utc


@dataclass(frozen=True)
class Grant:
    """A temporary membership as tagged on the user."""

    user: str
    group: str
    expiry_text: str  # the tag's value, as found

    @property
    def expiry(self) -> datetime | None:
        return parse_expiry(self.expiry_text)

    @property
    def tag_key(self) -> str:
        return TAG_GRANT_PREFIX + self.group

    def expired(self, now: datetime) -> bool:
        """Past its expiry; an unreadable expiry counts as expired (fail closed)."""
        moment = self.expiry
        return moment is None or moment <= utc(now)


def grants_of(snapshot: Snapshot) -> tuple[Grant, ...]:
    """Every temporary membership in the account, by user then group."""
    return tuple(
        Grant(user.name, group, expiry)
        for user in snapshot.users
        for group, expiry in sorted(user.grants().items())
    )


def expired_grants(snapshot: Snapshot, now: datetime) -> tuple[Grant, ...]:
    """The grants `sweep` would remove at `now`."""
    return tuple(grant for grant in grants_of(snapshot) if grant.expired(now))
