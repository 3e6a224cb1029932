"""The application's role, its instance profile and trust in EC2."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from keyhygiene.core.aws_limits import (
    TRUST_POLICY_LIMIT,
)
from keyhygiene.core.errors import BadInput
from keyhygiene.core.model import (
    TAG_GROUPS,
    Role,
)
from keyhygiene.core.policy_documents import (
    POLICY_VERSION,
    as_document,
)
from keyhygiene.plans import (
    Call,
    Step,
)
from keyhygiene.workflows.application.context import _Context
from keyhygiene.workflows.application.model import EC2_SERVICES, SID_TRUST_EC2, ec2_service
from keyhygiene.workflows.application.preflight import Preflight
from keyhygiene.workflows.application.tags import _adopt_tag_steps, _TagCalls

# ---- role and instance profile


def _role_steps(
    ctx: _Context, role: Role | None, preflight: Preflight, warnings: list[str]
) -> list[Step]:
    if role is None:
        return [
            _create_role_step(ctx.name, ctx.partition),
            *_instance_profile_steps(ctx, ctx.name, (), preflight),
        ]
    if role.service_linked:
        raise BadInput(
            f"Role {role.name} is a service-linked role; it cannot be an application's role.",
            hint="Choose another application name.",
        )
    tag_steps = _adopt_tag_steps(
        "role", ctx.name, role.tags, _role_tag_calls(role.name), warnings, f"role {role.name}"
    )
    return [
        *_trust_steps(role, ctx.partition),
        *tag_steps,
        *_instance_profile_steps(ctx, role.name, role.instance_profiles, preflight),
    ]


def _create_role_step(name: str, partition: str) -> Step:
    trust = _ec2_trust_policy(partition)
    return Step(
        id="role",
        description=f"Create role {name}, which EC2 instances may assume, "
        f"tagged {TAG_GROUPS}={name}",
        call=Call(
            "iam",
            "create_role",
            {
                "RoleName": name,
                "AssumeRolePolicyDocument": json.dumps(trust),
                "Description": f"EC2 instances of application {name} (keyhygiene)",
                "Tags": [{"Key": TAG_GROUPS, "Value": name}],
            },
        ),
        undo=Call("iam", "delete_role", {"RoleName": name}),
        after=trust,
        keep=("Role.Arn",),
    )


def _instance_profile_steps(
    ctx: _Context, role_name: str, role_profiles: Iterable[str], preflight: Preflight
) -> list[Step]:
    """Instance profile NAME holding the role: EC2 instances get a role only through one."""
    profile = ctx.name
    # IAM names are unique ignoring case.
    if profile.lower() in {p.lower() for p in role_profiles}:
        return []
    holders = preflight.instance_profile_roles
    steps: list[Step] = []
    if holders is None:
        steps.append(
            Step(
                id="profile",
                description=f"Create instance profile {profile}",
                call=Call("iam", "create_instance_profile", {"InstanceProfileName": profile}),
                undo=Call("iam", "delete_instance_profile", {"InstanceProfileName": profile}),
            )
        )
    elif any(holder.lower() != role_name.lower() for holder in holders):
        raise BadInput(
            f"Instance profile {profile} already holds role {holders[0]}; "
            f"it cannot also hold role {role_name}.",
            hint="Remove that role from the instance profile, or choose another application name.",
        )
    elif holders:
        return []
    params = {"InstanceProfileName": profile, "RoleName": role_name}
    steps.append(
        Step(
            id="profile-role",
            description=f"Put role {role_name} in instance profile {profile}",
            call=Call("iam", "add_role_to_instance_profile", params),
            undo=Call("iam", "remove_role_from_instance_profile", params),
        )
    )
    return steps


def _ec2_trust_policy(partition: str) -> dict[str, Any]:
    return {"Version": POLICY_VERSION, "Statement": [_ec2_trust_statement(partition)]}


def _ec2_trust_statement(partition: str) -> dict[str, Any]:
    return {
        "Sid": SID_TRUST_EC2,
        "Effect": "Allow",
        "Principal": {"Service": ec2_service(partition)},
        "Action": "sts:AssumeRole",
    }


def trusts_ec2(trust_policy: Mapping[str, Any] | None) -> bool:
    """Some Allow lets EC2 (ec2.amazonaws.com, or .com.cn in China) assume the role.

    A condition on it is the owner's deliberate restriction: it still counts,
    so that adoption does not add an unconditional trust beside it.
    """
    document = as_document(trust_policy) or {}
    raw = document.get("Statement", [])
    for statement in raw if isinstance(raw, list) else [raw]:
        if not isinstance(statement, Mapping) or statement.get("Effect") != "Allow":
            continue
        principal = statement.get("Principal")
        services = principal.get("Service", ()) if isinstance(principal, Mapping) else ()
        services = [services] if isinstance(services, str) else list(services)
        actions = statement.get("Action", ())
        actions = [actions] if isinstance(actions, str) else list(actions)
        if set(EC2_SERVICES.values()) & set(services) and any(
            a in ("sts:AssumeRole", "sts:*", "*") for a in actions
        ):
            return True
    return False


def _trust_steps(role: Role, partition: str) -> list[Step]:
    """An adopted role that EC2 may not assume yet gets keyhygiene's trust statement added."""
    if trusts_ec2(role.trust_policy):
        return []
    before = as_document(role.trust_policy) or {"Version": POLICY_VERSION, "Statement": []}
    raw = before.get("Statement", [])
    kept = list(raw) if isinstance(raw, list) else [raw]
    after = {**before, "Statement": [*kept, _ec2_trust_statement(partition)]}
    after.setdefault("Version", POLICY_VERSION)
    if len(json.dumps(after, separators=(",", ":"))) > TRUST_POLICY_LIMIT:
        raise BadInput(
            f"Letting EC2 assume role {role.name} would make its trust policy longer than "
            f"{TRUST_POLICY_LIMIT:,} characters.",
            hint="Shorten the role's trust policy, or choose another application name.",
        )
    return [
        Step(
            id="role-trust",
            description=f"Let EC2 instances assume role {role.name} (its other trust kept)",
            call=Call(
                "iam",
                "update_assume_role_policy",
                {"RoleName": role.name, "PolicyDocument": json.dumps(after)},
            ),
            undo=Call(
                "iam",
                "update_assume_role_policy",
                {"RoleName": role.name, "PolicyDocument": json.dumps(before)},
            ),
            before=before,
            after=after,
        )
    ]


def _role_tag_calls(role_name: str) -> _TagCalls:
    return _TagCalls(
        put=lambda value: Call(
            "iam",
            "tag_role",
            {"RoleName": role_name, "Tags": [{"Key": TAG_GROUPS, "Value": value}]},
        ),
        remove=Call("iam", "untag_role", {"RoleName": role_name, "TagKeys": [TAG_GROUPS]}),
    )
