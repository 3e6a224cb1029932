"""Applications: one group, one EC2 role, one KMS key and its buckets, as plans.

An application is named by its group. `plan_create_application` creates what
is missing and adopts what exists: group NAME with its first members, role
NAME trusted by EC2 with instance profile NAME, a KMS key named `alias/NAME`,
and buckets with default SSE-KMS under that key, public access fully blocked
and keyhygiene's whitelist statements. The role, the key and the buckets are
tagged `keyhygiene:groups=NAME`, which is how keyhygiene finds them again.
`plan_sync_application` recomputes the application's whitelists and repairs
drift.

Both are pure: they read a snapshot and return a plan. What the snapshot
cannot know (is a bucket name free? does an instance profile NAME exist?)
is read beforehand by `preflight_application`, with a few read-only calls.

Every computed policy passes `ensure_within_limit` and `check_lockout`
before it goes into a plan, so an invalid request fails with a clear
`BadInput` and nothing changed. The whitelist rules (who is listed, which
admins stay excepted, what earlier runs chose) are keyhygiene/steps/whitelists.py's,
shared with every other workflow; so is the apply-time check that a bucket
or key policy adopted from the snapshot did not change before it is
rewritten (`policy.put_if_unchanged`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from keyhygiene.aws.connection import all_items, error_code, translate_errors
from keyhygiene.aws.errors import ClientError
from keyhygiene.aws.propagation import call_until_visible, retry_until_visible
from keyhygiene.aws.sessions import DEFAULT_REGION
from keyhygiene.core import arns
from keyhygiene.core.aws_limits import (
    MAX_GROUPS_PER_USER,
    MAX_TAG_VALUE,
    MAX_TAGS_PER_RESOURCE,
    TRUST_POLICY_LIMIT,
    check_iam_name,
)
from keyhygiene.core.errors import BadInput
from keyhygiene.core.model import (
    TAG_GROUPS,
    Bucket,
    Encryption,
    KmsKey,
    Role,
    Snapshot,
    groups_from_tag,
)
from keyhygiene.core.policy_documents import (
    POLICY_VERSION,
    PolicyKind,
    as_document,
    bucket_policy_with_whitelist,
    default_key_policy,
    key_policy_with_whitelist,
)
from keyhygiene.plans.engine import (
    LOCAL,
    ApplyContext,
    Call,
    ClientProvider,
    Plan,
    PlanError,
    Ref,
    Step,
    local_action,
)
from keyhygiene.steps.whitelists import (
    RESTORE_IF_UNCHANGED,
    admins_to_keep,
    check_policy,
    check_whole_account,
    id_safe,
    key_admins_to_keep,
    lockout_warning,
    own_bucket_settings,
    principals_after,
    put_if_unchanged_call,
    put_policy_if_unchanged,
    readable_policy,
    replace_value,
    whitelist_steps,
)

EC2_SERVICE = "ec2.amazonaws.com"
SID_TRUST_EC2 = "KeyHygieneTrustEc2"
KEY_DELETION_DAYS = 7  # the shortest window KMS allows
PUBLIC_ACCESS_BLOCK_ALL: dict[str, bool] = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}

# The name becomes an IAM group, a role (64 characters at most), an instance
# profile and a KMS alias (letters, digits, '/', '_' and '-' only); the
# intersection of those rules is what an application name may be.
_APP_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_NEW_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IP_ADDRESS = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
_BUCKET_PREFIXES_RESERVED = ("xn--", "sthree-", "amzn-s3-demo-")
_BUCKET_SUFFIXES_RESERVED = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")

# The new key's ARN exists only once the key does; bucket policy documents
# carry this marker in its place, and the local action below swaps it in.
# Checks run on the document with a stand-in ARN of the real length.
_STANDIN_KEY_ID = "00000000-0000-0000-0000-000000000000"


FIND_UNNAMED_KEY = "application.find_unnamed_key"
CREATE_KEY = "application.create_key"
FIND_ALIAS = "application.find_alias"


def new_key_marker(name: str) -> str:
    return f"<ARN of the new key alias/{name}>"


# --------------------------------------------------------------------------- validation


def validate_application_name(name: str) -> str:
    """The name, stripped; `BadInput` when IAM or KMS would refuse it."""
    name = (name or "").strip()
    if not name:
        raise BadInput("The application needs a name.")
    check_iam_name("application", name)
    if not _APP_NAME.match(name):
        raise BadInput(
            f"{name!r} cannot name an application: it also names a KMS alias and a role, "
            "which allow only letters, digits, '_' and '-', 64 characters at most.",
        )
    return name


def validate_new_bucket_name(name: str) -> str:
    """`BadInput` unless S3 accepts `name` for a new bucket (the current naming rules)."""
    problem = _bucket_name_problem(name)
    if problem:
        raise BadInput(f"{name!r} is not a valid name for a new bucket: {problem}.")
    return name


def _bucket_name_problem(name: str) -> str | None:
    if not 3 <= len(name) <= 63:
        return "a bucket name has 3 to 63 characters"
    if not _NEW_BUCKET.match(name):
        return (
            "use lowercase letters, digits, '.' and '-', starting and ending with a letter or digit"
        )
    if ".." in name or ".-" in name or "-." in name:
        return "a dot may not be next to another dot or a dash"
    if _IP_ADDRESS.match(name):
        return "a bucket name may not look like an IP address"
    if name.startswith(_BUCKET_PREFIXES_RESERVED):
        return "that prefix is reserved by AWS"
    if name.endswith(_BUCKET_SUFFIXES_RESERVED):
        return "that suffix is reserved by AWS"
    return None


# --------------------------------------------------------------------------- preflight


@dataclass(frozen=True)
class Preflight:
    """Facts the snapshot does not hold, read before planning.

    `instance_profile_roles` is None when no instance profile NAME exists,
    else the roles it holds (at most one).
    """

    instance_profile_roles: tuple[str, ...] | None = None


def preflight_application(
    clients: ClientProvider, snapshot: Snapshot, name: str, buckets: Iterable[str]
) -> Preflight:
    """Read-only checks before planning; `BadInput` when the request cannot work.

    A bucket name is global to all of S3: HeadBucket answers 403 when another
    account owns it. A bucket that answers but is not in the snapshot was made
    since the account was loaded (or lives where this identity cannot list it).
    """
    name = validate_application_name(name)
    wanted = list(dict.fromkeys(buckets))
    # What could not be read is said first: a 403 from HeadBucket would
    # otherwise read as "another account's bucket" when nothing may be read.
    check_whole_account(snapshot)
    unlisted = next((p for p in snapshot.problems if p.what == "S3 bucket list"), None)
    if unlisted is not None:
        raise BadInput(
            f"keyhygiene could not list this account's buckets ({unlisted.message}), so it "
            "cannot tell a new bucket name from one of yours. Nothing was changed.",
            hint="Reload the account with an identity allowed s3:ListAllMyBuckets.",
        )
    for bucket in wanted:
        if snapshot.bucket(bucket) is None:
            _check_bucket_free(clients, bucket)
    group = snapshot.group(name)
    profile = group.name if group else name
    return Preflight(instance_profile_roles=_instance_profile_roles(clients, profile))


def _check_bucket_free(clients: ClientProvider, bucket: str) -> None:
    validate_new_bucket_name(bucket)
    status = _head_bucket(clients, bucket)
    if status == 404:
        return
    if status == 403:
        raise BadInput(
            f"The bucket name {bucket!r} is taken by another AWS account (S3 answered "
            "HeadBucket with 403 Access Denied, and the bucket is not among this account's).",
            hint="Bucket names are global to all of S3: choose another name.",
        )
    if status == 301:
        raise BadInput(
            f"The bucket name {bucket!r} is taken (it exists in another region).",
            hint="Choose another name, or reload the account if the bucket is yours.",
        )
    raise BadInput(
        f"The bucket {bucket!r} exists but the loaded account does not list it.",
        hint="Reload the account (it may have just been created), then try again.",
    )


def _head_bucket(clients: ClientProvider, bucket: str) -> int:
    """HeadBucket's HTTP status: 200 ours, 404 free, 403 someone else's, 301 elsewhere."""
    with translate_errors(f"checking whether bucket {bucket} exists", service="s3"):
        try:
            clients.client("s3").head_bucket(Bucket=bucket)
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = error_code(exc)
            if status in (301, 403, 404):
                return int(status)
            if code in ("301", "403", "404"):
                return int(code)
            raise
    return 200


def _instance_profile_roles(clients: ClientProvider, name: str) -> tuple[str, ...] | None:
    with translate_errors(f"reading instance profile {name}", service="iam"):
        try:
            profile = clients.client("iam").get_instance_profile(InstanceProfileName=name)
        except ClientError as exc:
            if error_code(exc) == "NoSuchEntity":
                return None
            raise
    return tuple(role["RoleName"] for role in profile["InstanceProfile"].get("Roles", []))


# --------------------------------------------------------------------------- create


@dataclass(frozen=True)
class _Context:
    """What every part of the create plan needs to know."""

    snapshot: Snapshot
    name: str  # the group's exact spelling
    actor: str
    region: str
    partition: str
    role_arn: str
    members_after: frozenset[str]  # user names in group NAME once the plan ran
    new_role: bool  # the plan creates the role that the policies name

    @property
    def waiting_for(self) -> list[str]:
        """The principals a policy step must wait for: the role, when this plan creates it."""
        return [self.role_arn] if self.new_role else []


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


# ---- role and instance profile


def _role_steps(
    ctx: _Context, role: Role | None, preflight: Preflight, warnings: list[str]
) -> list[Step]:
    if role is None:
        return [_create_role_step(ctx.name), *_instance_profile_steps(ctx, ctx.name, (), preflight)]
    if role.service_linked:
        raise BadInput(
            f"Role {role.name} is a service-linked role; it cannot be an application's role.",
            hint="Choose another application name.",
        )
    tag_steps = _adopt_tag_steps(
        "role", ctx.name, role.tags, _role_tag_calls(role.name), warnings, f"role {role.name}"
    )
    return [
        *_trust_steps(role),
        *tag_steps,
        *_instance_profile_steps(ctx, role.name, role.instance_profiles, preflight),
    ]


def _create_role_step(name: str) -> Step:
    trust = _ec2_trust_policy()
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


def _ec2_trust_policy() -> dict[str, Any]:
    return {"Version": POLICY_VERSION, "Statement": [_ec2_trust_statement()]}


def _ec2_trust_statement() -> dict[str, Any]:
    return {
        "Sid": SID_TRUST_EC2,
        "Effect": "Allow",
        "Principal": {"Service": EC2_SERVICE},
        "Action": "sts:AssumeRole",
    }


def trusts_ec2(trust_policy: Mapping[str, Any] | None) -> bool:
    """Some Allow lets ec2.amazonaws.com assume the role.

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
        if EC2_SERVICE in services and any(a in ("sts:AssumeRole", "sts:*", "*") for a in actions):
            return True
    return False


