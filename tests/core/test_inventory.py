"""Inventory loading against moto in-process."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from keyhygiene.aws.connection import Connection, ConnectionOptions
from keyhygiene.aws.inventory import load_snapshot, load_user_keys
from keyhygiene.core.model import TAG_DEVICE, TAG_GROUPS, TAG_PERSON
from keyhygiene.core.policy_documents import bucket_policy_with_whitelist, key_policy_with_whitelist
from keyhygiene.views.outline import build_outline, filter_outline, outline_text
from keyhygiene.views.snapshot_json import snapshot_json

ACCOUNT = "123456789012"


def _seed() -> None:
    iam = boto3.client("iam", region_name="us-east-1")
    s3 = boto3.client("s3", region_name="us-east-1")
    kms = boto3.client("kms", region_name="us-east-1")
    iam.create_group(GroupName="photos")
    for device in ("laptop", "phone"):
        iam.create_user(
            UserName=f"alice-{device}",
            Tags=[{"Key": TAG_PERSON, "Value": "alice"}, {"Key": TAG_DEVICE, "Value": device}],
        )
        iam.create_access_key(UserName=f"alice-{device}")
    iam.add_user_to_group(UserName="alice-laptop", GroupName="photos")
    iam.create_user(UserName="legacy")
    iam.put_user_policy(
        UserName="legacy",
        PolicyName="all",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
            }
        ),
    )
    iam.create_role(
        RoleName="photos",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
        Tags=[{"Key": TAG_GROUPS, "Value": "photos"}],
    )
    arns = [f"arn:aws:iam::{ACCOUNT}:user/alice-laptop", f"arn:aws:iam::{ACCOUNT}:role/photos"]
    key = kms.create_key(Tags=[{"TagKey": TAG_GROUPS, "TagValue": "photos"}])["KeyMetadata"]
    kms.create_alias(AliasName="alias/photos", TargetKeyId=key["KeyId"])
    policy = json.loads(kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"])
    kms.put_key_policy(
        KeyId=key["KeyId"],
        PolicyName="default",
        Policy=json.dumps(key_policy_with_whitelist(policy, principals=arns)),
    )
    s3.create_bucket(Bucket="photos-data")
    s3.put_bucket_tagging(
        Bucket="photos-data", Tagging={"TagSet": [{"Key": TAG_GROUPS, "Value": "photos"}]}
    )
    s3.put_bucket_policy(
        Bucket="photos-data",
        Policy=json.dumps(
            bucket_policy_with_whitelist(
                None,
                bucket="photos-data",
                principals=arns,
                key_arn=key["Arn"],
                keep_admin_arns=[f"arn:aws:iam::{ACCOUNT}:root"],
            )
        ),
    )
    s3.put_bucket_encryption(
        Bucket="photos-data",
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {
                        "SSEAlgorithm": "aws:kms",
                        "KMSMasterKeyID": key["Arn"],
                    }
                }
            ]
        },
    )
    s3.create_bucket(Bucket="plain")


def _connection() -> Connection:
    return Connection(ConnectionOptions(region="us-east-1"))


@mock_aws
def test_snapshot_holds_the_account() -> None:
    _seed()
    snapshot = load_snapshot(_connection(), this_user="alice-laptop")
    assert snapshot.account_id == ACCOUNT
    assert [u.name for u in snapshot.users] == ["alice-laptop", "alice-phone", "legacy"]
    laptop = snapshot.user("alice-laptop")
    assert laptop is not None and laptop.is_device and laptop.groups == ("photos",)
    assert len(laptop.access_keys) == 1 and laptop.access_keys[0].active
    assert laptop.access_keys[0].id is None  # the report knows slots, not ids
    assert snapshot.group("photos").members == ("alice-laptop",)  # type: ignore[union-attr]
    assert snapshot.role("photos").for_groups == ("photos",)  # type: ignore[union-attr]
    legacy = snapshot.user("legacy")
    assert legacy is not None and not legacy.is_device
    assert legacy.inline_policies[0].document["Statement"][0]["Action"] == "*"
    bucket = snapshot.bucket("photos-data")
    assert bucket is not None and bucket.encryption is not None and bucket.encryption.is_kms
    assert bucket.for_groups == ("photos",)
    assert snapshot.bucket("plain").encryption is None  # type: ignore[union-attr]
    key = snapshot.kms_key("photos")
    assert key is not None and key.aliases == ("alias/photos",)
    assert set(snapshot.whitelist_principals(["photos"])) == {
        f"arn:aws:iam::{ACCOUNT}:user/alice-laptop",
        f"arn:aws:iam::{ACCOUNT}:role/photos",
    }
    assert [app.name for app in snapshot.applications()] == ["photos"]
    assert snapshot.problems == ()


@mock_aws
def test_no_call_per_user() -> None:
    """The inventory's calls do not grow with the number of users."""
    _seed()
    iam = boto3.client("iam", region_name="us-east-1")

    def count(extra_users: int) -> int:
        for i in range(extra_users):
            iam.create_user(UserName=f"bulk-{extra_users}-{i}")
            iam.create_access_key(UserName=f"bulk-{extra_users}-{i}")
        calls: list[str] = []
        conn = _connection()
        for service in ("iam", "s3", "kms", "sts"):
            conn.client(service).meta.events.register(
                "before-call", lambda model, **_: calls.append(model.name)
            )
        load_snapshot(conn)
        # The report is generated once per account; polling it is not per user.
        return len([c for c in calls if c != "GenerateCredentialReport"])

    assert count(0) == count(40)


