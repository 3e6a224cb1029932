"""The steps the membership plans are made of."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from keyhygiene.core.model import (
    EXPIRY_POLICY_NAME,
    Group,
    Snapshot,
    User,
)
from keyhygiene.plans import (
    Call,
    Step,
)
from keyhygiene.workflows.membership.expiry import ExpiryPolicy
from keyhygiene.workflows.membership.grants import Grant


def _members(group: Group) -> set[str]:
    return set(group.members)


def _tag_group(user: User, group: Group) -> str:
    """The group name as written in the user's grant tag (its case may differ)."""
    lowered = group.name.lower()
    return next((g for g in user.grants() if g.lower() == lowered), group.name)


def _add_to_group_step(user: User, group: Group) -> Step:
    params = {"UserName": user.name, "GroupName": group.name}
    return Step(
        id="membership-add",
        description=f"Add {user.name} to group {group.name}",
        call=Call("iam", "add_user_to_group", params),
        undo=Call("iam", "remove_user_from_group", params),
    )


def _remove_from_group_step(user: User, group: Group) -> Step:
    params = {"UserName": user.name, "GroupName": group.name}
    return Step(
        id="membership-remove",
        description=f"Remove {user.name} from group {group.name}",
        call=Call("iam", "remove_user_from_group", params),
        undo=Call("iam", "add_user_to_group", params),
    )


def _tag_step(user: User, key: str, value: str, previous: str | None) -> Step:
    if previous is None:
        description = f"Tag {user.name} with {key} = {value}: the loan ends then"
        undo = Call("iam", "untag_user", {"UserName": user.name, "TagKeys": [key]})
    else:
        description = (
            f"Change {user.name}'s tag {key} from {previous} to {value}: the loan ends then"
        )
        undo = Call(
            "iam", "tag_user", {"UserName": user.name, "Tags": [{"Key": key, "Value": previous}]}
        )
    return Step(
        id="grant-tag",
        description=description,
        call=Call(
            "iam", "tag_user", {"UserName": user.name, "Tags": [{"Key": key, "Value": value}]}
        ),
        undo=undo,
    )


def _untag_step(step_id: str, user: User, tags: Mapping[str, str], *, why: str) -> Step:
    keys = sorted(tags)
    return Step(
        id=step_id,
        description=f"Remove tag{'s' if len(keys) != 1 else ''} {', '.join(keys)} from {user.name}: {why}",
        call=Call("iam", "untag_user", {"UserName": user.name, "TagKeys": keys}),
        undo=Call(
            "iam",
            "tag_user",
            {"UserName": user.name, "Tags": [{"Key": k, "Value": tags[k]} for k in keys]},
        ),
    )


def _current_expiry_document(user: User) -> dict[str, Any] | None:
    for policy in user.inline_policies:
        if policy.name == EXPIRY_POLICY_NAME:
            return json.loads(json.dumps(policy.document))
    return None


def _expiry_policy_steps(
    user: User,
    policy: ExpiryPolicy,
    *,
    step_id: str = "grant-expiry-policy",
    tolerant: bool = False,
) -> list[Step]:
    """Put, replace or delete `keyhygiene-expiry`; nothing when it is already right."""
    before = _current_expiry_document(user)
    after = policy.document
    if before == after:
        return []
    target = {"UserName": user.name, "PolicyName": EXPIRY_POLICY_NAME}
    restore = (
        Call("iam", "put_user_policy", {**target, "PolicyDocument": json.dumps(before)})
        if before is not None
        else Call("iam", "delete_user_policy", target)
    )
    if after is None:
        call = (
            Call("local", "membership.delete_user_policy", target)
            if tolerant
            else Call("iam", "delete_user_policy", target)
        )
        return [
            Step(
                id=step_id,
                description=f"Delete inline policy {EXPIRY_POLICY_NAME} from {user.name}: "
                "no loan is left for it to end",
                call=call,
                undo=restore,
                before=before,
            )
        ]
    verb = "Put" if before is None else "Replace"
    return [
        Step(
            id=step_id,
            description=f"{verb} inline policy {EXPIRY_POLICY_NAME} on {user.name}: {policy.summary}",
            call=Call("iam", "put_user_policy", {**target, "PolicyDocument": json.dumps(after)}),
            undo=restore,
            before=before,
            after=after,
        )
    ]


def _check_grants_step(grants: Sequence[Grant]) -> Step:
    entries = [{"UserName": g.user, "TagKey": g.tag_key, "Value": g.expiry_text} for g in grants]
    return Step(
        id="sweep-check",
        description="Check that the expired loans are still tagged as read (none was extended "
        "or ended meanwhile)",
        call=Call("local", "membership.check_grants", {"Grants": entries}),
    )


def _sweep_remove_step(index: int, user: User, group: Group, grant: Grant) -> Step:
    params = {"UserName": user.name, "GroupName": group.name}
    return Step(
        id=f"sweep-remove-{index}",
        description=f"Remove {user.name} from group {group.name}: its loan ended {grant.expiry_text}",
        call=Call("local", "membership.remove_user_from_group", params),
        keep=("Removed",),
    )


def _forward_only(step: Step) -> Step:
    """A sweep step: never undone, and its failure does not stop the others."""
    return replace(step, undo=None, must_succeed=False)


def _sweep_gate_step(step_ids: Sequence[str]) -> Step:
    return Step(
        id="sweep-gate",
        description="Go on only if every membership and whitelist entry above is gone: "
        "otherwise the expiry policies and tags stay, so that AWS keeps denying the expired "
        "loans and the next sweep finds them again",
        call=Call("local", "membership.require_done", {"Steps": list(step_ids)}),
    )


def _sweep_untag_step(
    index: int, user: User, grants: Sequence[Grant], after: Sequence[str]
) -> Step:
    names = ", ".join(g.group for g in grants)
    keys = sorted(g.tag_key for g in grants)
    return Step(
        id=f"sweep-untag-{index}",
        description=f"Remove tag{'s' if len(keys) != 1 else ''} {', '.join(keys)} from "
        f"{user.name}: its loan of {names} expired"
        + (" (only if its expiry policy step succeeded)" if after else ""),
        call=Call(
            "local",
            "membership.untag_user",
            {"UserName": user.name, "TagKeys": keys, "OnlyAfter": list(after)},
        ),
        must_succeed=False,
    )


def _whitelist_steps(snapshot: Snapshot, members_after: Mapping[str, set[str]]) -> list[Step]:
    """The bucket and key policy steps that make every whitelist of the groups
    in `members_after` equal to those members plus the groups' roles."""
    if not members_after:
        return []
    from keyhygiene.steps.whitelists import whitelist_steps

    return list(whitelist_steps(snapshot, members_after, snapshot.caller_arn))
