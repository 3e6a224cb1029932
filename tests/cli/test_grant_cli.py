"""`keyhygiene grant`, `group` and `sweep` against a moto server, in child processes.

The clock is injected with the hidden `--now` option and `KEYHYGIENE_NOW`:
no test sleeps until a loan expires.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from helpers import run_cli

from tui.model import EXPIRY_POLICY_NAME, TAG_GROUPS
from tui.policy_documents import (
    bucket_policy_with_whitelist,
    key_policy_with_whitelist,
    whitelisted_principals,
)

ACCOUNT = "123456789012"
NOW = "2026-11-28T19:00:00Z"
LATER = "2026-11-28T21:00:01Z"  # one second after a 2 h loan from NOW ends
FOREIGN = {
    "Sid": "AuditorReads",
    "Effect": "Allow",
    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
    "Action": "s3:GetObject",
    "Resource": "arn:aws:s3:::photos-data/*",
}


class Account:
    """Clients on the moto server, and what the tests look at."""

    def __init__(self, endpoint: str) -> None:
        session = boto3.Session(region_name="us-east-1")
        self.endpoint = endpoint
        self.iam = session.client("iam", endpoint_url=endpoint)
        self.s3 = session.client("s3", endpoint_url=endpoint)
        self.kms = session.client("kms", endpoint_url=endpoint)
        self.key_id = ""

    def seed(self) -> None:
        """Group photos (bucket photos-data, a KMS key, role photos) with home-box in it;
        rare-box outside every group."""
        self.iam.create_group(GroupName="photos")
        for user in ("rare-box", "home-box"):
            self.iam.create_user(UserName=user)
        self.iam.add_user_to_group(UserName="home-box", GroupName="photos")
        role = self.iam.create_role(
            RoleName="photos",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
            Tags=[{"Key": TAG_GROUPS, "Value": "photos"}],
        )["Role"]["Arn"]
        whitelist = sorted([self.arn("home-box"), role])
        key = self.kms.create_key(Tags=[{"TagKey": TAG_GROUPS, "TagValue": "photos"}])
        self.key_id = key["KeyMetadata"]["KeyId"]
        default = json.loads(
            self.kms.get_key_policy(KeyId=self.key_id, PolicyName="default")["Policy"]
        )
        self.kms.put_key_policy(
            KeyId=self.key_id,
            PolicyName="default",
            Policy=json.dumps(key_policy_with_whitelist(default, principals=whitelist)),
        )
        self.s3.create_bucket(Bucket="photos-data")
        self.s3.put_bucket_tagging(
            Bucket="photos-data", Tagging={"TagSet": [{"Key": TAG_GROUPS, "Value": "photos"}]}
        )
        document = bucket_policy_with_whitelist(
            None,
            bucket="photos-data",
            principals=whitelist,
            key_arn=key["KeyMetadata"]["Arn"],
            keep_admin_arns=[f"arn:aws:iam::{ACCOUNT}:root"],
        )
        document["Statement"].insert(0, FOREIGN)
        self.s3.put_bucket_policy(Bucket="photos-data", Policy=json.dumps(document))
        # moto answers STARTED the first time, and the inventory then waits half a second.
        self.iam.generate_credential_report()

    @staticmethod
    def arn(user: str) -> str:
        return f"arn:aws:iam::{ACCOUNT}:user/{user}"

    def groups(self, user: str) -> set[str]:
        return {g["GroupName"] for g in self.iam.list_groups_for_user(UserName=user)["Groups"]}

    def tags(self, user: str) -> dict[str, str]:
        return {t["Key"]: t["Value"] for t in self.iam.list_user_tags(UserName=user)["Tags"]}

    def inline_policies(self, user: str) -> list[str]:
        return list(self.iam.list_user_policies(UserName=user)["PolicyNames"])

    def bucket_policy(self) -> dict[str, Any]:
        return json.loads(self.s3.get_bucket_policy(Bucket="photos-data")["Policy"])

    def key_policy(self) -> dict[str, Any]:
        return json.loads(
            self.kms.get_key_policy(KeyId=self.key_id, PolicyName="default")["Policy"]
        )

    def whitelisted(self, user: str) -> tuple[bool, bool]:
        return (
            self.arn(user) in whitelisted_principals(self.bucket_policy()),
            self.arn(user) in whitelisted_principals(self.key_policy()),
        )

    def cli(self, *args: str, env: dict[str, str] | None = None) -> Any:
        return run_cli(*args, "--endpoint-url", self.endpoint, env=env)


@pytest.fixture
def account(moto_endpoint: str) -> Account:
    account = Account(moto_endpoint)
    account.seed()
    return account


def test_grant_then_sweep_after_the_expiry_removes_all_four(account: Account) -> None:
    """The issue's done-when, with the clock injected."""
    before = (account.bucket_policy(), account.key_policy())
    result = account.cli(
        "grant", "rare-box", "--group", "photos", "--for", "2h", "--yes", "--now", NOW
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "done" in result.stdout

    assert "photos" in account.groups("rare-box")
    assert account.whitelisted("rare-box") == (True, True)
    assert account.tags("rare-box") == {"keyhygiene:grant:photos": "2026-11-28T21:00:00Z"}
    assert account.inline_policies("rare-box") == [EXPIRY_POLICY_NAME]
    document = account.iam.get_user_policy(UserName="rare-box", PolicyName=EXPIRY_POLICY_NAME)
    (statement,) = document["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny" and statement["Action"] == "*"
    assert statement["Condition"] == {
        "DateGreaterThan": {"aws:CurrentTime": "2026-11-28T21:00:00Z"}
    }
    assert "arn:aws:s3:::photos-data/*" in statement["Resource"]
    assert FOREIGN in account.bucket_policy()["Statement"]

    # Not expired yet: the sweep has nothing to do.
    early = account.cli("sweep", "--yes", "--now", "2026-11-28T20:59:59Z")
    assert early.returncode == 0, early.stderr
    assert "nothing to do" in early.stdout
    assert "photos" in account.groups("rare-box")

    swept = account.cli("sweep", "--yes", env={"KEYHYGIENE_NOW": LATER})
    assert swept.returncode == 0, swept.stdout + swept.stderr
    assert "photos" not in account.groups("rare-box")
    assert account.whitelisted("rare-box") == (False, False)
    assert account.tags("rare-box") == {}
    assert account.inline_policies("rare-box") == []
    assert (account.bucket_policy(), account.key_policy()) == before

    again = account.cli("sweep", "--yes", "--now", LATER)
    assert again.returncode == 0 and "nothing to do" in again.stdout


def test_dry_run_shows_the_plan_and_changes_nothing(account: Account) -> None:
    result = account.cli(
        "grant", "rare-box", "--group", "photos", "--for", "2h", "--dry-run", "--now", NOW
    )
    assert result.returncode == 0, result.stderr
    assert "Lend group photos to rare-box for 2 h, until 2026-11-28T21:00:00Z" in result.stdout
    assert "iam:PutUserPolicy" in result.stdout and "DateGreaterThan" in result.stdout
    assert "even if keyhygiene never runs again" in result.stdout
    assert "Dry run: nothing was changed." in result.stdout
    assert account.groups("rare-box") == set() and account.tags("rare-box") == {}


def test_extend_then_end_early(account: Account) -> None:
    assert (
        account.cli(
            "grant", "rare-box", "-g", "photos", "--for", "2h", "--yes", "--now", NOW
        ).returncode
        == 0
    )
    extended = account.cli(
        "grant", "rare-box", "-g", "photos", "--for", "1d", "--yes", "--now", NOW
    )
    assert extended.returncode == 0, extended.stdout + extended.stderr
    assert account.tags("rare-box") == {"keyhygiene:grant:photos": "2026-11-29T19:00:00Z"}
    ended = account.cli("grant", "rare-box", "-g", "photos", "--end", "--yes")
    assert ended.returncode == 0, ended.stdout + ended.stderr
    assert account.groups("rare-box") == set()
    assert account.tags("rare-box") == {} and account.inline_policies("rare-box") == []
    assert account.whitelisted("rare-box") == (False, False)


def test_group_add_and_remove(account: Account) -> None:
    added = account.cli("group", "add", "rare-box", "photos", "--yes")
    assert added.returncode == 0, added.stdout + added.stderr
    assert "photos" in account.groups("rare-box")
    assert account.whitelisted("rare-box") == (True, True)
    assert account.tags("rare-box") == {} and account.inline_policies("rare-box") == []
    removed = account.cli("group", "remove", "rare-box", "photos", "--yes")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert account.groups("rare-box") == set()
    assert account.whitelisted("rare-box") == (False, False)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("grant", "nobody", "-g", "photos", "--for", "2h"), "no IAM user 'nobody'"),
        (("grant", "home-box", "-g", "photos", "--for", "2h"), "permanent member"),
        (("grant", "rare-box", "-g", "photos", "--for", "31d"), "longer than"),
        (("grant", "rare-box", "-g", "photos", "--end"), "no loan of photos"),
    ],
)
def test_bad_input_exits_2_and_changes_nothing(
    account: Account, args: tuple[str, ...], words: str
) -> None:
    result = (
        account.cli(*args, "--yes", "--now", NOW)
        if args[0] == "grant"
        else account.cli(*args, "--yes")
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert words in result.stderr
    assert account.groups("rare-box") == set() and account.tags("rare-box") == {}
    assert account.groups("home-box") == {"photos"}
