"""Whitelist steps from memberships: pure, on hand-built snapshots."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws

from keyhygiene.aws.propagation import PROPAGATION_WAITS, retry_until_visible
from keyhygiene.core.errors import BadInput
from keyhygiene.core.model import (
    TAG_GROUPS,
    Bucket,
    Encryption,
    Group,
    KmsKey,
    LoadProblem,
    Role,
    Snapshot,
    User,
)
from keyhygiene.core.policy_documents import (
    PolicyLockout,
    PolicyTooLarge,
    bucket_policy_with_whitelist,
    default_key_policy,
    key_policy_with_whitelist,
    whitelisted_principals,
)
from keyhygiene.plans import ApplyReport, ClientCache, Plan, Step, apply_plan, rollback
from keyhygiene.steps.whitelists import (
    PUT_IF_UNCHANGED,
    RESTORE_IF_UNCHANGED,
    members_after_change,
    principals_after,
    same_policy,
    user_arn,
    whitelist_steps,
)

ACCOUNT = "123456789012"
ADMIN = f"arn:aws:iam::{ACCOUNT}:user/admin"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
PHOTOS = {TAG_GROUPS: "photos"}


def arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:user/{name}"


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
    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/auditor"},
    "Action": "kms:DescribeKey",
    "Resource": "*",
}


def foreign_bucket_policy() -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [FOREIGN_BUCKET]}


def foreign_key_policy() -> dict[str, Any]:
    policy = default_key_policy(ACCOUNT)
    policy["Statement"].append(FOREIGN_KEY)
    return policy


def snapshot(
    *,
    bucket_policy: dict[str, Any] | None = None,
    key_policy: dict[str, Any] | None = None,
    members: tuple[str, ...] = ("bob-phone",),
    extra_buckets: tuple[Bucket, ...] = (),
    problems: tuple[LoadProblem, ...] = (),
    roles: tuple[Role, ...] = (),
    caller: str = ADMIN,
) -> Snapshot:
    users = tuple(
        User(name=name, arn=arn(name), groups=("photos",))
        for name in sorted({*members, "carol-desk"})
    )
    return Snapshot(
        account_id=ACCOUNT,
        caller_arn=caller,
        loaded_at=datetime(2025, 1, 1, tzinfo=timezone.utc),
        users=users,
        groups=(
            Group("photos", f"arn:aws:iam::{ACCOUNT}:group/photos", members=members),
            Group("music", f"arn:aws:iam::{ACCOUNT}:group/music", members=("carol-desk",)),
        ),
        roles=roles,
        buckets=(
            Bucket(
                "photos-data",
                "arn:aws:s3:::photos-data",
                tags=PHOTOS,
                policy=bucket_policy,
                encryption=Encryption("aws:kms", KEY_ARN),
            ),
            Bucket("unrelated", "arn:aws:s3:::unrelated", policy=None),
            *extra_buckets,
        ),
        kms_keys=(
            KmsKey(
                "1234abcd-12ab-34cd-56ef-1234567890ab",
                KEY_ARN,
                aliases=("alias/photos",),
                tags=PHOTOS,
                policy=key_policy if key_policy is not None else foreign_key_policy(),
            ),
        ),
        problems=problems,
    )


def joining(snap: Snapshot, user: str = "alice-laptop") -> dict[str, set[str]]:
    return members_after_change(snap, user, joins=["photos"])


def test_new_member_is_whitelisted_in_bucket_and_key_with_foreign_statements_kept() -> None:
    snap = snapshot(bucket_policy=foreign_bucket_policy())
    steps = whitelist_steps(snap, joining(snap))
    assert [s.id for s in steps] == [
        "bucket-policy.photos-data",
        "key-policy.1234abcd-12ab-34cd-56ef-1234567890ab",
    ]
    bucket, key = steps
    assert whitelisted_principals(bucket.after) == {arn("alice-laptop"), arn("bob-phone")}
    assert FOREIGN_BUCKET in bucket.after["Statement"]
    assert whitelisted_principals(key.after) == {arn("alice-laptop"), arn("bob-phone")}
    assert FOREIGN_KEY in key.after["Statement"]
    assert bucket.description == (
        "Whitelist alice-laptop, bob-phone in the policy of bucket photos-data (adds "
        "KeyHygieneDenyAwsManagedKey, KeyHygieneDenyConfiguration, KeyHygieneDenyOtherKey, "
        "KeyHygieneDenyOthers, KeyHygieneDenySseC, KeyHygieneDenyWrongEncryption)"
    )
    assert key.description.startswith("Whitelist alice-laptop, bob-phone in the policy of KMS key")
    # The call carries the document shown as "after", written only over "before";
    # the undo puts "before" back only over "after".
    assert (bucket.call.service, bucket.call.operation) == ("local", PUT_IF_UNCHANGED)
    assert json.loads(bucket.call.params["Policy"]) == bucket.after
    assert bucket.before == foreign_bucket_policy()
    assert bucket.undo is not None and bucket.undo.operation == RESTORE_IF_UNCHANGED
    assert dict(bucket.undo.params) == {"Bucket": "photos-data"}
    assert key.call.params["PolicyName"] == "default"
    assert key.before == foreign_key_policy()
    assert key.undo is not None and key.undo.operation == RESTORE_IF_UNCHANGED
    # alice-laptop is not in the snapshot: a new user, worth waiting for.
    assert bucket.call.params["WaitFor"] == [arn("alice-laptop")]
    assert key.call.params["WaitFor"] == [arn("alice-laptop")]


def test_bucket_without_policy_gets_our_statements() -> None:
    snap = snapshot(bucket_policy=None)
    step = whitelist_steps(snap, joining(snap))[0]
    assert step.before is None
    sids = [s["Sid"] for s in step.after["Statement"]]  # type: ignore[index]
    assert sids[:4] == [
        "KeyHygieneAllow",
        "KeyHygieneDenyOthers",
        "KeyHygieneDenyConfiguration",
        "KeyHygieneDenyWrongEncryption",
    ]
    # The bucket's default encryption key becomes the one uploads must use.
    assert "KeyHygieneDenyOtherKey" in sids
    deny_others = step.after["Statement"][1]  # type: ignore[index]
    excepted = deny_others["Condition"]["ArnNotLike"]["aws:PrincipalArn"]
    assert ROOT in excepted and ADMIN in excepted  # the admins keep control


def test_unchanged_resources_produce_no_step_and_untagged_ones_are_ignored() -> None:
    members = ("alice-laptop", "bob-phone")
    current_bucket = bucket_policy_with_whitelist(
        foreign_bucket_policy(),
        bucket="photos-data",
        principals=[arn(m) for m in members],
        key_arn=KEY_ARN,
        keep_admin_arns=[ROOT, ADMIN],
    )
    current_key = key_policy_with_whitelist(
        foreign_key_policy(), principals=[arn(m) for m in members], keep_admin_arns=[ROOT, ADMIN]
    )
    snap = snapshot(bucket_policy=current_bucket, key_policy=current_key, members=members)
    assert whitelist_steps(snap, joining(snap)) == []
    # A group no resource is tagged for: nothing either.
    assert whitelist_steps(snap, {"music": {"carol-desk", "alice-laptop"}}) == []


def test_leaving_removes_the_principal_and_the_empty_allow() -> None:
    snap = snapshot(bucket_policy=foreign_bucket_policy())
    current_bucket = whitelist_steps(snap, joining(snap))[0].after
    current_key = key_policy_with_whitelist(
        foreign_key_policy(), principals=[arn("alice-laptop"), arn("bob-phone")]
    )
    snap = snapshot(
        bucket_policy=dict(current_bucket or {}), key_policy=current_key, members=("bob-phone",)
    )
    steps = whitelist_steps(snap, members_after_change(snap, "bob-phone", leaves=["photos"]))
    bucket = steps[0]
    assert whitelisted_principals(bucket.after) == set()
    assert (
        bucket.description == "Remove alice-laptop, bob-phone from the policy of bucket photos-data"
    )
    assert FOREIGN_BUCKET in bucket.after["Statement"]  # type: ignore[index]
    key = steps[1]
    assert [s.get("Sid") for s in key.after["Statement"]] == [  # type: ignore[index]
        "Enable IAM User Permissions",
        "AuditorDescribe",
        "KeyHygieneDenyOthersUse",  # nobody left on the whitelist: it denies everyone
        "KeyHygieneDenyOthersAdmin",  # the admins keep the key's administration
    ]


def test_roles_and_other_groups_of_a_resource_are_whitelisted_too() -> None:
    role = Role("photos", f"arn:aws:iam::{ACCOUNT}:role/photos", tags=PHOTOS)
    shared = Bucket(
        "shared-data",
        "arn:aws:s3:::shared-data",
        tags={TAG_GROUPS: "photos music"},
        policy=None,
    )
    snap = snapshot(extra_buckets=(shared,), roles=(role,))
    steps = {s.id: s for s in whitelist_steps(snap, joining(snap))}
    assert whitelisted_principals(steps["bucket-policy.shared-data"].after) == {
        arn("alice-laptop"),
        arn("bob-phone"),
        arn("carol-desk"),  # a member of music, unchanged
        role.arn,
    }
    assert "role photos" in steps["bucket-policy.photos-data"].description


def test_existing_keyhygiene_settings_are_kept() -> None:
    other_key = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/ffffffff-12ab-34cd-56ef-1234567890ab"
    old_admin = arn("old-admin")
    current = bucket_policy_with_whitelist(
        None,
        bucket="photos-data",
        principals=[arn("bob-phone")],
        key_arn=other_key,
        keep_admin_arns=[ROOT, old_admin],
    )
    snap = snapshot(bucket_policy=current)
    after = whitelist_steps(snap, joining(snap))[0].after
    assert after == bucket_policy_with_whitelist(
        None,
        bucket="photos-data",
        principals=[arn("alice-laptop"), arn("bob-phone")],
        key_arn=other_key,
        keep_admin_arns=[ROOT, old_admin, ADMIN],
    )


def test_drift_is_repaired_and_said() -> None:
    # The policy forgot bob-phone; a new member's plan puts him back and says so.
    current = bucket_policy_with_whitelist(
        None, bucket="photos-data", principals=[], key_arn=KEY_ARN, keep_admin_arns=[ROOT, ADMIN]
    )
    snap = snapshot(bucket_policy=current)
    step = whitelist_steps(snap, joining(snap))[0]
    assert step.description == (
        "Whitelist alice-laptop, bob-phone in the policy of bucket photos-data"
    )


def test_a_policy_that_is_not_json_is_refused() -> None:
    # The inventory turns a document it cannot parse into an empty mapping.
    snap = snapshot(bucket_policy={})
    with pytest.raises(BadInput, match="not a valid JSON policy document"):
        whitelist_steps(snap, joining(snap))


def test_a_policy_that_could_not_be_read_is_refused_naming_the_permission() -> None:
    problem = LoadProblem(
        "KMS key alias/photos: policy",
        "Access denied while reading KMS key alias/photos: policy: the identity in use "
        "lacks kms:GetKeyPolicy.",
    )
    snap = snapshot(problems=(problem,))
    with pytest.raises(BadInput, match="kms:GetKeyPolicy"):
        whitelist_steps(snap, joining(snap))


def test_key_policy_lockout_is_refused() -> None:
    # Only a foreign role may administer the key: the admin would lose it.
    key_policy = {"Version": "2012-10-17", "Statement": [dict(FOREIGN_KEY, Action="kms:*")]}
    snap = snapshot(key_policy=key_policy)
    with pytest.raises(PolicyLockout, match="kms:GetKeyPolicy"):
        whitelist_steps(snap, joining(snap))


def test_bucket_policy_lockout_is_refused() -> None:
    freeze = {
        "Sid": "NoPolicyChanges",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:PutBucketPolicy",
        "Resource": "arn:aws:s3:::photos-data",
    }
    snap = snapshot(bucket_policy={"Version": "2012-10-17", "Statement": [freeze]})
    with pytest.raises(PolicyLockout, match="NoPolicyChanges"):
        whitelist_steps(snap, joining(snap))


def test_oversized_policy_is_refused() -> None:
    big = dict(
        FOREIGN_BUCKET,
        Sid="Big",
        Resource=[f"arn:aws:s3:::photos-data/{i:05}/*" for i in range(600)],
    )
    snap = snapshot(bucket_policy={"Version": "2012-10-17", "Statement": [big]})
    with pytest.raises(PolicyTooLarge, match="bucket photos-data"):
        whitelist_steps(snap, joining(snap))


def test_steps_make_a_valid_plan_that_survives_json() -> None:
    snap = snapshot(bucket_policy=foreign_bucket_policy())
    plan = Plan("test", "whitelist", tuple(whitelist_steps(snap, joining(snap))))
    assert Plan.from_json(json.loads(json.dumps(plan.to_json()))) == plan
    assert "the policy shown after the change below" in plan.render_text()


def test_members_after_change_and_arns() -> None:
    snap = snapshot()
    assert members_after_change(snap, "alice-laptop", joins=["PHOTOS"]) == {
        "photos": {"alice-laptop", "bob-phone"}
    }
    assert members_after_change(snap, "BOB-PHONE", leaves=["photos"]) == {"photos": set()}
    assert members_after_change(snap, "x", joins=["new-group"]) == {"new-group": {"x"}}
    assert user_arn(snap, "bob-phone") == arn("bob-phone")
    assert user_arn(snap, "alice-laptop") == arn("alice-laptop")  # not created yet
    assert principals_after(snap, ["photos"], {}) == (arn("bob-phone"),)


# ---- who stays excepted from KeyHygieneDenyOthers ---------------------------------


@pytest.mark.parametrize(
    "caller",
    [
        f"arn:aws:sts::{ACCOUNT}:user/moto",  # moto's default identity
        f"arn:aws:sts::{ACCOUNT}:federated-user/alice",
    ],
)
def test_an_actor_the_exception_list_cannot_name_is_refused(caller: str) -> None:
    # Listing only the root would spare the root user alone: the actor would
    # lose the bucket, its policy included. Refused, naming the actor.
    snap = snapshot(bucket_policy=foreign_bucket_policy(), caller=caller)
    with pytest.raises(PolicyLockout, match="bucket photos-data") as caught:
        whitelist_steps(snap, joining(snap))
    assert caught.value.actor == caller
    assert caller in str(caught.value) and "cannot list" in str(caught.value)


def test_a_role_session_is_excepted_as_its_role_with_its_path() -> None:
    ops = Role("ops", f"arn:aws:iam::{ACCOUNT}:role/admins/ops")
    session = f"arn:aws:sts::{ACCOUNT}:assumed-role/ops/alice"
    snap = snapshot(bucket_policy=foreign_bucket_policy(), caller=session, roles=(ops,))
    bucket = whitelist_steps(snap, joining(snap))[0]
    deny = next(s for s in bucket.after["Statement"] if s.get("Sid") == "KeyHygieneDenyOthers")  # type: ignore[index]
    excepted = deny["Condition"]["ArnNotLike"]["aws:PrincipalArn"]
    assert ops.arn in excepted and ROOT in excepted
    assert f"arn:aws:iam::{ACCOUNT}:role/ops" not in excepted  # the path-less guess


def test_a_role_session_whose_role_is_unknown_is_refused() -> None:
    session = f"arn:aws:sts::{ACCOUNT}:assumed-role/ghost/alice"
    snap = snapshot(bucket_policy=foreign_bucket_policy(), caller=session)
    with pytest.raises(PolicyLockout, match="role ghost is not in the loaded account"):
        whitelist_steps(snap, joining(snap))


def test_a_root_only_exception_list_gets_the_admin_back() -> None:
    # A policy written by hand (or an old run) excepting only the root: the
    # admin is denied today; the new document lists it again.
    current = bucket_policy_with_whitelist(
        None, bucket="photos-data", principals=[arn("bob-phone")], keep_admin_arns=[ROOT]
    )
    snap = snapshot(bucket_policy=current)
    after = whitelist_steps(snap, joining(snap))[0].after
    deny = next(s for s in after["Statement"] if s.get("Sid") == "KeyHygieneDenyOthers")  # type: ignore[index]
    assert ADMIN in deny["Condition"]["ArnNotLike"]["aws:PrincipalArn"]


# ---- applying: nothing overwritten that changed since the snapshot ---------------


@pytest.fixture
def aws() -> Iterator[dict[str, Any]]:
    """moto with bucket photos-data (a foreign statement) and a KMS key tagged photos."""
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        kms = boto3.client("kms", region_name="us-east-1")
        s3.create_bucket(Bucket="photos-data")
        s3.put_bucket_policy(Bucket="photos-data", Policy=json.dumps(foreign_bucket_policy()))
        key = kms.create_key()["KeyMetadata"]
        kms.put_key_policy(
            KeyId=key["KeyId"], PolicyName="default", Policy=json.dumps(foreign_key_policy())
        )
        yield {"s3": s3, "kms": kms, "key": key}


def moto_snapshot(aws: dict[str, Any]) -> Snapshot:
    """The hand-built snapshot, pointing at moto's key."""
    snap = snapshot(bucket_policy=foreign_bucket_policy())
    key = replace(snap.kms_keys[0], key_id=aws["key"]["KeyId"], arn=aws["key"]["Arn"])
    return replace(snap, kms_keys=(key,))


