"""Register this computer: the whole "adding a computer" checklist as one plan.

The practice's checklist is: create a user, add it to a group, add it to the
bucket policies, add it to the encryption keys. Done by hand it goes wrong,
because groups cannot be principals in bucket or key policies. Here it is one
reviewed plan, run on the new computer with an admin identity:

1. the group `keyhygiene-devices` and the managed policy
   `keyhygiene-rotate-own-key` (so that every computer can rotate its own key
   and nothing else), created and attached when missing;
2. the user `<person>-<device>` with its keyhygiene tags;
3. its memberships: `keyhygiene-devices` and the chosen groups;
4. its single access key, written straight into this computer's credentials
   file (the secret never leaves memory otherwise), the region in the config
   file, and a check that AWS answers to the new key;
5. the bucket and KMS key policies of every chosen group, whitelisting it
   (last, so that IAM had time to learn the new user; S3 and KMS still refuse
   a principal they do not know yet for some seconds, so those steps retry
   while they answer MalformedPolicy, see keyhygiene/aws/propagation.py).

`plan_enrollment` is pure: it reads a snapshot and a request and returns a
plan. The local actions registered below do the file edits and the check.

Rolling back must leave nothing, even after a crash in the middle of
CreateAccessKey (a key may exist whose id was never journaled): the user is
new, so every key and membership it has came from this plan, and the undo
steps delete whatever they find rather than only what was journaled.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from keyhygiene.aws.connection import (
    Connection,
    ConnectionOptions,
    MfaCodeProvider,
    all_items,
    call_unless_missing,
    error_code,
)
from keyhygiene.aws.errors import ClientError
from keyhygiene.aws.sessions import (
    DEFAULT_REGION,
    boto3_session,
    key_session,
    profile_files_session,
    single_try_config,
)
from keyhygiene.core.aws_limits import (
    IAM_NAME,
    MAX_GROUPS_PER_USER,
    MAX_TAG_VALUE,
    MAX_USER_NAME,
    check_iam_name,
)
from keyhygiene.core.errors import BadInput, KeyHygieneError
from keyhygiene.core.formatting import key_tail, shown_path
from keyhygiene.core.mfa_devices import MFA_GROUP, STRICT_GROUP, groups_wanting_mfa
from keyhygiene.core.model import (
    DEVICES_GROUP,
    TAG_DEVICE,
    TAG_ENROLLED,
    TAG_HOSTNAME,
    TAG_PERSON,
    TAG_ROTATE_EVERY,
    Snapshot,
)
from keyhygiene.core.verification import Answer, Pacing, successes_in_a_row
from keyhygiene.local import credentials_file, vault
from keyhygiene.local.vault import credential_process_command
from keyhygiene.plans import LOCAL, ApplyContext, Call, Plan, Ref, Sealed, Step, local_action
from keyhygiene.plans.journal import Journal, open_journals
from keyhygiene.steps.group_policy import GroupWithPolicy, group_with_policy_steps
from keyhygiene.steps.mfa_device import (
    mfa_device_step,
    mfa_group_steps,
    mfa_serial_step,
    remove_mfa_devices,
    strict_group_steps,
)
from keyhygiene.steps.whitelists import (
    check_whole_account,
    members_after_change,
    user_arn,
    whitelist_steps,
)

PLAN_KIND = "enroll"
ROTATE_OWN_KEY_POLICY = "keyhygiene-rotate-own-key"
ROTATE_OWN_KEY_ACTIONS = (
    "iam:CreateAccessKey",
    "iam:DeleteAccessKey",
    # Rotation reads when a key it may have orphaned was last used before deleting it.
    "iam:GetAccessKeyLastUsed",
    "iam:GetUser",
    "iam:ListAccessKeys",
    "iam:UpdateAccessKey",
)
DEFAULT_DEVICE = "computer"

# The person part may not hold a dash: it is what separates person from device.
_PERSON = re.compile(r"^[A-Za-z0-9_+=,.@]+$")
# Profile names follow IAM's rule: the default profile is the user name.
_PROFILE = IAM_NAME
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_TAG_VALUE_UNSAFE = re.compile(r"[^\w\s.:/=+\-@]", re.UNICODE)
# What STS answers while a brand-new key has not reached every endpoint yet.
_NOT_YET_CODES = frozenset({"InvalidClientTokenId", "SignatureDoesNotMatch", "AccessDenied"})


# --------------------------------------------------------------------------- the request


@dataclass(frozen=True)
class EnrollmentRequest:
    """What the person asked for. Unset fields get their defaults in `resolve`."""

    person: str
    device: str | None = None  # default: a slug of the host name
    groups: tuple[str, ...] = ()
    profile_name: str | None = None  # default: the user name
    region: str | None = None  # default: us-east-1
    hostname: str = field(default_factory=socket.gethostname)
    enrolled_on: date | None = None  # default: today (UTC)
    credentials_file: str | None = None  # default: the file botocore reads
    config_file: str | None = None
    endpoint_url: str | None = None  # for the key check (moto, LocalStack)
    # Profiles of this computer's credentials file that hold a key already.
    profiles_in_use: frozenset[str] = frozenset()
    # Session-token keys of the file's [DEFAULT], which the new profile would
    # inherit: the write overrides them there, and the plan says so.
    default_session_keys: tuple[str, ...] = ()
    # "on", "strict", "off", or "auto": on when a chosen group's policies allow
    # IAM writes. Strict: the key does nothing at all without an MFA session.
    mfa: str = "auto"
    # Where the key goes: "file" (the credentials file) or "keyring" (the OS
    # keyring, served by keyhygiene's credential_process). None: the file, or
    # the keyring for a strict computer (whose AWS CLI needs MFA sessions).
    store: str | None = None
    # The rotation schedule in days, kept in the user's keyhygiene:rotate-every
    # tag: the audit and the tree hold the computer to it (None: the default).
    rotate_every_days: int | None = None


MFA_CHOICES = ("auto", "on", "strict", "off")
STORES = ("file", "keyring")


@dataclass(frozen=True)
class Enrollment:
    """A request checked against the snapshot, every default filled in."""

    person: str
    device: str
    user_name: str
    user_arn: str
    groups: tuple[str, ...]  # chosen groups, IAM spelling, without keyhygiene-devices
    profile_name: str
    region: str
    hostname: str
    enrolled_on: str
    credentials_file: str
    config_file: str
    endpoint_url: str | None
    default_session_keys: tuple[str, ...] = ()
    mfa: bool = False
    # Why MFA is on when it was not asked for: the groups that allow IAM writes.
    mfa_because: tuple[str, ...] = ()
    rotate_every_days: int | None = None
    strict: bool = False  # nothing at all without an MFA session
    store: str = "file"

    @property
    def tags(self) -> dict[str, str]:
        tags = {
            TAG_PERSON: self.person,
            TAG_DEVICE: self.device,
            TAG_HOSTNAME: self.hostname,
            TAG_ENROLLED: self.enrolled_on,
        }
        if self.rotate_every_days:
            tags[TAG_ROTATE_EVERY] = f"{self.rotate_every_days}d"
        return tags


def device_slug(hostname: str, *, max_length: int = MAX_USER_NAME) -> str:
    """`Alice's MacBook-Pro.local` -> `alice-s-macbook-pro`: the host's first
    label, lower case, runs of other characters turned into one dash."""
    first = hostname.strip().split(".", 1)[0].lower()
    slug = re.sub(r"[^a-z0-9]+", "-", first).strip("-")
    slug = slug[:max_length].rstrip("-")
    return slug or DEFAULT_DEVICE[:max_length]


def user_name_for(person: str, device: str) -> str:
    return f"{person}-{device}"


def proposed_device(person: str, hostname: str) -> str:
    """The default device name: the host name's slug, cut so that the user name fits."""
    room = max(1, MAX_USER_NAME - len(person) - 1)
    return device_slug(hostname, max_length=room)