def _trust_steps(role: Role) -> list[Step]:
    """An adopted role that EC2 may not assume yet gets keyhygiene's trust statement added."""
    if trusts_ec2(role.trust_policy):
        return []
    before = as_document(role.trust_policy) or {"Version": POLICY_VERSION, "Statement": []}
    raw = before.get("Statement", [])
    kept = list(raw) if isinstance(raw, list) else [raw]
    after = {**before, "Statement": [*kept, _ec2_trust_statement()]}
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


# ---- tags shared by the role and the key


@dataclass(frozen=True)
class _TagCalls:
    put: Callable[[str], Call]  # the call setting keyhygiene:groups to a value
    remove: Call  # removes keyhygiene:groups


def _merged_groups_value(old: str | None, name: str) -> str:
    return " ".join((*groups_from_tag(old), name))


def _adopt_tag_steps(
    step_prefix: str,
    name: str,
    tags: Mapping[str, str],
    calls: _TagCalls,
    warnings: list[str],
    label: str,
    *,
    id_suffix: str = "",
) -> list[Step]:
    """Add NAME to an adopted resource's `keyhygiene:groups` (nothing when it is there)."""
    old = tags.get(TAG_GROUPS)
    groups = groups_from_tag(old)
    if name in groups:
        return []
    value = _merged_groups_value(old, name)
    _check_tags(label, tags, value)
    if groups:
        warnings.append(
            f"{label[0].upper()}{label[1:]} is also tagged for {', '.join(groups)}: "
            f"its whitelist will hold those groups' members too."
        )
    return [
        Step(
            id=f"{step_prefix}-tag{id_suffix}",
            description=f"Tag {label} {TAG_GROUPS}={value}",
            call=calls.put(value),
            undo=calls.put(old) if old is not None else calls.remove,
        )
    ]


