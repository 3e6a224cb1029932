"""The application's buckets: created, closed to the public, encrypted with its
key, whitelisted, tagged."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from keyhygiene.aws.sessions import DEFAULT_REGION
from keyhygiene.core import arns
from keyhygiene.core.model import (
    TAG_GROUPS,
    Bucket,
    Encryption,
    KmsKey,
    groups_from_tag,
)
from keyhygiene.core.policy_documents import (
    bucket_policy_with_whitelist,
)
from keyhygiene.plans import (
    LOCAL,
    Call,
    Ref,
    Step,
)
from keyhygiene.steps.whitelists import (
    RESTORE_IF_UNCHANGED,
    admins_to_keep,
    lockout_warning,
    own_bucket_settings,
    put_if_unchanged_call,
    readable_policy,
    replace_value,
)
from keyhygiene.workflows.application.actions import PUT_POLICY_WITH_NEW_KEY, _naming_role_call
from keyhygiene.workflows.application.context import _Context
from keyhygiene.workflows.application.helpers import (
    _check_policy,
    _count,
    _principals,
    _refuse_unreadable,
    _standin_key_arn,
)
from keyhygiene.workflows.application.model import PUBLIC_ACCESS_BLOCK_ALL, new_key_marker
from keyhygiene.workflows.application.tags import _check_tags, _merged_groups_value

# ---- buckets


def _bucket_steps(
    ctx: _Context,
    index: int,
    name: str,
    key: KmsKey | None,
    key_arn: str | Ref,
    warnings: list[str],
) -> list[Step]:
    bucket = ctx.snapshot.bucket(name)
    if bucket is not None:
        _refuse_unreadable(ctx.snapshot, f"S3 bucket {name}:", f"bucket {name}")
    prefix = f"bucket-{index}"
    key_label = f"alias/{ctx.name}"
    steps: list[Step] = []
    if bucket is None:
        steps.append(_create_bucket_step(prefix, name, ctx.region))
    steps.extend(_public_access_steps(prefix, name, bucket))
    steps.extend(_encryption_steps(prefix, name, bucket, key, key_arn, key_label, warnings))
    steps.extend(_bucket_policy_steps(ctx, prefix, name, bucket, key_arn))
    steps.extend(_bucket_tag_steps(ctx, prefix, name, bucket, warnings))
    return steps


def _create_bucket_step(prefix: str, name: str, region: str) -> Step:
    params: dict[str, Any] = {"Bucket": name}
    if region != DEFAULT_REGION:
        # us-east-1 refuses a location constraint naming itself.
        params["CreateBucketConfiguration"] = {"LocationConstraint": region}
    return Step(
        id=f"{prefix}-create",
        description=f"Create bucket {name} in {region}",
        call=Call("s3", "create_bucket", params),
        undo=Call("s3", "delete_bucket", {"Bucket": name}),
    )


def _public_access_steps(prefix: str, name: str, bucket: Bucket | None) -> list[Step]:
    if bucket is not None and bucket.public_access_fully_blocked:
        return []
    if bucket is None or bucket.public_access_block is None:
        undo = Call("s3", "delete_public_access_block", {"Bucket": name})
    else:
        old = {
            key: bool(bucket.public_access_block.get(key, False)) for key in PUBLIC_ACCESS_BLOCK_ALL
        }
        undo = Call(
            "s3", "put_public_access_block", {"Bucket": name, "PublicAccessBlockConfiguration": old}
        )
    return [
        Step(
            id=f"{prefix}-block",
            description=f"Block all public access to bucket {name}",
            call=Call(
                "s3",
                "put_public_access_block",
                {"Bucket": name, "PublicAccessBlockConfiguration": dict(PUBLIC_ACCESS_BLOCK_ALL)},
            ),
            undo=undo,
        )
    ]


def _encryption_steps(
    prefix: str,
    name: str,
    bucket: Bucket | None,
    key: KmsKey | None,
    key_arn: str | Ref,
    key_label: str,
    warnings: list[str],
) -> list[Step]:
    old = bucket.encryption if bucket else None
    if key is not None and encrypts_with(old, key):
        return []
    if old is not None and old.is_kms and old.kms_key_id:
        warnings.append(
            f"Bucket {name} encrypts with {old.kms_key_id} by default today; objects already "
            f"there stay encrypted with it (readable only while that key allows)."
        )
    return [
        Step(
            id=f"{prefix}-encryption",
            description=f"Encrypt new objects in bucket {name} by default with key {key_label} "
            "(SSE-KMS)",
            call=Call(
                "s3",
                "put_bucket_encryption",
                {"Bucket": name, "ServerSideEncryptionConfiguration": _sse_kms(key_arn)},
            ),
            undo=_encryption_undo(name, old),
        )
    ]


def encrypts_with(encryption: Encryption | None, key: KmsKey) -> bool:
    """Default SSE-KMS naming `key` by ARN, id, alias or alias ARN."""
    if encryption is None or not encryption.is_kms or not encryption.kms_key_id:
        return False
    named = encryption.kms_key_id
    if named in (key.arn, key.key_id, *key.aliases):
        return True
    return any(named.endswith(":" + alias) for alias in key.aliases)


def _sse_kms(key_arn: str | Ref) -> dict[str, Any]:
    # A bucket key cuts the KMS requests (and their cost) for busy buckets.
    return {
        "Rules": [
            {
                "ApplyServerSideEncryptionByDefault": {
                    "SSEAlgorithm": "aws:kms",
                    "KMSMasterKeyID": key_arn,
                },
                "BucketKeyEnabled": True,
            }
        ]
    }


def _encryption_undo(name: str, old: Encryption | None) -> Call:
    if old is None:
        return Call("s3", "delete_bucket_encryption", {"Bucket": name})
    default: dict[str, Any] = {"SSEAlgorithm": old.algorithm}
    if old.kms_key_id:
        default["KMSMasterKeyID"] = old.kms_key_id
    # The snapshot does not record BucketKeyEnabled; AWS's default (off) comes back.
    return Call(
        "s3",
        "put_bucket_encryption",
        {
            "Bucket": name,
            "ServerSideEncryptionConfiguration": {
                "Rules": [{"ApplyServerSideEncryptionByDefault": default}]
            },
        },
    )


def _bucket_policy_steps(
    ctx: _Context, prefix: str, name: str, bucket: Bucket | None, key_arn: str | Ref
) -> list[Step]:
    groups = (*(bucket.for_groups if bucket else ()), ctx.name)
    principals = _principals(ctx, groups)
    before = (
        readable_policy(ctx.snapshot, bucket.policy, f"S3 bucket {name}", "bucket")
        if bucket
        else None
    )
    arn_for_checks = key_arn if isinstance(key_arn, str) else _standin_key_arn(ctx)
    # On adoption, what keyhygiene's statements already chose is kept.
    earlier = own_bucket_settings(before)
    after = bucket_policy_with_whitelist(
        before,
        bucket=name,
        principals=principals,
        key_arn=arn_for_checks,
        keep_admin_arns=admins_to_keep(ctx.snapshot, ctx.actor, earlier, before, bucket=name),
    )
    _check_policy(ctx, after, "bucket", f"bucket {name}", arns.bucket_arn(name, ctx.partition))
    if after == before:
        return []
    description = (
        f"Set the policy of bucket {name}: whitelist {_count(principals, 'principal')}, "
        "deny its data to everyone else and its configuration to all but the admins, "
        "deny uploads asking for another encryption than the application's key"
        + (" (its other statements kept)" if before else "")
        + lockout_warning(ctx.snapshot, arns.bucket_arn(name, ctx.partition), before, after)
    )
    target = {"Bucket": name}
    if isinstance(key_arn, str):
        if bucket is None:
            # A bucket this plan creates: nobody else wrote its policy.
            call = _naming_role_call(
                ctx, "s3", "put_bucket_policy", {"Bucket": name, "Policy": json.dumps(after)}
            )
        else:
            call = put_if_unchanged_call(target, after, ctx.waiting_for)
        undo_params: dict[str, Any] = dict(target)
    else:
        after = replace_value(after, arn_for_checks, new_key_marker(ctx.name))
        params: dict[str, Any] = {
            "Bucket": name,
            "Policy": json.dumps(after),
            "KeyArn": key_arn,
            "Marker": new_key_marker(ctx.name),
        }
        if ctx.waiting_for:
            params["WaitFor"] = ctx.waiting_for
        call = Call(LOCAL, PUT_POLICY_WITH_NEW_KEY, params)
        undo_params = {"Bucket": name, "Marker": new_key_marker(ctx.name), "KeyArn": key_arn}
    if bucket is None:
        undo = Call("s3", "delete_bucket_policy", {"Bucket": name})
    else:
        undo = Call(LOCAL, RESTORE_IF_UNCHANGED, undo_params)
    return [
        Step(
            id=f"{prefix}-policy",
            description=description,
            call=call,
            undo=undo,
            before=before,
            after=after,
        )
    ]


def _bucket_tag_steps(
    ctx: _Context, prefix: str, name: str, bucket: Bucket | None, warnings: list[str]
) -> list[Step]:
    tags = dict(bucket.tags) if bucket else {}
    old = tags.get(TAG_GROUPS)
    if ctx.name in groups_from_tag(old):
        return []
    value = _merged_groups_value(old, ctx.name)
    _check_tags(f"bucket {name}", tags, value)
    if groups_from_tag(old):
        warnings.append(
            f"Bucket {name} is also tagged for {', '.join(groups_from_tag(old))}: "
            "its whitelist holds those groups' members too."
        )
    # PutBucketTagging replaces the whole tag set: the other tags go in too.
    new_set = _tag_set({**tags, TAG_GROUPS: value})
    undo = (
        Call("s3", "put_bucket_tagging", {"Bucket": name, "Tagging": {"TagSet": _tag_set(tags)}})
        if tags
        else Call("s3", "delete_bucket_tagging", {"Bucket": name})
    )
    return [
        Step(
            id=f"{prefix}-tag",
            description=f"Tag bucket {name} {TAG_GROUPS}={value}",
            call=Call("s3", "put_bucket_tagging", {"Bucket": name, "Tagging": {"TagSet": new_set}}),
            undo=undo,
        )
    ]


def _tag_set(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in tags.items()]
