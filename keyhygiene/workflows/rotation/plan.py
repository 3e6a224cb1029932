"""Inspect the profile's key and plan its rotation: pure once the facts are in."""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from keyhygiene.aws.connection import (
    all_items,
    translate_errors,
)
from keyhygiene.aws.held_key_clients import HeldKeyClients
from keyhygiene.core.arns import name_of
from keyhygiene.core.errors import BadInput
from keyhygiene.core.options import ConnectionOptions
from keyhygiene.local import credentials_file, vault
from keyhygiene.local.key_location import KeyLocation, Store
from keyhygiene.local.vault import (
    credential_process_command,
)
from keyhygiene.plans import (
    Call,
    Plan,
    Ref,
    Step,
)
from keyhygiene.workflows.rotation.facts import KeyInfo, RotationFacts, RotationRequest
from keyhygiene.workflows.rotation.hints import _own_key_errors
from keyhygiene.workflows.rotation.model import (
    NEW_KEY_PATH,
    PLAN_KIND,
    STEP_CREATE,
    STEP_DEACTIVATE,
    STEP_DELETE_OLD,
    STEP_DELETE_OTHER,
    STEP_VERIFY,
    STEP_VERIFY_AGAIN,
    STEP_WRITE,
    _serves_mfa_sessions,
    key_tail,
)


class KeyNotRotatable(BadInput):
    """The key this computer signs with is not one keyhygiene can rotate."""


def check_key_in_use(options: ConnectionOptions) -> None:
    """Refuse (exit 2, before any call) when botocore signs with a key that a
    rotation of `options.profile_name` would not replace: keys in the
    environment win over a profile botocore was not told to use."""
    in_use = options.key_in_use()
    refusal = in_use.rotation_refusal()
    if refusal is not None:
        raise KeyNotRotatable(refusal, hint=in_use.rotation_hint())


def inspect_rotation(clients: HeldKeyClients) -> RotationFacts:
    """Who this computer is and which keys its user has (sts:GetCallerIdentity,
    iam:ListAccessKeys), with the key the profile holds. Refuses, before any
    call, files botocore could not parse."""
    location = clients.location
    credentials_file.validate(location.credentials_file)
    credentials_file.validate(location.config_file)
    held = clients.held()
    if held.access_key_id.startswith("ASIA"):
        raise BadInput(
            f"Profile {location.profile!r} holds temporary credentials ({key_tail(held.access_key_id)}); "
            "only a long-term access key can be rotated."
        )
    with (
        _own_key_errors(),
        translate_errors("asking AWS who this computer's key belongs to", service="sts"),
    ):
        answer = clients.client("sts").get_caller_identity()
    arn, account = str(answer["Arn"]), str(answer["Account"])
    if ":user/" not in arn:
        raise BadInput(
            f"Profile {location.profile!r} is {arn}, not an IAM user: keyhygiene rotates the "
            "access key of this computer's IAM user."
        )
    user = name_of(arn)
    keys = _list_keys(clients, user)
    if held.access_key_id not in {key.access_key_id for key in keys}:
        raise BadInput(
            f"The key of profile {location.profile!r} ({held.access_key_id}) is not one of "
            f"{user}'s access keys; nothing to rotate."
        )
    in_file = held.store == "file"
    if in_file:
        # Refused now (a hard link, a folder it cannot write, another owner it
        # may not keep), not after the new key exists.
        credentials_file.check_writable(location.credentials_file)
    return RotationFacts(
        location=location,
        store=held.store,
        account_id=account,
        user_name=user,
        user_arn=arn,
        current_key_id=held.access_key_id,
        keys=keys,
        file_mode=_mode(location.credentials_file) if in_file else None,
        inherited=tuple(
            credentials_file.inherited_overrides(location.credentials_file, location.profile)
        )
        if in_file
        else (),
    )


def _list_keys(clients: Any, user: str) -> tuple[KeyInfo, ...]:
    with (
        _own_key_errors(user),
        translate_errors(f"listing the access keys of {user}", service="iam"),
    ):
        items = all_items(
            clients.client("iam"), "list_access_keys", "AccessKeyMetadata", UserName=user
        )
    return tuple(
        KeyInfo(str(item["AccessKeyId"]), str(item.get("Status", "")), item.get("CreateDate"))
        for item in items
    )