def _check_tags(label: str, tags: Mapping[str, str], value: str) -> None:
    if len(value) > MAX_TAG_VALUE:
        raise BadInput(
            f"The tag {TAG_GROUPS} of {label} would be longer than {MAX_TAG_VALUE} characters.",
            hint="Use shorter group names, or fewer groups on one resource.",
        )
    if TAG_GROUPS not in tags and len(tags) >= MAX_TAGS_PER_RESOURCE:
        raise BadInput(
            f"{label[0].upper()}{label[1:]} already has {len(tags)} tags, the most AWS allows.",
            hint="Remove a tag that is no longer needed.",
        )


# ---- KMS key


def _existing_key(snapshot: Snapshot, name: str) -> KmsKey | None:
    alias = f"alias/{name}"
    return next((key for key in snapshot.kms_keys if alias in key.aliases), None)


def _key_steps(
    ctx: _Context, key: KmsKey | None, warnings: list[str]
) -> tuple[list[Step], str | Ref]:
    """The steps for the key, and its ARN (a Ref to the create step for a new key)."""
    if key is None:
        return _new_key_steps(ctx, warnings)
    _refuse_unreadable(ctx.snapshot, f"KMS key {key.label}:", f"KMS key {key.label}")
    principals = _principals(ctx, (*key.for_groups, ctx.name))
    steps = _adopt_tag_steps(
        "key",
        ctx.name,
        key.tags,
        _TagCalls(
            put=lambda value: Call(
                "kms",
                "tag_resource",
                {"KeyId": key.key_id, "Tags": [{"TagKey": TAG_GROUPS, "TagValue": value}]},
            ),
            remove=Call("kms", "untag_resource", {"KeyId": key.key_id, "TagKeys": [TAG_GROUPS]}),
        ),
        warnings,
        f"key {key.label}",
    )
    before = readable_policy(ctx.snapshot, key.policy, f"KMS key {key.label}", "key")
    if before is None:
        raise BadInput(f"Key {key.label} has no readable key policy; keyhygiene cannot adopt it.")
    after = key_policy_with_whitelist(
        before,
        principals=principals,
        keep_admin_arns=key_admins_to_keep(ctx.snapshot, ctx.actor, before),
    )
    _check_policy(ctx, after, "key", key.label, key.arn)
    target = {"KeyId": key.key_id, "PolicyName": "default"}
    if after != before:
        steps.append(
            Step(
                id="key-policy",
                description=f"Set the policy of key {key.label}: whitelist "
                f"{_count(principals, 'principal')} (its other statements kept)",
                # Written only if the policy is still the one read: a statement
                # added since the snapshot would otherwise be lost.
                call=put_if_unchanged_call(target, after, ctx.waiting_for),
                undo=Call(LOCAL, RESTORE_IF_UNCHANGED, target),
                before=before,
                after=after,
            )
        )
    return steps, key.arn


