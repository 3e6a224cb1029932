"""A fixed snapshot of the demo's story with fixed dates, for snapshot tests
(a live moto account has fresh key ids and times on every run)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from keyhygiene.core.model import (
    AccessKey,
    Bucket,
    Encryption,
    Group,
    KmsKey,
    Role,
    RootSummary,
    Snapshot,
    User,
)
from keyhygiene.core.policy_documents import (
    bucket_policy_with_whitelist,
    default_key_policy,
    key_policy_with_whitelist,
)

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)
ACCOUNT = "123456789012"


def _arn(kind: str, name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:{kind}/{name}"


def _device(
    device: str, groups: tuple[str, ...], keys: list[tuple[int, int | None]], host: str
) -> User:
    name = f"christopher-{device}"
    return User(
        name=name,
        arn=_arn("user", name),
        created=NOW - timedelta(days=400),
        tags={
            "keyhygiene:person": "christopher",
            "keyhygiene:device": device,
            "keyhygiene:hostname": host,
            "keyhygiene:enrolled": "2025-10-24",
        },
        groups=groups,
        access_keys=tuple(
            AccessKey(
                user=name,
                status="Active",
                created=NOW - timedelta(days=age),
                last_used=None if used is None else NOW - timedelta(days=used),
                slot=slot,
            )
            for slot, (age, used) in enumerate(keys, start=1)
        ),
    )


def sample_snapshot() -> Snapshot:
    users = (
        _device("home", ("photos",), [(200, 1)], "chris-home-imac"),
        _device("laptop", ("admins", "photos"), [(20, 0)], "chris-mbp"),
        _device("phone", (), [(40, 3)], "chris-phone"),
        _device("vacation", (), [(130, 120)], "chris-travel"),
        _device("work", ("photos",), [(60, 1), (30, 2)], "chris-work-pc"),
        User(
            name="shared-cli",
            arn=_arn("user", "shared-cli"),
            access_keys=(AccessKey("shared-cli", "Active", NOW - timedelta(days=80), NOW, slot=1),),
        ),
    )
    members = ["christopher-home", "christopher-laptop", "christopher-work"]
    role = Role("photos", _arn("role", "photos"), tags={"keyhygiene:groups": "photos"})
    whitelist = sorted([*(_arn("user", m) for m in members), role.arn])
    key_arn = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    key = KmsKey(
        key_id="1234abcd-12ab-34cd-56ef-1234567890ab",
        arn=key_arn,
        aliases=("alias/photos",),
        tags={"keyhygiene:groups": "photos"},
        # The key's default policy (the account may administer it) plus the whitelist.
        policy=key_policy_with_whitelist(default_key_policy(ACCOUNT), principals=whitelist),
    )
    block = {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    photos = Bucket(
        "christopher-photos",
        "arn:aws:s3:::christopher-photos",
        tags={"keyhygiene:groups": "photos"},
        policy=bucket_policy_with_whitelist(
            None,
            bucket="christopher-photos",
            principals=whitelist,
            key_arn=key_arn,
            keep_admin_arns=[f"arn:aws:iam::{ACCOUNT}:root"],
        ),
        encryption=Encryption("aws:kms", key_arn),
        public_access_block=block,
    )
    public = Bucket(
        "christopher-public-share",
        "arn:aws:s3:::christopher-public-share",
        policy={
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
        },
    )
    return Snapshot(
        account_id=ACCOUNT,
        caller_arn=_arn("user", "christopher-laptop"),
        loaded_at=NOW,
        root=RootSummary(mfa_enabled=False, access_keys_present=False),
        users=users,
        groups=(
            Group("admins", _arn("group", "admins"), ("christopher-laptop",)),
            Group("photos", _arn("group", "photos"), tuple(members)),
        ),
        roles=(role,),
        buckets=(photos, public),
        kms_keys=(key,),
        credential_report_generated=NOW - timedelta(minutes=5),
        this_user="christopher-laptop",
    )
