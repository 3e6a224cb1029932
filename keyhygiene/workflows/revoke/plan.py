"""Plan the revoke of a lost or stolen computer: containment first, then the
whitelists, then what is left."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from keyhygiene.core.arns import partition_of
from keyhygiene.core.aws_limits import MAX_TAGS_PER_RESOURCE, USER_INLINE_POLICIES_LIMIT
from keyhygiene.core.errors import BadInput, KeyHygieneError
from keyhygiene.core.formatting import key_tail, utc_z
from keyhygiene.core.model import (
    REVOKED_POLICY_NAME,
    TAG_REVOKED,
    Bucket,
    KmsKey,
    Snapshot,
    User,
)
from keyhygiene.core.policy_documents import (
    SID_BUCKET_DENY_OTHERS,
    is_own_statement,
    remove_principal,
    statements,
    with_admin_exempt,
)
from keyhygiene.plans import (
    LOCAL,
    Call,
    Plan,
    Step,
)
from keyhygiene.steps.whitelists import (
    PUT_IF_UNCHANGED,
    admin_principal,
    check_policy,
    put_if_unchanged_call,
)
from keyhygiene.workflows.revoke.helpers import _mentions, _plain, _same_principal
from keyhygiene.workflows.revoke.model import (
    DENY_ALL_DOCUMENT,
    DENY_ALL_POLICY_NAME,
    DENY_INLINE,
    DENY_MANAGED,
    MANAGED_POLICIES_PER_USER,
    PLAN_KIND,
    REVOKED_DOCUMENT,
    STEP_DELETE_KEYS,
    STEP_DELETE_REVOKED_POLICY,
    STEP_DELETE_USER,
    STEP_DENY,
    STEP_KEYS,
    STEP_LOGIN,
    STEP_MFA,
    STEP_TAG,
    UserExtras,
)


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
