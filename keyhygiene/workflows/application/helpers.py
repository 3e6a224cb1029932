"""Helpers shared by the application's steps."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from keyhygiene.core import arns
from keyhygiene.core.errors import BadInput
from keyhygiene.core.model import (
    Snapshot,
)
from keyhygiene.core.policy_documents import (
    PolicyKind,
)
from keyhygiene.steps.whitelists import (
    check_policy,
    principals_after,
)
from keyhygiene.workflows.application.context import _Context
from keyhygiene.workflows.application.model import _STANDIN_KEY_ID

# ---- shared helpers


def _principals(ctx: _Context, groups: Iterable[str]) -> list[str]:
    """Who a resource tagged for `groups` must whitelist once the plan ran:
    group NAME's members after the plan plus its roles (the new one too), and
    for every other group what the snapshot says."""
    members = {ctx.name: ctx.members_after}
    return sorted({*principals_after(ctx.snapshot, dict.fromkeys(groups), members), ctx.role_arn})


def _check_policy(
    ctx: _Context,
    document: Mapping[str, Any],
    kind: PolicyKind,
    label: str,
    resource_arn: str | None,
) -> None:
    check_policy(ctx.snapshot, document, kind, label, ctx.actor, resource_arn)


def _refuse_unreadable(snapshot: Snapshot, prefix: str, label: str) -> None:
    """Adopting a resource whose policy or tags could not be read would overwrite them blind."""
    problems = [p for p in snapshot.problems if p.what.startswith(prefix)]
    if problems:
        parts = ", ".join(p.what[len(prefix) :].strip() for p in problems)
        raise BadInput(
            f"keyhygiene could not read the {parts} of {label}, so it cannot adopt it safely.",
            hint=problems[0].message,
        )


def _standin_key_arn(ctx: _Context) -> str:
    return arns.kms_key_arn(ctx.snapshot.account_id, ctx.region, _STANDIN_KEY_ID, ctx.partition)


def _count(items: Sequence[Any], noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"