def bucket_policy_now(aws: dict[str, Any]) -> dict[str, Any]:
    return json.loads(aws["s3"].get_bucket_policy(Bucket="photos-data")["Policy"])


def key_policy_now(aws: dict[str, Any]) -> dict[str, Any]:
    text = aws["kms"].get_key_policy(KeyId=aws["key"]["KeyId"], PolicyName="default")["Policy"]
    return json.loads(text)


def apply(steps: list[Step], **kwargs: Any) -> ApplyReport:
    plan = Plan("test", "whitelist", tuple(steps))
    return apply_plan(plan, ClientCache(boto3, region_name="us-east-1"), **kwargs)


EXTRA = {
    "Sid": "AddedMeanwhile",
    "Effect": "Allow",
    "Principal": {"AWS": "arn:aws:iam::210987654321:root"},
    "Action": "s3:ListBucket",
    "Resource": "arn:aws:s3:::photos-data",
}


def test_unchanged_policies_are_written_and_rolled_back(aws: dict[str, Any]) -> None:
    snap = moto_snapshot(aws)
    steps = whitelist_steps(snap, joining(snap))
    report = apply(steps)
    assert report.ok, report.render_text()
    assert bucket_policy_now(aws) == steps[0].after
    assert key_policy_now(aws) == steps[1].after
    undone = rollback(report, ClientCache(boto3, region_name="us-east-1"))
    assert undone.ok, undone.render_text()
    assert bucket_policy_now(aws) == foreign_bucket_policy()
    assert key_policy_now(aws) == foreign_key_policy()
    # Applying again a step that already took effect (a resumed run) writes nothing.
    assert apply(steps).ok
    assert apply(steps).ok
    assert bucket_policy_now(aws) == steps[0].after