def _mode(path: Path) -> int | None:
    try:
        return stat.S_IMODE(Path(os.path.realpath(path)).stat().st_mode)
    except OSError:
        return None


class TwoActiveKeys(BadInput):
    """The user has a second active key; rotating would keep two working keys."""


def plan_rotation(facts: RotationFacts, request: RotationRequest) -> Plan:
    """The rotation as a plan. Pure: no AWS call, no file written."""
    location = facts.location
    user = facts.user_name
    old = facts.current_key_id
    store: Store = request.store or facts.store
    if facts.current_key.status != "Active":
        raise BadInput(
            f"The key of profile {location.profile!r} ({old}) is inactive in AWS, so it cannot "
            "sign the rotation.",
            hint="Reactivate it (an administrator can), then rotate.",
        )
    warnings: list[str] = []
    steps: list[Step] = []
    for number, other in enumerate(facts.other_keys, 1):
        if other.status == "Active" and not request.delete_other:
            raise TwoActiveKeys(
                f"{user} has a second active access key, {other.access_key_id} "
                f"(created {_day(other.created)}), besides the one in profile "
                f"{location.profile!r} ({old}). One computer keeps one key: a second "
                "working key is a copy somewhere else, and rotating would leave it working.",
                hint=(
                    "If this computer's user should have only this key, pass --delete-other "
                    "to delete the other one as part of the plan; otherwise find where it is "
                    "used first."
                ),
            )
        step_id = STEP_DELETE_OTHER if number == 1 else f"{STEP_DELETE_OTHER}-{number}"
        steps.append(_delete_other_step(step_id, facts, other))
        if other.status == "Active":
            warnings.append(
                f"The other key {other.access_key_id} is active: whatever uses it stops working."
            )
    command = request.credential_process or credential_process_command(
        location.profile, mfa_session=_serves_mfa_sessions(location)
    )
    steps.append(
        Step(
            STEP_CREATE,
            f"Create a new access key for {user} (the old key keeps working meanwhile)",
            # A local action around iam:CreateAccessKey: when AWS's answer is
            # lost (timeout, 5xx), it looks for the key the call may have made.
            Call("local", "rotation.create_key", {"UserName": user}),
            undo=_delete_call(facts, Ref(STEP_CREATE, NEW_KEY_PATH)),
            keep=(NEW_KEY_PATH,),
        )
    )
    write: dict[str, Any] = {
        **location.params(),
        "user_name": user,
        "store": store,
        "old_store": facts.store,
        "access_key_id": Ref(STEP_CREATE, NEW_KEY_PATH),
        "old_access_key_id": old,
    }
    if store == "keyring":
        write["credential_process"] = command
    steps.append(
        Step(
            STEP_WRITE,
            _write_description(location, store, facts.store, old, facts.inherited),
            Call("local", "rotation.write_key", write),
            # The undo finds the rest (files, stores) in this step's own call.
            undo=Call(
                "local",
                "rotation.restore_key",
                {"profile": location.profile, "access_key_id": Ref(STEP_CREATE, NEW_KEY_PATH)},
            ),
            keep=("store",),
        )
    )
    steps.append(_verify_step(STEP_VERIFY, facts, request, again=False))
    steps.append(
        Step(
            STEP_DEACTIVATE,
            f"Deactivate the old key {old} (it can be switched back on if something is wrong)",
            # iam:UpdateAccessKey. Switching off a key that is gone counts as
            # done; switching it back on (the undo) is retried with backoff:
            # a rollback must not give up on the old key at the first refusal.
            Call(
                "local",
                "rotation.set_key_status",
                {"UserName": user, "AccessKeyId": old, "Status": "Inactive"},
            ),
            undo=Call(
                "local",
                "rotation.set_key_status",
                {"UserName": user, "AccessKeyId": old, "Status": "Active"},
            ),
        )
    )
    steps.append(_verify_step(STEP_VERIFY_AGAIN, facts, request, again=True))
    steps.append(
        Step(
            STEP_DELETE_OLD,
            f"Delete the old key {old}",
            _delete_call(facts, old),
            keep=("AccessKeyId",),
        )
    )
    warnings.extend(_store_warnings(facts, store, command))
    return Plan(
        PLAN_KIND,
        f"Rotate the access key of {user} (profile {location.profile})",
        tuple(steps),
        warnings=tuple(warnings),
    )


