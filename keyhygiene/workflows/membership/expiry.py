"""The inline expiry policy: a Deny AWS evaluates itself once a loan is past, and
the guard that keeps it in place."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from keyhygiene.core.access import managed_document
from keyhygiene.core.aws_limits import (
    USER_INLINE_POLICIES_LIMIT,
)
from keyhygiene.core.errors import BadInput
from keyhygiene.core.model import (
    EXPIRY_POLICY_NAME,
    Group,
    Snapshot,
    User,
)
from keyhygiene.core.policy_documents import POLICY_VERSION
from keyhygiene.workflows.membership.durations import format_expiry
from keyhygiene.workflows.membership.model import EXPIRY_SID_PREFIX


@dataclass(frozen=True)
class GroupReach:
    """What membership of a group gives access to, as IAM resource ARNs (patterns allowed)."""

    group: str
    resources: tuple[str, ...]
    everything: bool = False  # some right is not limited to a list of resources
    why_everything: str = ""
    labels: tuple[str, ...] = ()  # "bucket christopher-photos", for the plan's words


def group_reach(snapshot: Snapshot, group_name: str) -> GroupReach:
    """The resources a member of `group_name` reaches: tagged buckets (and their
    objects), tagged KMS keys, and every Resource its IAM policies allow on."""
    resources: dict[str, None] = {}
    labels: list[str] = []
    for bucket in snapshot.buckets_for_group(group_name):
        resources[bucket.arn] = None
        resources[bucket.arn + "/*"] = None
        labels.append(f"bucket {bucket.name}")
    for key in snapshot.kms_keys_for_group(group_name):
        resources[key.arn] = None
        labels.append(f"KMS key {key.label}")
    group = snapshot.group(group_name)
    reasons: list[str] = []
    named = 0
    for policy_name, document in _group_documents(snapshot, group) if group else ():
        if document is None:
            reasons.append(f"its attached policy {policy_name} could not be read")
            continue
        for statement in _allow_statements(document):
            if "NotResource" in statement:
                reasons.append(f"its policy {policy_name} allows with NotResource")
                continue
            for resource in _strings(statement.get("Resource")):
                if resource == "*":
                    reasons.append(f'its policy {policy_name} allows on every resource ("*")')
                elif resource not in resources:
                    resources[resource] = None
                    named += 1
    if named:
        labels.append(f"{named} resource{'s' if named != 1 else ''} its policies name")
    return GroupReach(
        group=group.name if group else group_name,
        resources=tuple(sorted(resources)),
        everything=bool(reasons),
        why_everything="; ".join(dict.fromkeys(reasons)),
        labels=tuple(labels),
    )


@dataclass(frozen=True)
class ExpiryPolicy:
    """The `keyhygiene-expiry` document for a user's loans, and what it means in words."""

    document: dict[str, Any] | None  # None: no loan left, the policy goes
    summary: str  # what it denies and why, for the plan step
    warnings: tuple[str, ...] = ()


def expiry_policy(
    snapshot: Snapshot,
    user: User,
    grants: Mapping[str, datetime],
    *,
    groups_after: Iterable[str] | None = None,
) -> ExpiryPolicy:
    """The expiry policy for `user` holding `grants` (group -> expiry), see the module docstring.

    `grants` are the loans the user holds once the plan is applied, and
    `groups_after` its groups then (default: its groups now); those of its
    groups that are not on loan are its permanent ones.
    """
    if not grants:
        return ExpiryPolicy(None, "no loan is left")
    loaned = {name.lower() for name in grants}
    after = user.groups if groups_after is None else tuple(groups_after)
    permanent = [g for g in after if g.lower() not in loaned]
    permanent_reach = {r for g in permanent for r in group_reach(snapshot, g).resources}
    deny_at: dict[str, datetime] = {}
    broad: list[tuple[datetime, str, str]] = []  # (expiry, group, why)
    warnings: list[str] = []
    parts: list[str] = []
    for group_name, expiry in sorted(grants.items()):
        reach = group_reach(snapshot, group_name)
        if reach.everything:
            broad.append((expiry, reach.group, reach.why_everything))
        for resource in reach.resources:
            # Reached by two loans: the earlier expiry wins (fail closed).
            deny_at[resource] = min(expiry, deny_at.get(resource, expiry))
        overlap = sorted(set(reach.resources) & permanent_reach)
        if overlap:
            warnings.append(
                f"{user.name}'s permanent groups also reach {len(overlap)} of the resources "
                f"of group {reach.group} ({', '.join(overlap[:3])}{', …' if len(overlap) > 3 else ''}): "
                f"from {format_expiry(expiry)} until keyhygiene sweeps the loan, "
                f"{user.name} is denied those too."
            )
        if not reach.everything and not reach.resources:
            warnings.append(
                f"Group {reach.group} gives access to nothing keyhygiene can name (no bucket or "
                "KMS key tagged for it, no resource in its policies): the expiry policy has "
                "nothing to deny for this loan; the sweep still ends it."
            )
        if not reach.everything:  # else the full deny below says it
            what = ", ".join(reach.labels) or "none tagged or named"
            parts.append(
                f"after {format_expiry(expiry)} every action on the resources of group "
                f"{reach.group} ({what})"
            )
    statements: list[dict[str, Any]] = []
    earliest_broad = min(broad) if broad else None
    if earliest_broad is not None:
        when, group_name, why = earliest_broad
        statements.append(_deny_statement(EXPIRY_SID_PREFIX + "All", ["*"], when))
        parts.append(
            f"after {format_expiry(when)} every action at all, because the rights of group "
            f"{group_name} cannot be tied to a list of resources ({why})"
        )
        warnings.append(
            f"After {format_expiry(when)}, {user.name} is denied every action, its permanent "
            f"rights included, until keyhygiene sweeps the loan of {group_name} ({why})."
        )
    by_time: dict[datetime, list[str]] = {}
    for resource, when in deny_at.items():
        if earliest_broad is None or when < earliest_broad[0]:
            by_time.setdefault(when, []).append(resource)
    for when in sorted(by_time):
        sid = EXPIRY_SID_PREFIX + format_expiry(when).replace("-", "").replace(":", "")
        statements.append(_deny_statement(sid, sorted(by_time[when]), when))
    timed = bool(statements)
    # As long as any loan lasts: without it a borrower whose group grants IAM
    # rights could delete this very policy, or move its tag, before the expiry.
    statements.extend(guard_statements(user))
    document = {"Version": POLICY_VERSION, "Statement": statements}
    guard = (
        f"and, unconditionally while {'a loan lasts' if len(grants) > 1 else 'the loan lasts'}, "
        f"{user.name} changing its own policies, tags, groups or name (so that it cannot undo "
        "its expiry)"
    )
    summary = (
        "AWS itself denies "
        + "; and ".join(parts)
        + f"; {guard}, so {'each loan ends' if len(grants) > 1 else 'the loan ends'} on time "
        "even if keyhygiene never runs again"
    )
    if not timed:
        summary = (
            "the loans give access to no resource keyhygiene can name, so nothing is denied "
            f"after the expiry; AWS itself denies {guard.removeprefix('and, ')}"
        )
    return ExpiryPolicy(document, summary, tuple(warnings))