def _new_key_steps(ctx: _Context, warnings: list[str]) -> tuple[list[Step], Ref]:
    name = ctx.name
    others = ctx.snapshot.kms_keys_for_group(name)
    if others:
        warnings.append(
            f"Key(s) {', '.join(k.label for k in others)} are tagged for {name} but none is "
            f"named alias/{name}: a new key is created (unless one is the key an interrupted "
            f"run of this command created, which is then named instead)."
        )
    description = _key_description(name)
    principals = _principals(ctx, (name,))
    policy = key_policy_with_whitelist(
        default_key_policy(ctx.snapshot.account_id, partition=ctx.partition),
        principals=principals,
        keep_admin_arns=key_admins_to_keep(ctx.snapshot, ctx.actor, None),
    )
    _check_policy(ctx, policy, "key", f"the new key alias/{name}", None)
    steps = [
        Step(
            id="key",
            description=f"Create a KMS key for {name} that the account administers and "
            f"{_count(principals, 'whitelisted principal')} may use, "
            f"tagged {TAG_GROUPS}={name}",
            # CreateKey is not idempotent: a local action around it deletes
            # the key an attempt botocore retried had made unseen.
            call=Call(
                LOCAL,
                CREATE_KEY,
                {
                    "Params": {
                        "Description": description,
                        "KeyUsage": "ENCRYPT_DECRYPT",
                        "Policy": json.dumps(policy),
                        "Tags": [{"TagKey": TAG_GROUPS, "TagValue": name}],
                    },
                    "WaitForRole": bool(ctx.new_role),
                },
            ),
            # The key cannot be deleted at once: the shortest wait is 7 days,
            # during which it can be cancelled and nothing can use it.
            undo=Call(
                "kms",
                "schedule_key_deletion",
                {
                    "KeyId": Ref("key", "KeyMetadata.KeyId"),
                    "PendingWindowInDays": KEY_DELETION_DAYS,
                },
            ),
            after=policy,
            keep=("KeyMetadata.KeyId", "KeyMetadata.Arn"),
            # A run cut short between CreateKey and CreateAlias leaves a key
            # nothing names; the rerun names that key instead of making another.
            settle=Call(
                LOCAL,
                FIND_UNNAMED_KEY,
                {
                    "Description": description,
                    "Group": name,
                    "Candidates": [key.key_id for key in others if not key.aliases],
                },
            ),
        ),
        Step(
            id="key-alias",
            description=f"Name the new key alias/{name}",
            call=Call(
                "kms",
                "create_alias",
                {"AliasName": f"alias/{name}", "TargetKeyId": Ref("key", "KeyMetadata.KeyId")},
            ),
            undo=Call("kms", "delete_alias", {"AliasName": f"alias/{name}"}),
            # A CreateAlias whose answer was lost: the alias on this key is done.
            settle=Call(
                LOCAL,
                FIND_ALIAS,
                {"AliasName": f"alias/{name}", "TargetKeyId": Ref("key", "KeyMetadata.KeyId")},
            ),
        ),
    ]
    return steps, Ref("key", "KeyMetadata.Arn")