def test_a_policy_changed_since_the_snapshot_is_not_overwritten(aws: dict[str, Any]) -> None:
    snap = moto_snapshot(aws)
    steps = whitelist_steps(snap, joining(snap))
    # Someone adds a statement between planning and applying.
    changed = {"Version": "2012-10-17", "Statement": [FOREIGN_BUCKET, EXTRA]}
    aws["s3"].put_bucket_policy(Bucket="photos-data", Policy=json.dumps(changed))
    report = apply(steps)
    (failed,) = report.failed
    assert failed.step_id == "bucket-policy.photos-data"
    assert "The policy of bucket photos-data changed since the account was read" in failed.message
    assert "reload and retry" in failed.message
    assert bucket_policy_now(aws) == changed  # nothing was overwritten
    assert key_policy_now(aws) == foreign_key_policy()  # the plan stopped there


def test_a_key_policy_changed_since_the_snapshot_is_not_overwritten(aws: dict[str, Any]) -> None:
    snap = moto_snapshot(aws)
    key_step = whitelist_steps(snap, joining(snap))[1]
    changed = foreign_key_policy()
    changed["Statement"].append(dict(FOREIGN_KEY, Sid="AddedMeanwhile"))
    aws["kms"].put_key_policy(
        KeyId=aws["key"]["KeyId"], PolicyName="default", Policy=json.dumps(changed)
    )
    report = apply([key_step])
    assert "changed since the account was read" in report.failed[0].message
    assert key_policy_now(aws) == changed


