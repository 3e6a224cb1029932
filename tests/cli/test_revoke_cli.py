"""`keyhygiene revoke` against a moto server, as a person runs it."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from helpers import run_cli

from keyhygiene.core.model import REVOKED_POLICY_NAME, TAG_DEVICE, TAG_PERSON, TAG_REVOKED
from keyhygiene.core.policy_documents import (
    bucket_policy_with_whitelist,
    key_policy_with_whitelist,
    whitelisted_principals,
)

ACCOUNT = "123456789012"
USER = "stolen-phone"
ARN = f"arn:aws:iam::{ACCOUNT}:user/{USER}"
OTHER = f"arn:aws:iam::{ACCOUNT}:user/alice-laptop"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
RUNNER = "keyhygiene-admin"  # the identity every command runs as ("admin": the enforced one)
ADMINS = [ROOT, f"arn:aws:iam::{ACCOUNT}:user/{RUNNER}", f"arn:aws:iam::{ACCOUNT}:user/admin"]
FOREIGN = {
    "Sid": "OwnersRead",
    "Effect": "Allow",
    "Principal": {"AWS": ROOT},
    "Action": "s3:GetObject",
    "Resource": "arn:aws:s3:::phone-backups/*",
}


class Seeded:
    def __init__(self, url: str) -> None:
        session = boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        )
        self.iam = session.client("iam", endpoint_url=url)
        self.s3 = session.client("s3", endpoint_url=url)
        self.kms = session.client("kms", endpoint_url=url)
        self.url = url
        self.key_id = ""
        self.runner_env: dict[str, str] = {}

    def seed(self) -> Seeded:
        self.iam.create_user(
            UserName=USER,
            Tags=[{"Key": TAG_PERSON, "Value": "stolen"}, {"Key": TAG_DEVICE, "Value": "phone"}],
        )
        self.iam.create_user(UserName="alice-laptop")
        for group in ("photos", "backups"):
            self.iam.create_group(GroupName=group)
            self.iam.add_user_to_group(GroupName=group, UserName=USER)
        self.iam.create_access_key(UserName=USER)
        self.iam.create_access_key(UserName=USER)
        self.iam.create_login_profile(UserName=USER, Password="Correct-Horse-9!")
        # keyhygiene runs as an IAM user, as on AWS (moto's `testing` key answers as
        # `sts::…:user/moto`, which no policy can name); the bucket lets it administer.
        self.iam.create_user(UserName=RUNNER)
        self.iam.put_user_policy(
            UserName=RUNNER,
            PolicyName="all",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
                }
            ),
        )
        key = self.iam.create_access_key(UserName=RUNNER)["AccessKey"]
        self.runner_env = {
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
        }
        policy = bucket_policy_with_whitelist(
            None, bucket="phone-backups", principals=[ARN, OTHER], keep_admin_arns=ADMINS
        )
        policy["Statement"].append(FOREIGN)
        self.s3.create_bucket(Bucket="phone-backups")
        self.s3.put_bucket_policy(Bucket="phone-backups", Policy=json.dumps(policy))
        self.key_id = self.kms.create_key()["KeyMetadata"]["KeyId"]
        default = json.loads(
            self.kms.get_key_policy(KeyId=self.key_id, PolicyName="default")["Policy"]
        )
        self.kms.put_key_policy(
            KeyId=self.key_id,
            PolicyName="default",
            Policy=json.dumps(key_policy_with_whitelist(default, principals=[ARN, OTHER])),
        )
        return self

    def key_statuses(self) -> set[str]:
        keys = self.iam.list_access_keys(UserName=USER)["AccessKeyMetadata"]
        return {k["Status"] for k in keys}

    def bucket_policy(self) -> dict[str, Any]:
        return json.loads(self.s3.get_bucket_policy(Bucket="phone-backups")["Policy"])

    def key_policy(self) -> dict[str, Any]:
        text = self.kms.get_key_policy(KeyId=self.key_id, PolicyName="default")["Policy"]
        return json.loads(text)


@pytest.fixture
def account(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Seeded:
    seeded = Seeded(moto_endpoint).seed()
    for name, value in seeded.runner_env.items():
        monkeypatch.setenv(name, value)  # what run_cli's child processes use
    return seeded


def test_revoke_yes_does_everything_and_reports_containment(account: Seeded) -> None:
    result = run_cli("revoke", USER, "--yes", "--endpoint-url", account.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(rf"Containment of {USER} requested at \d\d:\d\d:\d\dZ", result.stdout)
    assert "AWS may take a few minutes to apply it everywhere" in result.stdout
    assert "What to check next" in result.stdout and "CloudTrail" in result.stdout
    # Nothing claims the containment done: not the revoke report, not the plan's own.
    assert "contained" not in result.stdout and not re.search(r"\bdone\b", result.stdout)

    assert account.key_statuses() == {"Inactive"}
    iam = account.iam
    assert REVOKED_POLICY_NAME in iam.list_user_policies(UserName=USER)["PolicyNames"]
    assert TAG_REVOKED in {t["Key"] for t in iam.list_user_tags(UserName=USER)["Tags"]}
    assert iam.list_groups_for_user(UserName=USER)["Groups"] == []
    bucket = account.bucket_policy()
    assert ARN not in json.dumps(bucket) and FOREIGN in bucket["Statement"]
    assert whitelisted_principals(bucket) == {OTHER}
    key = account.key_policy()
    assert ARN not in json.dumps(key) and whitelisted_principals(key) == {OTHER}
    assert any(s.get("Sid") == "Enable IAM User Permissions" for s in key["Statement"])
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_login_profile(UserName=USER)

    again = run_cli("revoke", USER, "--yes", "--endpoint-url", account.url)
    assert again.returncode == 0, again.stderr
    assert "nothing to do" in again.stdout


def test_dry_run_shows_the_plan_and_changes_nothing(account: Seeded) -> None:
    result = run_cli("revoke", USER, "--dry-run", "--endpoint-url", account.url)
    assert result.returncode == 0, result.stderr
    assert "1. Deactivate every access key of stolen-phone at once" in result.stdout
    assert "Dry run: nothing was changed." in result.stdout
    assert account.key_statuses() == {"Active"}
    # Without --yes and without a terminal: the plan, and nothing done.
    result = run_cli("revoke", USER, "--endpoint-url", account.url)
    assert result.returncode == 5 and "pass --yes" in result.stdout
    assert account.key_statuses() == {"Active"}


def test_no_inline_room_plans_aws_deny_all(account: Seeded) -> None:
    resources = [f"arn:aws:s3:::filler-{i:03d}/*" for i in range(68)]  # 1,998 characters
    account.iam.put_user_policy(
        UserName=USER,
        PolicyName="filler",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": resources}],
            }
        ),
    )
    result = run_cli("revoke", USER, "--dry-run", "--endpoint-url", account.url)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "1. Deactivate every access key of stolen-phone at once" in text
    assert "2. Attach AWS managed policy AWSDenyAll to stolen-phone" in text
    assert "attaches the AWS managed policy AWSDenyAll instead" in text
    assert "arn:aws:iam::aws:policy/AWSDenyAll" in text


def test_unknown_user_is_bad_input(account: Seeded) -> None:
    result = run_cli("revoke", "stolen-phne", "--yes", "--endpoint-url", account.url)
    assert result.returncode == 2
    assert "no IAM user named 'stolen-phne'" in result.stderr
    assert "Did you mean stolen-phone?" in result.stderr
    assert account.key_statuses() == {"Active"}


def test_json_without_dry_run_is_bad_input(account: Seeded) -> None:
    result = run_cli("revoke", USER, "--yes", "--json", "--endpoint-url", account.url)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "works only with --dry-run" in result.stderr and "--json" in result.stderr
    assert account.key_statuses() == {"Active"}
    dry = run_cli("revoke", USER, "--dry-run", "--json", "--endpoint-url", account.url)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["kind"] == "revoke"


def test_help_lists_the_exit_codes() -> None:
    result = run_cli("revoke", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "AWSDenyAll" in text and "when containment was requested" in text
    for words in ("0 all done", "2 bad input", "3 some step failed"):
        assert words in text


@pytest.fixture
def enforcing(account: Seeded, isolated_aws: Path) -> Iterator[Seeded]:
    """moto checks every request from now on; the admin profile may not tag users."""
    iam = account.iam
    iam.create_user(UserName="admin")
    for name, effect, action in (("all", "Allow", "*"), ("no-tags", "Deny", "iam:TagUser")):
        iam.put_user_policy(
            UserName="admin",
            PolicyName=name,
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": effect, "Action": action, "Resource": "*"}],
                }
            ),
        )
    keys = iam.create_access_key(UserName="admin")["AccessKey"]
    (isolated_aws / ".aws" / "credentials").write_text(
        f"[admin]\naws_access_key_id = {keys['AccessKeyId']}\n"
        f"aws_secret_access_key = {keys['SecretAccessKey']}\n"
    )
    _reset_auth(account.url, "0")
    try:
        yield account
    finally:
        _reset_auth(account.url, "inf")


def _reset_auth(url: str, count: str) -> None:
    # A form content type would leave the body out of what moto reads.
    request = urllib.request.Request(
        url + "/moto-api/reset-auth",
        data=count.encode(),
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    urllib.request.urlopen(request, timeout=10)


def test_a_failed_step_is_listed_with_its_permission_and_exit_3(enforcing: Seeded) -> None:
    result = run_cli(
        "revoke", USER, "--yes", "--admin-profile", "admin", "--endpoint-url", enforcing.url
    )
    _reset_auth(enforcing.url, "inf")  # to read the account back with the seeding keys
    assert result.returncode == 3, result.stdout + result.stderr
    assert "Not done:" in result.stdout and "needs iam:TagUser" in result.stdout
    assert f"Containment of {USER} requested at " in result.stdout
    assert enforcing.key_statuses() == {"Inactive"}
    assert enforcing.iam.list_groups_for_user(UserName=USER)["Groups"] == []
