"""`keyhygiene explain` against a moto server, on an application `keyhygiene app
create` wrote: the documents are the ones keyhygiene writes."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import pytest
from helpers import run_cli
from moto_server import reset_moto_server

from keyhygiene.cli.commands.explain import NOT_MODELLED
from keyhygiene.core.model import TAG_DEVICE, TAG_PERSON

ACCOUNT = "123456789012"
EVERYTHING = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


@dataclass(frozen=True)
class Seeded:
    env: dict[str, str]
    secret: str
    key_arn: str


@pytest.fixture(scope="module")
def photos(moto_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    """Application photos made by `keyhygiene app create` (bucket photos-data,
    key alias/photos, alice-laptop its member), bob-admin, who holds every IAM
    right but is on no whitelist, ops, an admin tagged keyhygiene:admin,
    alice-phone lent group admins for 2 hours, and alice-old, a member of
    photos revoked since: every document written by keyhygiene's own commands.
    Seeded once for the module."""
    reset_moto_server(moto_server_url)
    home = tmp_path_factory.mktemp("explain")
    with pytest.MonkeyPatch.context() as patch:
        # The autouse isolation is per test; the seeding needs its own.
        for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
            patch.delenv(name, raising=False)
        patch.setenv("HOME", str(home))
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "credentials"))
        patch.setenv("AWS_CONFIG_FILE", str(home / "config"))
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        patch.setenv("KEYHYGIENE_STATE_DIR", str(home / "state"))
        patch.setenv("KEYHYGIENE_KEYRING", "memory")
        iam = boto3.client(
            "iam",
            endpoint_url=moto_server_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        # keyhygiene runs as an IAM user, as on AWS (moto's own key is `sts::…:user/moto`).
        iam.create_user(UserName="admin")
        iam.put_user_policy(
            UserName="admin", PolicyName="admin", PolicyDocument=json.dumps(EVERYTHING)
        )
        key = iam.create_access_key(UserName="admin")["AccessKey"]
        iam.create_user(
            UserName="alice-laptop",
            Tags=[{"Key": TAG_PERSON, "Value": "alice"}, {"Key": TAG_DEVICE, "Value": "laptop"}],
        )
        iam.create_user(UserName="bob-admin")
        # What AdministratorAccess holds (moto's server loads no AWS managed policy).
        iam.put_user_policy(
            UserName="bob-admin", PolicyName="admin", PolicyDocument=json.dumps(EVERYTHING)
        )
        env = {
            "AWS_ENDPOINT_URL": moto_server_url,
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
        }
        for name in ("alice-phone", "alice-old"):
            person, device = name.split("-")
            iam.create_user(
                UserName=name,
                Tags=[{"Key": TAG_PERSON, "Value": person}, {"Key": TAG_DEVICE, "Value": device}],
            )
        # ops is an admin by keyhygiene's rule: tagged keyhygiene:admin = true.
        iam.create_user(UserName="ops", Tags=[{"Key": "keyhygiene:admin", "Value": "true"}])
        iam.put_user_policy(
            UserName="ops", PolicyName="admin", PolicyDocument=json.dumps(EVERYTHING)
        )
        iam.create_group(GroupName="admins")
        iam.put_group_policy(
            GroupName="admins", PolicyName="admin", PolicyDocument=json.dumps(EVERYTHING)
        )
        for args in (
            ("app", "create", "photos", "--bucket", "photos-data", "--member", "alice-laptop"),
            ("group", "add", "alice-old", "photos"),
            # A loan of a group that grants IAM rights is refused unless forced.
            ("grant", "alice-phone", "--group", "admins", "--for", "2h", "--force"),
            ("revoke", "alice-old"),
        ):
            done = run_cli(*args, "--yes", env=env)
            assert done.returncode == 0, (args, done.stdout + done.stderr)
        kms = boto3.client(
            "kms",
            endpoint_url=moto_server_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        key_arn = kms.describe_key(KeyId="alias/photos")["KeyMetadata"]["Arn"]
    yield Seeded(env, key["SecretAccessKey"], key_arn)


def explain(seeded: Seeded, *args: str) -> subprocess.CompletedProcess[str]:
    result = run_cli("explain", *args, env=seeded.env)
    assert seeded.secret not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result


def test_a_whitelisted_computers_plain_upload_is_allowed(photos: Seeded) -> None:
    result = explain(
        photos, "alice-laptop", "s3:PutObject", "photos-data/a.jpg", "--upload", "plain"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "ALLOWED: alice-laptop calling s3:PutObject on arn:aws:s3:::photos-data/a.jpg"
    )
    assert (
        "  decided by: Allow statement 'KeyHygieneAllow' of the policy of bucket photos-data"
        in (lines)
    )
    # The bucket encrypts by default with the application's key: S3 asks KMS as alice.
    assert any("S3 also calls kms:GenerateDataKey on alias/photos" in line for line in lines)
    assert lines[-1] == NOT_MODELLED


def test_an_object_action_on_a_bucket_asks_about_an_object(photos: Seeded) -> None:
    result = explain(photos, "alice-laptop", "s3:PutObject", "photos-data")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "on arn:aws:s3:::photos-data/example" in result.stdout.splitlines()[0]


def test_an_sse_c_upload_is_denied_by_its_statement(photos: Seeded) -> None:
    result = explain(
        photos, "alice-laptop", "s3:PutObject", "photos-data/a.jpg", "--upload", "sse-c"
    )
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("DENIED (explicit): alice-laptop calling s3:PutObject")
    assert (
        "  decided by: Deny statement 'KeyHygieneDenySseC' of the policy of bucket photos-data"
        in lines
    )
    assert "  request keys: s3:x-amz-server-side-encryption-customer-algorithm=AES256" in lines


def test_json_for_scripts(photos: Seeded) -> None:
    result = explain(
        photos, "alice-laptop", "s3:PutObject", "photos-data/a.jpg", "--upload", "kms-key", "--json"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {
        "principal",
        "action",
        "resource",
        "context",
        "outcome",
        "reason",
        "deciding",
        "unknowns",
    }
    assert data["principal"] == f"arn:aws:iam::{ACCOUNT}:user/alice-laptop"
    assert (data["action"], data["resource"]) == ("s3:PutObject", "arn:aws:s3:::photos-data/a.jpg")
    # The application's key, as the bucket policy requires it.
    assert data["context"] == {
        "s3:x-amz-server-side-encryption": "aws:kms",
        "s3:x-amz-server-side-encryption-aws-kms-key-id": photos.key_arn,
    }
    assert data["outcome"] == "allow" and data["unknowns"] == []
    assert {"source": "the policy of bucket photos-data", "sid": "KeyHygieneAllow"}.items() <= (
        data["deciding"][0].items()
    )
    assert all(set(ref) == {"source", "sid", "effect", "index"} for ref in data["deciding"])
    assert all(isinstance(ref["index"], int) for ref in data["deciding"])

    denied = explain(
        photos,
        "alice-laptop",
        "s3:PutObject",
        "photos-data/a.jpg",
        "--context",
        "s3:x-amz-server-side-encryption=AES256",
        "--json",
    )
    assert denied.returncode == 1
    assert json.loads(denied.stdout)["outcome"] == "explicit-deny"


def test_a_non_whitelisted_admin_cannot_decrypt_with_the_application_key(photos: Seeded) -> None:
    result = explain(photos, "bob-admin", "kms:Decrypt", "alias/photos")
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"DENIED (explicit): bob-admin calling kms:Decrypt on {photos.key_arn}"
    assert any("Deny statement 'KeyHygieneDenyOthersUse'" in line for line in lines)
    # ... and the whitelisted computer can.
    assert explain(photos, "alice-laptop", "kms:Decrypt", "alias/photos").returncode == 0


def test_nothing_allowing_it_is_an_implicit_deny(photos: Seeded) -> None:
    for resource in ("*", f"arn:aws:iam::{ACCOUNT}:user/eve"):
        result = explain(photos, "alice-laptop", "iam:CreateUser", resource)
        assert result.returncode == 1, result.stdout + result.stderr
        lines = result.stdout.splitlines()
        assert lines[0] == (
            f"DENIED (nothing allows it): alice-laptop calling iam:CreateUser on {resource}"
        )
        assert "  why: no statement allows it" in lines
        assert any("only identity policies were evaluated" in line for line in lines)
    # bob-admin's own policy allows it; no bucket or key policy is involved.
    assert explain(photos, "bob-admin", "iam:CreateUser", "*").returncode == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("mallory-laptop", "s3:GetObject", "photos-data"), "'mallory-laptop' is no user, role"),
        (("alice-laptop", "s3:GetObject", "no-such-bucket"), "'no-such-bucket' is no bucket"),
        (("alice-laptop", "kms:Decrypt", "alias/nope"), "'alias/nope' is no bucket or KMS key"),
        (("alice-laptop", "s3:GetObject", "photos-data", "--context", "novalue"), "KEY=VALUE"),
        (("alice-laptop", "s3:Get*", "photos-data"), "'s3:Get*' is not one IAM action"),
    ],
)
def test_an_unknown_principal_or_resource_exits_2(
    photos: Seeded, args: tuple[str, ...], message: str
) -> None:
    result = explain(photos, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert result.stdout == ""


def test_the_help_documents_the_exit_codes() -> None:
    result = run_cli("explain", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "Exit status: 0 allowed, 1 denied" in text and "4 the documents do not tell" in text


def test_an_answer_the_documents_do_not_give_exits_4(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """In process, on a fixed snapshot: a customer managed policy keyhygiene
    could not read may allow or deny anything."""
    from dataclasses import replace

    from sample_account import sample_snapshot

    import keyhygiene.aws.inventory
    from keyhygiene.cli.main import main
    from keyhygiene.core.model import PolicyAttachment

    snapshot = sample_snapshot()
    phone = snapshot.user("christopher-phone")
    assert phone is not None
    unread = PolicyAttachment("Unread", f"arn:aws:iam::{ACCOUNT}:policy/Unread")
    snapshot = snapshot.with_user(replace(phone, attached_policies=(unread,)))
    monkeypatch.setattr(keyhygiene.aws.inventory, "load_account", lambda options: (snapshot, None))

    assert main(["explain", "christopher-phone", "s3:GetObject", "christopher-public-share/a"]) == 4
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        "UNKNOWN: christopher-phone calling s3:GetObject on arn:aws:s3:::christopher-public-share/a"
    )
    assert any(
        line.startswith("  cannot tell: user christopher-phone attached policy Unread was not read")
        for line in out
    )


# ---- the questions, from the command line ---------------------------------


def test_admins_by_rule_keep_the_configuration_and_others_do_not(photos: Seeded) -> None:
    assert explain(photos, "ops", "s3:PutBucketPolicy", "photos-data").returncode == 0
    assert explain(photos, "admin", "s3:PutBucketPolicy", "photos-data").returncode == 0
    denied = explain(photos, "bob-admin", "s3:PutBucketPolicy", "photos-data")
    assert denied.returncode == 1 and "KeyHygieneDenyConfiguration" in denied.stdout
    # A computer on the whitelist cannot rewrite it either.
    computer = explain(photos, "alice-laptop", "s3:PutBucketPolicy", "photos-data")
    assert computer.returncode == 1, computer.stdout


@pytest.mark.parametrize(
    ("upload", "sid"),
    [
        ("kms-no-key", "KeyHygieneDenyAwsManagedKey"),
        ("other-key", "KeyHygieneDenyOtherKey"),
        ("aes256", "KeyHygieneDenyWrongEncryption"),
    ],
)
def test_wrong_encryption_uploads_are_denied(photos: Seeded, upload: str, sid: str) -> None:
    result = explain(photos, "alice-laptop", "s3:PutObject", "photos-data/a", "--upload", upload)
    assert result.returncode == 1 and sid in result.stdout
    assert (
        explain(
            photos, "alice-laptop", "s3:PutObject", "photos-data/a", "--upload", "kms-key"
        ).returncode
        == 0
    )


def test_the_borrower_cannot_remove_move_or_outlive_its_expiry(photos: Seeded) -> None:
    me = f"arn:aws:iam::{ACCOUNT}:user/alice-phone"
    for action in ("iam:DeleteUserPolicy", "iam:UntagUser", "iam:TagUser", "iam:UpdateUser"):
        result = explain(photos, "alice-phone", action, me)
        assert result.returncode == 1, (action, result.stdout)
        assert "KeyHygieneExpiryGuard" in result.stdout
    group = f"arn:aws:iam::{ACCOUNT}:group/photos"
    assert explain(photos, "alice-phone", "iam:AddUserToGroup", group).returncode == 1
    # During the loan the group's rights work; after its expiry AWS denies them.
    assert explain(photos, "alice-phone", "ec2:DescribeInstances", "*").returncode == 0
    later = explain(
        photos,
        "alice-phone",
        "ec2:DescribeInstances",
        "*",
        "--context",
        "aws:CurrentTime=2099-01-01T00:00:00Z",
    )
    assert later.returncode == 1 and "KeyHygieneExpiry" in later.stdout


def test_a_revoked_computer_can_do_nothing_and_undo_nothing(photos: Seeded) -> None:
    me = f"arn:aws:iam::{ACCOUNT}:user/alice-old"
    for action, resource in (
        ("s3:GetObject", "photos-data/a.jpg"),
        ("s3:PutObject", "photos-data/a.jpg"),
        ("kms:Decrypt", "alias/photos"),
        ("iam:UpdateAccessKey", me),
        ("iam:CreateAccessKey", me),
        ("iam:DeleteUserPolicy", me),
        ("iam:UntagUser", me),
        ("sts:GetSessionToken", "*"),
    ):
        result = explain(photos, "alice-old", action, resource)
        assert result.returncode == 1, (action, result.stdout)
