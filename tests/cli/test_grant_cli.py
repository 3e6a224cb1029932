"""`keyhygiene grant`, `group` and `sweep` against a moto server, in child processes.

The clock is injected with the hidden `--now` option and `KEYHYGIENE_NOW`
(which counts only with `KEYHYGIENE_TESTING=1`): no test sleeps until a loan
expires.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import boto3
import pytest
from helpers import run_cli

from keyhygiene.core.model import EXPIRY_POLICY_NAME, TAG_GROUPS
from keyhygiene.core.policy_documents import (
    bucket_policy_with_whitelist,
    key_policy_with_whitelist,
    whitelisted_principals,
)

ACCOUNT = "123456789012"
NOW = "2026-11-28T19:00:00Z"
LATER = "2026-11-28T21:00:01Z"  # one second after a 2 h loan from NOW ends
# Who keyhygiene runs as; the buckets let them administer (else their deny locks them out).
RUNNERS = ("keyhygiene-admin", "sweeper")
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
        self.runner_env: dict[str, str] = {}

    def seed(self) -> None:
        """Group photos (bucket photos-data, a KMS key, role photos) with home-box in it;
        rare-box outside every group; the user keyhygiene runs as, and its key."""
        # An IAM user, as on AWS: moto's `testing` key answers as `sts::…:user/moto`,
        # which no policy can name.
        self.iam.create_user(UserName=RUNNERS[0])
        key = self.iam.create_access_key(UserName=RUNNERS[0])["AccessKey"]
        self.runner_env = {
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
        }
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
            Policy=json.dumps(
                key_policy_with_whitelist(
                    default,
                    principals=whitelist,
                    keep_admin_arns=[f"arn:aws:iam::{ACCOUNT}:root", *map(self.arn, RUNNERS)],
                )
            ),
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
            keep_admin_arns=[f"arn:aws:iam::{ACCOUNT}:root", *map(self.arn, RUNNERS)],
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
def account(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Account:
    account = Account(moto_endpoint)
    account.seed()
    for name, value in account.runner_env.items():
        monkeypatch.setenv(name, value)  # what run_cli's child processes use
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
    statement, *guard = document["PolicyDocument"]["Statement"]
    assert [s["Sid"] for s in guard] == ["KeyHygieneExpiryGuard", "KeyHygieneExpiryGuardGroups"]
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

    # A cron sweep that forgot --yes: the plan, nothing done, and exit 5, not 0.
    forgot = account.cli("sweep", "--now", LATER)
    assert forgot.returncode == 5, forgot.stdout + forgot.stderr
    assert "pass --yes" in forgot.stdout
    assert "photos" in account.groups("rare-box")

    swept = account.cli("sweep", "--yes", env={"KEYHYGIENE_NOW": LATER, "KEYHYGIENE_TESTING": "1"})
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


FAR_NOW = "2099-01-01T00:00:00Z"  # a loan that cannot end by the real clock during the test
FAR_LATER = "2099-01-01T02:00:01Z"


def test_keyhygiene_now_alone_does_not_move_the_clock(account: Account) -> None:
    lent = account.cli(
        "grant", "rare-box", "-g", "photos", "--for", "2h", "--yes", "--now", FAR_NOW
    )
    assert lent.returncode == 0, lent.stdout + lent.stderr
    # Left in a production environment, the variable must not sweep loans early.
    ignored = account.cli("sweep", "--yes", env={"KEYHYGIENE_NOW": FAR_LATER})
    assert ignored.returncode == 0, ignored.stdout + ignored.stderr
    assert "nothing to do" in ignored.stdout
    assert "KEYHYGIENE_NOW is ignored" in ignored.stderr
    assert "photos" in account.groups("rare-box")
    swept = account.cli(
        "sweep", "--yes", env={"KEYHYGIENE_NOW": FAR_LATER, "KEYHYGIENE_TESTING": "1"}
    )
    assert swept.returncode == 0, swept.stdout + swept.stderr
    assert "photos" not in account.groups("rare-box")


@pytest.mark.parametrize(
    "args",
    [
        ("sweep", "--yes", "--json"),
        ("grant", "rare-box", "-g", "photos", "--for", "2h", "--json"),
        ("group", "add", "rare-box", "photos", "--yes", "--json"),
    ],
)
def test_json_without_dry_run_is_refused(account: Account, args: tuple[str, ...]) -> None:
    result = account.cli(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "works only with --dry-run" in result.stderr and "--json" in result.stderr
    assert account.groups("rare-box") == set()
    clock = ("--now", NOW) if args[0] != "group" else ()  # group has no clock
    dry = account.cli(*[a for a in args if a != "--yes"], "--dry-run", *clock)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    json.loads(dry.stdout)  # the plan, as JSON


def _sweeper(account: Account) -> dict[str, str]:
    """A user allowed everything but s3:PutBucketPolicy; the environment that runs
    keyhygiene as that user."""
    account.iam.create_user(UserName=RUNNERS[1])
    account.iam.put_user_policy(
        UserName=RUNNERS[1],
        PolicyName="almost",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": "*", "Resource": "*"},
                    {"Effect": "Deny", "Action": "s3:PutBucketPolicy", "Resource": "*"},
                ],
            }
        ),
    )
    key = account.iam.create_access_key(UserName=RUNNERS[1])["AccessKey"]
    return {
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
    }


def _reset_auth(endpoint: str, count: str) -> str:
    request = urllib.request.Request(
        endpoint + "/moto-api/reset-auth",
        data=count.encode(),
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return str(json.loads(answer.read())["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"])


def test_a_failed_sweep_is_not_rolled_back_and_the_next_one_finishes(account: Account) -> None:
    lent = account.cli("grant", "rare-box", "-g", "photos", "--for", "2h", "--yes", "--now", NOW)
    assert lent.returncode == 0, lent.stdout + lent.stderr
    before_key = account.key_policy()
    sweeper = _sweeper(account)
    previous = _reset_auth(account.endpoint, "0")  # IAM enforced from now on
    try:
        failed = account.cli("sweep", "--yes", "--now", LATER, env=sweeper)
    finally:
        _reset_auth(account.endpoint, previous)
    assert failed.returncode == 3, failed.stdout + failed.stderr
    assert "s3:PutBucketPolicy" in failed.stdout
    assert "Rolling back" not in failed.stdout
    assert "Nothing was rolled back" in failed.stdout
    # What could be taken away was, and stays away; AWS keeps denying the rest.
    assert "photos" not in account.groups("rare-box")
    assert account.whitelisted("rare-box") == (True, False)
    assert account.key_policy() != before_key
    assert account.tags("rare-box") == {"keyhygiene:grant:photos": "2026-11-28T21:00:00Z"}
    assert account.inline_policies("rare-box") == [EXPIRY_POLICY_NAME]

    again = account.cli("sweep", "--yes", "--now", LATER)
    assert again.returncode == 0, again.stdout + again.stderr
    assert account.whitelisted("rare-box") == (False, False)
    assert account.tags("rare-box") == {} and account.inline_policies("rare-box") == []


def test_sweep_help_says_it_sweeps_every_group_and_never_rolls_back() -> None:
    summary = " ".join(run_cli("--help").stdout.split())
    assert "remove every expired loan, in every group" in summary
    described = " ".join(run_cli("sweep", "--help").stdout.split())
    assert "Nothing is ever rolled back" in described
    assert "is rolled back)" not in described