# ---- buckets


def _bucket_steps(
    ctx: _Context,
    index: int,
    name: str,
    key: KmsKey | None,
    key_arn: str | Ref,
    warnings: list[str],
) -> list[Step]:
    bucket = ctx.snapshot.bucket(name)
    if bucket is not None:
        _refuse_unreadable(ctx.snapshot, f"S3 bucket {name}:", f"bucket {name}")
    prefix = f"bucket-{index}"
    key_label = f"alias/{ctx.name}"
    steps: list[Step] = []
    if bucket is None:
        steps.append(_create_bucket_step(prefix, name, ctx.region))
    steps.extend(_public_access_steps(prefix, name, bucket))
    steps.extend(_encryption_steps(prefix, name, bucket, key, key_arn, key_label, warnings))
    steps.extend(_bucket_policy_steps(ctx, prefix, name, bucket, key_arn))
    steps.extend(_bucket_tag_steps(ctx, prefix, name, bucket, warnings))
    return steps


def _create_bucket_step(prefix: str, name: str, region: str) -> Step:
    params: dict[str, Any] = {"Bucket": name}
    if region != DEFAULT_REGION:
        # us-east-1 refuses a location constraint naming itself.
        params["CreateBucketConfiguration"] = {"LocationConstraint": region}
    return Step(
        id=f"{prefix}-create",
        description=f"Create bucket {name} in {region}",
        call=Call("s3", "create_bucket", params),
        undo=Call("s3", "delete_bucket", {"Bucket": name}),
    )


def _public_access_steps(prefix: str, name: str, bucket: Bucket | None) -> list[Step]:
    if bucket is not None and bucket.public_access_fully_blocked:
        return []
    if bucket is None or bucket.public_access_block is None:
        undo = Call("s3", "delete_public_access_block", {"Bucket": name})
    else:
        old = {
            key: bool(bucket.public_access_block.get(key, False)) for key in PUBLIC_ACCESS_BLOCK_ALL
        }
        undo = Call(
            "s3", "put_public_access_block", {"Bucket": name, "PublicAccessBlockConfiguration": old}
        )
    return [
        Step(
            id=f"{prefix}-block",
            description=f"Block all public access to bucket {name}",
            call=Call(
                "s3",
                "put_public_access_block",
                {"Bucket": name, "PublicAccessBlockConfiguration": dict(PUBLIC_ACCESS_BLOCK_ALL)},
            ),
            undo=undo,
        )
    ]


def _encryption_steps(
    prefix: str,
    name: str,
    bucket: Bucket | None,
    key: KmsKey | None,
    key_arn: str | Ref,
    key_label: str,
    warnings: list[str],
) -> list[Step]:
    old = bucket.encryption if bucket else None
    if key is not None and encrypts_with(old, key):
        return []
    if old is not None and old.is_kms and old.kms_key_id:
        warnings.append(
            f"Bucket {name} encrypts with {old.kms_key_id} by default today; objects already "
            f"there stay encrypted with it (readable only while that key allows)."
        )
    return [
        Step(
            id=f"{prefix}-encryption",
            description=f"Encrypt new objects in bucket {name} by default with key {key_label} "
            "(SSE-KMS)",
            call=Call(
                "s3",
                "put_bucket_encryption",
                {"Bucket": name, "ServerSideEncryptionConfiguration": _sse_kms(key_arn)},
            ),
            undo=_encryption_undo(name, old),
        )
    ]


def encrypts_with(encryption: Encryption | None, key: KmsKey) -> bool:
    """Default SSE-KMS naming `key` by ARN, id, alias or alias ARN."""
    if encryption is None or not encryption.is_kms or not encryption.kms_key_id:
        return False
    named = encryption.kms_key_id
    if named in (key.arn, key.key_id, *key.aliases):
        return True
    return any(named.endswith(":" + alias) for alias in key.aliases)