def resolve(snapshot: Snapshot, request: EnrollmentRequest) -> Enrollment:
    """Check the request against the account; raise `BadInput` saying what is wrong."""
    _check_account_readable(snapshot, request.groups)
    person = request.person.strip()
    _check_person(person)
    device = (request.device or "").strip() or proposed_device(person, request.hostname)
    _check_device(device)
    user_name = user_name_for(person, device)
    if len(user_name) > MAX_USER_NAME:
        raise BadInput(
            f"The user name {user_name!r} is {len(user_name)} characters; IAM allows "
            f"{MAX_USER_NAME}.",
            hint="Use a shorter --device.",
        )
    _check_user_is_new(snapshot, user_name)
    groups = _checked_groups(snapshot, request.groups)
    profile = (request.profile_name or "").strip() or user_name
    _check_profile(profile, request.profiles_in_use)
    region = (request.region or "").strip() or DEFAULT_REGION
    if not _REGION.match(region):
        raise BadInput(f"{region!r} is not an AWS region name (like eu-west-1).")
    enrolled = request.enrolled_on or datetime.now(timezone.utc).date()
    if request.mfa not in MFA_CHOICES:
        raise BadInput(f"MFA is one of {', '.join(MFA_CHOICES)}, not {request.mfa!r}.")
    wanting = tuple(groups_wanting_mfa(snapshot, groups))
    strict = request.mfa == "strict"
    mfa = strict or request.mfa == "on" or (request.mfa == "auto" and bool(wanting))
    store = _checked_store(request.store, strict=strict)
    return Enrollment(
        person=person,
        device=device,
        user_name=user_name,
        user_arn=user_arn(snapshot, user_name),
        groups=groups,
        profile_name=profile,
        region=region,
        hostname=_tag_value(request.hostname.strip() or "unknown"),
        enrolled_on=enrolled.isoformat(),
        credentials_file=str(request.credentials_file or credentials_file.credentials_path()),
        config_file=str(request.config_file or credentials_file.config_path()),
        endpoint_url=request.endpoint_url or None,
        default_session_keys=request.default_session_keys,
        mfa=mfa,
        mfa_because=wanting if request.mfa == "auto" else (),
        rotate_every_days=request.rotate_every_days,
        strict=strict,
        store=store,
    )


