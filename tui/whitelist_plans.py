"""Plan steps that keep bucket and KMS key policies equal to group memberships.

Groups cannot be principals in bucket or key policies, so every workflow that
changes a membership (enroll, grant, sweep, revoke, application) must also
rewrite the policies of the buckets and keys tagged for that group. This module
turns "the memberships after the change" into those steps, so that each
workflow only says who will be in which group.

A resource's whitelist is computed in full (every member of every group named
in its `keyhygiene:groups` tag, plus the roles tagged for those groups), not
as a delta: a policy that drifted is brought back in line by the same step,
and the step's sentence says which principals it adds or removes.

Pure functions: no AWS calls, no Textual. Every computed document passes
`ensure_within_limit` and `check_lockout` before it becomes a step.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tui.errors import BadInput
from tui.model import Bucket, KmsKey, Snapshot, User
from tui.plans import Call, Step
from tui.policy_documents import (
    SID_BUCKET_DENY_OTHER_KEY,
    SID_BUCKET_DENY_OTHERS,
    SID_BUCKET_DENY_UNENCRYPTED,
    as_document,
    bucket_policy_with_whitelist,
    caller_principal_arn,
    check_lockout,
    ensure_within_limit,
    key_policy_with_whitelist,
    statements,
    whitelisted_principals,
)

MembersAfter = Mapping[str, Collection[str]]

# The principals bucket_policy_with_whitelist accepts; anything else found in
# an old exception list (a hand-written wildcard) is not carried over.
_PRINCIPAL_ARN = re.compile(
    r"^arn:aws[a-z-]*:iam::\d{12}:(root|user/[\w+=,.@/-]+|role/[\w+=,.@/-]+)$"
)
_KMS_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$")
_STEP_ID_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def whitelist_steps(
    snapshot: Snapshot,
    members_after: MembersAfter,
    actor_arn: str | None = None,
) -> list[Step]:
    """The policy steps that make every bucket and KMS key tagged for one of the
    groups in `members_after` whitelist exactly the members after the change.

    `members_after` maps a group name to the user names it will hold once the
    plan ran (users that do not exist yet are fine: their ARN is built from the
    account, with path `/`). Groups not in the mapping keep their members from
    the snapshot. `actor_arn` is the identity that will apply the plan (default:
    `snapshot.caller_arn`): it is kept out of the bucket's deny and checked
    against lock-out.

    Buckets come first, then keys, each sorted by name; a resource whose
    document would not change gets no step. Raises `BadInput` (nothing planned)
    when a policy could not be read or is not valid JSON, and
    `PolicyTooLarge` / `PolicyLockout` (both `BadInput`) for a refused result.
    """
    actor = actor_arn or snapshot.caller_arn
    members = {
        _canonical_group(snapshot, name): set(users) for name, users in members_after.items()
    }
    # IAM group names are unique ignoring case; a tag may spell one differently.
    affected = {name.lower() for name in members}

    def concerns(resource: Bucket | KmsKey) -> bool:
        return any(group.lower() in affected for group in resource.for_groups)

    steps: list[Step] = []
    for bucket in sorted(snapshot.buckets, key=lambda b: b.name):
        if concerns(bucket):
            principals = principals_after(snapshot, bucket.for_groups, members)
            step = bucket_policy_step(snapshot, bucket, principals, actor)
            if step is not None:
                steps.append(step)
    for key in sorted(snapshot.kms_keys, key=lambda k: k.label):
        if concerns(key):
            principals = principals_after(snapshot, key.for_groups, members)
            step = key_policy_step(snapshot, key, principals, actor)
            if step is not None:
                steps.append(step)
    return steps


def members_after_change(
    snapshot: Snapshot,
    user: str,
    *,
    joins: Iterable[str] = (),
    leaves: Iterable[str] = (),
) -> dict[str, set[str]]:
    """`members_after` for one user joining and leaving groups (the usual case).

    Only the groups named appear in the result, so only their resources are
    rewritten. Group names are matched ignoring case, as IAM does.
    """
    result: dict[str, set[str]] = {}
    for name, joining in [(g, True) for g in joins] + [(g, False) for g in leaves]:
        group = snapshot.group(name)
        canonical = group.name if group else name
        current = result.setdefault(canonical, set(group.members) if group else set())
        lowered = user.lower()
        current.difference_update({m for m in current if m.lower() == lowered})
        if joining:
            current.add(user)
    return result


def principals_after(
    snapshot: Snapshot, resource_groups: Iterable[str], members: MembersAfter
) -> tuple[str, ...]:
    """ARNs to whitelist on a resource tagged for `resource_groups`: the members
    of each group (from `members` where given, else the snapshot) plus the roles
    tagged for it. Sorted, unique."""
    arns: set[str] = set()
    for name in resource_groups:
        group = snapshot.group(name)
        canonical = group.name if group else name
        if canonical in members:
            names: Iterable[str] = members[canonical]
        else:
            names = group.members if group else ()
        arns.update(user_arn(snapshot, member) for member in names)
        arns.update(role.arn for role in snapshot.roles_for_group(name))
    return tuple(sorted(arns))


def user_arn(snapshot: Snapshot, name: str) -> str:
    """The user's ARN from the snapshot, or the one IAM will give a new user at path `/`."""
    known: User | None = snapshot.user(name)
    if known is not None:
        return known.arn
    return f"arn:{_partition(snapshot)}:iam::{snapshot.account_id}:user/{name}"


