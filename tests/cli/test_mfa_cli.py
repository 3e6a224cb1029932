"""`--mfa-code` (or KEYHYGIENE_MFA_CODE) for an admin profile whose config has mfa_serial."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import boto3
import pytest
from helpers import ROOT

from keyhygiene.local import credentials_file

ACCOUNT = "123456789012"
SERIAL = f"arn:aws:iam::{ACCOUNT}:mfa/admin"
REGION = "us-east-1"
# moto answers GetCallerIdentity for a GetSessionToken key with its default user.
MOTO_SESSION_ARN = f"arn:aws:sts::{ACCOUNT}:user/moto"


def keyhygiene(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The command with no terminal on stdin, as in a script."""
    return subprocess.run(
        [sys.executable, "-m", "keyhygiene", *args],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        cwd=ROOT,
    )


@pytest.fixture
def endpoint(moto_endpoint: str) -> str:
    """The user admin with a virtual MFA device; the profile admin has its key and mfa_serial."""
    iam: Any = boto3.client(
        "iam",
        region_name=REGION,
        endpoint_url=moto_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    iam.create_user(UserName="admin")
    serial = iam.create_virtual_mfa_device(VirtualMFADeviceName="admin")["VirtualMFADevice"][
        "SerialNumber"
    ]
    iam.enable_mfa_device(
        UserName="admin",
        SerialNumber=serial,
        AuthenticationCode1="123456",
        AuthenticationCode2="654321",
    )
    key = iam.create_access_key(UserName="admin")["AccessKey"]
    credentials_file.set_access_key(
        credentials_file.credentials_path(), "admin", key["AccessKeyId"], key["SecretAccessKey"]
    )
    credentials_file.set_config_values(
        credentials_file.config_path(), "admin", {"region": REGION, "mfa_serial": SERIAL}
    )
    return moto_endpoint


def test_inventory_with_mfa_code_reads_the_account_with_a_session(endpoint: str) -> None:
    args = ("inventory", "--json", "--admin-profile", "admin", "--endpoint-url", endpoint)
    result = keyhygiene(*args, "--mfa-code", "123456")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["caller_arn"] == MOTO_SESSION_ARN  # not user/admin: the MFA session's key
    assert "admin" in {u["name"] for u in data["users"]}
    from_env = keyhygiene(*args, env={"KEYHYGIENE_MFA_CODE": "654321"})
    assert from_env.returncode == 0, from_env.stderr
    assert json.loads(from_env.stdout)["caller_arn"] == MOTO_SESSION_ARN


def test_without_a_code_or_a_terminal_it_exits_2_and_says_how(endpoint: str) -> None:
    result = keyhygiene("inventory", "--admin-profile", "admin", "--endpoint-url", endpoint)
    assert result.returncode == 2, result.stderr
    assert "profile admin requires MFA" in result.stderr
    assert SERIAL in result.stderr and "--mfa-code" in result.stderr
    bad = keyhygiene(
        "--mfa-code", "12", "audit", "--admin-profile", "admin", "--endpoint-url", endpoint
    )
    assert bad.returncode == 2 and "6 digits" in bad.stderr


def test_enroll_accepts_mfa_code(endpoint: str) -> None:
    result = keyhygiene(
        "enroll",
        "--person",
        "alice",
        "--device",
        "laptop",
        "--admin-profile",
        "admin",
        "--endpoint-url",
        endpoint,
        "--mfa-code",
        "123456",
        "--dry-run",
    )
    assert result.returncode == 0, result.stderr
    assert "alice-laptop" in result.stdout