@mock_aws
def test_user_keys_load_lazily_with_ids() -> None:
    _seed()
    snapshot = load_snapshot(_connection())
    laptop = snapshot.user("alice-laptop")
    assert laptop is not None
    exact = load_user_keys(_connection(), laptop)
    assert (
        exact.keys_exact and exact.access_keys[0].id and exact.access_keys[0].id.startswith("AKIA")
    )
    updated = snapshot.with_user(exact)
    assert updated.user("alice-laptop").keys_exact  # type: ignore[union-attr]


@mock_aws
def test_json_has_no_secret() -> None:
    _seed()
    secret = boto3.client("iam", region_name="us-east-1").create_access_key(UserName="legacy")[
        "AccessKey"
    ]["SecretAccessKey"]
    snapshot = load_snapshot(_connection())
    text = snapshot_json(snapshot)
    assert secret not in text
    data = json.loads(text)
    assert {u["name"] for u in data["users"]} >= {"alice-laptop", "legacy"}
    assert data["applications"][0]["buckets"] == ["photos-data"]


@mock_aws
def test_outline_places_people_and_unassigned() -> None:
    _seed()
    snapshot = load_snapshot(_connection(), this_user="alice-laptop")
    outline = build_outline(snapshot, datetime.now(timezone.utc))
    text = "\n".join(outline_text(outline))
    assert "alice" in text and "laptop  (this computer" in text
    unassigned = outline.find("section", "unassigned")
    assert unassigned is not None and [c.ref for c in unassigned.children] == ["legacy"]
    filtered = filter_outline(outline, "phone")
    assert filtered is not None
    assert filtered.find("device", "alice-phone") is not None
    assert filtered.find("device", "alice-laptop") is None
    assert filter_outline(outline, "no-such-thing").children == ()  # type: ignore[union-attr]


@mock_aws
def test_denied_parts_become_problems_and_the_rest_loads() -> None:
    _seed()
    conn = _connection()
    s3 = conn.client("s3")

    def deny(**_: Any) -> None:
        from botocore.exceptions import ClientError

        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "GetBucketPolicy")

    s3.get_bucket_policy = deny  # type: ignore[method-assign]
    snapshot = load_snapshot(conn)
    assert len(snapshot.users) == 3
    assert any("s3:GetBucketPolicy" in p.message for p in snapshot.problems)