def _checked_store(store: str | None, *, strict: bool) -> str:
    if store is None:
        return "keyring" if strict else "file"
    if store not in STORES:
        raise BadInput(f"--store is one of {', '.join(STORES)}, not {store!r}.")
    if strict and store == "file":
        raise BadInput(
            "A strict computer's key does nothing without an MFA session, and the AWS CLI "
            "cannot make one from a key in the credentials file.",
            hint="Keep the key in the keyring (--store keyring, the default for --mfa-strict), "
            "whose credential_process serves MFA sessions; or use --mfa.",
        )
    return store


def _check_account_readable(snapshot: Snapshot, groups: Collection[str]) -> None:
    """Refuse to plan from a snapshot that missed what the plan depends on.

    Without IAM, "user exists?" and "unknown group" cannot be answered; without
    the bucket or key list, resources tagged for a group would be silently left
    out of the whitelist updates. The problem's message names the permission.
    """
    if any(name.strip() for name in groups):
        # Every bucket and key list, and their tags: one unread could be a
        # whitelist the new computer must join.
        check_whole_account(snapshot)
    for problem in snapshot.problems:
        if problem.what == "IAM users, groups and roles":
            raise BadInput(
                f"Could not read the {problem.what}: {problem.message}",
                hint="Enrollment needs to see the whole account; fix that and retry.",
            )


def _check_person(person: str) -> None:
    if not person:
        raise BadInput("Say whose computer this is: --person NAME (for example alice).")
    if not _PERSON.match(person):
        raise BadInput(
            f"{person!r} cannot be a person's name here: use letters, digits and _+=,.@ "
            "(no dash: the dash separates the person from the device in the user name).",
        )


def _check_device(device: str) -> None:
    # The device ends the user name, so it follows IAM's rule for names.
    check_iam_name("device", device)


def _check_user_is_new(snapshot: Snapshot, user_name: str) -> None:
    existing = snapshot.user(user_name)
    if existing is None:
        return
    same = "" if existing.name == user_name else f" (as {existing.name}: IAM ignores case)"
    enrolled = existing.tags.get(TAG_ENROLLED)
    since = f", enrolled {enrolled}" if enrolled else ""
    raise BadInput(
        f"The user {user_name} exists already{same}{since}: a computer is enrolled once, "
        "and keyhygiene will not take over another computer's user.",
        hint="Pick another --device for this computer; to give an enrolled computer a new "
        "key, rotate it from that computer.",
    )


def _checked_groups(snapshot: Snapshot, wanted: Collection[str]) -> tuple[str, ...]:
    names: dict[str, None] = {}
    unknown = []
    for raw in wanted:
        name = raw.strip()
        if not name:
            continue
        group = snapshot.group(name)
        if group is None:
            unknown.append(name)
        elif group.name != DEVICES_GROUP:
            names[group.name] = None
    if unknown:
        known = ", ".join(g.name for g in snapshot.groups if g.name != DEVICES_GROUP) or "none"
        raise BadInput(
            f"Unknown group{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}. "
            f"The account's groups: {known}.",
        )
    if len(names) + 1 > MAX_GROUPS_PER_USER:
        raise BadInput(
            f"A user can be in at most {MAX_GROUPS_PER_USER} groups; this asks for "
            f"{len(names)} plus {DEVICES_GROUP}."
        )
    return tuple(names)


def _check_profile(profile: str, in_use: Collection[str]) -> None:
    if not _PROFILE.match(profile):
        raise BadInput(
            f"{profile!r} cannot be a profile name here: use letters, digits and _+=,.@-."
        )
    if profile in in_use:
        raise BadInput(
            f"The profile {profile!r} in this computer's credentials file holds a key already; "
            "keyhygiene will not overwrite it.",
            hint="Choose another --profile-name, or remove that profile first.",
        )


def _tag_value(text: str) -> str:
    return _TAG_VALUE_UNSAFE.sub("-", text)[:MAX_TAG_VALUE]


# --------------------------------------------------------------------------- the plan


