"""What the lost computer's key could reach, in words."""

from __future__ import annotations

from datetime import timezone

from keyhygiene.core.model import (
    TAG_REVOKED,
    AccessKey,
    Snapshot,
    User,
)
from keyhygiene.workflows.revoke.helpers import _mentions
from keyhygiene.workflows.revoke.model import UserExtras


def describe_reach(snapshot: Snapshot, user: User, extras: UserExtras | None = None) -> list[str]:
    """What the computer's user can reach, as lines for people (before revoking)."""
    extras = extras or UserExtras()
    lines = [f"User {user.name}" + (f" (host {user.hostname})" if user.hostname else "")]
    if snapshot.this_user and snapshot.this_user.lower() == user.name.lower():
        lines.append("This is the computer you are on.")
    if user.revoked:
        lines.append(f"Revoked already: {user.tags[TAG_REVOKED]}")
    lines.append("Groups: " + (", ".join(user.groups) or "none"))
    buckets = [b.name for b in snapshot.buckets if _mentions(b.policy, user.arn)]
    keys = [k.label for k in snapshot.kms_keys if _mentions(k.policy, user.arn)]
    lines.append("Buckets whose policy names it: " + (", ".join(buckets) or "none"))
    lines.append("KMS keys whose policy names it: " + (", ".join(keys) or "none"))
    policies = [p.name for p in user.attached_policies] + [p.name for p in user.inline_policies]
    lines.append("Its own policies: " + (", ".join(policies) or "none"))
    if not user.access_keys:
        lines.append("Access keys: none" if user.keys_exact else "Access keys: not known")
    for key in user.access_keys:
        lines.append(f"Access key {key.id or key.id_tail}: {key.status}, {_last_use(key)}")
    login = {True: "yes", False: "no", None: "not known"}[extras.login_profile]
    lines.append(f"Console password: {login}")
    if extras.mfa_serials is None:
        lines.append("MFA devices: not known")
    else:
        lines.append(f"MFA devices: {len(extras.mfa_serials)}")
    return lines


def _last_use(key: AccessKey) -> str:
    if key.last_used is None:
        return "never used"
    service = f" ({key.last_used_service})" if key.last_used_service else ""
    return f"last used {key.last_used.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC{service}"
