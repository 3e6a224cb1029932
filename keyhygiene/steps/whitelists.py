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

Planning is pure: no AWS calls, no Textual. Every computed document passes
`ensure_within_limit` and `check_lockout` before it becomes a step.

Applying is careful. The documents come from a snapshot that may be minutes
or hours old, and a policy is written whole: a statement someone added since
would be lost. So each step runs the local action `policy.put_if_unchanged`,
which reads the policy again and writes only if it is still the one the plan
was computed from (the step's `before`); its undo `policy.restore_if_unchanged`
puts `before` back only while the policy is still the step's `after`. A step
whose policy names a principal the same plan creates waits for IAM to
propagate it (keyhygiene/aws/propagation.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from keyhygiene.aws.connection import error_code
from keyhygiene.aws.errors import ClientError
from keyhygiene.aws.propagation import retry_until_visible
from keyhygiene.core import arns
from keyhygiene.core.access import (
    TAG_ADMIN,
    Candidate,
    admin_like_principals,
    admin_principal_arns,
)
from keyhygiene.core.errors import BadInput, KeyHygieneError
from keyhygiene.core.model import Bucket, KmsKey, Snapshot, User
from keyhygiene.core.policy_documents import (
    SID_BUCKET_DENY_CONFIGURATION,
    SID_BUCKET_DENY_OTHER_KEY,
    SID_BUCKET_DENY_OTHERS,
    SID_KEY_DENY_OTHERS_ADMIN,
    PolicyKind,
    PolicyLockout,
    as_document,
    bucket_policy_with_whitelist,
    caller_principal_arn,
    check_lockout,
    ensure_within_limit,
    is_listable_principal,
    key_policy_with_whitelist,
    statements,
    whitelisted_principals,
)
from keyhygiene.core.policy_eval import PolicySource, Request, evaluate
from keyhygiene.plans import LOCAL, ApplyContext, Call, PlanError, Step, local_action

MembersAfter = Mapping[str, Collection[str]]

PUT_IF_UNCHANGED = "policy.put_if_unchanged"
RESTORE_IF_UNCHANGED = "policy.restore_if_unchanged"

_STEP_ID_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def whitelist_steps(
    snapshot: Snapshot,
    members_after: MembersAfter,
    actor_arn: str | None = None,
    *,
    new_principals: Collection[str] | None = None,
) -> list[Step]:
    """The policy steps that make every bucket and KMS key tagged for one of the
    groups in `members_after` whitelist exactly the members after the change.

    `members_after` maps a group name to the user names it will hold once the
    plan ran (users that do not exist yet are fine: their ARN is built from the
    account, with path `/`). Groups not in the mapping keep their members from
    the snapshot. `actor_arn` is the identity that will apply the plan (default:
    `snapshot.caller_arn`): it is kept out of the bucket's deny and checked
    against lock-out.

    `new_principals` are the ARNs the same plan creates (default: the users of
    `members_after` the snapshot does not know): a step whitelisting one of
    them retries while S3 or KMS do not know it yet.

    Buckets come first, then keys, each sorted by name; a resource whose
    document would not change gets no step. Raises `BadInput` (nothing planned)
    when a policy could not be read or is not valid JSON, and
    `PolicyTooLarge` / `PolicyLockout` (both `BadInput`) for a refused result,
    including an actor that a bucket's exception list cannot name.
    """
    actor = actor_arn or snapshot.caller_arn
    members = {
        _canonical_group(snapshot, name): set(users) for name, users in members_after.items()
    }
    if new_principals is None:
        new_principals = {
            user_arn(snapshot, user)
            for users in members.values()
            for user in users
            if snapshot.user(user) is None
        }
    waiting = frozenset(new_principals)
    # IAM group names are unique ignoring case; a tag may spell one differently.
    affected = {name.lower() for name in members}

    def concerns(resource: Bucket | KmsKey) -> bool:
        return any(group.lower() in affected for group in resource.for_groups)

    steps: list[Step] = []
    for bucket in sorted(snapshot.buckets, key=lambda b: b.name):
        if concerns(bucket):
            principals = principals_after(snapshot, bucket.for_groups, members)
            step = bucket_policy_step(snapshot, bucket, principals, actor, new_principals=waiting)
            if step is not None:
                steps.append(step)
    for key in sorted(snapshot.kms_keys, key=lambda k: k.label):
        if concerns(key):
            principals = principals_after(snapshot, key.for_groups, members)
            step = key_policy_step(snapshot, key, principals, actor, new_principals=waiting)
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
    found: set[str] = set()
    for name in resource_groups:
        group = snapshot.group(name)
        canonical = group.name if group else name
        if canonical in members:
            names: Iterable[str] = members[canonical]
        else:
            names = group.members if group else ()
        found.update(user_arn(snapshot, member) for member in names)
        found.update(role.arn for role in snapshot.roles_for_group(name))
    return tuple(sorted(found))


def user_arn(snapshot: Snapshot, name: str) -> str:
    """The user's ARN from the snapshot, or the one IAM will give a new user at path `/`."""
    known: User | None = snapshot.user(name)
    if known is not None:
        return known.arn
    return arns.user_arn(snapshot.account_id, name, snapshot.partition)


def bucket_policy_step(
    snapshot: Snapshot,
    bucket: Bucket,
    principals: Iterable[str],
    actor_arn: str,
    *,
    new_principals: Collection[str] = (),
) -> Step | None:
    """The step that sets `bucket`'s whitelist to `principals`, or None when nothing changes."""
    before = readable_policy(snapshot, bucket.policy, f"S3 bucket {bucket.name}", "bucket")
    old_own = own_bucket_settings(before)
    whitelist = sorted(set(principals))
    after = bucket_policy_with_whitelist(
        before,
        bucket=bucket.name,
        principals=whitelist,
        key_arn=application_key_arn(snapshot, bucket, old_own),
        keep_admin_arns=admins_to_keep(snapshot, actor_arn, old_own, before, bucket=bucket.name),
    )
    if before is not None and after == before:
        return None
    check_policy(snapshot, after, "bucket", f"bucket {bucket.name}", actor_arn, bucket.arn)
    target = {"Bucket": bucket.name}
    description = _describe(snapshot, f"bucket {bucket.name}", before, after)
    description += lockout_warning(snapshot, bucket.arn, before, after)
    return Step(
        id=_step_id("bucket-policy", bucket.name),
        description=description,
        call=put_if_unchanged_call(target, after, _waiting_for(after, new_principals)),
        undo=Call(LOCAL, RESTORE_IF_UNCHANGED, target),
        before=before,
        after=after,
    )


def key_policy_step(
    snapshot: Snapshot,
    key: KmsKey,
    principals: Iterable[str],
    actor_arn: str,
    *,
    new_principals: Collection[str] = (),
) -> Step | None:
    """The step that sets the KMS key's whitelist to `principals`, or None when nothing changes."""
    before = readable_policy(snapshot, key.policy, f"KMS key {key.label}", "key")
    if before is None:
        # Every KMS key has a policy: None means it could not be read, and
        # writing one from scratch would drop whatever it holds.
        raise BadInput(
            f"The policy of KMS key {key.label} could not be read, so keyhygiene cannot add "
            "to it without losing its other statements.",
            hint="Give the admin identity kms:GetKeyPolicy on that key and retry.",
        )
    after = key_policy_with_whitelist(
        before,
        principals=sorted(set(principals)),
        keep_admin_arns=key_admins_to_keep(snapshot, actor_arn, before),
    )
    if after == before:
        return None
    check_policy(snapshot, after, "key", f"KMS key {key.label}", actor_arn, key.arn)
    target = {"KeyId": key.key_id, "PolicyName": "default"}
    return Step(
        id=_step_id("key-policy", key.key_id),
        description=_describe(snapshot, f"KMS key {key.label}", before, after),
        call=put_if_unchanged_call(target, after, _waiting_for(after, new_principals)),
        undo=Call(LOCAL, RESTORE_IF_UNCHANGED, target),
        before=before,
        after=after,
    )


def put_if_unchanged_call(
    target: Mapping[str, str], after: Mapping[str, Any], wait_for: Iterable[str] = ()
) -> Call:
    """`policy.put_if_unchanged` for a bucket ({"Bucket": name}) or a key ({"KeyId": id, ...}).

    The step carrying it must hold the expected document as `before` (None:
    no bucket policy). `wait_for` names the new principals worth waiting for.
    """
    params: dict[str, Any] = {**target, "Policy": _json(after)}
    waited = sorted(set(wait_for))
    if waited:
        params["WaitFor"] = waited
    return Call(LOCAL, PUT_IF_UNCHANGED, params)


def check_policy(
    snapshot: Snapshot,
    document: Mapping[str, Any],
    kind: PolicyKind,
    label: str,
    actor_arn: str,
    resource_arn: str | None,
) -> None:
    """`ensure_within_limit` and `check_lockout`, the actor known by its real ARN
    (a role's path comes from the snapshot)."""
    ensure_within_limit(document, kind, label)
    check_lockout(
        document,
        kind,
        actor_arn,
        snapshot.account_id,
        resource_arn=resource_arn,
        actor_principal_arn=_known_actor_principal(snapshot, actor_arn),
    )


def _waiting_for(after: Mapping[str, Any], new_principals: Collection[str]) -> list[str]:
    return sorted(whitelisted_principals(after) & set(new_principals))


# ---- reading what is there ------------------------------------------------------


@dataclass
class OwnBucketSettings:
    """What keyhygiene's earlier statements in a bucket policy chose, to keep it:
    the key uploads must name, who is excepted from KeyHygieneDenyOthers, and
    (written since the configuration deny) who the admins are."""

    key_arn: str | None = None
    excepted: tuple[str, ...] = ()
    admins: tuple[str, ...] | None = None


def own_bucket_settings(document: Mapping[str, Any] | None) -> OwnBucketSettings:
    """The choices keyhygiene's statements already in `document` made (defaults if none)."""
    found = OwnBucketSettings()
    for statement in statements(document):
        sid = statement.get("Sid")
        condition = statement.get("Condition")
        if not isinstance(condition, Mapping):
            continue
        if sid == SID_BUCKET_DENY_OTHER_KEY:
            values = _condition_values(
                condition, "StringNotEquals", "s3:x-amz-server-side-encryption-aws-kms-key-id"
            )
            found.key_arn = next((v for v in values if arns.is_kms_key_arn(v)), None)
        elif sid == SID_BUCKET_DENY_OTHERS:
            found.excepted = _condition_values(condition, "ArnNotLike", "aws:PrincipalArn")
        elif sid == SID_BUCKET_DENY_CONFIGURATION:
            found.admins = _condition_values(condition, "ArnNotLike", "aws:PrincipalArn")
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


def readable_policy(
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


def application_key_arn(
    snapshot: Snapshot, bucket: Bucket, own: OwnBucketSettings | None = None
) -> str | None:
    """The KMS key uploads to `bucket` must use: the one keyhygiene's statements
    already require, else (a bucket keyhygiene never edited) the bucket's
    default encryption key, else the one key tagged for its groups."""
    chosen = (own or own_bucket_settings(bucket.policy)).key_arn
    if chosen:
        return chosen
    if bucket.encryption and bucket.encryption.is_kms and bucket.encryption.kms_key_id:
        wanted = bucket.encryption.kms_key_id
        if arns.is_kms_key_arn(wanted):
            return wanted
        known = snapshot.kms_key(wanted)
        if known is not None:
            return known.arn
    tagged = {k.arn for group in bucket.for_groups for k in snapshot.kms_keys_for_group(group)}
    if len(tagged) == 1:
        return next(iter(tagged))
    return None


def admins_to_keep(
    snapshot: Snapshot,
    actor_arn: str,
    old: OwnBucketSettings,
    before: Mapping[str, Any] | None,
    *,
    bucket: str,
) -> list[str]:
    """Who keyhygiene keeps in control of a bucket (exempt from both of its
    Denies): the admins by the documented rule (`access.admin_principal_arns`:
    the account root, which spares the root user only, identities tagged
    `keyhygiene:admin`, the Identity Center admin roles), the identity applying
    the plan (or it could not edit the policy again), and the admins an earlier
    run kept (its configuration deny's list or, in the older form, the
    exceptions that were not whitelisted).

    Raises `PolicyLockout` when the actor cannot be named there (see
    `admin_principal`): such a policy would deny it the bucket.
    """
    if old.admins is not None:
        earlier = list(old.admins)
    else:
        previous_whitelist = whitelisted_principals(before)
        earlier = [arn for arn in old.excepted if arn not in previous_whitelist]
    earlier_admins = [arn for arn in earlier if is_listable_principal(arn)]
    ruled = admin_principal_arns(snapshot, None)
    return sorted({*ruled, *earlier_admins, admin_principal(snapshot, actor_arn, bucket=bucket)})


def lockout_warning(
    snapshot: Snapshot, bucket_arn: str, before: Mapping[str, Any] | None, after: Mapping[str, Any]
) -> str:
    """The words a bucket step adds when other admins would lose the bucket's policy."""
    losing = admins_losing_control(snapshot, bucket_arn, before, after)
    if not losing:
        return ""
    return (
        f". Warning: {', '.join(losing)} would lose control of the bucket's policy: "
        f"tag each {TAG_ADMIN}=true to keep it"
    )


def admins_losing_control(
    snapshot: Snapshot,
    bucket_arn: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any],
) -> list[str]:
    """The users and roles whose IAM policies let them change this bucket's
    policy, who could before and could not after: the lock-out check for
    everyone else than the actor (the whitelisted computers excepted: they
    lose the configuration on purpose)."""
    losing: list[str] = []
    # A whitelisted computer losing the bucket's configuration is the point.
    computers = whitelisted_principals(after)
    for admin in admin_like_principals(snapshot, "s3:PutBucketPolicy", bucket_arn):
        if admin.principal.arn in computers:
            continue
        loses = _can_put_policy(snapshot, admin, bucket_arn, after) is False
        if loses and (before is None or _can_put_policy(snapshot, admin, bucket_arn, before)):
            losing.append(admin.label)
    return losing


def _can_put_policy(
    snapshot: Snapshot, admin: Candidate, bucket_arn: str, document: Mapping[str, Any]
) -> bool | None:
    request = Request(
        admin.principal, "s3:PutBucketPolicy", bucket_arn, resource_account=snapshot.account_id
    )
    decision = evaluate(
        request, admin.sources, PolicySource(f"the policy of {bucket_arn}", document)
    )
    return None if decision.outcome == "unknown" else decision.allowed


def key_admins_to_keep(
    snapshot: Snapshot, actor_arn: str | None, before: Mapping[str, Any] | None
) -> list[str]:
    """Who keeps a key's administration (exempt from KeyHygieneDenyOthersAdmin):
    the admins by rule, the actor (raising `PolicyLockout` when it cannot be
    named, see `admin_principal`), and the admins an earlier run kept there."""
    earlier: list[str] = []
    for statement in statements(before):
        if statement.get("Sid") == SID_KEY_DENY_OTHERS_ADMIN:
            condition = statement.get("Condition")
            if isinstance(condition, Mapping):
                earlier += _condition_values(condition, "ArnNotLike", "aws:PrincipalArn")
    found = {*admin_principal_arns(snapshot, None), *filter(is_listable_principal, earlier)}
    if actor_arn:
        found.add(admin_principal(snapshot, actor_arn, what="KMS key policy"))
    return sorted(found)


def admin_principal(
    snapshot: Snapshot, actor_arn: str, *, bucket: str | None = None, what: str | None = None
) -> str:
    """The ARN `aws:PrincipalArn` holds when the actor calls: itself for an IAM
    user or the root, the role's real ARN (with its path) for a role session.

    Raises `PolicyLockout` when no such ARN can be listed: a federated user, an
    identity that is not IAM's (moto's default `user/moto`), or a session whose
    role is not in the snapshot (its path is unknown, and a wrong ARN spares
    nobody). A bucket or key denying its administration to everyone not listed
    would deny it putting the policy back: only a root login could repair that.
    `what` names the policy in the message (default: the policy of `bucket`).
    """
    principal = _known_actor_principal(snapshot, actor_arn)
    if principal is not None:
        return principal
    session_role = caller_principal_arn(actor_arn)
    if session_role != actor_arn:
        reason = (
            f"its role {session_role.rsplit('/', 1)[-1]} is not in the loaded account, so "
            "its exact ARN (a role may have a path) is unknown"
        )
    else:
        reason = "only IAM users, roles and the account root can be named there (aws:PrincipalArn)"
    label = what or f"the policy of bucket {bucket}"
    raise PolicyLockout(
        f"Refusing to change {label}: keyhygiene's Deny spares only the admins it lists, and "
        f"keyhygiene cannot list {actor_arn}: {reason}. That identity could then not even "
        "change the policy back.",
        actor=actor_arn,
        resource=arns.bucket_arn(bucket, snapshot.partition) if bucket else label,
        action="s3:PutBucketPolicy" if bucket else "kms:PutKeyPolicy",
    )


def _known_actor_principal(snapshot: Snapshot, actor_arn: str) -> str | None:
    """The actor's listable ARN, or None when there is none or it is not known."""
    principal = caller_principal_arn(actor_arn)
    if principal != actor_arn:  # an assumed-role session
        role = snapshot.role(arns.name_of(principal))
        same_account = arns.account_of(principal) == snapshot.account_id
        return role.arn if role is not None and same_account else None
    return principal if is_listable_principal(principal) else None


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
    gone = sorted(_deny_sids(before) - _deny_sids(after))
    changes = [f"adds {', '.join(new_denies)}"] if new_denies else []
    changes += [f"drops {', '.join(gone)}"] if gone else []
    if changes:
        text += f" ({'; '.join(changes)})"
    return text


def _deny_sids(document: Mapping[str, Any] | None) -> set[str]:
    return {
        str(s["Sid"])
        for s in statements(document)
        if s.get("Effect") == "Deny" and str(s.get("Sid", "")).startswith("KeyHygiene")
    }


def _names(principals: Iterable[str]) -> str:
    """`alice-laptop, role photos`: what people recognise, not full ARNs."""
    labels = []
    for arn in sorted(principals):
        kind, name = arns.resource_type(arn), arns.name_of(arn)
        labels.append(name if kind == "user" else f"{kind} {name}")
    return ", ".join(labels)


# ---- small helpers ---------------------------------------------------------------


def _canonical_group(snapshot: Snapshot, name: str) -> str:
    group = snapshot.group(name)
    return group.name if group else name


def _json(document: Mapping[str, Any] | None) -> str:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def _step_id(prefix: str, name: str) -> str:
    return f"{prefix}.{id_safe(name)}"


def id_safe(name: str) -> str:
    """`name` fit for a step id: characters other than letters, digits and `_.-` become `_`."""
    return _STEP_ID_SAFE.sub("_", name)


# ---- applying: write only what was reviewed ------------------------------------------


class PolicyChanged(KeyHygieneError):
    """A policy is no longer the document a plan step was computed from (or left)."""


def read_policy(ctx: ApplyContext, target: Mapping[str, Any]) -> dict[str, Any] | None:
    """The current bucket or key policy as parsed JSON; None when a bucket has none."""
    if "Bucket" in target:
        try:
            text = ctx.client("s3").get_bucket_policy(Bucket=target["Bucket"])["Policy"]
        except ClientError as exc:
            if error_code(exc) == "NoSuchBucketPolicy":
                return None
            raise
    else:
        text = ctx.client("kms").get_key_policy(
            KeyId=target["KeyId"], PolicyName=target.get("PolicyName", "default")
        )["Policy"]
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    # Something that is not a JSON object equals no expected document.
    return document if isinstance(document, dict) else {"(not a JSON object)": str(text)}


def same_policy(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Equal as parsed JSON, a one-element list counting as its element
    ("Action": ["s3:GetObject"] is "Action": "s3:GetObject"), keys in any order."""
    return _normal(a) == _normal(b)


def put_policy_if_unchanged(
    ctx: ApplyContext,
    target: Mapping[str, Any],
    document: Mapping[str, Any],
    expected: Mapping[str, Any] | None,
    *,
    wait: bool = False,
) -> dict[str, Any]:
    """Write `document` if the policy is still `expected` (None: no bucket policy).

    Already `document` (a step that took effect before its process died): nothing
    to do. Anything else raises `PolicyChanged` and writes nothing. `wait`
    retries the write while a principal it names is not known yet.
    """
    current = read_policy(ctx, target)
    if same_policy(current, document):
        return {"Written": False}
    if not same_policy(current, expected):
        raise PolicyChanged(
            f"The policy of {_what(target)} changed since the account was read; reload and retry.",
            hint="Nothing was written to it. Reloading computes the whitelist again from the "
            "current policy, so the new statements are kept.",
        )
    _write_policy(ctx, target, document, wait=wait)
    return {"Written": True}


def restore_policy_if_unchanged(
    ctx: ApplyContext,
    target: Mapping[str, Any],
    applied: Mapping[str, Any] | None,
    previous: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """Put `previous` back if the policy is still `applied`; already `previous`: nothing to do."""
    current = read_policy(ctx, target)
    if same_policy(current, previous):
        return {"Restored": False}
    if not same_policy(current, applied):
        raise PolicyChanged(
            f"The policy of {_what(target)} changed since this plan set it, so it is left "
            "as it is.",
            hint="Compare it with the policy before the change (shown in the plan) and fix "
            "it by hand if needed.",
        )
    _write_policy(ctx, target, previous)
    return {"Restored": True}


@local_action(PUT_IF_UNCHANGED)
def _put_if_unchanged(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """The step's `after` (its Policy parameter) over its `before`, or a clear refusal."""
    step = _running_step(ctx)
    document = json.loads(params["Policy"])
    return put_policy_if_unchanged(
        ctx, params, document, step.before, wait=bool(params.get("WaitFor"))
    )


@local_action(RESTORE_IF_UNCHANGED)
def _restore_if_unchanged(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Undo of the above: the step's `before` over its `after`.

    With "Marker" and "KeyArn", `after` held the marker where the key created
    by the plan goes (keyhygiene.workflows.application); the real ARN is swapped in first.
    """
    step = _running_step(ctx)
    applied = step.after
    if "Marker" in params and applied is not None:
        applied = replace_value(applied, params["Marker"], params["KeyArn"])
    return restore_policy_if_unchanged(ctx, params, applied, step.before)


def _running_step(ctx: ApplyContext) -> Step:
    if ctx.step is None:
        raise PlanError("A policy step can only run as part of a plan (it compares documents).")
    return ctx.step


def _write_policy(
    ctx: ApplyContext,
    target: Mapping[str, Any],
    document: Mapping[str, Any] | None,
    *,
    wait: bool = False,
) -> None:
    def write() -> None:
        if "Bucket" in target:
            s3 = ctx.client("s3")
            if document is None:
                s3.delete_bucket_policy(Bucket=target["Bucket"])
            else:
                s3.put_bucket_policy(Bucket=target["Bucket"], Policy=_json(document))
            return
        if document is None:
            raise PlanError(f"A KMS key always has a policy; {_what(target)} cannot lose it.")
        ctx.client("kms").put_key_policy(
            KeyId=target["KeyId"],
            PolicyName=target.get("PolicyName", "default"),
            Policy=_json(document),
        )

    if wait:
        retry_until_visible(write, sleep=ctx.sleep, clock=ctx.clock)
    else:
        write()


def _what(target: Mapping[str, Any]) -> str:
    return f"bucket {target['Bucket']}" if "Bucket" in target else f"KMS key {target['KeyId']}"


def _normal(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(key): _normal(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_normal(item) for item in value]
        return items[0] if len(items) == 1 else items
    return value


def replace_value(value: Any, old: str, new: str) -> Any:
    """A copy of a JSON tree with every string equal to `old` replaced (whole values only)."""
    if isinstance(value, Mapping):
        return {key: replace_value(item, old, new) for key, item in value.items()}
    if isinstance(value, list):
        return [replace_value(item, old, new) for item in value]
    return new if value == old else value


# The account-wide reads a plan that rewrites whitelists stands on: without one of them the
# plan would leave out a whitelist (a key or bucket it never saw) and say done.
WHOLE_ACCOUNT_READS = ("IAM users, groups and roles", "S3 bucket list", "KMS key list")


def check_whole_account(snapshot: Snapshot) -> None:
    """Refuse to plan from a snapshot that missed an account-wide list, or the
    tags of a bucket or key (which say whose whitelist it is: unread, it could
    be one the plan must change)."""
    for problem in snapshot.problems:
        if problem.what in WHOLE_ACCOUNT_READS or problem.what.endswith(": tags"):
            raise AccountNotRead(
                f"Could not read the {problem.what}: {problem.message}",
                hint="Nothing was changed: the plan would miss what it could not see. Fix "
                "that and run the same command again.",
            )


class AccountNotRead(KeyHygieneError):
    """A plan needs the whole account and part of it could not be read (exit 3:
    like an AWS error, it may pass on its own)."""

    exit_code = 3
