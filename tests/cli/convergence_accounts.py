"""The workflows the crash harness cuts, and the accounts they start from.

Each seed is the one the workflow's own CLI tests use (their helpers are
imported, not copied): `tests/cli/test_grant_cli.py`'s Account for group,
grant and sweep, `test_revoke_cli.py`'s Seeded for revoke, `test_app_cli.py`'s
admin profile for app create; enroll and rotate seed what their fixtures seed.
The harness seeds under `isolated_environment` (HOME, AWS files and state
folder of the sandbox), so no seed can read or write a real ~/.aws.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

from cli.test_app_cli import admin_profile
from cli.test_enroll_cli import ENROLL, FOREIGN_BUCKET, FOREIGN_KEY
from cli.test_grant_cli import Account as LendingAccount
from cli.test_revoke_cli import USER as STOLEN
from cli.test_revoke_cli import Seeded as RevokeAccount
from crash_harness import (
    REGION,
    Computer,
    Sandbox,
    Seeded,
    Workflow,
    admin_clients,
    run_command,
)

from keyhygiene.core.model import TAG_DEVICE, TAG_GROUPS, TAG_PERSON
from keyhygiene.local import credentials_file

# A loan that no real clock ends during the tests (recovery checks loans against it).
FAR_NOW = "2099-01-01T00:00:00Z"
FAR_LATER = "2099-01-01T02:00:01Z"  # one second after a 2 h loan from FAR_NOW ends
ROTATED_USER = "christopher-laptop"
ROTATED_PROFILE = "laptop"


def file_secrets(sandbox: Sandbox) -> list[str]:
    """The secrets the credentials file holds now (the seed's keys)."""
    if not sandbox.credentials.exists():
        return []
    lines = sandbox.credentials.read_text().splitlines()
    return [
        line.split("=", 1)[1].strip()
        for line in lines
        if line.strip().startswith("aws_secret_access_key")
    ]


# --------------------------------------------------------------------------- enroll


def seed_enroll(endpoint: str, sandbox: Sandbox) -> Seeded:
    """tests/cli/test_enroll_cli.py's `account`: an admin profile, group photos, bucket
    photos-data and a KMS key tagged for photos, each with a foreign statement."""
    clients = admin_clients(endpoint)
    iam, s3, kms = clients["iam"], clients["s3"], clients["kms"]
    iam.create_user(UserName="admin")
    key = iam.create_access_key(UserName="admin")["AccessKey"]
    credentials_file.set_access_key(
        sandbox.credentials, "admin", key["AccessKeyId"], key["SecretAccessKey"]
    )
    credentials_file.set_config_values(sandbox.config, "admin", {"region": REGION})
    iam.create_group(GroupName="photos")
    s3.create_bucket(Bucket="photos-data")
    s3.put_bucket_tagging(
        Bucket="photos-data", Tagging={"TagSet": [{"Key": TAG_GROUPS, "Value": "photos"}]}
    )
    s3.put_bucket_policy(
        Bucket="photos-data",
        Policy=json.dumps({"Version": "2012-10-17", "Statement": [FOREIGN_BUCKET]}),
    )
    key_id = kms.create_key(Tags=[{"TagKey": TAG_GROUPS, "TagValue": "photos"}])["KeyMetadata"][
        "KeyId"
    ]
    policy = json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
    policy["Statement"].append(FOREIGN_KEY)
    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=json.dumps(policy))
    iam.generate_credential_report()
    return Seeded(secrets=[key["SecretAccessKey"]])


# --------------------------------------------------------------------------- rotate


def seed_rotate(endpoint: str, sandbox: Sandbox) -> Seeded:
    """tests/cli/test_rotate_cli.py's `computer`: a user with one key in profile `laptop`,
    among a comment, a stale session token and other profiles."""
    iam = admin_clients(endpoint)["iam"]
    iam.create_user(UserName=ROTATED_USER)
    key = iam.create_access_key(UserName=ROTATED_USER)["AccessKey"]
    sandbox.credentials.write_text(
        "# keys of this computer\n[default]\nregion = us-east-1\n\n"
        f"[{ROTATED_PROFILE}]\naws_access_key_id = {key['AccessKeyId']}\n"
        f"aws_secret_access_key = {key['SecretAccessKey']}\n"
        "aws_session_token = stale-token-from-long-ago\n\n"
        "[other] ; another account\naws_access_key_id = AKIAOTHEROTHEROTHER0\n"
        "aws_secret_access_key = other-secret\n"
    )
    sandbox.credentials.chmod(0o600)
    sandbox.config.write_text(f"[profile {ROTATED_PROFILE}]\nregion = us-east-1\n")
    return Seeded(secrets=[key["SecretAccessKey"]])


# --------------------------------------------------------------------------- group, grant, sweep


class _LendingAccount(LendingAccount):
    """test_grant_cli's Account on the harness's cached clients: its own boto3 Session
    would parse the service models again on every seed (about 0.5 s)."""

    def __init__(self, endpoint: str) -> None:
        clients = admin_clients(endpoint)
        self.endpoint = endpoint
        self.iam, self.s3, self.kms = clients["iam"], clients["s3"], clients["kms"]
        self.key_id = ""
        self.runner_env = {}