def test_the_undo_leaves_a_policy_changed_since_the_plan_set_it(aws: dict[str, Any]) -> None:
    snap = moto_snapshot(aws)
    steps = whitelist_steps(snap, joining(snap))
    report = apply(steps)
    assert report.ok
    edited = {**steps[0].after, "Statement": [*steps[0].after["Statement"], EXTRA]}  # type: ignore[index]
    aws["s3"].put_bucket_policy(Bucket="photos-data", Policy=json.dumps(edited))
    undone = rollback(report, ClientCache(boto3, region_name="us-east-1"))
    assert not undone.ok
    (failed,) = undone.failed
    assert failed.step_id == "bucket-policy.photos-data"
    assert "changed since this plan set it" in failed.message
    assert bucket_policy_now(aws) == edited  # left as the person made it
    assert key_policy_now(aws) == foreign_key_policy()  # the key was still ours to undo


def test_a_bucket_that_had_no_policy_gets_none_back(aws: dict[str, Any]) -> None:
    aws["s3"].delete_bucket_policy(Bucket="photos-data")
    snap = replace(
        moto_snapshot(aws), buckets=(replace(moto_snapshot(aws).buckets[0], policy=None),)
    )
    step = whitelist_steps(snap, joining(snap))[0]
    report = apply([step])
    assert report.ok, report.render_text()
    assert rollback(report, ClientCache(boto3, region_name="us-east-1")).ok
    with pytest.raises(ClientError, match="NoSuchBucketPolicy"):
        aws["s3"].get_bucket_policy(Bucket="photos-data")


