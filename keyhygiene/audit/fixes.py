"""From an audit finding to what fixes it: a plan to review, or the rotate wizard.

Only findings whose fix is an existing workflow get one; the others keep
their sentence (`Finding.fix`), which says what to do by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from keyhygiene.audit.findings import Finding
from keyhygiene.core.model import Snapshot
from keyhygiene.plans import Plan

FixKind = Literal["plan", "rotate"]
_SYNC_FIXED = ("whitelist.", "policy.", "bucket.no-unencrypted-deny")


@dataclass(frozen=True)
class Fix:
    kind: FixKind
    label: str
    plan: Plan | None = None


def fix_for(snapshot: Snapshot, finding: Finding, now: datetime) -> Fix | None:
    """The fix keyhygiene can carry out for `finding`, or None.

    Raises BadInput (from the workflow) when the fix cannot be planned as the
    account stands; the caller shows that message.
    """
    # Whitelist drift and the policy forms of earlier versions: `app sync` rewrites them.
    if finding.id.startswith(_SYNC_FIXED) and finding.resource_kind in ("bucket", "kms-key"):
        groups = _groups_of(snapshot, finding)
        if groups:
            from keyhygiene.workflows.application import plan_sync_application

            return Fix(
                "plan",
                f"Sync application {groups[0]}: its whitelists and keyhygiene's statements",
                plan_sync_application(snapshot, groups[0]),
            )
    if finding.id == "policy.expiry-unguarded" and finding.resource_kind == "user":
        from keyhygiene.workflows.membership import plan_guard_loans

        return Fix(
            "plan",
            f"Add the guard to {finding.resource}'s loans",
            plan_guard_loans(snapshot, finding.resource),
        )
    if finding.id == "user.expired-grant":
        from keyhygiene.workflows.membership import plan_sweep

        return Fix("plan", "Remove the expired loans", plan_sweep(snapshot, now=now))
    if (
        finding.id in ("user.key-too-old", "user.key-unused", "user.several-active-keys")
        and finding.resource_kind == "user"
        and finding.resource == snapshot.this_user
    ):
        return Fix("rotate", "Rotate this computer's key")
    return None


def _groups_of(snapshot: Snapshot, finding: Finding) -> tuple[str, ...]:
    if finding.resource_kind == "bucket":
        bucket = snapshot.bucket(finding.resource)
        return bucket.for_groups if bucket else ()
    key = snapshot.kms_key(finding.resource)
    return key.for_groups if key else ()
