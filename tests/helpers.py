"""Functions shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from keyhygiene.demo.server import DemoInfo

ROOT = Path(__file__).resolve().parents[1]


def use_demo(monkeypatch: pytest.MonkeyPatch, info: DemoInfo) -> None:
    """Point this test at a demo account, as `keyhygiene --demo` does."""
    for name, value in info.environment().items():
        if name != "KEYHYGIENE_STATE_DIR":
            monkeypatch.setenv(name, value)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`keyhygiene ARGS` in a child process, as a user would run it."""
    return subprocess.run(
        [sys.executable, "-m", "keyhygiene", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        cwd=ROOT,
    )


def act_as_new_admin(iam: Any, monkeypatch: pytest.MonkeyPatch, name: str = "admin") -> None:
    """Create an IAM user and make its key the one this test's boto3 calls use.

    moto's default `testing` key answers as `arn:aws:sts::…:user/moto`, which a
    bucket policy cannot name: the lock-out check refuses plans made as it.
    """
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])


def seed_photos_account(admin_arn: str, *, groups: tuple[str, ...] = ("photos",)) -> None:
    """An account to lend in (moto must be active): `groups`, alice-laptop in photos,
    alice-phone outside, bucket photos-data tagged for photos whitelisting the laptop,
    with `admin_arn` (the identity the test runs as) kept out of its DenyOthers."""
    import json

    import boto3

    from keyhygiene.core.model import TAG_GROUPS
    from keyhygiene.core.policy_documents import bucket_policy_with_whitelist

    iam = boto3.client("iam", region_name="us-east-1")
    s3 = boto3.client("s3", region_name="us-east-1")
    account = admin_arn.split(":")[4]
    for group in groups:
        iam.create_group(GroupName=group)
    for user in ("alice-laptop", "alice-phone"):
        iam.create_user(UserName=user)
    iam.add_user_to_group(UserName="alice-laptop", GroupName="photos")
    s3.create_bucket(Bucket="photos-data")
    s3.put_bucket_tagging(
        Bucket="photos-data", Tagging={"TagSet": [{"Key": TAG_GROUPS, "Value": "photos"}]}
    )
    document = bucket_policy_with_whitelist(
        None,
        bucket="photos-data",
        principals=[f"arn:aws:iam::{account}:user/alice-laptop"],
        keep_admin_arns=[f"arn:aws:iam::{account}:root", admin_arn],
    )
    s3.put_bucket_policy(Bucket="photos-data", Policy=json.dumps(document))
    # moto answers STARTED to the first report request; the inventory then need not wait.
    iam.generate_credential_report()


def moto_client(
    endpoint: str, service: str, key_id: str = "testing", secret: str = "testing"
) -> Any:
    """A boto3 client on a moto server (moto's default key unless given): the
    tests' way to set up and read an account behind the command's back."""
    import boto3

    return boto3.client(
        service,
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
    )
