"""Plan a new application (group, role, KMS key, buckets) for a list of computers."""

from __future__ import annotations

from collections.abc import Sequence

from keyhygiene.aws.sessions import DEFAULT_REGION
from keyhygiene.core import arns
from keyhygiene.core.aws_limits import (
    MAX_GROUPS_PER_USER,
)
from keyhygiene.core.errors import BadInput
from keyhygiene.core.model import (
    Snapshot,
)
from keyhygiene.plans import (
    Call,
    Plan,
    Step,
)
from keyhygiene.steps.whitelists import (
    check_whole_account,
)
from keyhygiene.workflows.application.buckets import _bucket_steps
from keyhygiene.workflows.application.context import _Context
from keyhygiene.workflows.application.kms_key import _existing_key, _key_steps
from keyhygiene.workflows.application.preflight import Preflight
from keyhygiene.workflows.application.role import _role_steps
from keyhygiene.workflows.application.validation import (
    validate_application_name,
    validate_new_bucket_name,
)


def plan_create_application(
    snapshot: Snapshot,
    name: str,
    buckets: Sequence[str] = (),
    members: Sequence[str] = (),
    *,
    actor_arn: str | None = None,
    region: str | None = None,
    preflight: Preflight | None = None,
) -> Plan:
    """The plan that creates (or adopts) application NAME. Pure; `BadInput` on a bad request.

    `actor_arn` is the identity that will apply the plan (default: the one
    that loaded the snapshot); `region` where new buckets go; `preflight`
    what `preflight_application` read (without it, no instance profile NAME
    is assumed to exist unless the role lists it).
    """
    check_whole_account(snapshot)
    name = validate_application_name(name)
    group = snapshot.group(name)
    name = group.name if group else name
    bucket_names = list(dict.fromkeys(b.strip() for b in buckets if b.strip()))
    for bucket in bucket_names:
        if snapshot.bucket(bucket) is None:
            validate_new_bucket_name(bucket)
    member_names = _checked_members(snapshot, name, members)
    role = snapshot.role(name)
    partition = snapshot.partition
    # A new role's ARN is known before it exists: path "/", named NAME.
    role_arn = role.arn if role else arns.role_arn(snapshot.account_id, name, partition)
    ctx = _Context(
        snapshot=snapshot,
        name=name,
        actor=actor_arn or snapshot.caller_arn,
        region=region or DEFAULT_REGION,
        partition=partition,
        role_arn=role_arn,
        members_after=frozenset((*(group.members if group else ()), *member_names)),
        new_role=role is None,
    )
    warnings: list[str] = []
    steps = [
        *_group_steps(ctx, member_names),
        *_role_steps(ctx, role, preflight or Preflight(), warnings),
    ]
    key = _existing_key(snapshot, name)
    key_steps, key_arn = _key_steps(ctx, key, warnings)
    steps.extend(key_steps)
    for index, bucket in enumerate(bucket_names, 1):
        steps.extend(_bucket_steps(ctx, index, bucket, key, key_arn, warnings))
    return Plan(
        kind="app_create",
        title=f"Add application {name}",
        steps=tuple(steps),
        warnings=tuple(warnings),
        # Create-or-adopt: the same command run again finishes an interrupted one.
        subject=f"create {name.lower()}",
    )


def _checked_members(snapshot: Snapshot, name: str, members: Sequence[str]) -> list[str]:
    """The users to add to group NAME, by their exact names; `BadInput` for unknown ones."""
    wanted = list(dict.fromkeys(m.strip() for m in members if m.strip()))
    missing = [m for m in wanted if snapshot.user(m) is None]
    if missing:
        raise BadInput(
            f"No IAM user named {', '.join(repr(m) for m in missing)} in this account.",
            hint="Members are the users of enrolled computers (person-device); "
            "check the spelling against the account tree.",
        )
    group = snapshot.group(name)
    present = {m.lower() for m in (group.members if group else ())}
    result: list[str] = []
    for member in wanted:
        user = snapshot.user(member)
        assert user is not None
        if user.name.lower() in present:
            continue
        if user.revoked:
            raise BadInput(
                f"User {user.name} was revoked; it cannot join application {name}.",
            )
        if len(user.groups) >= MAX_GROUPS_PER_USER:
            raise BadInput(
                f"User {user.name} is already in {len(user.groups)} groups, "
                f"the most IAM allows; it cannot join group {name}.",
            )
        result.append(user.name)
    return result


def _group_steps(ctx: _Context, member_names: Sequence[str]) -> list[Step]:
    steps: list[Step] = []
    if ctx.snapshot.group(ctx.name) is None:
        steps.append(
            Step(
                id="group",
                description=f"Create group {ctx.name}",
                call=Call("iam", "create_group", {"GroupName": ctx.name}),
                undo=Call("iam", "delete_group", {"GroupName": ctx.name}),
            )
        )
    for index, member in enumerate(member_names, 1):
        params = {"GroupName": ctx.name, "UserName": member}
        steps.append(
            Step(
                id=f"member-{index}",
                description=f"Add {member} to group {ctx.name}",
                call=Call("iam", "add_user_to_group", params),
                undo=Call("iam", "remove_user_from_group", params),
            )
        )
    return steps
