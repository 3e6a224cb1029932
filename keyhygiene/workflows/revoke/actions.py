"""The revoke's apply-time actions: keys off, deny everything, and the removals, in
parallel where they can be."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from keyhygiene.aws.connection import (
    all_items,
    call_unless_missing,
    error_code,
)
from keyhygiene.aws.errors import ClientError
from keyhygiene.core.errors import KeyHygieneError
from keyhygiene.plans import (
    ApplyContext,
    local_action,
)
from keyhygiene.workflows.revoke.model import (
    DENY_ALL_POLICY_NAME,
    DENY_INLINE,
    DENY_MANAGED,
    MAX_PARALLEL,
    NO_ROOM,
    T,
)


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