def bucket_policy_step(
    snapshot: Snapshot, bucket: Bucket, principals: Iterable[str], actor_arn: str
) -> Step | None:
    """The step that sets `bucket`'s whitelist to `principals`, or None when nothing changes."""
    before = _readable_policy(snapshot, bucket.policy, f"S3 bucket {bucket.name}", "bucket")
    old_own = _own_bucket_settings(before)
    whitelist = sorted(set(principals))
    after = bucket_policy_with_whitelist(
        before,
        bucket=bucket.name,
        principals=whitelist,
        key_arn=old_own.key_arn or _application_key_arn(snapshot, bucket),
        keep_admin_arns=_admins_to_keep(snapshot, actor_arn, old_own, before),
        require_encryption_header=old_own.require_header,
    )
    if before is not None and after == before:
        return None
    ensure_within_limit(after, "bucket", f"bucket {bucket.name}")
    check_lockout(after, "bucket", actor_arn, snapshot.account_id, resource_arn=bucket.arn)
    undo = (
        Call("s3", "put_bucket_policy", {"Bucket": bucket.name, "Policy": _json(before)})
        if before is not None
        else Call("s3", "delete_bucket_policy", {"Bucket": bucket.name})
    )
    return Step(
        id=_step_id("bucket-policy", bucket.name),
        description=_describe(snapshot, f"bucket {bucket.name}", before, after),
        call=Call("s3", "put_bucket_policy", {"Bucket": bucket.name, "Policy": _json(after)}),
        undo=undo,
        before=before,
        after=after,
    )


def key_policy_step(
    snapshot: Snapshot, key: KmsKey, principals: Iterable[str], actor_arn: str
) -> Step | None:
    """The step that sets the KMS key's whitelist to `principals`, or None when nothing changes."""
    before = _readable_policy(snapshot, key.policy, f"KMS key {key.label}", "key")
    if before is None:
        # Every KMS key has a policy: None means it could not be read, and
        # writing one from scratch would drop whatever it holds.
        raise BadInput(
            f"The policy of KMS key {key.label} could not be read, so keyhygiene cannot add "
            "to it without losing its other statements.",
            hint="Give the admin identity kms:GetKeyPolicy on that key and retry.",
        )
    after = key_policy_with_whitelist(before, principals=sorted(set(principals)))
    if after == before:
        return None
    ensure_within_limit(after, "key", f"KMS key {key.label}")
    check_lockout(after, "key", actor_arn, snapshot.account_id, resource_arn=key.arn)
    params = {"KeyId": key.key_id, "PolicyName": "default"}
    return Step(
        id=_step_id("key-policy", key.key_id),
        description=_describe(snapshot, f"KMS key {key.label}", before, after),
        call=Call("kms", "put_key_policy", {**params, "Policy": _json(after)}),
        undo=Call("kms", "put_key_policy", {**params, "Policy": _json(before)}),
        before=before,
        after=after,
    )


# ---- reading what is there ------------------------------------------------------


@dataclass
class _OwnBucketSettings:
    """What keyhygiene's earlier statements in a bucket policy chose, to keep it."""

    key_arn: str | None = None
    require_header: bool = True
    excepted: tuple[str, ...] = ()


def _own_bucket_settings(document: Mapping[str, Any] | None) -> _OwnBucketSettings:
    found = _OwnBucketSettings()
    for statement in statements(document):
        sid = statement.get("Sid")
        condition = statement.get("Condition")
        if not isinstance(condition, Mapping):
            continue
        if sid == SID_BUCKET_DENY_OTHER_KEY:
            values = _condition_values(
                condition, "StringNotEquals", "s3:x-amz-server-side-encryption-aws-kms-key-id"
            )
            found.key_arn = next((v for v in values if _KMS_KEY_ARN.match(v)), None)
        elif sid == SID_BUCKET_DENY_UNENCRYPTED:
            # The lenient form adds a Null test so that headerless uploads pass.
            found.require_header = "Null" not in condition
        elif sid == SID_BUCKET_DENY_OTHERS:
            found.excepted = _condition_values(condition, "ArnNotLike", "aws:PrincipalArn")
    return found


def _condition_values(condition: Mapping[str, Any], operator: str, key: str) -> tuple[str, ...]:
    block = condition.get(operator)
    if not isinstance(block, Mapping):
        return ()
    for name, values in block.items():
        if name.lower() == key.lower():
            items = values if isinstance(values, list) else [values]
            return tuple(v for v in items if isinstance(v, str))
    return ()