def seed_lending(endpoint: str, sandbox: Sandbox) -> Seeded:
    """tests/cli/test_grant_cli.py's Account.seed: group photos (bucket, KMS key, role) with
    home-box in it, rare-box outside, and the user keyhygiene runs as."""
    account = _LendingAccount(endpoint)
    account.seed()
    return Seeded(
        env=dict(account.runner_env), secrets=[account.runner_env["AWS_SECRET_ACCESS_KEY"]]
    )


def grant_argv(endpoint: str) -> tuple[str, ...]:
    return (
        "grant", "rare-box", "--group", "photos", "--for", "2h", "--yes",
        "--now", FAR_NOW, "--endpoint-url", endpoint,
    )  # fmt: skip


def seed_loan(endpoint: str, sandbox: Sandbox) -> Seeded:
    """The lending account with rare-box lent photos at FAR_NOW for 2 h (by `grant`, unfaulted)."""
    seeded = seed_lending(endpoint, sandbox)
    lent = run_command(grant_argv(endpoint), sandbox, seeded.env, tag="seed-grant")
    if lent.code != 0:
        raise RuntimeError(f"seeding the loan failed:\n{lent.excerpt()}")
    return seeded


# --------------------------------------------------------------------------- revoke, app


class _RevokeAccount(RevokeAccount):
    """test_revoke_cli's Seeded on the harness's cached clients (see _LendingAccount)."""

    def __init__(self, url: str) -> None:
        clients = admin_clients(url)
        self.iam, self.s3, self.kms = clients["iam"], clients["s3"], clients["kms"]
        self.url = url
        self.key_id = ""
        self.runner_env = {}


def seed_revoke(endpoint: str, sandbox: Sandbox) -> Seeded:
    """tests/cli/test_revoke_cli.py's Seeded: stolen-phone with two keys, a password, two
    groups, in a bucket policy and a key policy (with alice-laptop)."""
    account = _RevokeAccount(endpoint).seed()
    return Seeded(
        env=dict(account.runner_env), secrets=[account.runner_env["AWS_SECRET_ACCESS_KEY"]]
    )


def seed_app(endpoint: str, sandbox: Sandbox) -> Seeded:
    """tests/cli/test_app_cli.py's `account` (alice-laptop, bob-desktop) and admin profile."""
    iam = admin_clients(endpoint)["iam"]
    for person, device in (("alice", "laptop"), ("bob", "desktop")):
        iam.create_user(
            UserName=f"{person}-{device}",
            Tags=[{"Key": TAG_PERSON, "Value": person}, {"Key": TAG_DEVICE, "Value": device}],
        )
    env = admin_profile(endpoint)  # writes profile admin into $AWS_SHARED_CREDENTIALS_FILE
    return Seeded(env=env, secrets=file_secrets(sandbox))


# --------------------------------------------------------------------------- the list


def _with_endpoint(*argv: str) -> Callable[[str], tuple[str, ...]]:
    return lambda endpoint: (*argv, "--endpoint-url", endpoint)


TESTING_KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def _testing_keys(seed: Callable[[str, Sandbox], Seeded]) -> Callable[[str, Sandbox], Seeded]:
    """The conftest's dummy keys in the environment, as the enroll and rotate tests run."""

    def seeded(endpoint: str, sandbox: Sandbox) -> Seeded:
        result = seed(endpoint, sandbox)
        result.env = {**TESTING_KEYS, **result.env}
        return result

    return seeded


WORKFLOWS: Mapping[str, Workflow] = {
    workflow.name: workflow
    for workflow in (
        Workflow(
            "enroll",
            _with_endpoint(*ENROLL, "--yes", "--admin-profile", "admin"),
            _testing_keys(seed_enroll),
            (Computer("alice-laptop", "alice-laptop"),),
        ),
        Workflow(
            "rotate",
            _with_endpoint(
                "rotate", "--profile", ROTATED_PROFILE, "--verify-interval", "0", "--yes"
            ),
            _testing_keys(seed_rotate),
            (Computer(ROTATED_USER, ROTATED_PROFILE),),
        ),
        Workflow(
            "group-add", _with_endpoint("group", "add", "rare-box", "photos", "--yes"), seed_lending
        ),
        Workflow(
            "group-remove",
            _with_endpoint("group", "remove", "home-box", "photos", "--yes"),
            seed_lending,
        ),
        Workflow("grant", grant_argv, seed_lending),
        Workflow(
            "grant-end",
            _with_endpoint("grant", "rare-box", "--group", "photos", "--end", "--yes"),
            seed_loan,
        ),
        Workflow("sweep", _with_endpoint("sweep", "--yes", "--now", FAR_LATER), seed_loan),
        Workflow("revoke", _with_endpoint("revoke", STOLEN, "--yes"), seed_revoke),
        Workflow(
            "app-create",
            lambda endpoint: (
                "app",
                "create",
                "photos",
                "--bucket",
                "photos-data",
                "--member",
                "alice-laptop",
                "--yes",
                "--profile",
                "admin",
            ),  # fmt: skip
            seed_app,
        ),
    )
}