def _delete_other_step(step_id: str, facts: RotationFacts, other: KeyInfo) -> Step:
    state = "inactive" if other.status != "Active" else "ACTIVE"
    return Step(
        step_id,
        f"Delete {facts.user_name}'s other access key {other.access_key_id} ({state}, created "
        f"{_day(other.created)}): a computer keeps one key, and AWS allows only two",
        _delete_call(facts, other.access_key_id),
        keep=("AccessKeyId",),
    )


def _delete_call(facts: RotationFacts, key_id: str | Ref) -> Call:
    # A local action rather than a bare iam:DeleteAccessKey: it refuses to
    # delete the key the profile holds, and a key already gone counts as deleted.
    return Call(
        "local", "rotation.delete_key", {"UserName": facts.user_name, "AccessKeyId": key_id}
    )


def _verify_step(
    step_id: str, facts: RotationFacts, request: RotationRequest, *, again: bool
) -> Step:
    checks = request.verify_successes
    times = "time" if checks == 1 else "times in a row"
    when = "again, now that the old key is off" if again else "as written"
    return Step(
        step_id,
        f"Check the new key {when}: sts:GetCallerIdentity with it must answer {facts.user_arn} "
        f"{checks} {times}, retrying with backoff for up to {request.verify_timeout:g} s",
        Call(
            "local",
            "rotation.verify_key",
            {
                "profile": facts.location.profile,
                "access_key_id": Ref(STEP_CREATE, NEW_KEY_PATH),
                "user_arn": facts.user_arn,
                "successes": checks,
                "timeout": request.verify_timeout,
                "interval": request.verify_interval,
            },
        ),
        keep=("Arn", "AccessKeyId", "Tries"),
    )


def _write_description(
    location: KeyLocation,
    store: Store,
    old_store: Store,
    old: str,
    inherited: Sequence[str] = (),
) -> str:
    if store == "file":
        text = (
            f"Write the new key into {location.shown_credentials}, profile [{location.profile}], "
            f"in place of {old}; every other line stays as it is"
        )
        text += credentials_file.overrides_sentence(location.profile, inherited)
        if old_store == "keyring":
            text += (
                f", and take the key out of the keyring and credential_process out of "
                f"{location.shown_config}"
            )
    else:
        text = (
            f"Put the new key in the OS keyring (entry {vault.SERVICE_NAME}/{location.profile}), "
            f"in place of {old}"
        )
        if old_store == "file":
            text += (
                f"; set credential_process in {location.shown_config} and remove the plaintext "
                f"key from {location.shown_credentials}"
            )
    return text + ". The old content stays in memory until the new key works"


def _store_warnings(facts: RotationFacts, store: Store, command: str) -> list[str]:
    location = facts.location
    warnings = []
    if store == "keyring" and facts.store == "file":
        warnings.append(
            f"The secret moves from {location.shown_credentials} to the OS keyring; profile "
            f"{location.profile} will get `credential_process = {command}`."
        )
    if store == "file" and facts.store == "keyring":
        warnings.append(
            f"The secret moves from the OS keyring back to {location.shown_credentials}."
        )
    mode = facts.file_mode
    if store == "file" and mode is not None and mode & 0o077:
        warnings.append(
            f"{location.shown_credentials} has mode {mode:04o}: others can read it. It will be 0600."
        )
    return warnings


def _day(moment: datetime | None) -> str:
    return moment.date().isoformat() if isinstance(moment, datetime) else "on an unknown date"


def _plan_value(plan: Plan, name: str) -> Any:
    """A parameter of the plan's write step (profile, files, user, old key, stores)."""
    return plan.step(STEP_WRITE).call.params.get(name)