def test_same_policy_ignores_key_order_and_one_element_lists() -> None:
    a = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:Get*"]}]}
    b = {"Statement": {"Action": "s3:Get*", "Effect": "Allow"}, "Version": "2012-10-17"}
    assert same_policy(a, b)
    assert not same_policy(a, None)
    assert same_policy(None, None)
    assert not same_policy(a, {**b, "Statement": [{"Effect": "Deny", "Action": "s3:Get*"}]})


# ---- a new principal: wait until S3 and KMS know it ------------------------------


def malformed(stub: Stubber, operation: str, code: str, times: int) -> None:
    for _ in range(times):
        stub.add_client_error(
            operation, service_error_code=code, service_message="Invalid principal in policy"
        )


class StubClients:
    def __init__(self, **clients: Any) -> None:
        self.clients = clients

    def client(self, service: str) -> Any:
        return self.clients[service]


def test_whitelisting_a_new_user_waits_until_s3_and_kms_know_it() -> None:
    snap = snapshot(bucket_policy=foreign_bucket_policy())
    bucket_step, key_step = whitelist_steps(snap, joining(snap))
    s3 = boto3.client("s3", region_name="us-east-1")
    kms = boto3.client("kms", region_name="us-east-1")
    slept: list[float] = []
    with Stubber(s3) as s3_stub, Stubber(kms) as kms_stub:
        s3_stub.add_response("get_bucket_policy", {"Policy": json.dumps(foreign_bucket_policy())})
        malformed(s3_stub, "put_bucket_policy", "MalformedPolicy", 2)
        s3_stub.add_response("put_bucket_policy", {})
        kms_stub.add_response("get_key_policy", {"Policy": json.dumps(foreign_key_policy())})
        malformed(kms_stub, "put_key_policy", "MalformedPolicyDocumentException", 1)
        kms_stub.add_response("put_key_policy", {})
        report = apply_plan(
            Plan("test", "whitelist", (bucket_step, key_step)),
            StubClients(s3=s3, kms=kms),
            sleep=slept.append,
        )
        s3_stub.assert_no_pending_responses()
        kms_stub.assert_no_pending_responses()
    assert report.ok, report.render_text()
    assert slept == [1, 2, 1]