def rotate_own_key_document(partition: str = "aws") -> dict[str, Any]:
    """The only right a computer's user gets by default: manage its own keys."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "RotateOwnKey",
                "Effect": "Allow",
                "Action": list(ROTATE_OWN_KEY_ACTIONS),
                "Resource": f"arn:{partition}:iam::*:user/${{aws:username}}",
            }
        ],
    }


def plan_enrollment(snapshot: Snapshot, request: EnrollmentRequest) -> Plan:
    """The plan that registers this computer; raises `BadInput` with nothing planned."""
    enrollment = resolve(snapshot, request)
    warnings: list[str] = []
    # The MFA group comes before the groups that give rights: the new user
    # never holds an admin's rights without the gate.
    gate = (MFA_GROUP,) if enrollment.mfa else ()
    if enrollment.strict:
        gate = (*gate, STRICT_GROUP)
    steps = [
        *_devices_group_steps(snapshot, warnings),
        *(mfa_group_steps(snapshot, warnings) if enrollment.mfa else ()),
        *(strict_group_steps(snapshot, warnings) if enrollment.strict else ()),
        _create_user_step(enrollment),
        *((mfa_device_step(enrollment.user_name, snapshot.account_id),) if enrollment.mfa else ()),
        *(_join_step(enrollment, group) for group in (DEVICES_GROUP, *gate, *enrollment.groups)),
        *_key_steps(enrollment),
        *(
            (mfa_serial_step(enrollment.config_file, enrollment.profile_name),)
            if enrollment.mfa
            else ()
        ),
        *whitelist_steps(
            snapshot,
            members_after_change(
                snapshot, enrollment.user_name, joins=(DEVICES_GROUP, *gate, *enrollment.groups)
            ),
            new_principals={enrollment.user_arn},
        ),
    ]
    if enrollment.strict:
        warnings.append(
            "Strict: without an MFA session this computer's key can do nothing at all. The "
            "AWS CLI gets sessions from keyhygiene's credential_process, which asks for a "
            "code on the terminal when the last session has ended (every 12 hours)."
        )
    elif enrollment.mfa_because:
        warnings.append(
            f"MFA-gated because {', '.join(enrollment.mfa_because)} may allow IAM writes: "
            "without a code, this computer's key cannot make keys, rights or policies "
            "(pass --no-mfa to enroll it without)."
        )
    elif not enrollment.mfa and enrollment.groups:
        warnings.append(
            "Not MFA-gated: whoever copies this computer's credentials file can create a "
            "second key for it until someone revokes it (pass --mfa to gate it)."
        )
    if not enrollment.groups:
        warnings.append(
            f"{enrollment.user_name} joins no group besides {DEVICES_GROUP}: it will be able "
            "to rotate its own key and nothing else."
        )
    return Plan(
        kind=PLAN_KIND,
        title=f"Register this computer as {enrollment.user_name}",
        steps=tuple(steps),
        warnings=tuple(warnings),
    )


def _devices_group_steps(snapshot: Snapshot, warnings: list[str]) -> list[Step]:
    spec = GroupWithPolicy(
        group=DEVICES_GROUP,
        policy=ROTATE_OWN_KEY_POLICY,
        document=rotate_own_key_document(snapshot.partition),
        step_prefix="devices",
        policy_prefix="rotate",
        group_why="(every enrolled computer is in it)",
        policy_why=": a computer may manage its own access keys, nothing else",
        policy_description="keyhygiene: each computer rotates its own key",
        same=lambda existing: _allowed_actions(existing) == set(ROTATE_OWN_KEY_ACTIONS),
        differs=f"The policy {ROTATE_OWN_KEY_POLICY} exists with other rights than "
        "keyhygiene's; it is left as it is.",
    )
    return group_with_policy_steps(snapshot, spec, warnings)


def _allowed_actions(document: Mapping[str, Any]) -> set[str]:
    found: set[str] = set()
    raw = document.get("Statement", [])
    for statement in raw if isinstance(raw, list) else [raw]:
        if isinstance(statement, Mapping) and statement.get("Effect") == "Allow":
            actions = statement.get("Action", [])
            found.update([actions] if isinstance(actions, str) else actions)
    return found


def _create_user_step(enrollment: Enrollment) -> Step:
    tags = [{"Key": key, "Value": value} for key, value in enrollment.tags.items()]
    return Step(
        id="create-user",
        description=f"Create the user {enrollment.user_name}, tagged person "
        f"{enrollment.person}, device {enrollment.device}, host {enrollment.hostname}",
        call=Call("iam", "create_user", {"UserName": enrollment.user_name, "Tags": tags}),
        # Not a bare DeleteUser: AWS refuses it (DeleteConflict) while the user
        # still has a key or a membership, e.g. after a crash in CreateAccessKey.
        undo=Call(LOCAL, "enroll.delete_new_user", {"UserName": enrollment.user_name}),
        # The user is this enrollment's when it bears this enrollment's date.
        settle=Call(
            LOCAL,
            "enroll.find_new_user",
            {"UserName": enrollment.user_name, "Enrolled": enrollment.enrolled_on},
        ),
        keep=("User.Arn", "User.UserId"),
    )


def _join_step(enrollment: Enrollment, group: str) -> Step:
    params = {"GroupName": group, "UserName": enrollment.user_name}
    return Step(
        id=f"join.{group}",
        description=f"Add {enrollment.user_name} to the group {group}",
        call=Call("iam", "add_user_to_group", params),
        undo=Call("iam", "remove_user_from_group", params),
    )


def _key_steps(enrollment: Enrollment) -> list[Step]:
    key_id = Ref("create-key", "AccessKey.AccessKeyId")
    user = enrollment.user_name
    profile = enrollment.profile_name
    return [
        Step(
            id="create-key",
            description=f"Create the access key of {user} (its secret stays in memory "
            "until the next step writes it)",
            # A local action around iam:CreateAccessKey: when botocore had to
            # send it twice, the first attempt's key (its secret never seen) goes.
            call=Call(LOCAL, "enroll.create_key", {"UserName": user}),
            # Every key of the new user, not the journaled id: a run that died
            # inside CreateAccessKey may have made a key it never recorded.
            undo=Call(LOCAL, "enroll.delete_new_keys", {"UserName": user}),
            # Run again after an interruption, it would make a second key: the
            # first one's secret died with that run, so that key goes first.
            settle=Call(LOCAL, "enroll.drop_lost_keys", {"UserName": user}),
            keep=("AccessKey.AccessKeyId",),
        ),
        _write_key_step(enrollment, key_id),
        Step(
            id="set-region",
            description=f"Set region {enrollment.region} for the profile {profile} in "
            f"{shown_path(enrollment.config_file)}",
            call=Call(
                LOCAL,
                "enroll.set_region",
                {"path": enrollment.config_file, "profile": profile, "region": enrollment.region},
            ),
            undo=Call(
                LOCAL,
                "enroll.restore_region",
                {
                    "path": enrollment.config_file,
                    "profile": profile,
                    "previous": Ref("set-region", "previous_region"),
                },
            ),
            keep=("previous_region",),
        ),
        Step(
            id="verify-key",
            description=f"Check that AWS answers to the profile {profile} as {user}",
            call=Call(
                LOCAL,
                "enroll.verify_key",
                {
                    "profile": profile,
                    "user_name": user,
                    "store": enrollment.store,
                    "credentials_file": enrollment.credentials_file,
                    "config_file": enrollment.config_file,
                    "region": enrollment.region,
                    "endpoint_url": enrollment.endpoint_url,
                    "attempts": 8,
                    "successes": 2,
                    "first_delay": 1.0,
                    "max_delay": 8.0,
                },
            ),
            undo=Call(LOCAL, "enroll.nothing_to_undo", {"what": "the key check changed nothing"}),
            keep=("Arn",),
        ),
    ]


def registered_sentence(plan: Plan) -> str | None:
    """What a person reads when the enrollment `plan` is done: where the key
    went and how to try it; None for a plan that writes no key."""
    ids = {step.id for step in plan.steps}
    if "store-key" in ids:
        params = plan.step("store-key").call.params
        profile = params["profile"]
        sessions = vault.serves_mfa_sessions(str(params["credential_process"]))
        where = (
            f"in the OS keyring; the AWS CLI gets MFA sessions of it through the profile "
            f"{profile} of {shown_path(params['config_file'])} (it asks for a code when one ends)"
            if sessions
            else f"in the OS keyring, handed to the AWS CLI by the profile {profile} of "
            f"{shown_path(params['config_file'])}"
        )
    elif "write-credentials" in ids:
        params = plan.step("write-credentials").call.params
        profile = params["profile"]
        where = f"in the profile {profile} of {shown_path(params['path'])}"
    else:
        return None
    return (
        f"This computer is registered. Its key is {where} (the secret was never shown). "
        f"Try it: aws sts get-caller-identity --profile {profile}"
    )


def _write_key_step(enrollment: Enrollment, key_id: Ref) -> Step:
    profile = enrollment.profile_name
    if enrollment.store == "keyring":
        command = credential_process_command(profile, mfa_session=enrollment.strict)
        serves = " (an MFA session of it, for a strict computer)" if enrollment.strict else ""
        target = {"profile": profile, "config_file": enrollment.config_file}
        return Step(
            id="store-key",
            description=f"Keep the key in the OS keyring, and set the profile {profile} of "
            f"{shown_path(enrollment.config_file)} to `credential_process = {command}`, "
            f"which hands it{serves} to the AWS CLI",
            call=Call(
                LOCAL,
                "enroll.store_key",
                {
                    **target,
                    "credential_process": command,
                    "access_key_id": key_id,
                    "secret_access_key": Ref("create-key", "AccessKey.SecretAccessKey"),
                },
            ),
            undo=Call(LOCAL, "enroll.unstore_key", {**target, "access_key_id": key_id}),
        )
    return Step(
        id="write-credentials",
        description=f"Write the key into the profile {profile} of "
        f"{shown_path(enrollment.credentials_file)}"
        + credentials_file.overrides_sentence(profile, enrollment.default_session_keys),
        call=Call(
            LOCAL,
            "enroll.write_credentials",
            {
                "path": enrollment.credentials_file,
                "profile": profile,
                "access_key_id": key_id,
                "secret_access_key": Ref("create-key", "AccessKey.SecretAccessKey"),
            },
        ),
        undo=Call(
            LOCAL,
            "enroll.remove_credentials",
            {"path": enrollment.credentials_file, "profile": profile, "access_key_id": key_id},
        ),
    )


# --------------------------------------------------------------------------- local actions


@local_action("enroll.write_credentials")
def _write_credentials(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    path = params["path"]
    profile = params["profile"]
    present = credentials_file.read_profile(path, profile).get("aws_access_key_id")
    if present and present != params["access_key_id"]:
        # The profile got a key since the plan was made: never overwrite it.
        raise BadInput(
            f"The profile {profile!r} of {shown_path(path)} holds another key ({key_tail(present)}); "
            "keyhygiene will not overwrite it.",
            hint="Roll this enrollment back and choose another profile name.",
        )
    # The secret goes straight from the sealed parameters into the file.
    credentials_file.set_access_key(
        path, profile, params["access_key_id"], params["secret_access_key"]
    )
    return {"profile": profile, "access_key_id": params["access_key_id"]}


@local_action("enroll.remove_credentials")
def _remove_credentials(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    path = params["path"]
    profile = params["profile"]
    present = credentials_file.read_profile(path, profile).get("aws_access_key_id")
    if present != params["access_key_id"]:
        return {"removed": False}  # not ours (any more): leave it
    credentials_file.write_profile_values(
        path,
        profile,
        {},
        remove=("aws_access_key_id", "aws_secret_access_key", *credentials_file.SESSION_TOKEN_KEYS),
    )
    return {"removed": True}


@local_action("enroll.store_key")
def _store_key(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    profile = params["profile"]
    present = vault.load_key(profile)
    if present is not None and present.access_key_id != params["access_key_id"]:
        raise BadInput(
            f"The keyring holds another key for profile {profile!r} "
            f"({key_tail(present.access_key_id)}); keyhygiene will not overwrite it.",
            hint="Roll this enrollment back and choose another profile name.",
        )
    # The secret goes straight from the sealed parameters into the keyring.
    vault.store_key(profile, params["access_key_id"], vault.Secret(params["secret_access_key"]))
    credentials_file.set_config_values(
        params["config_file"], profile, {"credential_process": params["credential_process"]}
    )
    return {"profile": profile, "access_key_id": params["access_key_id"]}


@local_action("enroll.unstore_key")
def _unstore_key(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    profile = params["profile"]
    present = vault.load_key(profile)
    if present is None or present.access_key_id != params["access_key_id"]:
        return {"removed": False}  # not ours (any more): leave it
    config = credentials_file.read_profile(params["config_file"], profile, config_style=True)
    if vault.is_keyhygiene_process(config.get("credential_process", "")):
        credentials_file.set_config_values(
            params["config_file"], profile, {}, remove=("credential_process",)
        )
    vault.delete_key(profile)
    vault.delete_session(profile)
    return {"removed": True}


@local_action("enroll.set_region")
def _set_region(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    path = params["path"]
    profile = params["profile"]
    previous = credentials_file.read_profile(path, profile, config_style=True).get("region")
    credentials_file.set_config_values(path, profile, {"region": params["region"]})
    return {"previous_region": previous}


@local_action("enroll.restore_region")
def _restore_region(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    previous = params.get("previous")
    if previous:
        credentials_file.set_config_values(params["path"], params["profile"], {"region": previous})
    else:
        credentials_file.set_config_values(
            params["path"], params["profile"], {}, remove=("region",)
        )
    return {"region": previous}


@local_action("enroll.nothing_to_undo")
def _nothing_to_undo(ctx: ApplyContext, params: Mapping[str, Any]) -> None:
    return None


@local_action("enroll.verify_key")
def _verify_key(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """GetCallerIdentity through the profile just written, until it answers
    `successes` times in a row; bounded retries with backoff.

    Going through the profile (not the key in memory) proves the file works
    too, and lets a resumed run check a key written by an earlier process. A
    new key can be refused for some seconds (eventual consistency), and one
    answer does not prove that every endpoint knows it: a refusal after a
    success starts the count again. An answer naming another identity fails
    at once. The loop is the rotation's too (`keyhygiene.core.verification`).
    """
    ctx.last_service = "sts"
    sts = _profile_session(params).client(
        "sts",
        region_name=params["region"],
        endpoint_url=params.get("endpoint_url") or None,
        config=single_try_config(),
    )
    user = params["user_name"]
    attempts = max(1, int(params.get("attempts", 1)))
    needed = max(1, int(params.get("successes", 2)))
    first_delay = float(params.get("first_delay", 1.0))

    def probe() -> Answer:
        try:
            return Answer(arn=str(sts.get_caller_identity()["Arn"]))
        except ClientError as exc:
            code = error_code(exc)
            if code not in _NOT_YET_CODES:
                raise
            return Answer(problem=code)

    pacing = Pacing(
        spacing=first_delay,  # between successes: spacing, not backing off
        first_backoff=first_delay,
        max_backoff=float(params.get("max_delay", 8.0)),
        max_tries=attempts,
    )
    tally = successes_in_a_row(
        probe,
        lambda arn: arn.endswith(f":user/{user}"),
        successes=needed,
        pacing=pacing,
        clock=ctx.clock,
        sleep=ctx.sleep,
    )
    if tally.stranger:
        raise KeyHygieneError(
            f"The profile {params['profile']} authenticates as {tally.stranger}, not as {user}."
        )
    if tally.proven:
        return {"Arn": tally.arn, "attempts": tally.tries}
    if tally.in_a_row:
        last = tally.last_problem
        before = f" ({last} before that)" if last else ""
        raise KeyHygieneError(
            f"AWS answered to the new key of {user} only {tally.in_a_row} time(s) in a row in "
            f"{attempts} tries, not the {needed} needed{before}.",
            hint="On AWS a new key can take a few seconds to work everywhere: resume to check "
            "again, or roll back.",
        )
    raise KeyHygieneError(
        f"AWS still refused the new key of {user} after {attempts} tries ({tally.last_problem}).",
        hint="On AWS a new key can take a few seconds to work: resume to check again, "
        "or roll back.",
    )


@local_action("enroll.find_group")
def _find_group(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Settle of create-group: the group, if an interrupted CreateGroup made it."""
    try:
        group = ctx.client("iam").get_group(GroupName=params["GroupName"], MaxItems=1)["Group"]
    except ClientError as exc:
        if error_code(exc) == "NoSuchEntity":
            return {}
        raise
    return {"Group": {"GroupName": group["GroupName"], "Arn": group["Arn"]}}


