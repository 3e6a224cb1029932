"""The enrollment's apply-time actions: write the key, store it, prove it works,
undo what a failure leaves."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from keyhygiene.aws.connection import (
    all_items,
    call_unless_missing,
    error_code,
)
from keyhygiene.aws.errors import ClientError
from keyhygiene.aws.sessions import (
    boto3_session,
    key_session,
    profile_files_session,
    single_try_config,
)
from keyhygiene.core.errors import BadInput, KeyHygieneError
from keyhygiene.core.formatting import key_tail, shown_path
from keyhygiene.core.model import (
    TAG_ENROLLED,
)
from keyhygiene.core.verification import Answer, Pacing, successes_in_a_row
from keyhygiene.local import credentials_file, vault
from keyhygiene.plans import ApplyContext, Sealed, local_action
from keyhygiene.steps.mfa_device import (
    remove_mfa_devices,
)
from keyhygiene.workflows.enrollment.model import _NOT_YET_CODES


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
