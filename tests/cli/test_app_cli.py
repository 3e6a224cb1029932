"""`keyhygiene app create|sync` against a moto server, as a user runs them."""

from __future__ import annotations

import configparser
import json
import os
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from helpers import run_cli

from keyhygiene.aws.connection import Connection
from keyhygiene.cli.main import main
from keyhygiene.core.model import TAG_DEVICE, TAG_GROUPS, TAG_PERSON
from keyhygiene.core.policy_documents import statements, whitelisted_principals

ACCOUNT = "123456789012"
ALICE_ARN = f"arn:aws:iam::{ACCOUNT}:user/alice-laptop"
BOB_ARN = f"arn:aws:iam::{ACCOUNT}:user/bob-desktop"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/photos"


def client(endpoint: str, service: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1")


@pytest.fixture
def account(moto_endpoint: str) -> str:
    iam = client(moto_endpoint, "iam")
    for person, device in (("alice", "laptop"), ("bob", "desktop")):
        iam.create_user(
            UserName=f"{person}-{device}",
            Tags=[{"Key": TAG_PERSON, "Value": person}, {"Key": TAG_DEVICE, "Value": device}],
        )
    return moto_endpoint


def test_create_photos_as_in_the_issue(account: str) -> None:
    result = run_cli(
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
        env=admin_profile(account),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Add application photos: done" in result.stdout

    iam, s3, kms = (client(account, s) for s in ("iam", "s3", "kms"))
    assert [u["UserName"] for u in iam.get_group(GroupName="photos")["Users"]] == ["alice-laptop"]
    role = iam.get_role(RoleName="photos")["Role"]
    trust = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust[0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    assert iam.list_role_tags(RoleName="photos")["Tags"] == [{"Key": TAG_GROUPS, "Value": "photos"}]
    key = kms.describe_key(KeyId="alias/photos")["KeyMetadata"]
    assert kms.list_resource_tags(KeyId=key["KeyId"])["Tags"] == [
        {"TagKey": TAG_GROUPS, "TagValue": "photos"}
    ]
    key_policy = json.loads(kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"])
    assert whitelisted_principals(key_policy) == {ALICE_ARN, ROLE_ARN}

    encryption = s3.get_bucket_encryption(Bucket="photos-data")
    default = encryption["ServerSideEncryptionConfiguration"]["Rules"][0][
        "ApplyServerSideEncryptionByDefault"
    ]
    assert default == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key["Arn"]}
    block = s3.get_public_access_block(Bucket="photos-data")["PublicAccessBlockConfiguration"]
    assert block == dict.fromkeys(
        ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
    )
    policy = json.loads(s3.get_bucket_policy(Bucket="photos-data")["Policy"])
    assert whitelisted_principals(policy) == {ALICE_ARN, ROLE_ARN}
    assert {s["Sid"] for s in statements(policy)} >= {
        "KeyHygieneAllow",
        "KeyHygieneDenyOthers",
        "KeyHygieneDenyConfiguration",
        "KeyHygieneDenyWrongEncryption",
    }
    assert s3.get_bucket_tagging(Bucket="photos-data")["TagSet"] == [
        {"Key": TAG_GROUPS, "Value": "photos"}
    ]


def test_dry_run_changes_nothing(account: str) -> None:
    result = run_cli(
        "app",
        "create",
        "photos",
        "--bucket",
        "photos-data",
        "--member",
        "alice-laptop",
        "--dry-run",
        "--profile",
        "admin",
        env=admin_profile(account),
    )
    assert result.returncode == 0, result.stderr
    assert "Dry run: nothing was changed." in result.stdout
    assert "Create group photos" in result.stdout
    iam, s3, kms = (client(account, s) for s in ("iam", "s3", "kms"))
    assert iam.list_groups()["Groups"] == []
    assert iam.list_roles()["Roles"] == []
    assert s3.list_buckets()["Buckets"] == []
    assert kms.list_keys()["Keys"] == []


def test_an_identity_a_bucket_policy_cannot_name_is_refused(account: str) -> None:
    """moto's `testing` key is `arn:aws:sts::…:user/moto`, which no exception list can
    name: the bucket policy would deny it the bucket, its policy included."""
    result = run_cli(
        "app",
        "create",
        "photos",
        "--bucket",
        "photos-data",
        "--member",
        "alice-laptop",
        "--yes",
        "--endpoint-url",
        account,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"cannot list arn:aws:sts::{ACCOUNT}:user/moto" in result.stderr
    assert "Traceback" not in result.stderr
    assert client(account, "iam").list_groups()["Groups"] == []
    assert client(account, "s3").list_buckets()["Buckets"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["my app"], "not a valid IAM name"),
        (["photos", "--member", "nobody-pc"], "No IAM user named 'nobody-pc'"),
        (["photos", "--bucket", "Bad_Bucket"], "not a valid name for a new bucket"),
    ],
)
def test_bad_input_exits_2_and_changes_nothing(account: str, args: list[str], message: str) -> None:
    result = run_cli("app", "create", *args, "--yes", "--endpoint-url", account)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert client(account, "iam").list_groups()["Groups"] == []
    assert client(account, "s3").list_buckets()["Buckets"] == []


def test_sync_repairs_a_broken_whitelist(account: str) -> None:
    env = admin_profile(account)
    created = run_cli(
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
        env=env,
    )
    assert created.returncode == 0, created.stdout + created.stderr

    iam, s3 = client(account, "iam"), client(account, "s3")
    iam.add_user_to_group(GroupName="photos", UserName="bob-desktop")
    policy = json.loads(s3.get_bucket_policy(Bucket="photos-data")["Policy"])
    policy["Statement"] = [s for s in policy["Statement"] if s["Sid"] != "KeyHygieneAllow"]
    s3.put_bucket_policy(Bucket="photos-data", Policy=json.dumps(policy))

    dry = run_cli("app", "sync", "photos", "--dry-run", "--profile", "admin", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "bob-desktop" in dry.stdout
    assert whitelisted_principals(s3.get_bucket_policy(Bucket="photos-data")["Policy"]) == set()

    synced = run_cli("app", "sync", "photos", "--yes", "--profile", "admin", env=env)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    repaired = s3.get_bucket_policy(Bucket="photos-data")["Policy"]
    assert whitelisted_principals(repaired) == {ALICE_ARN, BOB_ARN, ROLE_ARN}

    again = run_cli("app", "sync", "photos", "--yes", "--profile", "admin", env=env)
    assert again.returncode == 0 and "nothing to do" in again.stdout


def test_sync_of_an_unknown_application_exits_2(account: str) -> None:
    result = run_cli("app", "sync", "nothing", "--yes", "--endpoint-url", account)
    assert result.returncode == 2
    assert "There is no application nothing" in result.stderr


def test_an_aws_failure_exits_3_and_rolls_back(
    account: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_client = Connection.client

    def refusing_client(self: Connection, service: str) -> Any:
        real = real_client(self, service)
        return _RefuseTagging(real) if service == "s3" else real

    monkeypatch.setattr(Connection, "client", refusing_client)
    for name, value in admin_profile(account).items():
        monkeypatch.setenv(name, value)
    code = main(
        [
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
        ]
    )
    out = capsys.readouterr().out
    assert code == 3
    assert "FAILED" in out and "Rolling back what was done" in out
    assert "rolled back, 11 step(s) undone" in out

    iam, s3, kms = (client(account, s) for s in ("iam", "s3", "kms"))
    with pytest.raises(ClientError):
        iam.get_group(GroupName="photos")
    assert iam.list_roles()["Roles"] == []
    assert s3.list_buckets()["Buckets"] == []
    assert "alias/photos" not in [a["AliasName"] for a in kms.list_aliases()["Aliases"]]
    states = {
        k["KeyId"]: kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"]["KeyState"]
        for k in kms.list_keys()["Keys"]
    }
    assert list(states.values()) == ["PendingDeletion"]


class _RefuseTagging:
    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        if name == "put_bucket_tagging":

            def refuse(**_params: Any) -> None:
                error = {"Error": {"Code": "InternalError", "Message": "We encountered an error"}}
                raise ClientError(error, "PutBucketTagging")  # type: ignore[arg-type]

            return refuse
        return getattr(self._real, name)


def admin_profile(endpoint: str) -> dict[str, str]:
    """A real admin user's key in profile `admin`: GetCallerIdentity then answers with
    an IAM user ARN, as on AWS (moto's `testing` key is `arn:aws:sts::…:user/moto`)."""
    iam = client(endpoint, "iam")
    iam.create_user(UserName="admin")
    key = iam.create_access_key(UserName="admin")["AccessKey"]
    credentials = configparser.RawConfigParser()
    credentials["admin"] = {
        "aws_access_key_id": key["AccessKeyId"],
        "aws_secret_access_key": key["SecretAccessKey"],
    }
    path = Path(os.environ["AWS_SHARED_CREDENTIALS_FILE"])
    with path.open("w") as handle:
        credentials.write(handle)
    path.chmod(0o600)
    return {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_ENDPOINT_URL": endpoint}