def _sse_kms(key_arn: str | Ref) -> dict[str, Any]:
    # A bucket key cuts the KMS requests (and their cost) for busy buckets.
    return {
        "Rules": [
            {
                "ApplyServerSideEncryptionByDefault": {
                    "SSEAlgorithm": "aws:kms",
                    "KMSMasterKeyID": key_arn,
                },
                "BucketKeyEnabled": True,
            }
        ]
    }


def _encryption_undo(name: str, old: Encryption | None) -> Call:
    if old is None:
        return Call("s3", "delete_bucket_encryption", {"Bucket": name})
    default: dict[str, Any] = {"SSEAlgorithm": old.algorithm}
    if old.kms_key_id:
        default["KMSMasterKeyID"] = old.kms_key_id
    # The snapshot does not record BucketKeyEnabled; AWS's default (off) comes back.
    return Call(
        "s3",
        "put_bucket_encryption",
        {
            "Bucket": name,
            "ServerSideEncryptionConfiguration": {
                "Rules": [{"ApplyServerSideEncryptionByDefault": default}]
            },
        },
    )


def _bucket_policy_steps(
    ctx: _Context, prefix: str, name: str, bucket: Bucket | None, key_arn: str | Ref
) -> list[Step]:
    groups = (*(bucket.for_groups if bucket else ()), ctx.name)
    principals = _principals(ctx, groups)
    before = (
        readable_policy(ctx.snapshot, bucket.policy, f"S3 bucket {name}", "bucket")
        if bucket
        else None
    )
    arn_for_checks = key_arn if isinstance(key_arn, str) else _standin_key_arn(ctx)
    # On adoption, what keyhygiene's statements already chose is kept.
    earlier = own_bucket_settings(before)
    after = bucket_policy_with_whitelist(
        before,
        bucket=name,
        principals=principals,
        key_arn=arn_for_checks,
        keep_admin_arns=admins_to_keep(ctx.snapshot, ctx.actor, earlier, before, bucket=name),
    )
    _check_policy(ctx, after, "bucket", f"bucket {name}", arns.bucket_arn(name, ctx.partition))
    if after == before:
        return []
    description = (
        f"Set the policy of bucket {name}: whitelist {_count(principals, 'principal')}, "
        "deny its data to everyone else and its configuration to all but the admins, "
        "deny uploads asking for another encryption than the application's key"
        + (" (its other statements kept)" if before else "")
        + lockout_warning(ctx.snapshot, arns.bucket_arn(name, ctx.partition), before, after)
    )
    target = {"Bucket": name}
    if isinstance(key_arn, str):
        if bucket is None:
            # A bucket this plan creates: nobody else wrote its policy.
            call = _naming_role_call(
                ctx, "s3", "put_bucket_policy", {"Bucket": name, "Policy": json.dumps(after)}
            )
        else:
            call = put_if_unchanged_call(target, after, ctx.waiting_for)
        undo_params: dict[str, Any] = dict(target)
    else:
        after = replace_value(after, arn_for_checks, new_key_marker(ctx.name))
        params: dict[str, Any] = {
            "Bucket": name,
            "Policy": json.dumps(after),
            "KeyArn": key_arn,
            "Marker": new_key_marker(ctx.name),
        }
        if ctx.waiting_for:
            params["WaitFor"] = ctx.waiting_for
        call = Call(LOCAL, PUT_POLICY_WITH_NEW_KEY, params)
        undo_params = {"Bucket": name, "Marker": new_key_marker(ctx.name), "KeyArn": key_arn}
    if bucket is None:
        undo = Call("s3", "delete_bucket_policy", {"Bucket": name})
    else:
        undo = Call(LOCAL, RESTORE_IF_UNCHANGED, undo_params)
    return [
        Step(
            id=f"{prefix}-policy",
            description=description,
            call=call,
            undo=undo,
            before=before,
            after=after,
        )
    ]