# The guard of `keyhygiene-expiry`: what a borrower may never do to itself while
# it holds a loan, whatever its groups allow (an explicit Deny beats any Allow).
# On its own ARN: its inline and attached policies (this one included), its
# permissions boundary, its tags (the grant tags tell the sweep what to end) and
# its name and path (renamed, it would no longer match this Resource).
GUARD_SID = EXPIRY_SID_PREFIX + "Guard"
GUARD_GROUPS_SID = EXPIRY_SID_PREFIX + "GuardGroups"
GUARDED_SELF_ACTIONS: tuple[str, ...] = (
    "iam:DeleteUserPolicy",
    "iam:PutUserPolicy",
    "iam:AttachUserPolicy",
    "iam:DetachUserPolicy",
    "iam:PutUserPermissionsBoundary",
    "iam:DeleteUserPermissionsBoundary",
    "iam:TagUser",
    "iam:UntagUser",
    "iam:UpdateUser",
)
# iam:AddUserToGroup is authorized on the *group* (the Service Authorization
# Reference lists only the group resource, and no condition key names the user
# being added), so it can only be denied on "*": the borrower cannot add itself,
# nor anyone else, to any group for good while it holds a loan.
# iam:RemoveUserFromGroup is left allowed, on purpose: it is authorized on the
# group too, so it could only be denied on "*" (which would also stop a borrower
# lent an admin group from taking a lost computer out of a group), and leaving a
# group escapes nothing of the loan: it only takes rights away, and the tag and
# this policy stay for the sweep (which accepts a membership already gone).
GUARDED_GROUP_ACTION = "iam:AddUserToGroup"


def guard_statements(user: User) -> list[dict[str, Any]]:
    """The unconditional Deny statements of `keyhygiene-expiry` (see above)."""
    return [
        {
            "Sid": GUARD_SID,
            "Effect": "Deny",
            "Action": list(GUARDED_SELF_ACTIONS),
            "Resource": user.arn,
        },
        {
            "Sid": GUARD_GROUPS_SID,
            "Effect": "Deny",
            "Action": GUARDED_GROUP_ACTION,
            "Resource": "*",
        },
    ]


def _deny_statement(sid: str, resources: list[str], when: datetime) -> dict[str, Any]:
    return {
        "Sid": sid,
        "Effect": "Deny",
        "Action": "*",
        "Resource": resources[0] if resources == ["*"] else resources,
        "Condition": {"DateGreaterThan": {"aws:CurrentTime": format_expiry(when)}},
    }


def inline_policies_size(documents: Iterable[Mapping[str, Any]]) -> int:
    """Characters IAM counts against a user's inline policy limit (conservatively)."""
    return sum(len(json.dumps(doc, separators=(",", ":"), ensure_ascii=False)) for doc in documents)


def ensure_inline_policies_fit(user: User, document: Mapping[str, Any] | None) -> None:
    others = [p.document for p in user.inline_policies if p.name != EXPIRY_POLICY_NAME]
    size = inline_policies_size([*others, *([document] if document else [])])
    if size > USER_INLINE_POLICIES_LIMIT:
        raise BadInput(
            f"{user.name}'s inline policies would total {size:,} characters with the new "
            f"{EXPIRY_POLICY_NAME}; IAM accepts at most {USER_INLINE_POLICIES_LIMIT:,} a user. "
            "Nothing was changed.",
            hint="End some of its other loans first, tag fewer buckets for the group, or "
            "remove inline policies the user no longer needs.",
        )


def _group_documents(
    snapshot: Snapshot, group: Group
) -> list[tuple[str, Mapping[str, Any] | None]]:
    documents: list[tuple[str, Mapping[str, Any] | None]] = [
        (policy.name, policy.document) for policy in group.inline_policies
    ]
    for attached in group.attached_policies:
        # The AWS managed policies keyhygiene knows count too (AdministratorAccess...).
        documents.append((attached.name, managed_document(snapshot, attached)))
    return documents


def _allow_statements(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    raw = document.get("Statement", [])
    items = raw if isinstance(raw, list) else [raw]
    return [s for s in items if isinstance(s, Mapping) and s.get("Effect") == "Allow"]


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (list, tuple)):
        return tuple(item for item in value if isinstance(item, str))
    return ()
