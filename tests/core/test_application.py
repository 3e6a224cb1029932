"""Applications against moto in-process: create, adopt, roll back, refuse, sync."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from helpers import act_as_new_admin
from moto import mock_aws

from keyhygiene.aws import inventory
from keyhygiene.aws.connection import Connection, ConnectionOptions
from keyhygiene.aws.inventory import load_snapshot
from keyhygiene.core.errors import BadInput
from keyhygiene.core.model import (
    TAG_DEVICE,
    TAG_GROUPS,
    TAG_PERSON,
    Bucket,
    Group,
    LoadProblem,
    Role,
    Snapshot,
    User,
)
from keyhygiene.core.policy_documents import (
    SID_BUCKET_DENY_OTHER_KEY,
    PolicyLockout,
    PolicyTooLarge,
    bucket_policy_with_whitelist,
    statements,
    whitelisted_principals,
)
from keyhygiene.plans import ApplyContext, Results, apply_plan, rollback
from keyhygiene.workflows.application import (
    CREATE_KEY,
    Preflight,
    new_key_marker,
    plan_create_application,
    plan_sync_application,
    preflight_application,
    trusts_ec2,
    validate_application_name,
    validate_new_bucket_name,
)
from keyhygiene.workflows.application.actions import _create_key

ACCOUNT = "123456789012"
REGION = "us-east-1"
ADMIN_ARN = f"arn:aws:iam::{ACCOUNT}:user/admin"
ALICE_ARN = f"arn:aws:iam::{ACCOUNT}:user/alice-laptop"
BOB_ARN = f"arn:aws:iam::{ACCOUNT}:user/bob-desktop"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/photos"
ROOT_ARN = f"arn:aws:iam::{ACCOUNT}:root"
FOREIGN = {
    "Sid": "AuditorsRead",
    "Effect": "Allow",
    "Principal": {"AWS": "arn:aws:iam::210987654321:root"},
    "Action": "s3:GetObject",
    "Resource": "arn:aws:s3:::legacy-photos/*",
}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def no_report_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto answers STARTED to the first credential report request; skip the inventory's wait."""
    monkeypatch.setattr(
        inventory, "time", SimpleNamespace(monotonic=time.monotonic, sleep=lambda _s: None)
    )


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Connection]:
    """A moto account with an admin user whose key the connection uses, and two devices.

    A real user's key makes GetCallerIdentity answer with an IAM user ARN, as
    on AWS (moto's default `testing` key answers `arn:aws:sts::…:user/moto`).
    """
    with mock_aws():
        iam = boto3.client("iam", region_name=REGION)
        act_as_new_admin(iam, monkeypatch)
        for person, device in (("alice", "laptop"), ("bob", "desktop")):
            iam.create_user(
                UserName=f"{person}-{device}",
                Tags=[{"Key": TAG_PERSON, "Value": person}, {"Key": TAG_DEVICE, "Value": device}],
            )
        yield Connection(ConnectionOptions(region=REGION))


def create(conn: Connection, name: str, buckets: list[str], members: list[str]) -> Any:
    snapshot = load_snapshot(conn)
    preflight = preflight_application(conn, snapshot, name, buckets)
    plan = plan_create_application(snapshot, name, buckets, members, preflight=preflight)
    report = apply_plan(plan, conn)
    assert report.ok, report.render_text()
    return report


def bucket_policy(name: str) -> dict[str, Any]:
    s3 = boto3.client("s3", region_name=REGION)
    return json.loads(s3.get_bucket_policy(Bucket=name)["Policy"])


def key_policy(key_id: str) -> dict[str, Any]:
    kms = boto3.client("kms", region_name=REGION)
    return json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])


def key_of_alias(alias: str) -> dict[str, Any]:
    kms = boto3.client("kms", region_name=REGION)
    return kms.describe_key(KeyId=alias)["KeyMetadata"]


def by_sid(document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {s.get("Sid", ""): s for s in statements(document)}


def bucket_tags(name: str) -> dict[str, str]:
    s3 = boto3.client("s3", region_name=REGION)
    return {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=name)["TagSet"]}


# --------------------------------------------------------------------------- create