def _bucket_tag_steps(
    ctx: _Context, prefix: str, name: str, bucket: Bucket | None, warnings: list[str]
) -> list[Step]:
    tags = dict(bucket.tags) if bucket else {}
    old = tags.get(TAG_GROUPS)
    if ctx.name in groups_from_tag(old):
        return []
    value = _merged_groups_value(old, ctx.name)
    _check_tags(f"bucket {name}", tags, value)
    if groups_from_tag(old):
        warnings.append(
            f"Bucket {name} is also tagged for {', '.join(groups_from_tag(old))}: "
            "its whitelist holds those groups' members too."
        )
    # PutBucketTagging replaces the whole tag set: the other tags go in too.
    new_set = _tag_set({**tags, TAG_GROUPS: value})
    undo = (
        Call("s3", "put_bucket_tagging", {"Bucket": name, "Tagging": {"TagSet": _tag_set(tags)}})
        if tags
        else Call("s3", "delete_bucket_tagging", {"Bucket": name})
    )
    return [
        Step(
            id=f"{prefix}-tag",
            description=f"Tag bucket {name} {TAG_GROUPS}={value}",
            call=Call("s3", "put_bucket_tagging", {"Bucket": name, "Tagging": {"TagSet": new_set}}),
            undo=undo,
        )
    ]


def _tag_set(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in tags.items()]


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


# --------------------------------------------------------------------------- local action

PUT_POLICY_WITH_NEW_KEY = "application.put_bucket_policy_with_new_key"
RETRY_UNTIL_VISIBLE = "application.retry_until_principals_visible"

# Where a policy names the role this plan creates, the call waits until IAM
# has propagated it (keyhygiene/aws/propagation.py): S3 and KMS refuse an unknown
# principal for some seconds. Only these calls may be made patient.
_RETRYABLE_CALLS = frozenset(
    {("kms", "create_key"), ("kms", "put_key_policy"), ("s3", "put_bucket_policy")}
)


def _naming_role_call(
    ctx: _Context, service: str, operation: str, params: Mapping[str, Any]
) -> Call:
    """The call, made patient when its policy names the role this plan creates."""
    if not ctx.new_role:
        return Call(service, operation, params)
    return Call(
        "local",
        RETRY_UNTIL_VISIBLE,
        {"Service": service, "Operation": operation, "Params": dict(params)},
    )


@local_action(RETRY_UNTIL_VISIBLE)
def _retry_until_principals_visible(
    ctx: ApplyContext, params: Mapping[str, Any]
) -> Mapping[str, Any]:
    """One policy-carrying call, retried while a new principal is not yet visible."""
    service, operation = params["Service"], params["Operation"]
    if (service, operation) not in _RETRYABLE_CALLS:
        raise PlanError(f"{service}:{operation} is not a call keyhygiene retries.")
    return call_until_visible(ctx, service, operation, params["Params"])


@local_action(PUT_POLICY_WITH_NEW_KEY)
def _put_bucket_policy_with_new_key(
    ctx: ApplyContext, params: Mapping[str, Any]
) -> Mapping[str, Any]:
    """PutBucketPolicy once the new key's ARN is known: the marker becomes the ARN.

    Written only if the bucket's policy is still the step's `before` (an
    adopted bucket may have changed since the snapshot).
    """
    key_arn = params["KeyArn"]
    if not isinstance(key_arn, str) or not arns.is_kms_key_arn(key_arn):
        raise PlanError(f"Step input {key_arn!r} is not a KMS key ARN.")
    if ctx.step is None:
        raise PlanError("A policy step can only run as part of a plan (it compares documents).")
    document = replace_value(json.loads(params["Policy"]), params["Marker"], key_arn)
    target = {"Bucket": params["Bucket"]}
    wait = bool(params.get("WaitFor"))
    put_policy_if_unchanged(ctx, target, document, ctx.step.before, wait=wait)
    return {"KeyArn": key_arn}


def _key_description(name: str) -> str:
    return f"Application {name} (keyhygiene)"


@local_action(CREATE_KEY)
def _create_key(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """kms:CreateKey (patient while a new role propagates, when its policy names
    one). When botocore had to send it more than once, an earlier attempt may
    have made a key whose answer was lost: an enabled, unnamed key with this
    plan's description and tag, other than the one answered, is scheduled for
    deletion (nothing can name it yet, so nothing uses it)."""
    request = dict(params["Params"])
    kms = ctx.client("kms")

    def create() -> dict[str, Any]:
        return dict(kms.create_key(**request))

    answer = (
        retry_until_visible(create, sleep=ctx.sleep, clock=ctx.clock)
        if params.get("WaitForRole")
        else create()
    )
    meta = answer["KeyMetadata"]
    if answer.get("ResponseMetadata", {}).get("RetryAttempts"):
        group = next(t["TagValue"] for t in request["Tags"] if t["TagKey"] == TAG_GROUPS)
        for key in all_items(kms, "list_keys", "Keys"):
            if key["KeyId"] != meta["KeyId"] and _is_unnamed_key_of(
                kms, key["KeyId"], request["Description"], group
            ):
                kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=KEY_DELETION_DAYS)
    return {"KeyMetadata": {"KeyId": meta["KeyId"], "Arn": meta["Arn"]}}