def _readable_policy(
    snapshot: Snapshot, policy: Mapping[str, Any] | None, what: str, kind: str
) -> dict[str, Any] | None:
    """The current document, refusing one that was not read or not parsed.

    Rewriting a policy keyhygiene could not read would drop its other
    statements, so a read problem or a document that is not JSON stops the plan.
    """
    for problem in snapshot.problems:
        if problem.what == f"{what}: policy":
            raise BadInput(
                f"The policy of {what} could not be used: {problem.message.rstrip('.')}. "
                "Changing it would lose its other statements.",
                hint="Fix the policy or the missing permission named above, reload and retry.",
            )
    if policy is None:
        return None
    # The inventory turns a document that is not JSON into an empty mapping.
    if not policy or "Statement" not in policy:
        raise BadInput(
            f"The {kind} policy of {what} is not a valid JSON policy document, so keyhygiene "
            "will not edit it.",
            hint="Repair the policy (it must be a JSON object with a Statement) and retry.",
        )
    return as_document(policy)


def _application_key_arn(snapshot: Snapshot, bucket: Bucket) -> str | None:
    """The KMS key uploads must use, for a bucket keyhygiene never edited before:
    the bucket's default encryption key, else the one key tagged for its groups."""
    if bucket.encryption and bucket.encryption.is_kms and bucket.encryption.kms_key_id:
        wanted = bucket.encryption.kms_key_id
        if _KMS_KEY_ARN.match(wanted):
            return wanted
        known = snapshot.kms_key(wanted)
        if known is not None:
            return known.arn
    tagged = {k.arn for group in bucket.for_groups for k in snapshot.kms_keys_for_group(group)}
    if len(tagged) == 1:
        return next(iter(tagged))
    return None


def _admins_to_keep(
    snapshot: Snapshot,
    actor_arn: str,
    old: _OwnBucketSettings,
    before: Mapping[str, Any] | None,
) -> list[str]:
    """Who stays exempt from KeyHygieneDenyOthers besides the whitelist: the
    account root, the identity applying the plan (or it could not edit the policy
    again), and the admins an earlier run kept (the old exceptions that were not
    whitelisted)."""
    root = f"arn:{_partition(snapshot)}:iam::{snapshot.account_id}:root"
    previous_whitelist = whitelisted_principals(before)
    earlier_admins = [
        arn for arn in old.excepted if arn not in previous_whitelist and _PRINCIPAL_ARN.match(arn)
    ]
    keep = {root, *earlier_admins}
    actor = _actor_principal(snapshot, actor_arn)
    if _PRINCIPAL_ARN.match(actor):
        keep.add(actor)
    # Otherwise (a federated user) the actor cannot be listed; the lock-out
    # check then decides whether the root's exception is enough.
    return sorted(keep)


def _actor_principal(snapshot: Snapshot, actor_arn: str) -> str:
    """The ARN `aws:PrincipalArn` holds for the actor; a role's real ARN (with its path)."""
    arn = caller_principal_arn(actor_arn)
    if ":role/" in arn:
        role = snapshot.role(arn.rsplit("/", 1)[-1])
        if role is not None:
            return role.arn
    return arn


# ---- wording ---------------------------------------------------------------------


def _describe(
    snapshot: Snapshot,
    resource: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any],
) -> str:
    """One sentence: which principals the whitelist gains or loses."""
    old = whitelisted_principals(before)
    new = whitelisted_principals(after)
    added, removed = new - old, old - new
    if added and removed:
        text = (
            f"In the policy of {resource}, whitelist {_names(added)} and remove {_names(removed)}"
        )
    elif added:
        text = f"Whitelist {_names(added)} in the policy of {resource}"
    elif removed:
        text = f"Remove {_names(removed)} from the policy of {resource}"
    else:
        text = f"Update keyhygiene's statements in the policy of {resource}"
    # A new Deny matters to whoever reads the plan: say so, not only in the diff.
    new_denies = sorted(_deny_sids(after) - _deny_sids(before))
    if new_denies:
        text += f" (adds {', '.join(new_denies)})"
    return text


def _deny_sids(document: Mapping[str, Any] | None) -> set[str]:
    return {
        str(s["Sid"])
        for s in statements(document)
        if s.get("Effect") == "Deny" and str(s.get("Sid", "")).startswith("KeyHygiene")
    }


def _names(arns: Iterable[str]) -> str:
    """`alice-laptop, role photos`: what people recognise, not full ARNs."""
    labels = []
    for arn in sorted(arns):
        resource = arn.split(":", 5)[-1]
        kind, _, name = resource.partition("/")
        short = name.rsplit("/", 1)[-1] if name else kind
        labels.append(short if kind == "user" else f"{kind} {short}")
    return ", ".join(labels)


# ---- small helpers ---------------------------------------------------------------


def _canonical_group(snapshot: Snapshot, name: str) -> str:
    group = snapshot.group(name)
    return group.name if group else name


def _partition(snapshot: Snapshot) -> str:
    parts = snapshot.caller_arn.split(":")
    return parts[1] if len(parts) > 1 and parts[0] == "arn" and parts[1] else "aws"


def _json(document: Mapping[str, Any] | None) -> str:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def _step_id(prefix: str, name: str) -> str:
    return f"{prefix}.{_STEP_ID_SAFE.sub('_', name)}"