def test_create_makes_everything_whitelisted_encrypted_and_tagged(aws: Connection) -> None:
    create(aws, "photos", ["photos-data"], ["alice-laptop"])
    iam = boto3.client("iam", region_name=REGION)
    s3 = boto3.client("s3", region_name=REGION)
    kms = boto3.client("kms", region_name=REGION)

    members = [u["UserName"] for u in iam.get_group(GroupName="photos")["Users"]]
    assert members == ["alice-laptop"]

    role = iam.get_role(RoleName="photos")["Role"]
    assert trusts_ec2(role["AssumeRolePolicyDocument"])
    assert {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName="photos")["Tags"]} == {
        TAG_GROUPS: "photos"
    }
    profile = iam.get_instance_profile(InstanceProfileName="photos")["InstanceProfile"]
    assert [r["RoleName"] for r in profile["Roles"]] == ["photos"]

    key = key_of_alias("alias/photos")
    tags = kms.list_resource_tags(KeyId=key["KeyId"])["Tags"]
    assert tags == [{"TagKey": TAG_GROUPS, "TagValue": "photos"}]
    policy = key_policy(key["KeyId"])
    assert by_sid(policy)["Enable IAM User Permissions"]["Principal"] == {"AWS": ROOT_ARN}
    assert whitelisted_principals(policy) == {ALICE_ARN, ROLE_ARN}

    rule = s3.get_bucket_encryption(Bucket="photos-data")["ServerSideEncryptionConfiguration"][
        "Rules"
    ][0]["ApplyServerSideEncryptionByDefault"]
    assert rule == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key["Arn"]}
    block = s3.get_public_access_block(Bucket="photos-data")["PublicAccessBlockConfiguration"]
    assert all(block.values()) and len(block) == 4
    assert bucket_tags("photos-data") == {TAG_GROUPS: "photos"}

    document = bucket_policy("photos-data")
    assert whitelisted_principals(document) == {ALICE_ARN, ROLE_ARN}
    sids = by_sid(document)
    excepted = sids["KeyHygieneDenyOthers"]["Condition"]["ArnNotLike"]["aws:PrincipalArn"]
    service_linked = f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/*"
    assert {ADMIN_ARN, ROOT_ARN, ALICE_ARN, ROLE_ARN, service_linked} == set(excepted)
    assert "KeyHygieneDenyWrongEncryption" in sids
    # The marker of the plan became the real key ARN when the step ran.
    other_key = sids[SID_BUCKET_DENY_OTHER_KEY]["Condition"]["StringNotEquals"]
    assert other_key == {"s3:x-amz-server-side-encryption-aws-kms-key-id": key["Arn"]}
    assert new_key_marker("photos") not in json.dumps(document)


def test_create_again_and_sync_plan_nothing(aws: Connection) -> None:
    create(aws, "photos", ["photos-data"], ["alice-laptop"])
    snapshot = load_snapshot(aws)
    again = plan_create_application(
        snapshot,
        "photos",
        ["photos-data"],
        ["alice-laptop"],
        preflight=preflight_application(aws, snapshot, "photos", ["photos-data"]),
    )
    assert again.steps == ()
    assert plan_sync_application(snapshot, "photos").steps == ()


def _unnamed_key(description: str, group: str = "photos") -> str:
    kms = boto3.client("kms", region_name=REGION)
    meta = kms.create_key(
        Description=description, Tags=[{"TagKey": TAG_GROUPS, "TagValue": group}]
    )["KeyMetadata"]
    return str(meta["KeyId"])


def _plan_photos(conn: Connection) -> Any:
    snapshot = load_snapshot(conn)
    preflight = preflight_application(conn, snapshot, "photos", ["photos-data"])
    return plan_create_application(
        snapshot, "photos", ["photos-data"], ["alice-laptop"], preflight=preflight
    )


def test_a_rerun_names_the_key_an_interrupted_run_created(aws: Connection) -> None:
    # The first run was killed after CreateKey answered, before CreateAlias.
    orphan = _unnamed_key("Application photos (keyhygiene)")
    plan = _plan_photos(aws)
    assert any("interrupted run" in warning for warning in plan.warnings)
    report = apply_plan(plan, aws, after_interruption=True)
    assert report.ok, report.render_text()
    assert key_of_alias("alias/photos")["KeyId"] == orphan
    key_step = next(r for r in report.results if r.step_id == "key")
    assert key_step.message == "an earlier run's attempt had done it"
    kms = boto3.client("kms", region_name=REGION)
    assert len(kms.list_keys()["Keys"]) == 1


@pytest.mark.parametrize(
    ("description", "interrupted", "state"),
    [
        ("Application photos (keyhygiene)", False, "Enabled"),  # no interruption known
        ("photos key made by hand", True, "Enabled"),  # someone's own key
        ("Application photos (keyhygiene)", True, "PendingDeletion"),  # a rolled-back run's
    ],
)
def test_a_key_that_is_not_an_interrupted_runs_is_not_adopted(
    aws: Connection, description: str, interrupted: bool, state: str
) -> None:
    other = _unnamed_key(description)
    if state == "PendingDeletion":
        boto3.client("kms", region_name=REGION).schedule_key_deletion(
            KeyId=other, PendingWindowInDays=7
        )
    report = apply_plan(_plan_photos(aws), aws, after_interruption=interrupted)
    assert report.ok, report.render_text()
    assert key_of_alias("alias/photos")["KeyId"] != other


def test_plan_shows_the_marker_and_refs_before_the_key_exists(aws: Connection) -> None:
    snapshot = load_snapshot(aws)
    plan = plan_create_application(snapshot, "photos", ["photos-data"], ["alice-laptop"])
    text = plan.render_text()
    assert "<KeyMetadata.Arn from step 6>" in text
    assert new_key_marker("photos") in text
    assert "PendingWindowInDays" in text and "kms:DeleteAlias" in text
    # Every step that creates something can be undone.
    assert all(step.undo is not None for step in plan.steps)


def test_a_failed_step_rolls_back_everything(aws: Connection) -> None:
    snapshot = load_snapshot(aws)
    plan = plan_create_application(snapshot, "photos", ["photos-data"], ["alice-laptop"])
    clients = _FailingClients(aws, "s3", "put_bucket_tagging")
    report = apply_plan(plan, clients)
    assert not report.ok and report.failed[0].step_id == "bucket-1-tag"
    undone = rollback(report, clients)
    assert undone.ok, undone.render_text()

    iam = boto3.client("iam", region_name=REGION)
    s3 = boto3.client("s3", region_name=REGION)
    kms = boto3.client("kms", region_name=REGION)
    with pytest.raises(ClientError):
        iam.get_group(GroupName="photos")
    with pytest.raises(ClientError):
        iam.get_role(RoleName="photos")
    with pytest.raises(ClientError):
        iam.get_instance_profile(InstanceProfileName="photos")
    assert "photos-data" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert "alias/photos" not in [a["AliasName"] for a in kms.list_aliases()["Aliases"]]
    key_id = report.kept["key"]["KeyMetadata.KeyId"]
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingDeletion"


class _FailingClients:
    """Real moto clients, except that one operation is refused like AWS would."""

    def __init__(self, conn: Connection, service: str, operation: str) -> None:
        self.conn = conn
        self.service = service
        self.operation = operation

    def client(self, service: str) -> Any:
        real = self.conn.client(service)
        return _Refusing(real, self.operation) if service == self.service else real


class _Refusing:
    def __init__(self, real: Any, operation: str) -> None:
        self._real = real
        self._operation = operation

    def __getattr__(self, name: str) -> Any:
        if name == self._operation:

            def refuse(**_params: Any) -> None:
                error = {"Error": {"Code": "InternalError", "Message": "try again"}}
                raise ClientError(error, "PutBucketTagging")  # type: ignore[arg-type]

            return refuse
        return getattr(self._real, name)


# --------------------------------------------------------------------------- adopt


def test_adoption_keeps_foreign_statements_tags_and_members(aws: Connection) -> None:
    iam = boto3.client("iam", region_name=REGION)
    s3 = boto3.client("s3", region_name=REGION)
    iam.create_group(GroupName="photos")
    iam.add_user_to_group(GroupName="photos", UserName="bob-desktop")
    iam.create_role(
        RoleName="photos",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
        Tags=[{"Key": TAG_GROUPS, "Value": "archive"}],
    )
    s3.create_bucket(Bucket="legacy-photos")
    s3.put_bucket_tagging(
        Bucket="legacy-photos", Tagging={"TagSet": [{"Key": "cost-centre", "Value": "42"}]}
    )
    s3.put_bucket_policy(
        Bucket="legacy-photos",
        Policy=json.dumps({"Version": "2012-10-17", "Statement": [FOREIGN]}),
    )

    create(aws, "photos", ["legacy-photos", "photos-new"], ["alice-laptop"])

    members = {u["UserName"] for u in iam.get_group(GroupName="photos")["Users"]}
    assert members == {"alice-laptop", "bob-desktop"}
    role = iam.get_role(RoleName="photos")["Role"]
    services = [s["Principal"]["Service"] for s in role["AssumeRolePolicyDocument"]["Statement"]]
    assert services == ["lambda.amazonaws.com", "ec2.amazonaws.com"]
    role_tags = {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName="photos")["Tags"]}
    assert role_tags[TAG_GROUPS] == "archive photos"

    document = bucket_policy("legacy-photos")
    assert statements(document)[0] == FOREIGN
    assert whitelisted_principals(document) == {ALICE_ARN, BOB_ARN, ROLE_ARN}
    assert bucket_tags("legacy-photos") == {"cost-centre": "42", TAG_GROUPS: "photos"}
    assert whitelisted_principals(bucket_policy("photos-new")) == {ALICE_ARN, BOB_ARN, ROLE_ARN}


def test_adopting_a_key_keeps_its_statements(aws: Connection) -> None:
    kms = boto3.client("kms", region_name=REGION)
    key = kms.create_key(Description="made by hand")["KeyMetadata"]
    kms.create_alias(AliasName="alias/photos", TargetKeyId=key["KeyId"])
    policy = key_policy(key["KeyId"])
    policy["Statement"].append(
        {
            "Sid": "BackupService",
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::210987654321:root"},
            "Action": "kms:Decrypt",
            "Resource": "*",
        }
    )
    kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=json.dumps(policy))

    create(aws, "photos", ["photos-data"], ["alice-laptop"])

    after = key_policy(key["KeyId"])
    assert "BackupService" in by_sid(after)
    assert whitelisted_principals(after) == {ALICE_ARN, ROLE_ARN}
    assert kms.list_resource_tags(KeyId=key["KeyId"])["Tags"] == [
        {"TagKey": TAG_GROUPS, "TagValue": "photos"}
    ]
    assert len(kms.list_keys()["Keys"]) == 1
    s3 = boto3.client("s3", region_name=REGION)
    rule = s3.get_bucket_encryption(Bucket="photos-data")["ServerSideEncryptionConfiguration"]
    assert rule["Rules"][0]["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] == key["Arn"]


# --------------------------------------------------------------------------- sync


def test_sync_repairs_a_broken_whitelist(aws: Connection) -> None:
    create(aws, "photos", ["photos-data"], ["alice-laptop"])
    iam = boto3.client("iam", region_name=REGION)
    s3 = boto3.client("s3", region_name=REGION)
    # Drift: bob joined the group by hand; someone dropped alice from the bucket
    # policy and unblocked public access.
    iam.add_user_to_group(GroupName="photos", UserName="bob-desktop")
    broken = bucket_policy("photos-data")
    for statement in broken["Statement"]:
        if statement["Sid"] == "KeyHygieneAllow":
            statement["Principal"]["AWS"] = [ROLE_ARN]
    s3.put_bucket_policy(Bucket="photos-data", Policy=json.dumps(broken))
    s3.delete_public_access_block(Bucket="photos-data")

    plan = plan_sync_application(load_snapshot(aws), "photos")
    assert len(plan.steps) == 3
    report = apply_plan(plan, aws)
    assert report.ok, report.render_text()

    assert whitelisted_principals(bucket_policy("photos-data")) == {ALICE_ARN, BOB_ARN, ROLE_ARN}
    key = key_of_alias("alias/photos")
    assert whitelisted_principals(key_policy(key["KeyId"])) == {ALICE_ARN, BOB_ARN, ROLE_ARN}
    block = s3.get_public_access_block(Bucket="photos-data")["PublicAccessBlockConfiguration"]
    assert all(block.values())
    assert plan_sync_application(load_snapshot(aws), "photos").steps == ()


def test_a_policy_changed_after_the_snapshot_is_not_overwritten(aws: Connection) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    kms = boto3.client("kms", region_name=REGION)
    s3.create_bucket(Bucket="legacy-photos")
    s3.put_bucket_policy(
        Bucket="legacy-photos",
        Policy=json.dumps({"Version": "2012-10-17", "Statement": [FOREIGN]}),
    )
    key = kms.create_key(Description="made by hand")["KeyMetadata"]
    kms.create_alias(AliasName="alias/photos", TargetKeyId=key["KeyId"])
    snapshot = load_snapshot(aws)
    plan = plan_create_application(snapshot, "photos", ["legacy-photos"], ["alice-laptop"])
    assert plan.step("bucket-1-policy").call.operation == "policy.put_if_unchanged"
    assert plan.step("key-policy").call.operation == "policy.put_if_unchanged"
    # The role is new: both policies name it, so both wait for IAM to know it.
    assert plan.step("key-policy").call.params["WaitFor"] == [ROLE_ARN]
    # A statement is added between the review and the apply.
    changed = {"Version": "2012-10-17", "Statement": [FOREIGN, dict(FOREIGN, Sid="Meanwhile")]}
    s3.put_bucket_policy(Bucket="legacy-photos", Policy=json.dumps(changed))
    report = apply_plan(plan, aws)
    assert [r.step_id for r in report.failed] == ["bucket-1-policy"]
    assert "changed since the account was read; reload and retry" in report.failed[0].message
    assert bucket_policy("legacy-photos") == changed
    assert rollback(report, aws).ok
    assert bucket_policy("legacy-photos") == changed
    # Reloaded, the plan keeps the new statement.
    again = plan_create_application(
        load_snapshot(aws), "photos", ["legacy-photos"], ["alice-laptop"]
    )
    assert apply_plan(again, aws).ok
    assert "Meanwhile" in by_sid(bucket_policy("legacy-photos"))


def test_an_adopted_bucket_gets_its_policy_back_when_a_new_key_plan_fails(
    aws: Connection,
) -> None:
    # The policy step named the new key by a marker; its undo compares with the
    # real key ARN, taken from the journaled result of the key step.
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="legacy-photos")
    original = {"Version": "2012-10-17", "Statement": [FOREIGN]}
    s3.put_bucket_policy(Bucket="legacy-photos", Policy=json.dumps(original))
    plan = plan_create_application(load_snapshot(aws), "photos", ["legacy-photos"], [])
    undo = plan.step("bucket-1-policy").undo
    assert undo is not None and undo.operation == "policy.restore_if_unchanged"
    clients = _FailingClients(aws, "s3", "put_bucket_tagging")
    report = apply_plan(plan, clients)
    assert report.failed[0].step_id == "bucket-1-tag"
    assert new_key_marker("photos") not in json.dumps(bucket_policy("legacy-photos"))
    undone = rollback(report, clients)
    assert undone.ok, undone.render_text()
    assert bucket_policy("legacy-photos") == original


def test_sync_leaves_a_key_policy_changed_since_the_snapshot(aws: Connection) -> None:
    create(aws, "photos", ["photos-data"], ["alice-laptop"])
    iam = boto3.client("iam", region_name=REGION)
    iam.add_user_to_group(GroupName="photos", UserName="bob-desktop")
    plan = plan_sync_application(load_snapshot(aws), "photos")
    key = key_of_alias("alias/photos")
    changed = key_policy(key["KeyId"])
    changed["Statement"].append(dict(FOREIGN, Resource="*", Action="kms:Decrypt"))
    kms = boto3.client("kms", region_name=REGION)
    kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=json.dumps(changed))
    report = apply_plan(plan, aws)
    assert [r.step_id for r in report.failed] == [f"key-policy.{key['KeyId']}"]
    assert key_policy(key["KeyId"]) == changed


def test_sync_of_an_unknown_application_is_refused() -> None:
    with pytest.raises(BadInput, match="no application nothing"):
        plan_sync_application(_snapshot(), "nothing")


# --------------------------------------------------------------------------- preflight


def test_preflight_refuses_a_bucket_of_another_account() -> None:
    s3 = boto3.client("s3", region_name=REGION)
    iam = boto3.client("iam", region_name=REGION)
    with Stubber(s3) as s3_stub, Stubber(iam) as iam_stub:
        s3_stub.add_client_error("head_bucket", service_error_code="403", http_status_code=403)
        iam_stub.add_client_error("get_instance_profile", service_error_code="NoSuchEntity")
        clients = _StubClients({"s3": s3, "iam": iam})
        with pytest.raises(BadInput, match="taken by another AWS account"):
            preflight_application(clients, _snapshot(), "photos", ["taken-name"])


def test_preflight_accepts_a_free_name_and_reads_the_profile() -> None:
    s3 = boto3.client("s3", region_name=REGION)
    iam = boto3.client("iam", region_name=REGION)
    with Stubber(s3) as s3_stub, Stubber(iam) as iam_stub:
        s3_stub.add_client_error("head_bucket", service_error_code="404", http_status_code=404)
        iam_stub.add_response(
            "get_instance_profile",
            {
                "InstanceProfile": {
                    "Path": "/",
                    "InstanceProfileName": "photos",
                    "InstanceProfileId": "AIPAEXAMPLEEXAMPLE01",
                    "Arn": f"arn:aws:iam::{ACCOUNT}:instance-profile/photos",
                    "CreateDate": datetime(2024, 1, 1, tzinfo=timezone.utc),
                    "Roles": [],
                }
            },
        )
        clients = _StubClients({"s3": s3, "iam": iam})
        found = preflight_application(clients, _snapshot(), "photos", ["free-name"])
    assert found == Preflight(instance_profile_roles=())
    # An empty profile of that name is reused: no create step, just the role put in it.
    plan = plan_create_application(_snapshot(), "photos", preflight=found)
    ids = [step.id for step in plan.steps]
    assert "profile" not in ids and "profile-role" in ids


def test_preflight_refuses_a_bucket_it_cannot_see_in_the_snapshot(aws: Connection) -> None:
    snapshot = load_snapshot(aws)
    boto3.client("s3", region_name=REGION).create_bucket(Bucket="made-meanwhile")
    with pytest.raises(BadInput, match="does not list it"):
        preflight_application(aws, snapshot, "photos", ["made-meanwhile"])


def test_a_profile_holding_another_role_is_refused() -> None:
    with pytest.raises(BadInput, match="already holds role web"):
        plan_create_application(
            _snapshot(), "photos", preflight=Preflight(instance_profile_roles=("web",))
        )


class _StubClients:
    def __init__(self, clients: dict[str, Any]) -> None:
        self.clients = clients

    def client(self, service: str) -> Any:
        return self.clients[service]


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "needs a name"),
        ("my app", "not a valid IAM name"),
        ("photos+video", "KMS alias"),
        ("x" * 65, "64 characters"),
    ],
)
def test_bad_application_names(name: str, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        validate_application_name(name)
    with pytest.raises(BadInput):
        plan_create_application(_snapshot(), name)


@pytest.mark.parametrize(
    "bucket",
    ["ab", "Photos", "under_score", "-dash", "a..b", "192.168.1.1", "xn--abc", "data-s3alias"],
)
def test_bad_new_bucket_names(bucket: str) -> None:
    with pytest.raises(BadInput, match="not a valid name for a new bucket"):
        validate_new_bucket_name(bucket)
    with pytest.raises(BadInput):
        plan_create_application(_snapshot(), "photos", [bucket])


def test_an_existing_bucket_with_a_legacy_name_can_be_adopted() -> None:
    legacy = Bucket(name="Legacy_Bucket", arn="arn:aws:s3:::Legacy_Bucket")
    plan = plan_create_application(_snapshot(buckets=(legacy,)), "photos", ["Legacy_Bucket"])
    assert not any(step.id.endswith("-create") for step in plan.steps)


def test_unknown_members_are_named() -> None:
    with pytest.raises(BadInput, match="'carol-phone', 'dave-pc'"):
        plan_create_application(
            _snapshot(), "photos", members=["alice-laptop", "carol-phone", "dave-pc"]
        )


def test_a_revoked_member_is_refused() -> None:
    revoked = User(
        name="eve-laptop",
        arn=f"arn:aws:iam::{ACCOUNT}:user/eve-laptop",
        tags={"keyhygiene:revoked": "2024-01-01T00:00:00Z"},
    )
    with pytest.raises(BadInput, match="was revoked"):
        plan_create_application(_snapshot(users=(revoked,)), "photos", members=["eve-laptop"])


def test_a_member_in_ten_groups_is_refused() -> None:
    busy = User(
        name="busy-pc",
        arn=f"arn:aws:iam::{ACCOUNT}:user/busy-pc",
        groups=tuple(f"g{i}" for i in range(10)),
    )
    with pytest.raises(BadInput, match="10 groups"):
        plan_create_application(_snapshot(users=(busy,)), "photos", members=["busy-pc"])


def test_a_bucket_policy_over_the_size_limit_is_refused() -> None:
    users = tuple(
        User(name=f"person{i}-laptop", arn=f"arn:aws:iam::{ACCOUNT}:user/person{i}-laptop")
        for i in range(300)
    )
    with pytest.raises(PolicyTooLarge, match="bucket policy"):
        plan_create_application(
            _snapshot(users=users), "photos", ["photos-data"], [u.name for u in users]
        )


def test_adopting_a_bucket_whose_policy_locks_out_the_admin_is_refused() -> None:
    deny_all = {
        "Sid": "NoPolicyChanges",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:PutBucketPolicy",
        "Resource": "arn:aws:s3:::locked",
    }
    locked = Bucket(
        name="locked",
        arn="arn:aws:s3:::locked",
        policy={"Version": "2012-10-17", "Statement": [deny_all]},
    )
    with pytest.raises(PolicyLockout):
        plan_create_application(_snapshot(buckets=(locked,)), "photos", ["locked"])


def test_a_bucket_whose_policy_could_not_be_read_is_not_adopted() -> None:
    bucket = Bucket(name="secret-data", arn="arn:aws:s3:::secret-data")
    problem = LoadProblem("S3 bucket secret-data: policy", "Access denied")
    with pytest.raises(BadInput, match="could not read the policy of bucket secret-data"):
        plan_create_application(
            _snapshot(buckets=(bucket,), problems=(problem,)), "photos", ["secret-data"]
        )


def test_a_bucket_whose_policy_is_not_json_is_not_adopted() -> None:
    # The inventory reads a policy that is not JSON as an empty document; the
    # plan refuses it, as every whitelist update does, rather than failing at apply.
    bucket = Bucket(name="odd-data", arn="arn:aws:s3:::odd-data", policy={})
    with pytest.raises(BadInput, match="not a valid JSON policy document"):
        plan_create_application(_snapshot(buckets=(bucket,)), "photos", ["odd-data"])


def test_the_admin_stays_excepted_when_it_acts_through_a_role() -> None:
    # The session ARN has no path; the snapshot's role has it, and that is what
    # aws:PrincipalArn holds.
    ops = Role(name="ops", arn=f"arn:aws:iam::{ACCOUNT}:role/admins/ops")
    snapshot = _snapshot(caller=f"arn:aws:sts::{ACCOUNT}:assumed-role/ops/alice", roles=(ops,))
    plan = plan_create_application(snapshot, "photos", ["photos-data"], ["alice-laptop"])
    after = plan.step("bucket-1-policy").after
    assert after is not None
    excepted = by_sid(after)["KeyHygieneDenyOthers"]["Condition"]["ArnNotLike"]["aws:PrincipalArn"]
    assert ops.arn in excepted and ROOT_ARN in excepted


@pytest.mark.parametrize(
    ("caller", "reason"),
    [
        (f"arn:aws:sts::{ACCOUNT}:user/moto", "only IAM users, roles and the account root"),
        (f"arn:aws:sts::{ACCOUNT}:federated-user/alice", "only IAM users, roles and the account"),
        (f"arn:aws:sts::{ACCOUNT}:assumed-role/ghost/alice", "role ghost is not in the loaded"),
    ],
)
def test_an_admin_the_policies_cannot_name_is_refused(caller: str, reason: str) -> None:
    # With only the root excepted, the admin would be denied s3:* on the
    # bucket, PutBucketPolicy included: only a root login could repair it.
    with pytest.raises(PolicyLockout, match=reason) as caught:
        plan_create_application(
            _snapshot(caller=caller), "photos", ["photos-data"], ["alice-laptop"]
        )
    assert caught.value.actor == caller and caller in str(caught.value)
    # Without buckets the key alone keeps its administration to the admins it lists.
    with pytest.raises(PolicyLockout, match="KMS key policy"):
        plan_create_application(_snapshot(caller=caller), "photos", [], ["alice-laptop"])


def test_group_name_case_follows_the_existing_group() -> None:
    group = Group(name="Photos", arn=f"arn:aws:iam::{ACCOUNT}:group/Photos")
    plan = plan_create_application(_snapshot(groups=(group,)), "photos", ["photos-data"])
    assert plan.title == "Add application Photos"
    assert "group" not in [step.id for step in plan.steps]
    assert plan.step("bucket-1-tag").call.params["Tagging"]["TagSet"] == [
        {"Key": TAG_GROUPS, "Value": "Photos"}
    ]


def _snapshot(
    *,
    users: tuple[User, ...] = (),
    groups: tuple[Group, ...] = (),
    buckets: tuple[Bucket, ...] = (),
    roles: tuple[Role, ...] = (),
    problems: tuple[LoadProblem, ...] = (),
    caller: str = ADMIN_ARN,
) -> Snapshot:
    alice = User(name="alice-laptop", arn=ALICE_ARN)
    return Snapshot(
        account_id=ACCOUNT,
        caller_arn=caller,
        loaded_at=datetime.now(timezone.utc),
        users=(alice, *users),
        groups=groups,
        buckets=buckets,
        roles=roles,
        problems=problems,
    )


# --------------------------------------------------------------------------- eventual consistency


def test_policies_naming_a_new_role_wait_until_it_is_visible() -> None:
    """KMS refuses a policy naming a role IAM created seconds ago; the step waits and retries."""
    calls: list[dict[str, Any]] = []
    waits: list[float] = []

    class Kms:
        def create_key(self, **params: Any) -> dict[str, Any]:
            calls.append(params)
            if len(calls) < 3:
                error = {"Error": {"Code": "MalformedPolicyDocumentException", "Message": "x"}}
                raise ClientError(error, "CreateKey")  # type: ignore[arg-type]
            return {"KeyMetadata": {"KeyId": "k-1", "Arn": "arn"}, "ResponseMetadata": {}}

    plan = plan_create_application(_snapshot(), "photos")
    step = plan.step("key")
    assert step.call.operation == CREATE_KEY and step.call.params["WaitForRole"]
    ctx = ApplyContext(_StubClients({"kms": Kms()}), Results(), {}, sleep=waits.append)
    result = _create_key(ctx, step.call.params)
    assert result == {"KeyMetadata": {"KeyId": "k-1", "Arn": "arn"}}
    assert len(calls) == 3 and waits == [1, 2]
    assert json.loads(calls[0]["Policy"]) == step.after


def test_other_errors_are_not_retried() -> None:
    class Kms:
        def create_key(self, **_params: Any) -> None:
            raise ClientError({"Error": {"Code": "LimitExceededException"}}, "CreateKey")  # type: ignore[arg-type]

    step = plan_create_application(_snapshot(), "photos").step("key")
    ctx = ApplyContext(_StubClients({"kms": Kms()}), Results(), {}, sleep=pytest.fail)
    with pytest.raises(ClientError):
        _create_key(ctx, step.call.params)


def test_a_key_made_by_an_attempt_botocore_retried_is_deleted(aws: Connection) -> None:
    """The first CreateKey took effect but its answer was lost; the retry made a
    second key. Only the answered key is kept: the other is scheduled for deletion."""
    plan = _plan_photos(aws)
    step = plan.step("key")
    kms = boto3.client("kms", region_name=REGION)
    lost = kms.create_key(**step.call.params["Params"])["KeyMetadata"]["KeyId"]
    other = _unnamed_key("photos key made by hand")
    real = aws.client("kms")

    class Retried:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def create_key(self, **params: Any) -> dict[str, Any]:
            answer = dict(real.create_key(**params))
            answer["ResponseMetadata"] = {"RetryAttempts": 1}
            return answer

    ctx = ApplyContext(_StubClients({"kms": Retried()}), Results(), {})
    made = _create_key(ctx, step.call.params)["KeyMetadata"]["KeyId"]
    states = {k: kms.describe_key(KeyId=k)["KeyMetadata"]["KeyState"] for k in (lost, other, made)}
    assert states == {lost: "PendingDeletion", other: "Enabled", made: "Enabled"}


def test_an_existing_role_needs_no_waiting() -> None:
    role = Role(name="photos", arn=ROLE_ARN, trust_policy={}, instance_profiles=("photos",))
    plan = plan_create_application(_snapshot(roles=(role,)), "photos")
    assert not plan.step("key").call.params["WaitForRole"]


def _run_local(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    from keyhygiene.workflows.application.actions import _retry_until_principals_visible

    return _retry_until_principals_visible(ctx, params)


def test_adopting_a_bucket_of_another_application_keeps_its_choices() -> None:
    other_admin = f"arn:aws:iam::{ACCOUNT}:user/other-admin"
    earlier = bucket_policy_with_whitelist(
        {"Version": "2012-10-17", "Statement": [FOREIGN]},
        bucket="shared-data",
        principals=[BOB_ARN],
        keep_admin_arns=[ROOT_ARN, other_admin],
    )
    bob = User(name="bob-desktop", arn=BOB_ARN, groups=("archive",))
    archive = Group(
        name="archive", arn=f"arn:aws:iam::{ACCOUNT}:group/archive", members=("bob-desktop",)
    )
    shared = Bucket(
        name="shared-data",
        arn="arn:aws:s3:::shared-data",
        tags={TAG_GROUPS: "archive"},
        policy=earlier,
    )
    plan = plan_create_application(
        _snapshot(users=(bob,), groups=(archive,), buckets=(shared,)),
        "photos",
        ["shared-data"],
        ["alice-laptop"],
    )
    after = plan.step("bucket-1-policy").after
    assert after is not None
    assert statements(after)[0] == FOREIGN
    assert whitelisted_principals(after) == {ALICE_ARN, BOB_ARN, ROLE_ARN}
    sids = by_sid(after)
    assert (
        other_admin in sids["KeyHygieneDenyOthers"]["Condition"]["ArnNotLike"]["aws:PrincipalArn"]
    )
    assert "Null" in sids["KeyHygieneDenyWrongEncryption"]["Condition"]
    assert plan.step("bucket-1-tag").call.params["Tagging"]["TagSet"] == [
        {"Key": TAG_GROUPS, "Value": "archive photos"}
    ]
    assert any("also tagged for archive" in warning for warning in plan.warnings)


def test_in_china_ec2_is_trusted_under_its_own_service_principal() -> None:
    """aws-cn names EC2 ec2.amazonaws.com.cn: the new role's trust uses it, and a
    role that already trusts it is not given a second trust statement."""
    caller = f"arn:aws-cn:iam::{ACCOUNT}:user/admin"
    plan = plan_create_application(_snapshot(caller=caller), "photos")
    trust = json.loads(plan.step("role").call.params["AssumeRolePolicyDocument"])
    assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com.cn"}
    assert trusts_ec2(trust)
    role = Role(name="photos", arn=f"arn:aws-cn:iam::{ACCOUNT}:role/photos", trust_policy=trust)
    adopted = plan_create_application(_snapshot(caller=caller, roles=(role,)), "photos")
    assert "role-trust" not in {step.id for step in adopted.steps}