def _is_unnamed_key_of(kms: Any, key_id: str, description: str, group: str) -> bool:
    meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    if meta.get("KeyState") != "Enabled" or meta.get("Description") != description:
        return False
    if kms.list_aliases(KeyId=key_id).get("Aliases"):
        return False
    tags = kms.list_resource_tags(KeyId=key_id).get("Tags", [])
    return {t["TagKey"]: t["TagValue"] for t in tags}.get(TAG_GROUPS) == group


@local_action(FIND_ALIAS)
def _find_alias(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Settle of the alias step: the alias, if it already names this plan's key."""
    kms = ctx.client("kms")
    for alias in kms.list_aliases(KeyId=params["TargetKeyId"]).get("Aliases", []):
        if alias.get("AliasName") == params["AliasName"]:
            return {"AliasName": alias["AliasName"]}
    return {}


@local_action(FIND_UNNAMED_KEY)
def _find_unnamed_key(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Settle of the key step: the enabled, unnamed key an interrupted run made.

    Only a candidate that is still enabled, has no alias and carries exactly
    this plan's description and group tag counts: any other key tagged for the
    application is someone's own and is left alone.
    """
    kms = ctx.client("kms")
    found = [
        key_id
        for key_id in params["Candidates"]
        if _is_unnamed_key_of(kms, key_id, params["Description"], params["Group"])
    ]
    if not found:
        return {}
    # An outage can leave several (each retry of CreateKey made one): the
    # first is named, the others are deleted (nothing can name them yet).
    for extra in found[1:]:
        kms.schedule_key_deletion(KeyId=extra, PendingWindowInDays=KEY_DELETION_DAYS)
    meta = kms.describe_key(KeyId=found[0])["KeyMetadata"]
    return {"KeyMetadata": {"KeyId": meta["KeyId"], "Arn": meta["Arn"]}}


# --------------------------------------------------------------------------- sync


def plan_sync_application(snapshot: Snapshot, name: str, actor_arn: str | None = None) -> Plan:
    """The plan that brings application NAME back in line. Pure; `BadInput` on a bad request.

    Every bucket and key policy tagged for NAME gets a whitelist equal to the
    group's members plus the roles tagged for it (keyhygiene/steps/whitelists.py does
    that for every workflow); the application's buckets get their public
    access fully blocked and SSE-KMS with the application's key by default.
    """
    check_whole_account(snapshot)
    name = validate_application_name(name)
    group = snapshot.group(name)
    name = group.name if group else name
    app = next((a for a in snapshot.applications() if a.name.lower() == name.lower()), None)
    if group is None and app is None:
        raise BadInput(
            f"There is no application {name}: no group of that name and nothing tagged "
            f"{TAG_GROUPS}={name}.",
            hint=f"Create it with `keyhygiene app create {name}`.",
        )
    actor = actor_arn or snapshot.caller_arn
    warnings: list[str] = []
    if group is None:
        warnings.append(
            f"Group {name} does not exist: the whitelists keep only the roles tagged for it."
        )
    members = {name: set(group.members if group else ())}
    steps = list(whitelist_steps(snapshot, members, actor))
    key = _application_key(snapshot, name, warnings)
    for bucket in snapshot.buckets_for_group(name):
        prefix = f"bucket-{id_safe(bucket.name)}"
        steps.extend(_public_access_steps(prefix, bucket.name, bucket))
        if key is not None:
            steps.extend(
                _encryption_steps(prefix, bucket.name, bucket, key, key.arn, key.label, warnings)
            )
    return Plan(
        kind="app_sync",
        title=f"Sync application {name}",
        steps=tuple(steps),
        warnings=tuple(warnings),
        subject=f"sync {name.lower()}",
    )


def _application_key(snapshot: Snapshot, name: str, warnings: list[str]) -> KmsKey | None:
    """alias/NAME, else the one key tagged for NAME; None (with a warning) when unclear."""
    key = _existing_key(snapshot, name)
    if key is not None:
        return key
    tagged = snapshot.kms_keys_for_group(name)
    if len(tagged) == 1:
        return tagged[0]
    if snapshot.buckets_for_group(name):
        found = ", ".join(k.label for k in tagged) if tagged else "none"
        warnings.append(
            f"Application {name} has no single KMS key (alias/{name}; tagged: {found}): "
            "its buckets' default encryption is left as it is."
        )
    return None