@local_action("enroll.find_policy")
def _find_policy(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Settle of create-policy: the policy, if an interrupted CreatePolicy made it."""
    try:
        policy = ctx.client("iam").get_policy(PolicyArn=params["PolicyArn"])["Policy"]
    except ClientError as exc:
        if error_code(exc) == "NoSuchEntity":
            return {}
        raise
    return {"Policy": {"Arn": policy["Arn"], "PolicyName": policy.get("PolicyName", "")}}


@local_action("enroll.find_new_user")
def _find_new_user(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Settle of create-user: the user, if it is the one this enrollment made.

    A user of that name without this enrollment's date is someone else's: then
    nothing is adopted, and CreateUser fails as it should (EntityAlreadyExists).
    """
    try:
        user = ctx.client("iam").get_user(UserName=params["UserName"])["User"]
    except ClientError as exc:
        if error_code(exc) == "NoSuchEntity":
            return {}
        raise
    tags = {tag["Key"]: tag["Value"] for tag in user.get("Tags", [])}
    if tags.get(TAG_ENROLLED) != params["Enrolled"]:
        return {}
    return {"User": {"UserName": user["UserName"], "Arn": user["Arn"], "UserId": user["UserId"]}}


@local_action("enroll.create_key")
def _create_key(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """iam:CreateAccessKey for the new user. The user is this plan's, so after
    an answer that came only on a retry every other key of it is a lost
    attempt's, and is deleted: the computer keeps one key."""
    iam = ctx.client("iam")
    user = params["UserName"]
    # Sealed at once: the answer holds the secret, no plain local may show it.
    answer = Sealed(iam.create_access_key(UserName=user))
    made = answer["AccessKey"]["AccessKeyId"]
    if (answer.get("ResponseMetadata") or {}).get("RetryAttempts"):
        for key in all_items(iam, "list_access_keys", "AccessKeyMetadata", UserName=user):
            if key["AccessKeyId"] != made:
                call_unless_missing(
                    iam.delete_access_key, UserName=user, AccessKeyId=key["AccessKeyId"]
                )
    return Sealed({"AccessKey": answer["AccessKey"]})


@local_action("enroll.drop_lost_keys")
def _drop_lost_keys(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Settle of create-key: delete the keys an interrupted run made on the new
    user (their secrets were never written anywhere); the key is made afresh."""
    _delete_access_keys(ctx.client("iam"), params["UserName"])
    return {}


@local_action("enroll.delete_new_keys")
def _delete_new_keys(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Undo of create-key: delete every access key of the new user.

    The user was created by this plan, so all its keys are this plan's,
    including one made by a CreateAccessKey whose answer was lost in a crash.
    """
    try:
        deleted = _delete_access_keys(ctx.client("iam"), params["UserName"])
    except ClientError as exc:
        if error_code(exc) != "NoSuchEntity":
            raise
        deleted = 0  # the user is gone, and its keys with it
    return {"AccessKeysDeleted": deleted}


@local_action("enroll.delete_new_user")
def _delete_new_user(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Undo of create-user: remove what stops DeleteUser, then delete the user.

    IAM refuses DeleteUser (DeleteConflict) while the user has access keys,
    group memberships, inline or attached policies or a console password.
    The user is new, so whatever it has came from this plan (or from a run
    that died before journaling it), and goes with it. A user already gone
    is fine: an interrupted create-user may never have taken effect.
    """
    iam = ctx.client("iam")
    user = params["UserName"]
    try:
        keys = _delete_access_keys(iam, user)
    except ClientError as exc:
        if error_code(exc) == "NoSuchEntity":
            return {"Deleted": False}
        raise
    for group in all_items(iam, "list_groups_for_user", "Groups", UserName=user):
        call_unless_missing(iam.remove_user_from_group, GroupName=group["GroupName"], UserName=user)
    for name in all_items(iam, "list_user_policies", "PolicyNames", UserName=user):
        call_unless_missing(iam.delete_user_policy, UserName=user, PolicyName=name)
    for attached in all_items(
        iam, "list_attached_user_policies", "AttachedPolicies", UserName=user
    ):
        call_unless_missing(iam.detach_user_policy, UserName=user, PolicyArn=attached["PolicyArn"])
    call_unless_missing(iam.delete_login_profile, UserName=user)
    remove_mfa_devices(iam, user)
    iam.delete_user(UserName=user)
    return {"Deleted": True, "AccessKeysDeleted": keys}


def _delete_access_keys(iam: Any, user: str) -> int:
    metadata = all_items(iam, "list_access_keys", "AccessKeyMetadata", UserName=user)
    keys = [k["AccessKeyId"] for k in metadata]
    for key_id in keys:
        call_unless_missing(iam.delete_access_key, UserName=user, AccessKeyId=key_id)
    return len(keys)


def _profile_session(params: Mapping[str, Any]) -> Any:
    """A boto3 session on the profile just written, as the `aws` CLI reads it."""
    core = profile_files_session(
        params["profile"],
        credentials_file=params["credentials_file"],
        config_file=params["config_file"],
    )
    if params.get("store") == "keyring":
        # The key itself, from the keyring: the profile's credential_process
        # would ask a strict computer for a third code (GetCallerIdentity
        # needs no permission, so the strict policy does not stand in the way).
        stored = vault.load_key(params["profile"])
        if stored is None:
            raise KeyHygieneError(f"The keyring lost the key of profile {params['profile']}.")
        core = key_session(params["profile"], stored.access_key_id, stored.secret)
        core.set_config_variable("credentials_file", params["credentials_file"])
        core.set_config_variable("config_file", params["config_file"])
    return boto3_session(core)


# --------------------------------------------------------------------------- around the plan


def profiles_in_use(path: str | None = None) -> frozenset[str]:
    """Profiles of the credentials file that hold an access key.

    Also refuses (`CredentialsFileRefused`, a `BadInput`) a file botocore could
    not read, before anything is created in AWS.
    """
    file = path or str(credentials_file.credentials_path())
    return frozenset(
        name
        for name in credentials_file.list_profiles(file)
        if credentials_file.read_profile(file, name).get("aws_access_key_id")
    )


def check_config_file(path: str | None = None) -> None:
    """Refuse a config file botocore could not read, before anything changes."""
    credentials_file.validate(path or credentials_file.config_path())


def with_local_files(request: EnrollmentRequest) -> EnrollmentRequest:
    """`request` with what this computer's AWS files say, read before AWS is
    touched: both files must be readable by botocore and the credentials file
    writable by keyhygiene (not a hard link, a folder it may write), else
    `BadInput` says why and nothing is created."""
    check_config_file(request.config_file)
    path = request.credentials_file or str(credentials_file.credentials_path())
    credentials_file.check_writable(path)
    if request.store == "keyring" or (request.store is None and request.mfa == "strict"):
        vault.keyring_backend()  # KeyringUnavailable says why, nothing created
    return replace(
        request,
        profiles_in_use=profiles_in_use(path),
        default_session_keys=tuple(credentials_file.default_session_keys(path)),
    )


def open_enrollments(directory: Path | None = None) -> list[Journal]:
    """Enrollment runs that stopped half-way: to resume or roll back first."""
    return [journal for journal in open_journals(directory) if journal.plan.kind == PLAN_KIND]


def admin_connection(
    options: ConnectionOptions,
    *,
    mfa_code: str | None = None,
    ask_mfa_code: Callable[[str], str] | None = None,
) -> Connection:
    """The admin identity's connection (`options.admin_profile`, else `options.profile`).

    When its config has `mfa_serial`, Connection gets a GetSessionToken session
    on first use; the code comes from `mfa_code`, else `ask_mfa_code(serial)`,
    else the process-wide provider (`set_mfa_code_provider`).
    """
    provider: MfaCodeProvider | None = None
    if mfa_code or ask_mfa_code:

        def provider(_profile: str, serial: str) -> str:
            if mfa_code:
                return mfa_code
            return ask_mfa_code(serial) if ask_mfa_code else ""

    return Connection(options.for_admin(), mfa_code_provider=provider)
