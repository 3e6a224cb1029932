"""The demo account: the practice's story, with planted problems for the audit.

Person `christopher` has five computers. The ones used often (work, home,
laptop) sit in groups; the phone and the vacation laptop stay outside until
lent. Application `photos` has its group, EC2 role, KMS key and bucket, all
whitelisting the group's members and role. And some things are wrong, as in
real accounts: two active keys on one user, a key 200 days old, a key unused
for 120 days, a policy attached straight to a user, an untagged user shared by
several computers, a public bucket, a bucket without default encryption, and
a bucket whose whitelist forgot a group member and which still carries
keyhygiene 0.1's upload deny (plain `aws s3 cp` denied on real AWS).

Seeding runs in the process that hosts the moto server: key dates are moved
into the past through moto's backend, which no API allows.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from keyhygiene.aws.sessions import static_key_session
from keyhygiene.core import arns
from keyhygiene.core.model import (
    DEVICES_GROUP,
    TAG_DEVICE,
    TAG_ENROLLED,
    TAG_GROUPS,
    TAG_HOSTNAME,
    TAG_PERSON,
)
from keyhygiene.core.policy_documents import bucket_policy_with_whitelist, key_policy_with_whitelist

REGION = "us-east-1"
PERSON = "christopher"
THIS_COMPUTER = "christopher-laptop"

# device -> (hostname, groups, days since enrolment)
DEVICES: dict[str, tuple[str, tuple[str, ...], int]] = {
    "work": ("chris-work-pc", ("photos",), 400),
    "home": ("chris-home-imac", ("photos",), 380),
    # The laptop is "this computer": its host name is the machine running the demo.
    "laptop": (socket.gethostname(), ("admins", "photos"), 60),
    "phone": ("chris-phone", (), 200),
    "vacation": ("chris-travel-chromebook", (), 300),
}


@dataclass(frozen=True)
class DemoKey:
    """This computer's key in the demo: written to the sandbox, never shown."""

    user: str
    access_key_id: str
    secret_access_key: str

    def __repr__(self) -> str:
        return f"DemoKey(user={self.user!r}, access_key_id={self.access_key_id!r})"


def seed_demo_account(endpoint_url: str) -> DemoKey:
    """Create the demo account on the moto server at `endpoint_url`."""
    session = static_key_session("testing", "testing", REGION)
    iam = session.client("iam", endpoint_url=endpoint_url)
    s3 = session.client("s3", endpoint_url=endpoint_url)
    kms = session.client("kms", endpoint_url=endpoint_url)
    account_id = session.client("sts", endpoint_url=endpoint_url).get_caller_identity()["Account"]
    now = datetime.now(timezone.utc)

    for group in ("admins", "photos", DEVICES_GROUP):
        iam.create_group(GroupName=group)
    # moto does not load AWS managed policies by default: local equivalents.
    admin_arn = _local_policy(iam, "administrator-access", ["*"], "*")
    read_only_arn = _local_policy(iam, "s3-read-only", ["s3:Get*", "s3:List*"], "*")
    iam.attach_group_policy(GroupName="admins", PolicyArn=admin_arn)
    _device_policy(iam)

    keys: dict[str, dict[str, Any]] = {}
    for device, (hostname, groups, age_days) in DEVICES.items():
        name = f"{PERSON}-{device}"
        iam.create_user(
            UserName=name,
            Tags=[
                {"Key": TAG_PERSON, "Value": PERSON},
                {"Key": TAG_DEVICE, "Value": device},
                {"Key": TAG_HOSTNAME, "Value": hostname},
                {"Key": TAG_ENROLLED, "Value": (now - timedelta(days=age_days)).date().isoformat()},
            ],
        )
        for group in (*groups, DEVICES_GROUP):
            iam.add_user_to_group(UserName=name, GroupName=group)
        keys[name] = iam.create_access_key(UserName=name)["AccessKey"]

    # Planted: a second active key "just for a minute", never removed.
    iam.create_access_key(UserName="christopher-work")
    # Planted: a policy attached straight to a user instead of through a group.
    iam.attach_user_policy(UserName="christopher-phone", PolicyArn=read_only_arn)
    # Planted: one untagged user whose key was copied to several computers.
    iam.create_user(UserName="shared-cli")
    iam.create_access_key(UserName="shared-cli")

    _photos_application(iam, s3, kms, account_id)
    _problem_buckets(s3, account_id)
    _age_keys(account_id, now)

    laptop = keys[THIS_COMPUTER]
    return DemoKey(THIS_COMPUTER, laptop["AccessKeyId"], laptop["SecretAccessKey"])


def _local_policy(iam: Any, name: str, actions: list[str], resource: str) -> str:
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": actions, "Resource": resource}],
    }
    return iam.create_policy(PolicyName=name, PolicyDocument=json.dumps(document))["Policy"]["Arn"]


def _device_policy(iam: Any) -> None:
    """Every device may rotate its own key, and nothing else, through the devices group."""
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "RotateOwnKey",
                "Effect": "Allow",
                "Action": [
                    "iam:GetUser",
                    "iam:ListAccessKeys",
                    "iam:CreateAccessKey",
                    "iam:UpdateAccessKey",
                    "iam:DeleteAccessKey",
                    "iam:GetAccessKeyLastUsed",
                ],
                "Resource": "arn:aws:iam::*:user/${aws:username}",
            }
        ],
    }
    arn = iam.create_policy(
        PolicyName="keyhygiene-rotate-own-key", PolicyDocument=json.dumps(document)
    )["Policy"]["Arn"]
    iam.attach_group_policy(GroupName=DEVICES_GROUP, PolicyArn=arn)