def test_a_policy_naming_no_new_principal_fails_at_once() -> None:
    # bob-phone is known: a MalformedPolicy means the document is wrong, not "not yet".
    snap = snapshot(bucket_policy=foreign_bucket_policy())
    members = members_after_change(snap, "carol-desk", joins=["photos"])
    bucket_step = whitelist_steps(snap, members)[0]
    assert "WaitFor" not in bucket_step.call.params
    s3 = boto3.client("s3", region_name="us-east-1")
    with Stubber(s3) as stub:
        stub.add_response("get_bucket_policy", {"Policy": json.dumps(foreign_bucket_policy())})
        malformed(stub, "put_bucket_policy", "MalformedPolicy", 1)
        report = apply_plan(
            Plan("test", "whitelist", (bucket_step,)), StubClients(s3=s3), sleep=pytest.fail
        )
    assert "MalformedPolicy" in report.failed[0].message


def test_retry_until_visible_is_bounded_and_picky() -> None:
    error = ClientError({"Error": {"Code": "MalformedPolicy"}}, "PutBucketPolicy")
    tries: list[int] = []

    def never() -> None:
        tries.append(1)
        raise error

    slept: list[float] = []
    with pytest.raises(ClientError):
        retry_until_visible(never, sleep=slept.append, clock=lambda: 0.0)
    assert slept == list(PROPAGATION_WAITS) and len(tries) == len(PROPAGATION_WAITS) + 1

    # The time budget stops it sooner, whatever the pauses left.
    now = [0.0]

    def clock() -> float:
        return now[0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    tries.clear()
    with pytest.raises(ClientError):
        retry_until_visible(never, sleep=sleep, clock=clock, budget=10)
    assert now[0] == 7 and len(tries) == 4  # waits 1, 2, 4; the next 8 would pass 10 s

    def other() -> None:
        raise ClientError({"Error": {"Code": "AccessDenied"}}, "PutBucketPolicy")

    with pytest.raises(ClientError, match="AccessDenied"):
        retry_until_visible(other, sleep=pytest.fail)
