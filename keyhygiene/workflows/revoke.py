"""Emergency revoke: cut one lost or stolen computer out of the account, containment first.

One IAM user per computer exists so that a stolen laptop or phone can be
revoked alone. `plan_revoke` turns a snapshot into a plan that first stops the
damage and then undoes the enrolment checklist:

1. deactivate every access key of the user, all at once (one step, parallel calls);
2. attach the inline policy `keyhygiene-revoked`, an unconditional Deny of
   everything: AWS evaluates it on every request, so it also kills temporary
   sessions made from the keys before they were deactivated. When the user's
   inline policies leave no room for it (IAM allows 2,048 characters for all
   of a user's inline policies), the AWS managed policy `AWSDenyAll` (the same
   Deny of everything) is attached instead; IAM refusing one for its quota
   makes the step try the other. With no room for either (the default quota
   is 10 managed policies per user) the step fails with a clear message, after
   the keys were deactivated;
3. tag the user `keyhygiene:revoked` with the time (UTC);

then remove it from its groups, from every bucket and KMS key policy that
names it (any bucket or key, not only the ones tagged for its groups; our own
statements only, the DenyOthers exception list included), delete its console
password and its MFA devices; optionally delete its keys and the user.

Every step may fail without stopping the others (containment matters most),
nothing is rolled back, and no step carries an undo: a revoke that is rolled
back by accident would give a thief access again. A second run is computed
from the account as it is then, so it does only what is still missing.

`load_for_revoke` reads just what the plan needs (the user, its keys, groups and
policies, every bucket and key policy) in parallel, without the credential
report, whose generation can take seconds on AWS. `RevokeReport` reads an
`ApplyReport` for people: when containment was requested, what failed and the
permission it needed, and what to check next.

Containment is *requested*, never reported as done: IAM is eventually
consistent, so a change takes time to reach every AWS endpoint (IAM User
Guide, https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency).
A call that returned means AWS accepted the change, not that every endpoint
refuses the keys yet.

Not covered: sessions of roles the user assumed. A user policy applies to
requests signed with the user's credentials (its keys, and sessions made from
them with GetSessionToken, which act as the user); a role session acts as the
role, so neither deny policy reaches it. The deny does stop the user assuming
roles from now on; sessions it made before last until they expire.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Any, Protocol, TypeVar

from keyhygiene.aws.connection import (
    Connection,
    Identity,
    all_items,
    call_unless_missing,
    error_code,
    paginate,
    translate_errors,
)
from keyhygiene.aws.errors import BotoCoreError, ClientError
from keyhygiene.aws.sessions import MAX_POOL
from keyhygiene.core import arns
from keyhygiene.core.access import KNOWN_AWS_MANAGED
from keyhygiene.core.arns import bucket_arn, partition_of
from keyhygiene.core.aws_limits import MAX_TAGS_PER_RESOURCE, USER_INLINE_POLICIES_LIMIT
from keyhygiene.core.errors import BadInput, KeyHygieneError, permission_for
from keyhygiene.core.formatting import key_tail, utc_z
from keyhygiene.core.model import (
    REVOKED_POLICY_NAME,
    TAG_REVOKED,
    AccessKey,
    Bucket,
    Group,
    InlinePolicy,
    KmsKey,
    LoadProblem,
    PolicyAttachment,
    Role,
    Snapshot,
    User,
)
from keyhygiene.core.policy_documents import (
    POLICY_VERSION,
    SID_BUCKET_DENY_OTHERS,
    as_document,
    caller_principal_arn,
    is_own_statement,
    remove_principal,
    statements,
    with_admin_exempt,
)
from keyhygiene.plans.engine import (
    LOCAL,
    ApplyContext,
    ApplyReport,
    Call,
    Plan,
    PlanEvent,
    Step,
    local_action,
)
from keyhygiene.steps.whitelists import (
    PUT_IF_UNCHANGED,
    admin_principal,
    check_policy,
    put_if_unchanged_call,
)

T = TypeVar("T")

PLAN_KIND = "revoke"
STEP_KEYS = "deactivate-keys"
STEP_DENY = "deny-everything"
STEP_TAG = "tag-revoked"
STEP_LOGIN = "delete-login-profile"
STEP_MFA = "remove-mfa-devices"
STEP_DELETE_KEYS = "delete-keys"
STEP_DELETE_REVOKED_POLICY = "delete-revoked-policy"
STEP_DELETE_USER = "delete-user"
# The steps that put the user out of action, in the order they count.
CONTAINMENT_STEPS = (STEP_KEYS, STEP_DENY)

REVOKED_DOCUMENT: dict[str, Any] = {
    "Version": POLICY_VERSION,
    "Statement": [{"Sid": "KeyHygieneRevoked", "Effect": "Deny", "Action": "*", "Resource": "*"}],
}
# The fallback when the user's inline policies leave no room for REVOKED_DOCUMENT:
# AWS's own Deny of everything on everything, as the AWS Managed Policy Reference
# documents it (https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSDenyAll.html).
DENY_ALL_POLICY_NAME = "AWSDenyAll"
DENY_ALL_DOCUMENT: Mapping[str, Any] = KNOWN_AWS_MANAGED[DENY_ALL_POLICY_NAME]
# IAM's default quota of managed policies attached to one user. An account may
# have it raised (up to 20), so reaching it only warns: the step still tries,
# and IAM's LimitExceeded decides. Kept here: keyhygiene.core.aws_limits has no such constant.
MANAGED_POLICIES_PER_USER = 10
# Where the deny goes, in the order the step tries them.
DENY_INLINE = "inline"
DENY_MANAGED = "managed"
MAX_PARALLEL = 8

# What each local action calls, for the report of a failed step.
_LOCAL_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "revoke.deactivate_keys": ("iam:ListAccessKeys", "iam:UpdateAccessKey"),
    "revoke.deny_everything": ("iam:PutUserPolicy", "iam:AttachUserPolicy"),
    "revoke.remove_deny": ("iam:DeleteUserPolicy", "iam:DetachUserPolicy"),
    "revoke.delete_keys": ("iam:ListAccessKeys", "iam:DeleteAccessKey"),
    "revoke.delete_login_profile": ("iam:DeleteLoginProfile",),
    "revoke.remove_mfa_devices": (
        "iam:ListMFADevices",
        "iam:DeactivateMFADevice",
        "iam:DeleteVirtualMFADevice",
    ),
    "revoke.delete_user": (
        "iam:ListSigningCertificates",
        "iam:DeleteSigningCertificate",
        "iam:ListSSHPublicKeys",
        "iam:DeleteSSHPublicKey",
        "iam:DeleteUser",
    ),
}
_LACKS = re.compile(r"lacks ([A-Za-z0-9-]+:[A-Za-z0-9*]+)")
# How the deny step's message starts when IAM refused both policies for its quotas.
NO_ROOM = "No room for a deny policy"


class AccountReader(Protocol):
    """What `load_for_revoke` reads through: a `Connection` is one."""

    def client(self, service: str) -> Any: ...

    def whoami(self) -> Identity: ...


@dataclass(frozen=True)
class UserExtras:
    """What revoke needs that the snapshot model does not hold. None: not known,
    so the step is planned and finds out when it runs."""

    login_profile: bool | None = None
    mfa_serials: tuple[str, ...] | None = None


# --------------------------------------------------------------------------- planning


def find_user(snapshot: Snapshot, user_name: str) -> User:
    """The user named `user_name` (IAM names are case-insensitive), or a clear BadInput."""
    user = snapshot.user(user_name.strip())
    if user is not None:
        return user
    raise unknown_user(user_name, [u.name for u in snapshot.users], snapshot.users)


def unknown_user(user_name: str, names: Sequence[str], users: Sequence[User] = ()) -> BadInput:
    wanted = user_name.strip().lower()
    found = [
        u.name
        for u in users
        if wanted and wanted in " ".join(filter(None, (u.device, u.hostname))).lower()
    ]
    found += [name for name in names if wanted and wanted in name.lower()]
    found += difflib.get_close_matches(user_name, list(names), n=3, cutoff=0.6)
    suggestions = list(dict.fromkeys(found))[:5]
    hint = (
        "Did you mean " + " or ".join(suggestions) + "?"
        if suggestions
        else "Give the computer's IAM user name, e.g. christopher-phone (`keyhygiene inventory` lists them)."
    )
    return BadInput(f"There is no IAM user named {user_name!r}; nothing was changed.", hint=hint)


def plan_revoke(
    snapshot: Snapshot,
    user_name: str,
    *,
    delete_keys: bool = False,
    delete_user: bool = False,
    actor_arn: str | None = None,
    this_user: str | None = None,
    extras: UserExtras | None = None,
    now: datetime | None = None,
) -> Plan:
    """The emergency revoke of `user_name`: containment first, then the checklist.

    `actor_arn` (default: the snapshot's caller) is who applies the plan, for the
    lock-out check; `this_user` (default: the snapshot's) is this computer's user.
    Steps already satisfied in the snapshot are left out. Pure: no AWS call.
    """
    user = find_user(snapshot, user_name)
    actor = actor_arn or snapshot.caller_arn
    here = this_user if this_user is not None else snapshot.this_user
    extras = extras or UserExtras(
        login_profile=None if not user.password_enabled else True,
        mfa_serials=None,
    )
    delete_keys = delete_keys or delete_user
    self_revoke = _same_principal(actor, user.arn)
    if self_revoke and delete_keys:
        raise BadInput(
            f"keyhygiene is running as {user.name} itself, which cannot delete its own keys "
            "or itself and still finish the revoke; nothing was changed.",
            hint=f"Use --admin-profile with another identity: keyhygiene revoke {user.name} "
            "--admin-profile ADMIN --delete-keys.",
        )
    containment = _containment_steps(user, now or datetime.now(timezone.utc), self_revoke)
    warnings = _warnings(
        snapshot,
        user,
        here=here,
        self_revoke=self_revoke,
        deny_planned=any(step.id == STEP_DENY for step in containment),
    )
    policy_steps, policy_warnings = _policy_steps(snapshot, user, actor)
    warnings += policy_warnings
    checklist = [
        *([] if self_revoke else _group_steps(user)),
        *policy_steps,
        *_login_steps(user, extras),
        *_mfa_steps(user, extras),
    ]
    if self_revoke:
        # Whatever comes after the deny runs with no rights: it must be last.
        steps = [*checklist, *containment]
    else:
        steps = [*containment, *checklist, *_removal_steps(user, delete_keys, delete_user)]
    title = f"Emergency revoke of {user.name}"
    if user.revoked:
        title = f"Finish the emergency revoke of {user.name}"
    # The same subject whether the title says "Finish": a rerun closes the
    # interrupted run it finishes.
    return Plan(
        PLAN_KIND,
        title,
        tuple(steps),
        warnings=tuple(warnings),
        subject=f"revoke {user.name.lower()}",
    )


def _containment_steps(user: User, now: datetime, self_revoke: bool) -> list[Step]:
    """Keys, deny, tag. When the actor is the user itself, the deny must come last
    (nothing runs after it) and its keys are left to another identity."""
    if self_revoke:
        order = [_tag_step(user, now), _deny_step(user)]
    else:
        order = [_keys_step(user), _deny_step(user), _tag_step(user, now)]
    return [step for step in order if step is not None]


def _tag_step(user: User, now: datetime) -> Step | None:
    if TAG_REVOKED in user.tags:
        return None  # the first revoke's time is the one that matters
    stamp = utc_z(now)
    return Step(
        STEP_TAG,
        f"Tag {user.name} {TAG_REVOKED}={stamp}",
        Call(
            "iam",
            "tag_user",
            {"UserName": user.name, "Tags": [{"Key": TAG_REVOKED, "Value": stamp}]},
        ),
        must_succeed=False,
    )


def _keys_step(user: User) -> Step | None:
    """Step (1). Keys not read directly (credential report only) may be stale, so
    the step is always planned then, and lists the user's keys when it runs."""
    active = [key.id for key in user.active_keys if key.id]
    if user.keys_exact and not active:
        return None
    if user.keys_exact:
        tails = ", ".join(key_tail(key_id) for key_id in active)
        description = f"Deactivate every access key of {user.name} at once ({tails})"
    else:
        description = f"Deactivate every access key of {user.name} at once (listed when this runs)"
    return Step(
        STEP_KEYS,
        description,
        Call("local", "revoke.deactivate_keys", {"UserName": user.name, "AccessKeyIds": active}),
        keep=("AccessKeyIds",),
        must_succeed=False,
    )


def deny_all_arn(partition: str) -> str:
    """`arn:aws:iam::aws:policy/AWSDenyAll`, in the user's partition."""
    return f"arn:{partition}:iam::aws:policy/{DENY_ALL_POLICY_NAME}"


def _deny_all_attached(user: User) -> bool:
    return any(p.arn == deny_all_arn(partition_of(user.arn)) for p in user.attached_policies)


@dataclass(frozen=True)
class DenyRoom:
    """Whether the user has room for the deny policy, as the snapshot says."""

    inline_used: int  # compact characters of its other inline policies
    inline_needed: int  # those of REVOKED_DOCUMENT
    managed_attached: int  # managed policies attached, AWSDenyAll not counted

    @property
    def inline(self) -> bool:
        return self.inline_used + self.inline_needed <= USER_INLINE_POLICIES_LIMIT

    @property
    def managed(self) -> bool:
        return self.managed_attached < MANAGED_POLICIES_PER_USER


def deny_room(user: User) -> DenyRoom:
    """The room left for the deny policy. IAM counts the characters of all of a
    user's inline policies together, white space left out (compact JSON here);
    an inline policy whose document could not be read counts as empty, and the
    step then finds out from IAM."""
    inline = sum(
        len(json.dumps(_plain(p.document), separators=(",", ":")))
        for p in user.inline_policies
        if p.name != REVOKED_POLICY_NAME
    )
    attached = sum(1 for p in user.attached_policies if p.name != DENY_ALL_POLICY_NAME)
    return DenyRoom(inline, len(json.dumps(REVOKED_DOCUMENT, separators=(",", ":"))), attached)


def deny_order(room: DenyRoom) -> list[str]:
    """Inline `keyhygiene-revoked` first when it fits, else AWSDenyAll first.

    The other one is the step's second try, taken only when IAM answers
    LimitExceeded (a snapshot can be stale, and IAM's count has the last word).
    """
    if room.inline:
        return [DENY_INLINE, DENY_MANAGED]
    return [DENY_MANAGED, DENY_INLINE]


def _deny_step(user: User) -> Step | None:
    """Step (2): deny everything, inline policy first, AWSDenyAll when it does not fit."""
    existing = next((p for p in user.inline_policies if p.name == REVOKED_POLICY_NAME), None)
    if existing is not None and _plain(existing.document) == REVOKED_DOCUMENT:
        return None
    if _deny_all_attached(user):
        return None  # a run before attached the fallback: the deny is in place
    room = deny_room(user)
    order = deny_order(room)
    params = {
        "UserName": user.name,
        "PolicyName": REVOKED_POLICY_NAME,
        "PolicyDocument": json.dumps(REVOKED_DOCUMENT),
        "PolicyArn": deny_all_arn(partition_of(user.arn)),
        "Order": order,
    }
    call = Call(LOCAL, "revoke.deny_everything", params)
    if order[0] == DENY_INLINE:
        return Step(
            STEP_DENY,
            f"Attach inline policy {REVOKED_POLICY_NAME} to {user.name}: deny every action on "
            "every resource (sessions made from its keys die too; AWS managed "
            f"{DENY_ALL_POLICY_NAME} instead if IAM finds no room for it)",
            call,
            before=_plain(existing.document) if existing else None,
            after=REVOKED_DOCUMENT,
            keep=("Attached", "PolicyName", "PolicyArn"),
            must_succeed=False,
        )
    if room.managed:
        why = f"its inline policies leave no room for {REVOKED_POLICY_NAME}"
    else:
        why = (
            f"no room for {REVOKED_POLICY_NAME}, and {room.managed_attached} managed policies "
            "attached: this fails unless the account's quota was raised"
        )
    return Step(
        STEP_DENY,
        f"Attach AWS managed policy {DENY_ALL_POLICY_NAME} to {user.name}: deny every action "
        f"on every resource (sessions made from its keys die too; {why})",
        call,
        before=None,
        after=DENY_ALL_DOCUMENT,
        keep=("Attached", "PolicyName", "PolicyArn"),
        must_succeed=False,
    )


def _group_steps(user: User) -> list[Step]:
    return [
        Step(
            f"leave-group-{index}",
            f"Remove {user.name} from group {group}",
            Call("iam", "remove_user_from_group", {"GroupName": group, "UserName": user.name}),
            must_succeed=False,
        )
        for index, group in enumerate(user.groups, 1)
    ]


def _policy_steps(snapshot: Snapshot, user: User, actor: str) -> tuple[list[Step], list[str]]:
    """Every bucket and KMS key policy that names the user, without it."""
    steps: list[Step] = []
    warnings: list[str] = []
    for index, bucket in enumerate(snapshot.buckets, 1):
        step, warning = _bucket_step(index, bucket, user, snapshot, actor)
        steps += [step] if step else []
        warnings += [warning] if warning else []
    for index, key in enumerate(snapshot.kms_keys, 1):
        step, warning = _key_step(index, key, user, snapshot, actor)
        steps += [step] if step else []
        warnings += [warning] if warning else []
    return steps, warnings


def _bucket_step(
    index: int, bucket: Bucket, user: User, snapshot: Snapshot, actor: str
) -> tuple[Step | None, str | None]:
    if not _mentions(bucket.policy, user.arn):
        return None, None
    where = f"bucket {bucket.name}"
    before = _plain(bucket.policy)
    try:
        after = remove_principal(before, user.arn)
        foreign = _foreign_warning(after, user, where)
        if after == before:
            return None, foreign
        if not statements(after):
            # AWS refuses a policy with no statement; no policy is what it means.
            return _delete_bucket_policy_step(index, bucket, user, before), foreign
        if _has_deny_others(after) and not _same_principal(actor, user.arn):
            # The identity revoking must stay exempt from the bucket's DenyOthers,
            # or it could not edit this policy again (lock-out). Not when it is
            # the revoked user itself: the lock-out check refuses that step, and
            # another admin finishes (see the self-revoke warning).
            after = with_admin_exempt(after, admin_principal(snapshot, actor, bucket=bucket.name))
        check_policy(snapshot, after, "bucket", where, actor, bucket.arn)
    except KeyHygieneError as exc:
        return None, f"{where} still names {user.name}, left unchanged: {exc.message}"
    step = Step(
        f"bucket-policy-{index}",
        f"Remove {user.name} from the policy of {where}",
        # Written only if the policy is still what was read (not a stale snapshot's).
        put_if_unchanged_call({"Bucket": bucket.name}, after),
        before=before,
        after=after,
        must_succeed=False,
    )
    return step, foreign


def _delete_bucket_policy_step(index: int, bucket: Bucket, user: User, before: Any) -> Step:
    """Deleting the policy goes through `policy.put_if_unchanged` with no document
    (JSON null, which it writes as a delete), so statements added since the plan
    was read are not wiped."""
    return Step(
        f"bucket-policy-{index}",
        f"Delete the policy of bucket {bucket.name} ({user.name} was all it held)",
        Call(LOCAL, PUT_IF_UNCHANGED, {"Bucket": bucket.name, "Policy": json.dumps(None)}),
        before=before,
        after=None,
        must_succeed=False,
    )


def _has_deny_others(document: Mapping[str, Any]) -> bool:
    return any(s.get("Sid") == SID_BUCKET_DENY_OTHERS for s in statements(document))


def _key_step(
    index: int, key: KmsKey, user: User, snapshot: Snapshot, actor: str
) -> tuple[Step | None, str | None]:
    if not _mentions(key.policy, user.arn):
        return None, None
    where = f"KMS key {key.label}"
    before = _plain(key.policy)
    try:
        after = remove_principal(before, user.arn)
        foreign = _foreign_warning(after, user, where)
        if after == before:
            return None, foreign
        check_policy(snapshot, after, "key", where, actor, key.arn)
    except KeyHygieneError as exc:
        return None, f"{where} still names {user.name}, left unchanged: {exc.message}"
    step = Step(
        f"key-policy-{index}",
        f"Remove {user.name} from the policy of {where}",
        put_if_unchanged_call({"KeyId": key.key_id, "PolicyName": "default"}, after),
        before=before,
        after=after,
        must_succeed=False,
    )
    return step, foreign


def _foreign_warning(document: Mapping[str, Any], user: User, where: str) -> str | None:
    """Statements keyhygiene does not own are never edited; say which still name the user."""
    named = [
        str(statement.get("Sid") or "without Sid")
        for statement in statements(document)
        if not is_own_statement(statement) and _mentions(statement, user.arn)
    ]
    if not named:
        return None
    return (
        f"{where}: statement(s) {', '.join(named)} (not keyhygiene's) still name {user.name}; "
        "edit them by hand (the deny policy already overrides any Allow they give)."
    )


def _login_steps(user: User, extras: UserExtras) -> list[Step]:
    if extras.login_profile is False:
        return []
    unsure = "" if extras.login_profile else ", if it has one"
    return [
        Step(
            STEP_LOGIN,
            f"Delete the console password (login profile) of {user.name}{unsure}",
            Call("local", "revoke.delete_login_profile", {"UserName": user.name}),
            must_succeed=False,
        )
    ]


def _mfa_steps(user: User, extras: UserExtras) -> list[Step]:
    serials = extras.mfa_serials
    if serials is not None and not serials:
        return []
    listed = f" ({', '.join(serials)})" if serials else ", if any"
    return [
        Step(
            STEP_MFA,
            f"Deactivate and delete the MFA devices of {user.name}{listed}",
            Call(
                "local",
                "revoke.remove_mfa_devices",
                {"UserName": user.name, "SerialNumbers": list(serials or ())},
            ),
            keep=("SerialNumbers",),
            must_succeed=False,
        )
    ]


def _removal_steps(user: User, delete_keys: bool, delete_user: bool) -> list[Step]:
    steps: list[Step] = []
    if delete_keys and (user.access_keys or not user.keys_exact):
        ids = [key.id for key in user.access_keys if key.id]
        steps.append(
            Step(
                STEP_DELETE_KEYS,
                f"Delete every access key of {user.name}"
                + (f" ({', '.join(key_tail(i) for i in ids)})" if ids else ""),
                Call("local", "revoke.delete_keys", {"UserName": user.name, "AccessKeyIds": ids}),
                keep=("AccessKeyIds",),
                must_succeed=False,
            )
        )
    if not delete_user:
        return steps
    # AWS deletes a user only once nothing hangs on it. The deny policy goes
    # last, when no policy is left that it would have to override.
    # AWSDenyAll, if attached, goes with the deny policy at the end.
    others_attached = [p for p in user.attached_policies if p.name != DENY_ALL_POLICY_NAME]
    for index, attached in enumerate(others_attached, 1):
        steps.append(
            Step(
                f"detach-policy-{index}",
                f"Detach managed policy {attached.name} from {user.name}",
                Call(
                    "iam", "detach_user_policy", {"UserName": user.name, "PolicyArn": attached.arn}
                ),
                must_succeed=False,
            )
        )
    others = [p.name for p in user.inline_policies if p.name != REVOKED_POLICY_NAME]
    for index, name in enumerate(others, 1):
        steps.append(
            Step(
                f"delete-inline-{index}",
                f"Delete inline policy {name} of {user.name}",
                Call("iam", "delete_user_policy", {"UserName": user.name, "PolicyName": name}),
                must_succeed=False,
            )
        )
    steps.append(
        Step(
            STEP_DELETE_REVOKED_POLICY,
            f"Remove the deny policy of {user.name}: inline {REVOKED_POLICY_NAME} or AWS "
            f"managed {DENY_ALL_POLICY_NAME}, whichever it has (the user goes next)",
            Call(
                LOCAL,
                "revoke.remove_deny",
                {
                    "UserName": user.name,
                    "PolicyName": REVOKED_POLICY_NAME,
                    "PolicyArn": deny_all_arn(partition_of(user.arn)),
                },
            ),
            must_succeed=False,
        )
    )
    steps.append(
        Step(
            STEP_DELETE_USER,
            f"Delete IAM user {user.name} (its signing certificates and SSH public keys first)",
            Call("local", "revoke.delete_user", {"UserName": user.name}),
            must_succeed=False,
        )
    )
    return steps


def _room_warnings(user: User, room: DenyRoom) -> list[str]:
    if room.inline:
        return []
    used = (
        f"its inline policies use {room.inline_used:,} of the {USER_INLINE_POLICIES_LIMIT:,} "
        f"characters IAM allows a user in all ({REVOKED_POLICY_NAME} needs {room.inline_needed})"
    )
    if room.managed:
        return [
            f"{user.name} has no room for the inline policy {REVOKED_POLICY_NAME} ({used}): "
            f"revoke attaches the AWS managed policy {DENY_ALL_POLICY_NAME} instead, the same "
            "Deny of every action on every resource."
        ]
    return [
        f"{user.name} has no room for a deny policy: {used} and it has "
        f"{room.managed_attached} managed policies attached (IAM's default quota is "
        f"{MANAGED_POLICIES_PER_USER}). Its keys are deactivated first; the deny step then "
        "fails unless IAM accepts AWSDenyAll (a raised quota). To make room, detach one of "
        f"its managed policies or delete an inline one, then run `keyhygiene revoke {user.name}` "
        "again."
    ]


def _warnings(
    snapshot: Snapshot,
    user: User,
    *,
    here: str | None,
    self_revoke: bool,
    deny_planned: bool = True,
) -> list[str]:
    warnings: list[str] = []
    if self_revoke:
        warnings.append(
            f"keyhygiene is running as {user.name} itself. The deny policy goes last (after it "
            "this identity can change nothing), its groups are left and its keys stay active "
            f"(denied everything). Finish from another identity: keyhygiene revoke {user.name} "
            "--admin-profile ADMIN."
        )
    if here and here.lower() == user.name.lower():
        warnings.append(
            f"{user.name} is the computer you are on: after the revoke its own profile no "
            "longer works here."
        )
    if not user.is_device:
        warnings.append(
            f"{user.name} is not a keyhygiene computer (not named and tagged person-device); "
            "it is revoked all the same."
        )
    if user.revoked:
        warnings.append(
            f"{user.name} was revoked already ({user.tags[TAG_REVOKED]}); this run does only "
            "what is still missing."
        )
    if deny_planned:
        warnings += _room_warnings(user, deny_room(user))
    if TAG_REVOKED not in user.tags and len(user.tags) >= MAX_TAGS_PER_RESOURCE:
        warnings.append(f"{user.name} has {len(user.tags)} tags: AWS will refuse the revoked tag.")
    for problem in snapshot.problems:
        warnings.append(
            f"Could not read {problem.what} ({problem.message}); it may still name {user.name}."
        )
    return warnings


# --------------------------------------------------------------------------- local actions


@local_action("revoke.deactivate_keys")
def _deactivate_keys(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Every active key of the user, deactivated in parallel: the fastest containment.

    The keys known when planning go at once, while AWS is asked for the list
    (a key made since must not escape); any other active key follows. A key
    deleted meanwhile is as good as deactivated.
    """
    iam = ctx.client("iam")
    user = params["UserName"]
    known = list(params.get("AccessKeyIds", ()))

    def deactivate(key_id: str) -> None:
        call_unless_missing(
            iam.update_access_key, UserName=user, AccessKeyId=key_id, Status="Inactive"
        )

    with ThreadPoolExecutor(max_workers=MAX_PARALLEL, thread_name_prefix="revoke") as pool:
        futures = [pool.submit(deactivate, key_id) for key_id in known]
        try:
            listed = all_items(iam, "list_access_keys", "AccessKeyMetadata", UserName=user)
        except ClientError:
            if not known:
                raise
            listed = []  # refused to list: the planned keys are all we can do
        others = [
            item["AccessKeyId"]
            for item in listed
            if item.get("Status") == "Active" and item["AccessKeyId"] not in known
        ]
        futures += [pool.submit(deactivate, key_id) for key_id in others]
    _raise_first(futures)
    return {"AccessKeyIds": [*known, *others]}


@local_action("revoke.deny_everything")
def _deny_everything(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Put the inline deny policy, or attach AWSDenyAll, in the planned order.

    Only IAM's LimitExceeded (no room: the user's inline policy size, or its
    managed policy quota) moves on to the other one; any other error (access
    denied) fails the step at once, as a plain call would. IAM refusing both
    fails it with a message that says how to make room: failing closed, the
    keys were deactivated before this step.
    """
    iam = ctx.client("iam")
    user = params["UserName"]
    refused: list[str] = []
    for way in params["Order"]:
        try:
            if way == DENY_INLINE:
                iam.put_user_policy(
                    UserName=user,
                    PolicyName=params["PolicyName"],
                    PolicyDocument=params["PolicyDocument"],
                )
                return {"Attached": DENY_INLINE, "PolicyName": params["PolicyName"]}
            iam.attach_user_policy(UserName=user, PolicyArn=params["PolicyArn"])
            return {"Attached": DENY_MANAGED, "PolicyArn": params["PolicyArn"]}
        except ClientError as exc:
            if error_code(exc) != "LimitExceeded":
                raise
            said = str(exc.response.get("Error", {}).get("Message", "")).strip()
            what = (
                f"inline policy {params['PolicyName']}"
                if way == DENY_INLINE
                else f"AWS managed policy {DENY_ALL_POLICY_NAME}"
            )
            refused.append(f"{what} ({said or 'LimitExceeded'})")
    # One line: the report shows a failure's first line.
    raise KeyHygieneError(
        f"{NO_ROOM} on {user}: IAM refused " + " and ".join(refused) + ". Until one is "
        "attached, sessions made from its keys keep working until they expire. Make room "
        f"(detach one of its managed policies or delete one of its inline policies), then run "
        f"`keyhygiene revoke {user}` again."
    )


@local_action("revoke.remove_deny")
def _remove_deny(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Before the user is deleted: its deny policy, whichever of the two it has."""
    iam = ctx.client("iam")
    user = params["UserName"]
    deleted = call_unless_missing(
        iam.delete_user_policy, UserName=user, PolicyName=params["PolicyName"]
    )
    detached = call_unless_missing(
        iam.detach_user_policy, UserName=user, PolicyArn=params["PolicyArn"]
    )
    return {"Deleted": deleted, "Detached": detached}


@local_action("revoke.delete_keys")
def _delete_keys(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    iam = ctx.client("iam")
    user = params["UserName"]
    ids = _current_key_ids(iam, user, params.get("AccessKeyIds", ()), active_only=False)
    _in_parallel(
        ids,
        lambda key_id: call_unless_missing(
            iam.delete_access_key, UserName=user, AccessKeyId=key_id
        ),
    )
    return {"AccessKeyIds": ids}


@local_action("revoke.delete_login_profile")
def _delete_login_profile(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    iam = ctx.client("iam")
    deleted = call_unless_missing(iam.delete_login_profile, UserName=params["UserName"])
    return {"Deleted": deleted}


@local_action("revoke.remove_mfa_devices")
def _remove_mfa_devices(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    iam = ctx.client("iam")
    user = params["UserName"]
    known = list(params.get("SerialNumbers", ()))
    try:
        listed = [
            d["SerialNumber"]
            for d in all_items(iam, "list_mfa_devices", "MFADevices", UserName=user)
        ]
    except ClientError:
        if not known:
            raise
        listed = []
    serials = list(dict.fromkeys([*listed, *known]))
    for serial in serials:
        call_unless_missing(iam.deactivate_mfa_device, UserName=user, SerialNumber=serial)
        if serial.startswith("arn:"):
            # A virtual device is an IAM resource of its own; hardware ones are not.
            call_unless_missing(iam.delete_virtual_mfa_device, SerialNumber=serial)
    return {"SerialNumbers": serials}


@local_action("revoke.delete_user")
def _delete_user(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    iam = ctx.client("iam")
    user = params["UserName"]
    for cert in all_items(iam, "list_signing_certificates", "Certificates", UserName=user):
        iam.delete_signing_certificate(UserName=user, CertificateId=cert["CertificateId"])
    for key in all_items(iam, "list_ssh_public_keys", "SSHPublicKeys", UserName=user):
        iam.delete_ssh_public_key(UserName=user, SSHPublicKeyId=key["SSHPublicKeyId"])
    return {"Deleted": call_unless_missing(iam.delete_user, UserName=user)}


def _current_key_ids(iam: Any, user: str, known: Iterable[str], *, active_only: bool) -> list[str]:
    """The user's keys as AWS lists them now; the planned ids if listing is refused."""
    try:
        items = all_items(iam, "list_access_keys", "AccessKeyMetadata", UserName=user)
    except ClientError:
        planned = list(known)
        if not planned:
            raise
        return planned
    return [i["AccessKeyId"] for i in items if not active_only or i.get("Status") == "Active"]


def _in_parallel(items: Sequence[T], func: Callable[[T], Any]) -> None:
    """Run `func` on every item at once; all are tried, then the first failure is raised."""
    if not items:
        return
    with ThreadPoolExecutor(
        max_workers=min(len(items), MAX_PARALLEL), thread_name_prefix="revoke"
    ) as pool:
        futures = [pool.submit(func, item) for item in items]
    _raise_first(futures)


def _raise_first(futures: Iterable[Future[Any]]) -> None:
    for future in futures:
        error = future.exception()
        if error is not None:
            raise error


# --------------------------------------------------------------------------- loading


def load_for_revoke(
    conn: AccountReader, user_name: str, *, this_user: str | None = None
) -> tuple[Snapshot, UserExtras]:
    """Just what `plan_revoke` needs, read in parallel: the user (keys read
    directly, with last use), its groups and policies, its console password and
    MFA devices, and every bucket and customer KMS key policy.

    Raises BadInput, having changed nothing, when the user does not exist. What
    else cannot be read becomes a `LoadProblem`, which the plan turns into a
    warning (or a step that finds out when it runs).
    """
    with ThreadPoolExecutor(max_workers=MAX_POOL, thread_name_prefix="revoke-load") as pool:
        loader = _Loader(conn, user_name.strip(), pool)
        identity_f = pool.submit(conn.whoami)
        detail_f = pool.submit(_get_user, conn, loader.name)
        parts = loader.user_parts()
        buckets_f: Future[list[str]] = loader.read(
            "the S3 bucket list", "s3", partial(_bucket_names, conn), []
        )
        kms_f: Future[dict[str, tuple[str, tuple[str, ...]]]] = loader.read(
            "the KMS key list", "kms", partial(_customer_keys, conn), {}
        )
        detail = detail_f.result()  # raises BadInput for an unknown user
        identity = identity_f.result()
        role_f = pool.submit(_actor_role, loader.iam, identity.arn)
        policies = loader.resource_policies(buckets_f.result(), kms_f.result())
        user = loader.user(detail, parts)
        buckets, kms_keys = loader.resources(policies, kms_f.result(), identity.arn)
        mfa = parts["mfa"].result()
        extras = UserExtras(
            login_profile=parts["login"].result(),
            mfa_serials=None if mfa is None else tuple(d["SerialNumber"] for d in mfa),
        )
        groups = tuple(
            Group(name=g["GroupName"], arn=g["Arn"], members=(user.name,))
            for g in parts["groups"].result() or ()
        )
    user = replace(
        user, password_enabled=bool(extras.login_profile), mfa_active=bool(extras.mfa_serials)
    )
    snapshot = Snapshot(
        account_id=identity.account_id,
        caller_arn=identity.arn,
        loaded_at=datetime.now(timezone.utc),
        users=(user,),
        groups=groups,
        buckets=buckets,
        kms_keys=kms_keys,
        roles=role_f.result(),
        problems=tuple(loader.problems),
        this_user=this_user,
    )
    return snapshot, extras


def _actor_role(iam: Any, caller_arn: str) -> tuple[Role, ...]:
    """The role behind an assumed-role caller (SSO admin, --admin-profile role), so
    that bucket exception lists and the lock-out check name its real ARN (path
    included); () for any other caller.

    A role that cannot be read is left out: each bucket step it would have
    needed then says why it was left unchanged, and the rest of the revoke goes on.
    """
    principal = caller_principal_arn(caller_arn)
    if principal == caller_arn:
        return ()
    try:
        role = iam.get_role(RoleName=arns.name_of(principal))["Role"]
    except (ClientError, BotoCoreError):
        return ()
    return (
        Role(
            name=role["RoleName"],
            arn=role["Arn"],
            path=role.get("Path", "/"),
            tags={t["Key"]: t["Value"] for t in role.get("Tags", [])},
        ),
    )


class _Loader:
    """The reads of `load_for_revoke`, each in the pool; a failed read becomes a LoadProblem."""

    def __init__(self, conn: AccountReader, name: str, pool: ThreadPoolExecutor) -> None:
        self.conn = conn
        self.iam = conn.client("iam")
        self.name = name
        self.pool = pool
        self.problems: list[LoadProblem] = []

    def read(self, what: str, service: str, func: Callable[[], T], default: T) -> Future[T]:
        return self.pool.submit(self._guarded, what, service, func, default)

    def _guarded(self, what: str, service: str, func: Callable[[], T], default: T) -> T:
        try:
            with translate_errors(f"reading {what}", service=service):
                return func()
        except KeyHygieneError as exc:
            self.problems.append(LoadProblem(what, exc.message))
            return default

    def _listing(self, what: str, operation: str, key: str, default: Any) -> Future[Any]:
        return self.read(
            f"{what} of {self.name}",
            "iam",
            lambda: all_items(self.iam, operation, key, UserName=self.name),
            default,
        )

    def user_parts(self) -> dict[str, Future[Any]]:
        """None for what could not be read where the plan must then find out itself."""
        return {
            "tags": self._listing("the tags", "list_user_tags", "Tags", None),
            "groups": self._listing("the groups", "list_groups_for_user", "Groups", None),
            "attached": self._listing(
                "the managed policies", "list_attached_user_policies", "AttachedPolicies", []
            ),
            "inline": self._listing("the inline policies", "list_user_policies", "PolicyNames", []),
            "keys": self._listing("the access keys", "list_access_keys", "AccessKeyMetadata", None),
            "mfa": self._listing("the MFA devices", "list_mfa_devices", "MFADevices", None),
            "login": self.read(
                f"the console password of {self.name}",
                "iam",
                lambda: _has_login(self.iam, self.name),
                None,
            ),
        }

    def resource_policies(
        self, buckets: Iterable[str], keys: Mapping[str, tuple[str, tuple[str, ...]]]
    ) -> dict[tuple[str, str], Future[Any]]:
        """("s3", bucket) or ("kms", key id) -> the policy text (None: none or unreadable)."""
        futures: dict[tuple[str, str], Future[Any]] = {}
        for bucket in buckets:
            futures["s3", bucket] = self.read(
                f"S3 bucket {bucket}: policy",
                "s3",
                partial(_bucket_policy, self.conn, bucket),
                None,
            )
        for key_id, (_, aliases) in keys.items():
            futures["kms", key_id] = self.read(
                f"KMS key {aliases[0] if aliases else key_id}: policy",
                "kms",
                partial(_key_policy, self.conn, key_id),
                None,
            )
        return futures

    def resources(
        self,
        policies: Mapping[tuple[str, str], Future[Any]],
        keys: Mapping[str, tuple[str, tuple[str, ...]]],
        caller_arn: str,
    ) -> tuple[tuple[Bucket, ...], tuple[KmsKey, ...]]:
        partition = partition_of(caller_arn)
        buckets: list[Bucket] = []
        kms_keys: list[KmsKey] = []
        for (service, name), future in policies.items():
            text = future.result()
            policy = _document(text) if text else None
            if text and not policy:
                what = f"S3 bucket {name}" if service == "s3" else f"KMS key {name}"
                self.problems.append(LoadProblem(f"{what}: policy", "it is not a JSON object"))
            if service == "s3":
                buckets.append(Bucket(name, bucket_arn(name, partition), policy=policy))
            else:
                arn, aliases = keys[name]
                kms_keys.append(KmsKey(name, arn, aliases=aliases, policy=policy))
        return tuple(buckets), tuple(sorted(kms_keys, key=lambda k: k.label))

    def _inline_document(self, user: str, policy: str) -> Any:
        return self.iam.get_user_policy(UserName=user, PolicyName=policy)["PolicyDocument"]

    def _last_use(self, key_id: str) -> Mapping[str, Any]:
        return self.iam.get_access_key_last_used(AccessKeyId=key_id).get("AccessKeyLastUsed", {})

    def user(self, detail: Mapping[str, Any], parts: Mapping[str, Future[Any]]) -> User:
        """The user, with its inline policy documents and each key's last use read too."""
        name = detail["UserName"]
        inline: dict[str, Future[Any]] = {
            policy: self.read(
                f"inline policy {policy} of {name}",
                "iam",
                partial(self._inline_document, name, policy),
                {},
            )
            for policy in parts["inline"].result()
        }
        key_items = parts["keys"].result()
        last_used: dict[str, Future[Mapping[str, Any]]] = {
            item["AccessKeyId"]: self.read(
                f"the last use of key {key_tail(item['AccessKeyId'])}",
                "iam",
                partial(self._last_use, item["AccessKeyId"]),
                {},
            )
            for item in key_items or ()
        }
        tags = parts["tags"].result()
        return User(
            name=name,
            arn=detail["Arn"],
            user_id=detail.get("UserId", ""),
            created=detail.get("CreateDate"),
            tags={t["Key"]: t["Value"] for t in (detail.get("Tags", []) if tags is None else tags)},
            groups=tuple(g["GroupName"] for g in parts["groups"].result() or ()),
            attached_policies=tuple(
                PolicyAttachment(name=p["PolicyName"], arn=p["PolicyArn"])
                for p in parts["attached"].result()
            ),
            inline_policies=tuple(
                InlinePolicy(name=policy, document=_document(future.result()))
                for policy, future in inline.items()
            ),
            access_keys=_access_keys(name, key_items or (), last_used),
            keys_exact=key_items is not None,
        )


def _access_keys(
    user: str, items: Iterable[Mapping[str, Any]], last_used: Mapping[str, Future[Any]]
) -> tuple[AccessKey, ...]:
    keys = []
    for slot, item in enumerate(sorted(items, key=lambda i: i["CreateDate"]), 1):
        used = last_used[item["AccessKeyId"]].result()
        service = used.get("ServiceName")
        keys.append(
            AccessKey(
                user=user,
                status=item["Status"],
                created=item["CreateDate"],
                last_used=used.get("LastUsedDate"),
                last_used_service=None if service in (None, "", "N/A") else service,
                id=item["AccessKeyId"],
                slot=slot,
            )
        )
    return tuple(keys)


def _get_user(conn: AccountReader, name: str) -> Mapping[str, Any]:
    iam = conn.client("iam")
    try:
        return iam.get_user(UserName=name)["User"]
    except ClientError as exc:
        if error_code(exc) != "NoSuchEntity":
            with translate_errors(f"reading IAM user {name}", service="iam"):
                raise
        names: list[str] = []
        # Without the list there are no suggestions; the error stays clear.
        with contextlib.suppress(ClientError, BotoCoreError):
            names = [u["UserName"] for u in all_items(iam, "list_users", "Users")]
        raise unknown_user(name, names) from None


def _has_login(iam: Any, name: str) -> bool:
    return call_unless_missing(iam.get_login_profile, UserName=name)


def _bucket_names(conn: AccountReader) -> list[str]:
    answer = conn.client("s3").list_buckets()
    return sorted(b["Name"] for b in answer.get("Buckets", []))


def _bucket_policy(conn: AccountReader, bucket: str) -> str | None:
    try:
        return conn.client("s3").get_bucket_policy(Bucket=bucket)["Policy"]
    except ClientError as exc:
        if error_code(exc) == "NoSuchBucketPolicy":
            return None
        raise


def _customer_keys(conn: AccountReader) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Key id -> (ARN, aliases); AWS managed keys (alias/aws/...) are AWS's to keep."""
    kms = conn.client("kms")
    aliases: dict[str, list[str]] = {}
    for alias in paginate(kms, "list_aliases", "Aliases", "listing the KMS aliases", "kms"):
        if alias.get("TargetKeyId"):
            aliases.setdefault(alias["TargetKeyId"], []).append(alias["AliasName"])
    result = {}
    for key in paginate(kms, "list_keys", "Keys", "listing the KMS keys", "kms"):
        names = tuple(sorted(aliases.get(key["KeyId"], ())))
        if names and all(n.startswith("alias/aws/") for n in names):
            continue
        result[key["KeyId"]] = (key["KeyArn"], names)
    return result


def _key_policy(conn: AccountReader, key_id: str) -> str:
    return conn.client("kms").get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]


def this_user_name(own: Connection) -> str | None:
    """This computer's IAM user name; None when its profile cannot say (no profile here)."""
    try:
        return own.whoami().user_name
    except KeyHygieneError:
        return None


# --------------------------------------------------------------------------- what it can reach


def describe_reach(snapshot: Snapshot, user: User, extras: UserExtras | None = None) -> list[str]:
    """What the computer's user can reach, as lines for people (before revoking)."""
    extras = extras or UserExtras()
    lines = [f"User {user.name}" + (f" (host {user.hostname})" if user.hostname else "")]
    if snapshot.this_user and snapshot.this_user.lower() == user.name.lower():
        lines.append("This is the computer you are on.")
    if user.revoked:
        lines.append(f"Revoked already: {user.tags[TAG_REVOKED]}")
    lines.append("Groups: " + (", ".join(user.groups) or "none"))
    buckets = [b.name for b in snapshot.buckets if _mentions(b.policy, user.arn)]
    keys = [k.label for k in snapshot.kms_keys if _mentions(k.policy, user.arn)]
    lines.append("Buckets whose policy names it: " + (", ".join(buckets) or "none"))
    lines.append("KMS keys whose policy names it: " + (", ".join(keys) or "none"))
    policies = [p.name for p in user.attached_policies] + [p.name for p in user.inline_policies]
    lines.append("Its own policies: " + (", ".join(policies) or "none"))
    if not user.access_keys:
        lines.append("Access keys: none" if user.keys_exact else "Access keys: not known")
    for key in user.access_keys:
        lines.append(f"Access key {key.id or key.id_tail}: {key.status}, {_last_use(key)}")
    login = {True: "yes", False: "no", None: "not known"}[extras.login_profile]
    lines.append(f"Console password: {login}")
    if extras.mfa_serials is None:
        lines.append("MFA devices: not known")
    else:
        lines.append(f"MFA devices: {len(extras.mfa_serials)}")
    return lines


def _last_use(key: AccessKey) -> str:
    if key.last_used is None:
        return "never used"
    service = f" ({key.last_used_service})" if key.last_used_service else ""
    return f"last used {key.last_used.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC{service}"


# --------------------------------------------------------------------------- the report


class ContainmentTimer:
    """Give it every PlanEvent: it notes when the user was put out of action.

    Time to containment is the time from the start of the run until step (1)
    (keys deactivated) completed; when keys were not part of the plan (already
    inactive, or a self-revoke), until the deny policy was attached.
    `requested_at` is the wall-clock time (UTC) when the last containment step
    of the run returned: when AWS had accepted both requests.
    """

    def __init__(
        self,
        plan: Plan,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self.step_id = containment_step(plan)
        self.clock = clock
        self.wall = wall
        self.started: float | None = None
        self.seconds: float | None = None
        self.requested_at: datetime | None = None

    def __call__(self, event: PlanEvent) -> None:
        if event.undo:
            return
        if event.kind == "plan_started":
            self.started = self.clock()
        elif event.kind == "step_done" and event.step_id in CONTAINMENT_STEPS:
            self.requested_at = self.wall()
            if event.step_id == self.step_id and self.started is not None:
                self.seconds = self.clock() - self.started


def containment_step(plan: Plan) -> str | None:
    ids = {step.id for step in plan.steps}
    return next((step for step in CONTAINMENT_STEPS if step in ids), None)


@dataclass(frozen=True)
class FailedStep:
    number: int
    description: str
    message: str
    permission: str  # what the identity needs, e.g. "iam:UpdateAccessKey"


# IAM's note on eventual consistency, quoted by the report.
EVENTUAL_CONSISTENCY_URL = (
    "https://docs.aws.amazon.com/IAM/latest/UserGuide/"
    "troubleshoot_general.html#troubleshoot_general_eventual-consistency"
)
PROPAGATION = "AWS may take a few minutes to apply it everywhere"


@dataclass(frozen=True)
class RevokeReport:
    """An ApplyReport of a revoke plan, read for a person in a hurry.

    Containment is *requested* when AWS accepted the calls that put the user
    out of action (this run or before it): IAM applies them everywhere only
    after a delay, so nothing here says it is done.
    """

    report: ApplyReport
    user: User
    containment_seconds: float | None  # None: containment was not requested in this run
    containment_note: str  # what was requested: "keys deactivated, deny-all attached (...)"
    reach: tuple[str, ...] = ()  # the buckets and KMS keys whose policies named it
    requested_at: datetime | None = None  # when AWS accepted the last containment call
    before_run: bool = False  # containment was requested by an earlier run
    deny_policy: str | None = REVOKED_POLICY_NAME  # the deny policy in place (None: none)

    @property
    def ok(self) -> bool:
        return self.report.ok

    @property
    def containment_requested(self) -> bool:
        return self.containment_seconds is not None

    @property
    def failures(self) -> tuple[FailedStep, ...]:
        plan = self.report.plan
        return tuple(
            FailedStep(
                plan.number(result.step_id),
                plan.step(result.step_id).description,
                result.message,
                needed_permission(plan.step(result.step_id), result.message),
            )
            for result in self.report.results
            if result.status != "done"
        )

    def headline(self) -> str:
        total = len(self.report.plan.steps)
        accepted = len(self.report.done)
        took = f"AWS accepted {accepted} of {total} steps in {self.report.elapsed:.2f} s."
        name = self.user.name
        if not self.containment_requested:
            return f"{name} is NOT contained: {self.containment_note}; {took}"
        note = self.containment_note
        if self.before_run:
            since = self.user.tags.get(TAG_REVOKED)
            when = f" ({TAG_REVOKED}={since})" if since else ""
            return f"Containment of {name} was requested before this run{when}: {note}. {took}"
        when = f" at {_clock(self.requested_at)}" if self.requested_at else ""
        when += f", {self.containment_seconds:.2f} s after the start"
        return f"Containment of {name} requested{when}: {note}; {PROPAGATION}. {took}"

    def advice(self) -> list[str]:
        return revoke_advice(self)

    def render_text(self) -> str:
        lines = [self.headline()]
        failures = self.failures
        if failures:
            lines.append("")
            lines.append("Not done:")
            for failure in failures:
                lines.append(f"  {failure.number}. {failure.description}")
                lines.append(f"     needs {failure.permission}")
                first = failure.message.splitlines()[0] if failure.message else ""
                if first and failure.permission not in first:
                    lines.append(f"     {first}")  # not a plain access denied: say what it was
        lines.append("")
        lines.append("What to check next:")
        lines.extend(f"  - {item}" for item in self.advice())
        return "\n".join(lines)


def _clock(moment: datetime) -> str:
    """`14:03:07Z`: the time of day in UTC, to the second."""
    return moment.astimezone(timezone.utc).strftime("%H:%M:%SZ")


def revoke_report(
    report: ApplyReport,
    user: User,
    *,
    timer: ContainmentTimer | None = None,
    snapshot: Snapshot | None = None,
) -> RevokeReport:
    """Read `report` (of `plan_revoke` for `user` as it was before the run).

    Containment is requested when its keys are inactive or a deny policy is
    attached, by this run or before it; the time is the timer's (no timer: not
    known). `snapshot` (the one planned from) names the buckets and KMS keys it
    could reach, for the advice.
    """
    planned = {step.id for step in report.plan.steps}
    done = _done_ids(report)
    keys_ok = STEP_KEYS in done or (STEP_KEYS not in planned and not user.active_keys)
    deny_ok = STEP_DENY in done or STEP_DENY not in planned
    reach = _reach(snapshot, user) if snapshot is not None else ()
    deny = _deny_in_place(report, user)
    at = timer.requested_at if timer is not None else None
    made = partial(RevokeReport, report, user, reach=reach, deny_policy=deny)
    if not (keys_ok or deny_ok):
        return made(None, "its keys are still active and the deny policy is not attached")
    attached = f"deny-all attached ({_deny_label(deny or REVOKED_POLICY_NAME)})"
    if STEP_KEYS in done:
        note = "keys deactivated"
        if STEP_DENY in done:
            note += f", {attached}"
        elif deny_ok:
            note += f"; {attached} before this run"
        else:
            note += "; the deny policy is NOT attached, so sessions made from the keys still work"
        return made(_seconds_until(report, STEP_KEYS, timer), note, requested_at=at)
    if STEP_DENY in done:
        note = attached + (
            "; its keys were inactive already"
            if keys_ok
            else "; its keys stay active, denied everything"
        )
        return made(_seconds_until(report, STEP_DENY, timer), note, requested_at=at)
    note = f"keys inactive, {attached}"
    if not keys_ok:
        note = f"{attached}; its keys stay active, denied everything"
    return made(0.0, note, before_run=True)


def _deny_in_place(report: ApplyReport, user: User) -> str | None:
    """The deny policy's name: what this run attached, else what the user had;
    None when this run's deny step did not go through."""
    planned = any(step.id == STEP_DENY for step in report.plan.steps)
    if planned and STEP_DENY not in _done_ids(report):
        return None
    attached = report.kept.get(STEP_DENY, {}).get("Attached")
    if attached == DENY_MANAGED:
        return DENY_ALL_POLICY_NAME
    if attached == DENY_INLINE:
        return REVOKED_POLICY_NAME
    has_inline = any(p.name == REVOKED_POLICY_NAME for p in user.inline_policies)
    if _deny_all_attached(user) and not has_inline:
        return DENY_ALL_POLICY_NAME
    return REVOKED_POLICY_NAME


def _deny_label(name: str) -> str:
    if name == DENY_ALL_POLICY_NAME:
        return f"AWS managed policy {DENY_ALL_POLICY_NAME}"
    return f"inline policy {name}"


def _reach(snapshot: Snapshot, user: User) -> tuple[str, ...]:
    buckets = [f"bucket {b.name}" for b in snapshot.buckets if _mentions(b.policy, user.arn)]
    keys = [f"KMS key {k.label}" for k in snapshot.kms_keys if _mentions(k.policy, user.arn)]
    return tuple(buckets + keys)


def _done_ids(report: ApplyReport) -> set[str]:
    return {result.step_id for result in report.done}


def _seconds_until(report: ApplyReport, step_id: str, timer: ContainmentTimer | None) -> float:
    if timer is not None and timer.step_id == step_id and timer.seconds is not None:
        return timer.seconds
    total = 0.0
    for result in report.results:
        total += result.seconds
        if result.step_id == step_id:
            break
    return total


def needed_permission(step: Step, message: str) -> str:
    """The permission a failed step needed: as AWS named it, else what the step calls."""
    match = _LACKS.search(message)
    if match:
        return match.group(1)
    if message.startswith(NO_ROOM):
        return "room for a deny policy (IAM's quotas, not a permission)"
    call = step.call
    if call.service == "local":
        return ", ".join(_LOCAL_PERMISSIONS.get(call.operation, (call.label,)))
    operation = "".join(part[:1].upper() + part[1:] for part in call.operation.split("_"))
    return permission_for(call.service, operation)


def revoke_advice(revoke: RevokeReport) -> list[str]:
    """What a person should check next, most urgent first."""
    user = revoke.user
    advice: list[str] = []
    if not revoke.containment_requested:
        advice.append(
            f"URGENT: {user.name} can still use its keys. Give the missing permission to the "
            f"identity in use, or run `keyhygiene revoke {user.name} --admin-profile ADMIN` "
            "with one that has it; in the AWS console, IAM > Users > Security credentials > "
            "Deactivate works too."
        )
    elif not revoke.before_run:
        since = f" after {_clock(revoke.requested_at)}" if revoke.requested_at else ""
        advice.append(
            "IAM changes are eventually consistent: for a few minutes some AWS endpoints may "
            f"still accept {user.name}'s keys ({EVENTUAL_CONSISTENCY_URL}). Look in "
            f"CloudTrail for calls by {user.name}{since} that AWS still let through."
        )
    if revoke.failures:
        advice.append(
            f"Run `keyhygiene revoke {user.name}` again once the cause is fixed: it does only "
            "what is still missing."
        )
    for key in user.access_keys:
        advice.append(_cloudtrail_advice(user, key))
    if not user.access_keys:
        advice.append(
            f"Look in CloudTrail (Event history, user name {user.name}) for what it did recently."
        )
    where = ", ".join(revoke.reach) if revoke.reach else "the buckets and keys its groups reach"
    advice.append(
        f"Find out what it read or changed in {where}: CloudTrail's event history holds "
        "management events only, so use a trail's S3 and KMS data events or S3 server access "
        "logs if they are on, and treat data it could read as disclosed."
    )
    if revoke.deny_policy is not None:
        advice.append(
            f"Keep the deny policy ({_deny_label(revoke.deny_policy)}) attached until the user "
            "is deleted: it also refuses temporary sessions that were made from the keys before "
            "they were deactivated."
        )
    advice.append(
        "Sessions of roles it assumed act as the role, so no user policy reaches them: if it "
        "could assume a role, revoke that role's active sessions (IAM console, the role's "
        "Revoke sessions tab)."
    )
    advice.append(
        "Revoke the computer's other secrets too: SSH keys, other AWS accounts' profiles in its "
        "~/.aws/credentials, tokens and browser sessions."
    )
    advice.append(
        "If the computer turns up again, do not re-activate the old key: enroll it afresh."
    )
    return advice


def _cloudtrail_advice(user: User, key: AccessKey) -> str:
    key_name = key.id or f"{user.name}'s {key.id_tail}"
    if key.last_used is not None:
        # IAM records last use to the hour or so: start a day earlier.
        since = key.last_used.astimezone(timezone.utc) - timedelta(days=1)
        text = f"Check CloudTrail for what key {key_name} did since it was last seen ({_last_use(key)})"
    else:
        since = None
        text = (
            f"Check CloudTrail for any use of key {key_name} (never used as far as IAM "
            "knows, which lags by hours)"
        )
    if not key.id:
        return text + "."
    start = f" --start-time {utc_z(since)}" if since else ""
    return (
        f"{text}: aws cloudtrail lookup-events --lookup-attributes "
        f"AttributeKey=AccessKeyId,AttributeValue={key.id}{start}, in every region it used."
    )


# --------------------------------------------------------------------------- helpers


def _same_principal(actor_arn: str, user_arn: str) -> bool:
    return actor_arn.lower() == user_arn.lower()


def _mentions(value: Any, arn: str) -> bool:
    """True when the ARN appears anywhere in a policy (principals, conditions)."""
    if value is None:
        return False
    if isinstance(value, str):
        return value == arn
    if isinstance(value, Mapping):
        return any(_mentions(item, arn) for item in value.values())
    if isinstance(value, (list, tuple)):
        return any(_mentions(item, arn) for item in value)
    return False


def _plain(document: Any) -> dict[str, Any]:
    return as_document(document) or {}


def _document(raw: Any) -> dict[str, Any]:
    """A policy as a dict: IAM answers with a dict, S3 and KMS with JSON text."""
    try:
        return as_document(raw) or {}
    except BadInput:
        return {}
