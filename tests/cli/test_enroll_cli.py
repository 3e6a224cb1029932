"""`keyhygiene enroll` in a child process against a moto server, and the real `aws` CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import moto_client, run_cli

from keyhygiene.core.model import DEVICES_GROUP, TAG_GROUPS
from keyhygiene.core.policy_documents import whitelisted_principals
from keyhygiene.local import credentials_file
from keyhygiene.workflows.enrollment import open_enrollments

REGION = "us-east-1"
FOREIGN_BUCKET = {
    "Sid": "PartnerRead",
    "Effect": "Allow",
    "Principal": {"AWS": "arn:aws:iam::210987654321:root"},
    "Action": "s3:GetObject",
    "Resource": "arn:aws:s3:::photos-data/shared/*",
}
FOREIGN_KEY = {
    "Sid": "AuditorDescribe",
    "Effect": "Allow",
    "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
    "Action": "kms:DescribeKey",
    "Resource": "*",
}
ENROLL = ("enroll", "--person", "alice", "--device", "laptop", "--group", "photos")


class Account:
    """The seeded moto server, seen with the dummy keys (never the admin's)."""

    def __init__(self, endpoint: str, key_id: str) -> None:
        self.endpoint = endpoint
        self.key_id = key_id
        self.iam = moto_client(endpoint, "iam")
        self.s3 = moto_client(endpoint, "s3")
        self.kms = moto_client(endpoint, "kms")

    def args(self, *extra: str) -> tuple[str, ...]:
        return (*extra, "--admin-profile", "admin", "--endpoint-url", self.endpoint)

    def state(self) -> dict[str, Any]:
        """Everything an enrollment touches, to compare before and after."""
        return {
            "users": sorted(u["UserName"] for u in self.iam.list_users()["Users"]),
            "groups": sorted(g["GroupName"] for g in self.iam.list_groups()["Groups"]),
            "policies": sorted(
                p["PolicyName"] for p in self.iam.list_policies(Scope="Local")["Policies"]
            ),
            "bucket": self.s3.get_bucket_policy(Bucket="photos-data")["Policy"],
            "key": self.key_policy(),
            "files": {
                path.name: path.read_bytes()
                for path in (credentials_file.credentials_path(), credentials_file.config_path())
                if path.exists()
            },
        }

    def bucket_policy(self) -> dict[str, Any]:
        return json.loads(self.s3.get_bucket_policy(Bucket="photos-data")["Policy"])

    def key_policy(self) -> dict[str, Any]:
        return json.loads(
            self.kms.get_key_policy(KeyId=self.key_id, PolicyName="default")["Policy"]
        )


@pytest.fixture
def account(moto_endpoint: str) -> Account:
    """An admin user whose key is the `admin` profile, a group photos, and a bucket and
    a KMS key tagged for photos, each with a statement keyhygiene does not own."""
    iam = moto_client(moto_endpoint, "iam")
    iam.create_user(UserName="admin")
    key = iam.create_access_key(UserName="admin")["AccessKey"]
    credentials_file.set_access_key(
        credentials_file.credentials_path(), "admin", key["AccessKeyId"], key["SecretAccessKey"]
    )
    credentials_file.set_config_values(credentials_file.config_path(), "admin", {"region": REGION})
    iam.create_group(GroupName="photos")
    s3 = moto_client(moto_endpoint, "s3")
    s3.create_bucket(Bucket="photos-data")
    s3.put_bucket_tagging(
        Bucket="photos-data", Tagging={"TagSet": [{"Key": TAG_GROUPS, "Value": "photos"}]}
    )
    s3.put_bucket_policy(
        Bucket="photos-data",
        Policy=json.dumps({"Version": "2012-10-17", "Statement": [FOREIGN_BUCKET]}),
    )
    kms = moto_client(moto_endpoint, "kms")
    key_id = kms.create_key(Tags=[{"TagKey": TAG_GROUPS, "TagValue": "photos"}])["KeyMetadata"][
        "KeyId"
    ]
    policy = json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
    policy["Statement"].append(FOREIGN_KEY)
    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=json.dumps(policy))
    iam.generate_credential_report()
    return Account(moto_endpoint, key_id)


