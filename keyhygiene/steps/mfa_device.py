"""The MFA part of enrolling a computer: its group and policy, its virtual MFA
device (shown once, confirmed with two codes), and `mfa_serial` in its profile.

Order matters, and the plan keeps it: the device is enabled before the
computer joins any group, and `keyhygiene-mfa-devices` (whose policy is the
gate) comes before the groups that give it rights, so the new user never has
an admin's rights without the gate. See `keyhygiene.core.mfa_devices` for the policy and
the AWS rules it rests on.

The device's seed is the one secret here: it goes from AWS's answer to the
person (`MfaDevicePrompt`, a terminal or a dialog) and nowhere else; the plan's
journal keeps the device's serial number only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from keyhygiene.aws.connection import all_items, call_unless_missing, error_code
from keyhygiene.aws.errors import ClientError
from keyhygiene.core.errors import BadInput, KeyHygieneError
from keyhygiene.core.formatting import shown_path
from keyhygiene.core.mfa_devices import (
    MFA_GROUP,
    REQUIRE_MFA_POLICY,
    STRICT_GROUP,
    STRICT_POLICY,
    require_mfa_document,
    require_mfa_strict_document,
)
from keyhygiene.core.model import Snapshot
from keyhygiene.local import credentials_file
from keyhygiene.local.vault import Secret
from keyhygiene.plans import LOCAL, ApplyContext, Call, Ref, Step, local_action
from keyhygiene.steps.group_policy import GroupWithPolicy, group_with_policy_steps

MFA_DEVICE_STEP = "mfa-device"
_CODE = re.compile(r"^\d{6}$")


@dataclass(frozen=True)
class NewMfaDevice:
    """What the person must see once: the seed (never shown elsewhere) and where it goes."""

    user_name: str
    serial: str
    account_id: str
    seed: Secret


# Shows the new device (QR code, seed) and returns two consecutive codes; an
# empty answer cancels. The command line's asks on the terminal, the TUI's in
# a dialog; None: nobody can answer (then the step fails, nothing is kept).
MfaDevicePrompt = Callable[[NewMfaDevice], tuple[str, str]]
_prompt: MfaDevicePrompt | None = None


def set_mfa_device_prompt(func: MfaDevicePrompt | None) -> None:
    global _prompt
    _prompt = func


def mfa_device_prompt() -> MfaDevicePrompt | None:
    return _prompt


class MfaSetupFailed(KeyHygieneError):
    """The new device was not confirmed (no codes, or AWS refused them)."""


def mfa_group_steps(snapshot: Snapshot, warnings: list[str]) -> list[Step]:
    """The group `keyhygiene-mfa-devices` with `keyhygiene-require-mfa`, made when missing."""
    return _gate_steps(
        snapshot,
        warnings,
        group=MFA_GROUP,
        policy=REQUIRE_MFA_POLICY,
        document=require_mfa_document(),
        prefix="mfa",
        group_why="(computers whose key is useless for lasting changes without MFA)",
        policy_why=": without an MFA session, deny new keys, passwords, MFA devices, rights, "
        "roles and resource policies",
        policy_description="keyhygiene: a copied key cannot make lasting changes",
    )


def strict_group_steps(snapshot: Snapshot, warnings: list[str]) -> list[Step]:
    """The group `keyhygiene-mfa-strict`, whose policy denies everything but
    getting an MFA session unless the request was made in one."""
    return _gate_steps(
        snapshot,
        warnings,
        group=STRICT_GROUP,
        policy=STRICT_POLICY,
        document=require_mfa_strict_document(),
        prefix="strict",
        group_why="(computers whose key does nothing at all without MFA)",
        policy_why=": without an MFA session, deny everything but getting one",
        policy_description="keyhygiene: a copied key does nothing without MFA",
    )


def _gate_steps(
    snapshot: Snapshot,
    warnings: list[str],
    *,
    group: str,
    policy: str,
    document: dict[str, Any],
    prefix: str,
    group_why: str,
    policy_why: str,
    policy_description: str,
) -> list[Step]:
    spec = GroupWithPolicy(
        group=group,
        policy=policy,
        document=document,
        step_prefix=prefix,
        policy_prefix=prefix,
        group_why=group_why,
        policy_why=policy_why,
        policy_description=policy_description,
        same=lambda existing: existing == document,
        differs=f"The policy {policy} differs from keyhygiene's; it is left as it "
        "is (`keyhygiene audit` says what it lets through without MFA).",
    )
    return group_with_policy_steps(snapshot, spec, warnings)


def mfa_device_step(user_name: str, account_id: str) -> Step:
    params = {"UserName": user_name, "AccountId": account_id}
    return Step(
        id=MFA_DEVICE_STEP,
        description=f"Create the virtual MFA device of {user_name}: its QR code and secret "
        "are shown once, here, for your authenticator app; two codes in a row confirm it",
        call=Call(LOCAL, "enroll.set_up_mfa", params),
        undo=Call(LOCAL, "enroll.remove_mfa", {"UserName": user_name}),
        # A device an interrupted run created but never confirmed is deleted
        # and made afresh (its seed died with that run); a confirmed one is
        # the person's and is kept.
        settle=Call(LOCAL, "enroll.find_mfa", {"UserName": user_name}),
        keep=("SerialNumber",),
    )


def mfa_serial_step(config_file: str, profile: str) -> Step:
    target = {"path": config_file, "profile": profile}
    return Step(
        id="set-mfa-serial",
        description=f"Set mfa_serial for the profile {profile} in {shown_path(config_file)} "
        "(the AWS CLI and keyhygiene then ask for a code where one is needed)",
        call=Call(
            LOCAL,
            "enroll.set_mfa_serial",
            {**target, "serial": Ref(MFA_DEVICE_STEP, "SerialNumber")},
        ),
        undo=Call(LOCAL, "enroll.remove_mfa_serial", target),
    )


# --------------------------------------------------------------------------- local actions


def _device_arn(iam: Any, user: str) -> str | None:
    """The serial of the virtual device named after `user` (enabled or not)."""
    for device in all_items(iam, "list_virtual_mfa_devices", "VirtualMFADevices"):
        serial = str(device["SerialNumber"])
        if serial.rsplit("/", 1)[-1] == user:
            return serial
    return None


@local_action("enroll.set_up_mfa")
def _set_up_mfa(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Create the device, show it once, enable it with the person's two codes."""
    prompt = _prompt
    user = params["UserName"]
    if prompt is None:
        raise MfaSetupFailed(
            f"No one can read the new MFA device's secret here: enrolling {user} with MFA "
            "needs a terminal (or the TUI).",
            hint="Run `keyhygiene enroll` in a terminal, or pass --no-mfa.",
        )
    iam = ctx.client("iam")
    answer = iam.create_virtual_mfa_device(VirtualMFADeviceName=user)["VirtualMFADevice"]
    serial = str(answer["SerialNumber"])
    # Straight into the wrapper: the seed never sits in a plain local.
    device = NewMfaDevice(user, serial, params["AccountId"], Secret(_seed_text(answer)))
    try:
        first, second = (code.strip() for code in prompt(device))
        if not (first or second):
            raise MfaSetupFailed("The MFA device was not confirmed: no codes were given.")
        if not (_CODE.match(first) and _CODE.match(second)) or first == second:
            raise MfaSetupFailed(
                "Two different 6-digit codes are needed: the one your app shows now and the "
                "next one (about 30 s later)."
            )
        try:
            iam.enable_mfa_device(
                UserName=user,
                SerialNumber=serial,
                AuthenticationCode1=first,
                AuthenticationCode2=second,
            )
        except ClientError as exc:
            if error_code(exc) in ("InvalidAuthenticationCode", "AccessDenied"):
                raise MfaSetupFailed(
                    "AWS did not accept the two codes (they must be consecutive, from the "
                    "device just added to your app).",
                    hint="Run the enrollment again; the unconfirmed device is deleted.",
                ) from None
            raise
    except BaseException:
        call_unless_missing(iam.delete_virtual_mfa_device, SerialNumber=serial)
        raise
    return {"SerialNumber": serial}


