"""The membership actions, the plan kinds and the expiry statements' names."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

DEFAULT_MAX_DURATION = timedelta(days=30)
EXPIRY_SID_PREFIX = "KeyHygieneExpiry"
SWEEP_KIND = "sweep"  # the plan kind of a sweep: forward only, never resumed nor rolled back
SWEEP_SUBJECT = "sweep"  # every sweep finishes any interrupted one: they share the intent

MembershipAction = Literal["add", "remove", "lend"]
MEMBERSHIP_ACTIONS: tuple[MembershipAction, ...] = ("add", "remove", "lend")