def test_authorization_details_are_paged() -> None:
    """moto ignores MaxItems, so paging is proven with a stubbed client."""
    from keyhygiene.aws import inventory

    client = boto3.client(
        "iam", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    stub = Stubber(client)
    user = {
        "UserName": "a-b",
        "UserId": "AIDAEXAMPLEEXAMPLE01",
        "Arn": f"arn:aws:iam::{ACCOUNT}:user/a-b",
        "Path": "/",
        "CreateDate": datetime(2024, 1, 1, tzinfo=timezone.utc),
    }
    second = {**user, "UserName": "c-d", "Arn": f"arn:aws:iam::{ACCOUNT}:user/c-d"}
    filters = ["User", "Group", "Role", "LocalManagedPolicy"]
    stub.add_response(
        "get_account_authorization_details",
        {"UserDetailList": [user], "IsTruncated": True, "Marker": "m1"},
        {"Filter": filters, "MaxItems": 1000},
    )
    stub.add_response(
        "get_account_authorization_details",
        {"UserDetailList": [second], "IsTruncated": False},
        {"Filter": filters, "MaxItems": 1000, "Marker": "m1"},
    )

    class FakeConnection:
        def client(self, service: str) -> Any:
            return client

    with stub:
        result = inventory._iam(FakeConnection())  # type: ignore[arg-type]
    assert [u.name for u in result.users] == ["a-b", "c-d"]


def test_5000_users_are_five_pages_of_authorization_details() -> None:
    """At 1,000 items a page (IAM's maximum), 5,000 users cost 5 requests, and
    no request is made per user: keys come from the credential report."""
    from keyhygiene.aws import inventory

    client = boto3.client(
        "iam", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    stub = Stubber(client)
    filters = ["User", "Group", "Role", "LocalManagedPolicy"]
    created = datetime(2024, 1, 1, tzinfo=timezone.utc)
    for page in range(5):
        users = [
            {
                "UserName": f"p{n:04d}-laptop",
                "UserId": f"AIDAEXAMPLE{n:09d}",
                "Arn": f"arn:aws:iam::{ACCOUNT}:user/p{n:04d}-laptop",
                "Path": "/",
                "CreateDate": created,
                "GroupList": ["laptops"],
            }
            for n in range(page * 1000, (page + 1) * 1000)
        ]
        last = page == 4
        response: dict[str, Any] = {"UserDetailList": users, "IsTruncated": not last}
        if not last:
            response["Marker"] = f"m{page + 1}"
        expected: dict[str, Any] = {"Filter": filters, "MaxItems": 1000}
        if page:
            expected["Marker"] = f"m{page}"
        stub.add_response("get_account_authorization_details", response, expected)

    class FakeConnection:
        def client(self, service: str) -> Any:
            return client

    with stub:
        result = inventory._iam(FakeConnection())  # type: ignore[arg-type]
    stub.assert_no_pending_responses()
    assert len(result.users) == 5000


def test_unreachable_endpoint_is_a_clear_error() -> None:
    from keyhygiene.core.errors import ConnectionProblem

    conn = Connection(ConnectionOptions(region="us-east-1", endpoint_url="http://127.0.0.1:9"))
    conn._config = conn._config.merge(  # type: ignore[attr-defined]
        __import__("botocore.config").config.Config(retries={"max_attempts": 1}, connect_timeout=1)
    )
    with pytest.raises(ConnectionProblem) as caught:
        load_snapshot(conn)
    assert "Cannot reach" in str(caught.value)


@mock_aws
def test_bucket_arns_follow_the_partition_of_the_account() -> None:
    """In aws-cn, a bucket is arn:aws-cn:s3:::name: the lock-out check compares ARNs."""
    from keyhygiene.aws.connection import Identity

    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="cn-data")

    class ChinaConnection(Connection):
        def whoami(self) -> Identity:
            return Identity(ACCOUNT, f"arn:aws-cn:iam::{ACCOUNT}:user/admin")

    snapshot = load_snapshot(ChinaConnection(ConnectionOptions(region="us-east-1")))
    assert snapshot.bucket("cn-data").arn == "arn:aws-cn:s3:::cn-data"  # type: ignore[union-attr]
