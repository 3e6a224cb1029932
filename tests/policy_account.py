"""An account for proving policies on AWS's rules: the photos application,
its computers, three kinds of admins, and what the plans' documents become.

Shared by the tests that evaluate keyhygiene's documents (tests/core/
test_written_policies.py, test_policy_migration.py).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from keyhygiene.core import access
from keyhygiene.core.model import (
    TAG_DEVICE,
    TAG_GROUPS,
    TAG_PERSON,
    Bucket,
    Encryption,
    Group,
    InlinePolicy,
    KmsKey,
    PolicyAttachment,
    Role,
    Snapshot,
    User,
)
from keyhygiene.core.policy_documents import default_key_policy
from keyhygiene.core.policy_eval import Principal
from keyhygiene.plans import Plan

ACCOUNT = "123456789012"
REGION = "eu-west-1"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{KEY_ID}"
OTHER_KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/ffffffff-12ab-34cd-56ef-1234567890ab"
BUCKET = "photos-data"
OBJECT = f"arn:aws:s3:::{BUCKET}/2026/cat.jpg"
BUCKET_ARN = f"arn:aws:s3:::{BUCKET}"
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)
ADMINISTRATOR = PolicyAttachment(
    "AdministratorAccess", "arn:aws:iam::aws:policy/AdministratorAccess"
)
PHOTOS = {TAG_GROUPS: "photos"}
SSO_ADMIN = "AWSReservedSSO_AdministratorAccess_0123456789abcdef"
CLOUDTRAIL_WRITE = {
    "Sid": "AWSCloudTrailWrite",
    "Effect": "Allow",
    "Principal": {"Service": "cloudtrail.amazonaws.com"},
    "Action": "s3:PutObject",
    "Resource": f"{BUCKET_ARN}/AWSLogs/{ACCOUNT}/*",
    "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}},
}
CLOUDTRAIL_ACL = {
    "Sid": "AWSCloudTrailAclCheck",
    "Effect": "Allow",
    "Principal": {"Service": "cloudtrail.amazonaws.com"},
    "Action": "s3:GetBucketAcl",
    "Resource": BUCKET_ARN,
    "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}},
}


def user_arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:user/{name}"


def device(name: str, *, groups: tuple[str, ...] = (), **extra: Any) -> User:
    person, dev = name.split("-", 1)
    return User(
        name=name,
        arn=user_arn(name),
        tags={TAG_PERSON: person, TAG_DEVICE: dev},
        groups=groups,
        **extra,
    )


def account(bucket_policy: dict[str, Any] | None = None) -> Snapshot:
    """christopher-laptop is in photos; christopher-phone is not; `admin` runs
    keyhygiene; `colleague` is an untagged admin, `ops` a tagged one; an
    Identity Center admin role; the application's role; a computer that can
    write bucket policies through IAM."""
    users = (
        device("christopher-laptop", groups=("photos",)),
        device("christopher-phone"),
        device(
            "christopher-desktop",
            groups=("photos",),
            inline_policies=(
                InlinePolicy(
                    "bucket-admin",
                    {
                        "Statement": [
                            {"Effect": "Allow", "Action": "s3:PutBucketPolicy", "Resource": "*"}
                        ]
                    },
                ),
            ),
        ),
        User("admin", user_arn("admin"), attached_policies=(ADMINISTRATOR,)),
        User("colleague", user_arn("colleague"), attached_policies=(ADMINISTRATOR,)),
        User(
            "ops",
            user_arn("ops"),
            attached_policies=(ADMINISTRATOR,),
            tags={"keyhygiene:admin": "true"},
        ),
    )
    return Snapshot(
        account_id=ACCOUNT,
        caller_arn=user_arn("admin"),
        loaded_at=NOW,
        users=users,
        groups=(
            Group(
                "photos",
                f"arn:aws:iam::{ACCOUNT}:group/photos",
                members=("christopher-desktop", "christopher-laptop"),
            ),
        ),
        roles=(
            Role("photos", f"arn:aws:iam::{ACCOUNT}:role/photos", tags=PHOTOS),
            Role(
                SSO_ADMIN,
                f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/{REGION}/{SSO_ADMIN}",
                attached_policies=(ADMINISTRATOR,),
                path=f"/aws-reserved/sso.amazonaws.com/{REGION}/",
            ),
        ),
        buckets=(
            Bucket(
                BUCKET,
                BUCKET_ARN,
                tags=PHOTOS,
                policy=bucket_policy,
                encryption=Encryption("aws:kms", KEY_ARN),
            ),
        ),
        kms_keys=(
            KmsKey(
                KEY_ID,
                KEY_ARN,
                aliases=("alias/photos",),
                tags=PHOTOS,
                policy=default_key_policy(ACCOUNT),
            ),
        ),
    )


def applied(snapshot: Snapshot, plan: Plan) -> Snapshot:
    """The snapshot with the bucket and key policies the plan writes."""
    buckets = {b.name: b for b in snapshot.buckets}
    keys = {k.key_id: k for k in snapshot.kms_keys}
    for step in plan.steps:
        if step.after is None:
            continue
        params = step.call.params
        if "Bucket" in params and "Policy" in params:
            buckets[params["Bucket"]] = replace(buckets[params["Bucket"]], policy=step.after)
        elif "KeyId" in params and "Policy" in params and params["KeyId"] in keys:
            keys[params["KeyId"]] = replace(keys[params["KeyId"]], policy=step.after)
    return replace(snapshot, buckets=tuple(buckets.values()), kms_keys=tuple(keys.values()))


def ask(
    snapshot: Snapshot, who: str | Principal, action: str, resource: str, **context: Any
) -> str:
    return access.explain(snapshot, who, action, resource, context=context, now=NOW).outcome
