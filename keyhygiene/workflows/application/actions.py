"""The application plans' apply-time actions: the new key, its alias, a policy
naming it, retries until IAM shows the principals."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from keyhygiene.aws.connection import all_items
from keyhygiene.aws.propagation import call_until_visible, retry_until_visible
from keyhygiene.core import arns
from keyhygiene.core.model import (
    TAG_GROUPS,
)
from keyhygiene.plans import (
    ApplyContext,
    Call,
    PlanError,
    local_action,
)
from keyhygiene.steps.whitelists import (
    put_policy_if_unchanged,
    replace_value,
)
from keyhygiene.workflows.application.context import _Context
from keyhygiene.workflows.application.model import (
    CREATE_KEY,
    FIND_ALIAS,
    FIND_UNNAMED_KEY,
    KEY_DELETION_DAYS,
)

PUT_POLICY_WITH_NEW_KEY = "application.put_bucket_policy_with_new_key"
RETRY_UNTIL_VISIBLE = "application.retry_until_principals_visible"

# Where a policy names the role this plan creates, the call waits until IAM
# has propagated it (keyhygiene/aws/propagation.py): S3 and KMS refuse an unknown
# principal for some seconds. Only these calls may be made patient.
_RETRYABLE_CALLS = frozenset(
    {("kms", "create_key"), ("kms", "put_key_policy"), ("s3", "put_bucket_policy")}
)


def _naming_role_call(
    ctx: _Context, service: str, operation: str, params: Mapping[str, Any]
) -> Call:
    """The call, made patient when its policy names the role this plan creates."""
    if not ctx.new_role:
        return Call(service, operation, params)
    return Call(
        "local",
        RETRY_UNTIL_VISIBLE,
        {"Service": service, "Operation": operation, "Params": dict(params)},
    )


@local_action(RETRY_UNTIL_VISIBLE)
def _retry_until_principals_visible(
    ctx: ApplyContext, params: Mapping[str, Any]
) -> Mapping[str, Any]:
    """One policy-carrying call, retried while a new principal is not yet visible."""
    service, operation = params["Service"], params["Operation"]
    if (service, operation) not in _RETRYABLE_CALLS:
        raise PlanError(f"{service}:{operation} is not a call keyhygiene retries.")
    return call_until_visible(ctx, service, operation, params["Params"])


@local_action(PUT_POLICY_WITH_NEW_KEY)
def _put_bucket_policy_with_new_key(
    ctx: ApplyContext, params: Mapping[str, Any]
) -> Mapping[str, Any]:
    """PutBucketPolicy once the new key's ARN is known: the marker becomes the ARN.

    Written only if the bucket's policy is still the step's `before` (an
    adopted bucket may have changed since the snapshot).
    """
    key_arn = params["KeyArn"]
    if not isinstance(key_arn, str) or not arns.is_kms_key_arn(key_arn):
        raise PlanError(f"Step input {key_arn!r} is not a KMS key ARN.")
    if ctx.step is None:
        raise PlanError("A policy step can only run as part of a plan (it compares documents).")
    document = replace_value(json.loads(params["Policy"]), params["Marker"], key_arn)
    target = {"Bucket": params["Bucket"]}
    wait = bool(params.get("WaitFor"))
    put_policy_if_unchanged(ctx, target, document, ctx.step.before, wait=wait)
    return {"KeyArn": key_arn}


def _key_description(name: str) -> str:
    return f"Application {name} (keyhygiene)"


@local_action(CREATE_KEY)
def _create_key(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """kms:CreateKey (patient while a new role propagates, when its policy names
    one). When botocore had to send it more than once, an earlier attempt may
    have made a key whose answer was lost: an enabled, unnamed key with this
    plan's description and tag, other than the one answered, is scheduled for
    deletion (nothing can name it yet, so nothing uses it)."""
    request = dict(params["Params"])
    kms = ctx.client("kms")

    def create() -> dict[str, Any]:
        return dict(kms.create_key(**request))

    answer = (
        retry_until_visible(create, sleep=ctx.sleep, clock=ctx.clock)
        if params.get("WaitForRole")
        else create()
    )
    meta = answer["KeyMetadata"]
    if answer.get("ResponseMetadata", {}).get("RetryAttempts"):
        group = next(t["TagValue"] for t in request["Tags"] if t["TagKey"] == TAG_GROUPS)
        for key in all_items(kms, "list_keys", "Keys"):
            if key["KeyId"] != meta["KeyId"] and _is_unnamed_key_of(
                kms, key["KeyId"], request["Description"], group
            ):
                kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=KEY_DELETION_DAYS)
    return {"KeyMetadata": {"KeyId": meta["KeyId"], "Arn": meta["Arn"]}}


def _is_unnamed_key_of(kms: Any, key_id: str, description: str, group: str) -> bool:
    meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    if meta.get("KeyState") != "Enabled" or meta.get("Description") != description:
        return False
    if kms.list_aliases(KeyId=key_id).get("Aliases"):
        return False
    tags = kms.list_resource_tags(KeyId=key_id).get("Tags", [])
    return {t["TagKey"]: t["TagValue"] for t in tags}.get(TAG_GROUPS) == group


@local_action(FIND_ALIAS)
def _find_alias(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Settle of the alias step: the alias, if it already names this plan's key."""
    kms = ctx.client("kms")
    for alias in kms.list_aliases(KeyId=params["TargetKeyId"]).get("Aliases", []):
        if alias.get("AliasName") == params["AliasName"]:
            return {"AliasName": alias["AliasName"]}
    return {}


@local_action(FIND_UNNAMED_KEY)
def _find_unnamed_key(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Settle of the key step: the enabled, unnamed key an interrupted run made.

    Only a candidate that is still enabled, has no alias and carries exactly
    this plan's description and group tag counts: any other key tagged for the
    application is someone's own and is left alone.
    """
    kms = ctx.client("kms")
    found = [
        key_id
        for key_id in params["Candidates"]
        if _is_unnamed_key_of(kms, key_id, params["Description"], params["Group"])
    ]
    if not found:
        return {}
    # An outage can leave several (each retry of CreateKey made one): the
    # first is named, the others are deleted (nothing can name them yet).
    for extra in found[1:]:
        kms.schedule_key_deletion(KeyId=extra, PendingWindowInDays=KEY_DELETION_DAYS)
    meta = kms.describe_key(KeyId=found[0])["KeyMetadata"]
    return {"KeyMetadata": {"KeyId": meta["KeyId"], "Arn": meta["Arn"]}}
