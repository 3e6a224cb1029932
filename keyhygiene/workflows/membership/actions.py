"""The membership plans' apply-time actions, and the sweep's gate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from keyhygiene.aws.connection import all_items, call_unless_missing
from keyhygiene.core.errors import KeyHygieneError
from keyhygiene.plans import (
    ApplyContext,
    local_action,
)

# Registered at import time so that a journal read at the next start can run them.


class GrantChanged(KeyHygieneError):
    """A loan the sweep was about to remove changed since the account was read."""


@local_action("membership.check_grants")
def _check_grants(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    iam = ctx.client("iam")
    changed: list[str] = []
    tags_by_user: dict[str, dict[str, str]] = {}
    for entry in params["Grants"]:
        user = entry["UserName"]
        if user not in tags_by_user:
            tags_by_user[user] = _user_tags(iam, user)
        now_value = tags_by_user[user].get(entry["TagKey"])
        if now_value != entry["Value"]:
            state = "gone" if now_value is None else f"now {now_value}"
            changed.append(f"{user} {entry['TagKey']} ({state})")
    if changed:
        raise GrantChanged(
            "Some loans changed since the account was read: " + "; ".join(changed) + ". "
            "Nothing was swept.",
            hint="Run the sweep again: it reads the account afresh.",
        )
    return {"Checked": len(params["Grants"])}


def _user_tags(iam: Any, user: str) -> dict[str, str]:
    return {
        tag["Key"]: tag["Value"] for tag in all_items(iam, "list_user_tags", "Tags", UserName=user)
    }


@local_action("membership.remove_user_from_group")
def _remove_user_from_group(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """remove_user_from_group that accepts "not a member" (another sweep was first)."""
    removed = call_unless_missing(
        ctx.client("iam").remove_user_from_group,
        UserName=params["UserName"],
        GroupName=params["GroupName"],
    )
    return {"Removed": removed}


@local_action("membership.restore_membership")
def _restore_membership(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """The undo of the tolerant removal in journals written before sweeps became
    forward only: add back only what that run removed. New plans never use it."""
    if params.get("Removed"):
        ctx.client("iam").add_user_to_group(
            UserName=params["UserName"], GroupName=params["GroupName"]
        )
    return {}


class StepsNotDone(KeyHygieneError):
    """A sweep step that must wait for earlier ones, some of which did not succeed."""


def _require_done_steps(ctx: ApplyContext, step_ids: Sequence[str], then: str) -> None:
    # Every step this run (or a journaled earlier run) did has a record.
    missing = [step_id for step_id in step_ids if step_id not in ctx.record]
    if missing:
        raise StepsNotDone(
            f"{len(missing)} earlier step(s) did not succeed ({', '.join(missing)}): {then}",
            hint="Fix the cause, then run the sweep again: it starts from the account as it is.",
        )


@local_action("membership.require_done")
def _require_done(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    _require_done_steps(
        ctx,
        params["Steps"],
        "the expiry policies and tags stay, so AWS keeps denying the expired loans.",
    )
    return {"Checked": len(params["Steps"])}


@local_action("membership.untag_user")
def _untag_user(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """untag_user once the steps it waits for are done; a user gone is no error."""
    _require_done_steps(
        ctx,
        params.get("OnlyAfter", ()),
        "the tag stays, so that the next sweep finds the loan again.",
    )
    untagged = call_unless_missing(
        ctx.client("iam").untag_user, UserName=params["UserName"], TagKeys=params["TagKeys"]
    )
    return {"Untagged": untagged}


@local_action("membership.delete_user_policy")
def _delete_user_policy(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """delete_user_policy that accepts "no such policy" (another sweep was first)."""
    deleted = call_unless_missing(
        ctx.client("iam").delete_user_policy,
        UserName=params["UserName"],
        PolicyName=params["PolicyName"],
    )
    return {"Deleted": deleted}