def _seed_text(answer: Mapping[str, Any]) -> str:
    seed = answer.get("Base32StringSeed")
    # boto3 gives the seed as bytes (a blob); the Base32 text is ASCII.
    return seed.decode("ascii") if isinstance(seed, bytes | bytearray) else str(seed)


@local_action("enroll.find_mfa")
def _find_mfa(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    iam = ctx.client("iam")
    user = params["UserName"]
    for device in all_items(iam, "list_mfa_devices", "MFADevices", UserName=user):
        return {"SerialNumber": device["SerialNumber"]}
    serial = _device_arn(iam, user)
    if serial is not None:
        call_unless_missing(iam.delete_virtual_mfa_device, SerialNumber=serial)
    return {}


@local_action("enroll.remove_mfa")
def _remove_mfa(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Undo: deactivate and delete every MFA device of the new user (all came from this plan)."""
    iam = ctx.client("iam")
    user = params["UserName"]
    removed = remove_mfa_devices(iam, user)
    return {"Removed": removed}


def remove_mfa_devices(iam: Any, user: str) -> int:
    """Deactivate and delete the user's MFA devices, and a virtual device named
    after it that was never enabled; a user already gone has none."""
    removed = 0
    try:
        devices = all_items(iam, "list_mfa_devices", "MFADevices", UserName=user)
    except ClientError as exc:
        if error_code(exc) != "NoSuchEntity":
            raise
        devices = []
    for device in devices:
        serial = device["SerialNumber"]
        call_unless_missing(iam.deactivate_mfa_device, UserName=user, SerialNumber=serial)
        call_unless_missing(iam.delete_virtual_mfa_device, SerialNumber=serial)
        removed += 1
    loose = _device_arn(iam, user)
    if loose is not None:
        call_unless_missing(iam.delete_virtual_mfa_device, SerialNumber=loose)
        removed += 1
    return removed


@local_action("enroll.set_mfa_serial")
def _set_mfa_serial(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    serial = params["serial"]
    if not isinstance(serial, str) or ":mfa/" not in serial:
        raise BadInput(f"{serial!r} is not an MFA device's serial number.")
    credentials_file.set_config_values(params["path"], params["profile"], {"mfa_serial": serial})
    return {"mfa_serial": serial}


@local_action("enroll.remove_mfa_serial")
def _remove_mfa_serial(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    credentials_file.set_config_values(
        params["path"], params["profile"], {}, remove=("mfa_serial",)
    )
    return {}