def _photos_application(iam: Any, s3: Any, kms: Any, account_id: str) -> None:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    tag = [{"Key": TAG_GROUPS, "Value": "photos"}]
    role_arn = iam.create_role(
        RoleName="photos", AssumeRolePolicyDocument=json.dumps(trust), Tags=tag
    )["Role"]["Arn"]
    iam.create_instance_profile(InstanceProfileName="photos")
    iam.add_role_to_instance_profile(InstanceProfileName="photos", RoleName="photos")
    iam.put_group_policy(
        GroupName="photos",
        PolicyName="photos-data",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": ["s3:GetObject", "s3:PutObject", "s3:ListBucket"],
                        "Resource": [
                            "arn:aws:s3:::christopher-photos",
                            "arn:aws:s3:::christopher-photos/*",
                        ],
                    }
                ],
            }
        ),
    )
    members = [arns.user_arn(account_id, f"{PERSON}-{d}") for d in ("work", "home", "laptop")]
    whitelist = sorted([*members, role_arn])
    root = arns.root_arn(account_id)

    key = kms.create_key(
        Description="photos application key",
        Tags=[{"TagKey": TAG_GROUPS, "TagValue": "photos"}],
    )["KeyMetadata"]
    kms.create_alias(AliasName="alias/photos", TargetKeyId=key["KeyId"])
    default_policy = json.loads(
        kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"]
    )
    kms.put_key_policy(
        KeyId=key["KeyId"],
        PolicyName="default",
        Policy=json.dumps(
            key_policy_with_whitelist(
                default_policy,
                principals=whitelist,
                keep_admin_arns=[
                    arns.root_arn(account_id),
                    arns.user_arn(account_id, THIS_COMPUTER),
                ],
            )
        ),
    )

    for bucket, listed in (
        ("christopher-photos", whitelist),
        # Planted: the archive's whitelist forgot christopher-home.
        ("christopher-photos-archive", [a for a in whitelist if not a.endswith("-home")]),
    ):
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tag})
        s3.put_bucket_encryption(
            Bucket=bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [
                    {
                        "ApplyServerSideEncryptionByDefault": {
                            "SSEAlgorithm": "aws:kms",
                            "KMSMasterKeyID": key["Arn"],
                        },
                        "BucketKeyEnabled": True,
                    }
                ]
            },
        )
        _block_public(s3, bucket)
        policy = bucket_policy_with_whitelist(
            None,
            bucket=bucket,
            principals=listed,
            key_arn=key["Arn"],
            # The admin (this computer) stays exempt from DenyOthers, or it could
            # not edit the policy again.
            keep_admin_arns=[root, arns.user_arn(account_id, THIS_COMPUTER)],
        )
        if bucket == "christopher-photos-archive":
            policy["Statement"].append(_old_upload_deny(bucket))
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))


def _old_upload_deny(bucket: str) -> dict[str, Any]:
    """Planted: keyhygiene 0.1's strict encryption deny, which AWS applies to
    every upload sending no SSE header (plain `aws s3 cp`): the audit names the
    harm and `app sync photos` replaces it."""
    return {
        "Sid": "KeyHygieneDenyUnencrypted",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:PutObject",
        "Resource": f"arn:aws:s3:::{bucket}/*",
        "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}},
    }


def _problem_buckets(s3: Any, account_id: str) -> None:
    # Planted: a bucket anyone on the internet can read.
    s3.create_bucket(Bucket="christopher-public-share")
    s3.put_bucket_policy(
        Bucket="christopher-public-share",
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "PublicRead",
                        "Effect": "Allow",
                        "Principal": "*",
                        "Action": "s3:GetObject",
                        "Resource": "arn:aws:s3:::christopher-public-share/*",
                    }
                ],
            }
        ),
    )
    # Planted: old backups without default encryption.
    s3.create_bucket(Bucket="christopher-old-backups")
    _block_public(s3, "christopher-old-backups")


def _block_public(s3: Any, bucket: str) -> None:
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )


def _age_keys(account_id: str, now: datetime) -> None:
    """Move key dates into the past through moto's backend (no API can)."""
    from moto.iam.models import AccessKeyLastUsed, iam_backends

    users = iam_backends[account_id]["global"].users

    def age(user: str, index: int, created_days: int, used_days: int | None) -> None:
        key = users[user].access_keys[index]
        key.create_date = now - timedelta(days=created_days)
        key.last_used = (
            None
            if used_days is None
            else AccessKeyLastUsed(now - timedelta(days=used_days), "s3", REGION)
        )

    age("christopher-laptop", 0, 20, 0)
    age("christopher-work", 0, 60, 1)
    age("christopher-work", 1, 30, 2)
    # Planted: a key 200 days old (still in daily use).
    age("christopher-home", 0, 200, 1)
    age("christopher-phone", 0, 40, 3)
    # Planted: a key unused for 120 days.
    age("christopher-vacation", 0, 130, 120)
    age("shared-cli", 0, 80, 0)