def aws_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The real `aws` command installed next to this Python, with no key in the environment."""
    aws = Path(sys.executable).with_name("aws")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    }
    return subprocess.run([str(aws), *args], capture_output=True, text=True, env=env, timeout=60)


def secret_of(profile: str) -> str:
    return credentials_file.read_profile(credentials_file.credentials_path(), profile)[
        "aws_secret_access_key"
    ]


def test_enroll_applies_the_whole_checklist_and_the_aws_cli_works(account: Account) -> None:
    result = run_cli(*account.args(*ENROLL, "--yes"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "This computer is registered" in result.stdout

    user = account.iam.get_user(UserName="alice-laptop")["User"]
    tags = {t["Key"]: t["Value"] for t in user["Tags"]}
    assert (tags["keyhygiene:person"], tags["keyhygiene:device"]) == ("alice", "laptop")
    assert tags["keyhygiene:hostname"] and tags["keyhygiene:enrolled"]
    groups = account.iam.list_groups_for_user(UserName="alice-laptop")["Groups"]
    assert {g["GroupName"] for g in groups} == {"photos", DEVICES_GROUP}
    alice = user["Arn"]
    bucket, key = account.bucket_policy(), account.key_policy()
    assert alice in whitelisted_principals(bucket) and FOREIGN_BUCKET in bucket["Statement"]
    assert alice in whitelisted_principals(key) and FOREIGN_KEY in key["Statement"]
    config = credentials_file.read_profile(
        credentials_file.config_path(), "alice-laptop", config_style=True
    )
    assert config["region"] == REGION

    secret = secret_of("alice-laptop")
    assert secret not in result.stdout + result.stderr
    answer = aws_cli(
        "sts",
        "get-caller-identity",
        "--profile",
        "alice-laptop",
        "--endpoint-url",
        account.endpoint,
    )
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout)["Arn"] == alice

    again = run_cli(*account.args(*ENROLL, "--yes"))
    assert again.returncode == 2
    assert "alice-laptop exists already" in again.stderr


def test_dry_run_changes_nothing(account: Account) -> None:
    before = account.state()
    result = run_cli(*account.args(*ENROLL, "--dry-run"))
    assert result.returncode == 0, result.stderr
    assert "Register this computer as alice-laptop" in result.stdout
    assert "Dry run: nothing was changed." in result.stdout
    added = [line for line in result.stdout.splitlines() if line.lstrip().startswith("+")]
    assert any('"arn:aws:iam::123456789012:user/alice-laptop"' in line for line in added)
    assert account.state() == before
    assert open_enrollments() == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--group", "nope"), "Unknown group: nope"),
        (("--person", "alice-smith"), "no dash"),
    ],
)
def test_bad_input_exits_2_and_changes_nothing(
    account: Account, extra: tuple[str, ...], message: str
) -> None:
    before = account.state()
    result = run_cli(*account.args(*ENROLL, *extra, "--yes"))
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert account.state() == before


def test_a_bucket_policy_that_is_not_json_is_refused(account: Account) -> None:
    account.s3.put_bucket_policy(Bucket="photos-data", Policy="{oops")
    result = run_cli(*account.args(*ENROLL, "--yes"))
    assert result.returncode == 2
    assert "not a JSON object" in result.stderr
    assert "alice-laptop" not in account.state()["users"]


def test_a_key_policy_lockout_is_refused(account: Account) -> None:
    # Only the foreign statement left: nobody could administer the key afterwards.
    account.kms.put_key_policy(
        KeyId=account.key_id,
        PolicyName="default",
        Policy=json.dumps({"Version": "2012-10-17", "Statement": [FOREIGN_KEY]}),
    )
    before = account.state()
    result = run_cli(*account.args(*ENROLL, "--yes"))
    assert result.returncode == 2
    assert "Refusing this key policy" in result.stderr
    assert account.state() == before


@pytest.fixture
def enforced(account: Account) -> Iterator[Account]:
    """IAM identity policies enforced by the server, for this test only."""
    deny_create_user = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"},
            {"Effect": "Deny", "Action": "iam:CreateUser", "Resource": "*"},
        ],
    }
    account.iam.put_user_policy(
        UserName="admin", PolicyName="almost", PolicyDocument=json.dumps(deny_create_user)
    )
    previous = _reset_auth(account.endpoint, "0")
    try:
        yield account
    finally:
        _reset_auth(account.endpoint, previous)


def _reset_auth(endpoint: str, count: str) -> str:
    request = urllib.request.Request(
        endpoint + "/moto-api/reset-auth",
        data=count.encode(),
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return str(json.loads(answer.read())["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"])


def test_a_missing_permission_is_named_and_rolled_back(enforced: Account) -> None:
    result = run_cli(*enforced.args(*ENROLL, "--yes"))
    assert result.returncode == 3, result.stdout + result.stderr
    assert "lacks iam:CreateUser" in result.stdout
    assert "Rolling back what was done" in result.stdout
    _reset_auth(enforced.endpoint, "inf")
    state = enforced.state()
    assert "alice-laptop" not in state["users"] and DEVICES_GROUP not in state["groups"]
    assert "keyhygiene-rotate-own-key" not in state["policies"]


# --------------------------------------------------------------------------- interruptions


class SimulatedCrash(Exception):
    """Neither a ClientError nor a KeyHygieneError: the process 'dies'."""


CRASHING_ENROLLMENT = """
import sys
from keyhygiene.aws.connection import Connection, ConnectionOptions
from keyhygiene.workflows.enrollment import EnrollmentRequest, plan_enrollment
from keyhygiene.aws.inventory import load_snapshot
from keyhygiene.plans.journal import Journal
from keyhygiene.plans import apply_plan, register_local_action

