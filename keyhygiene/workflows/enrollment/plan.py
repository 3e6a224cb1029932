"""Plan the enrollment of this computer: the user, its groups, its one key, written
where the profile keeps it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from keyhygiene.core.formatting import shown_path
from keyhygiene.core.mfa_devices import MFA_GROUP, STRICT_GROUP
from keyhygiene.core.model import (
    DEVICES_GROUP,
    Snapshot,
)
from keyhygiene.local import credentials_file, vault
from keyhygiene.local.vault import credential_process_command
from keyhygiene.plans import LOCAL, Call, Plan, Ref, Step
from keyhygiene.steps.group_policy import GroupWithPolicy, group_with_policy_steps
from keyhygiene.steps.mfa_device import (
    mfa_device_step,
    mfa_group_steps,
    mfa_serial_step,
    strict_group_steps,
)
from keyhygiene.steps.whitelists import (
    members_after_change,
    whitelist_steps,
)
from keyhygiene.workflows.enrollment.model import (
    PLAN_KIND,
    ROTATE_OWN_KEY_ACTIONS,
    ROTATE_OWN_KEY_POLICY,
)
from keyhygiene.workflows.enrollment.request import Enrollment, EnrollmentRequest, resolve


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
