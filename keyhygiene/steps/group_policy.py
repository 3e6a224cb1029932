"""The steps that make a keyhygiene group with its one managed policy attached
(`keyhygiene-devices` with `keyhygiene-rotate-own-key`, `keyhygiene-mfa-devices`
with `keyhygiene-require-mfa`): each made only when missing, each settled after
an interrupted run (the `enroll.find_*` local actions), and an existing policy
that differs from keyhygiene's left as it is, with a warning."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from keyhygiene.core import arns
from keyhygiene.core.model import Snapshot
from keyhygiene.plans import LOCAL, Call, Step


@dataclass(frozen=True)
class GroupWithPolicy:
    group: str
    policy: str
    document: Mapping[str, Any]
    step_prefix: str  # "devices": create-devices-group; "rotate": create-rotate-policy
    policy_prefix: str
    group_why: str  # "(every enrolled computer is in it)"
    policy_why: str  # ": a computer may manage its own access keys, nothing else"
    policy_description: str  # IAM's Description of the policy
    same: Callable[[Mapping[str, Any]], bool]  # whether an existing policy is keyhygiene's
    differs: str  # the warning when it is not


def group_with_policy_steps(
    snapshot: Snapshot, spec: GroupWithPolicy, warnings: list[str]
) -> list[Step]:
    steps: list[Step] = []
    group = snapshot.group(spec.group)
    arn = arns.policy_arn(snapshot.account_id, spec.policy, snapshot.partition)
    if group is None:
        steps.append(
            Step(
                id=f"create-{spec.step_prefix}-group",
                description=f"Create the group {spec.group} {spec.group_why}",
                call=Call("iam", "create_group", {"GroupName": spec.group}),
                undo=Call("iam", "delete_group", {"GroupName": spec.group}),
                settle=Call(LOCAL, "enroll.find_group", {"GroupName": spec.group}),
            )
        )
    existing = snapshot.managed_policies.get(arn)
    if existing is None:
        steps.append(
            Step(
                id=f"create-{spec.policy_prefix}-policy",
                description=f"Create the policy {spec.policy}{spec.policy_why}",
                call=Call(
                    "iam",
                    "create_policy",
                    {
                        "PolicyName": spec.policy,
                        "PolicyDocument": json.dumps(spec.document),
                        "Description": spec.policy_description,
                    },
                ),
                undo=Call("iam", "delete_policy", {"PolicyArn": arn}),
                settle=Call(LOCAL, "enroll.find_policy", {"PolicyArn": arn}),
                after=spec.document,
                keep=("Policy.Arn",),
            )
        )
    elif not spec.same(existing):
        warnings.append(spec.differs)
    attached = group is not None and any(p.arn == arn for p in group.attached_policies)
    if not attached:
        params = {"GroupName": spec.group, "PolicyArn": arn}
        steps.append(
            Step(
                id=f"attach-{spec.policy_prefix}-policy",
                description=f"Attach {spec.policy} to the group {spec.group}",
                call=Call("iam", "attach_group_policy", params),
                undo=Call("iam", "detach_group_policy", params),
            )
        )
    return steps