endpoint = sys.argv[1]
conn = Connection(ConnectionOptions(profile="admin", region="us-east-1", endpoint_url=endpoint))
request = EnrollmentRequest(
    person="alice", device="laptop", groups=("photos",), region="us-east-1", endpoint_url=endpoint
)
plan = plan_enrollment(load_snapshot(conn), request)


def crash(ctx, params):
    raise SystemExit(9)  # the process dies in the middle of the key check


register_local_action("enroll.verify_key", crash, replace=True)
apply_plan(plan, conn, journal=Journal.create(plan))
"""


def interrupt_enrollment(account: Account) -> None:
    """An enrollment whose process dies at the key check, as a killed one would."""
    died = subprocess.run(
        [sys.executable, "-c", CRASHING_ENROLLMENT, account.endpoint],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert died.returncode == 9, died.stderr
    assert "alice-laptop" in account.state()["users"]
    (journal,) = open_enrollments()
    assert journal.status("verify-key") == "running"


def test_an_interrupted_enrollment_blocks_another_one_and_is_resumed(account: Account) -> None:
    interrupt_enrollment(account)
    other = ("enroll", "--person", "alice", "--device", "desk", "--group", "photos", "--yes")
    blocked = run_cli(*account.args(*other))
    assert blocked.returncode == 2
    assert "An enrollment was interrupted" in blocked.stderr and "--resume" in blocked.stderr

    result = run_cli(*account.args("enroll", "--resume"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "done in an earlier run" in result.stdout
    assert "This computer is registered" in result.stdout
    alice = account.iam.get_user(UserName="alice-laptop")["User"]["Arn"]
    assert alice in whitelisted_principals(account.bucket_policy())
    assert alice in whitelisted_principals(account.key_policy())
    assert open_enrollments() == []


def test_the_same_enrollment_run_again_finishes_the_interrupted_one(account: Account) -> None:
    interrupt_enrollment(account)
    result = run_cli(*account.args(*ENROLL, "--yes"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "An earlier run of this enrollment was interrupted" in result.stdout
    assert "Finishing it" in result.stdout and "This computer is registered" in result.stdout
    keys = account.iam.list_access_keys(UserName="alice-laptop")["AccessKeyMetadata"]
    assert len(keys) == 1
    assert open_enrollments() == []


def test_an_interrupted_enrollment_is_rolled_back(account: Account) -> None:
    before = account.state()
    interrupt_enrollment(account)
    result = run_cli(*account.args("enroll", "--rollback"))
    assert result.returncode == 0, result.stdout + result.stderr
    after = account.state()
    assert after["users"] == before["users"] and after["groups"] == before["groups"]
    assert after["bucket"] == before["bucket"] and after["key"] == before["key"]
    assert "aws_access_key_id" not in credentials_file.read_profile(
        credentials_file.credentials_path(), "alice-laptop"
    )
    assert open_enrollments() == []
    nothing = run_cli(*account.args("enroll", "--resume"))
    assert nothing.returncode == 2 and "no interrupted enrollment" in nothing.stderr
