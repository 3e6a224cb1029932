"""Enrollment: name rules, the plan, and the whole checklist applied against moto."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from keyhygiene.aws.connection import Connection, ConnectionOptions, forget_mfa_sessions
from keyhygiene.aws.inventory import load_snapshot
from keyhygiene.core.errors import BadInput, ConnectionProblem, KeyHygieneError
from keyhygiene.core.model import DEVICES_GROUP, TAG_GROUPS, Group, Snapshot, User
from keyhygiene.core.policy_documents import whitelisted_principals
from keyhygiene.local import credentials_file
from keyhygiene.plans import (
    ApplyContext,
    Results,
    ResumeImpossible,
    apply_plan,
    register_local_action,
    resume,
    rollback,
)
from keyhygiene.plans.journal import Journal
from keyhygiene.workflows.enrollment import (
    ROTATE_OWN_KEY_POLICY,
    EnrollmentRequest,
    admin_connection,
    device_slug,
    open_enrollments,
    plan_enrollment,
    profiles_in_use,
    proposed_device,
    resolve,
    with_local_files,
)
from keyhygiene.workflows.enrollment import actions as enrollment_actions

ACCOUNT = "123456789012"
REGION = "us-east-1"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice-laptop"
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
    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
    "Action": "kms:DescribeKey",
    "Resource": "*",
}


class SimulatedCrash(Exception):
    """Neither a ClientError nor a KeyHygieneError: the process 'dies'."""


# --------------------------------------------------------------------------- pure parts


def small_snapshot(**changes: Any) -> Snapshot:
    base = Snapshot(
        account_id=ACCOUNT,
        caller_arn=f"arn:aws:iam::{ACCOUNT}:user/admin",
        loaded_at=datetime(2025, 1, 1, tzinfo=timezone.utc),
        users=(User("Alice-Laptop", f"arn:aws:iam::{ACCOUNT}:user/Alice-Laptop"),),
        groups=(
            Group("photos", f"arn:aws:iam::{ACCOUNT}:group/photos"),
            *(Group(f"g{i}", f"arn:aws:iam::{ACCOUNT}:group/g{i}") for i in range(10)),
        ),
    )
    return replace(base, **changes)


def request(**changes: Any) -> EnrollmentRequest:
    fields: dict[str, Any] = {
        "person": "alice",
        "device": "desktop",
        "groups": ("photos",),
        "hostname": "alices-desktop.local",
        "enrolled_on": date(2025, 3, 4),
        "region": "eu-west-1",
        "credentials_file": "/home/alice/.aws/credentials",
        "config_file": "/home/alice/.aws/config",
    }
    fields.update(changes)
    return EnrollmentRequest(**fields)


@pytest.mark.parametrize(
    ("hostname", "slug"),
    [
        ("alices-mbp.local", "alices-mbp"),
        ("Alice's MacBook Pro", "alice-s-macbook-pro"),
        ("DESKTOP-7QX2.corp.example.com", "desktop-7qx2"),
        ("--", "computer"),
        ("", "computer"),
    ],
)
def test_device_slug(hostname: str, slug: str) -> None:
    assert device_slug(hostname) == slug


def test_proposed_device_fits_the_64_character_limit() -> None:
    person = "p" * 50
    device = proposed_device(person, "a-very-long-host-name-indeed.example.com")
    assert len(f"{person}-{device}") <= 64 and not device.endswith("-")


def test_resolve_fills_the_defaults() -> None:
    got = resolve(small_snapshot(), request(device=None, profile_name=None, groups=("PHOTOS",)))
    assert got.user_name == "alice-alices-desktop"
    assert got.profile_name == "alice-alices-desktop"
    assert got.groups == ("photos",)  # IAM's spelling
    assert got.tags == {
        "keyhygiene:person": "alice",
        "keyhygiene:device": "alices-desktop",
        "keyhygiene:hostname": "alices-desktop.local",
        "keyhygiene:enrolled": "2025-03-04",
    }


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"person": ""}, "--person"),
        ({"person": "alice-smith"}, "no dash"),
        ({"device": "lap top"}, "not a valid IAM name for a device"),
        ({"device": "x" * 60}, "IAM allows 64"),
        ({"device": "laptop"}, "exists already \\(as Alice-Laptop: IAM ignores case\\)"),
        ({"groups": ("photos", "nope")}, "Unknown group: nope. The account's groups: photos"),
        ({"groups": tuple(f"g{i}" for i in range(10))}, "at most 10 groups"),
        ({"profile_name": "work profile"}, "cannot be a profile name"),
        ({"profiles_in_use": frozenset({"alice-desktop"})}, "holds a key already"),
        ({"region": "Europe"}, "not an AWS region"),
    ],
)
def test_bad_requests_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(BadInput, match=message):
        plan_enrollment(small_snapshot(), request(**changes))


def test_plan_creates_the_devices_group_and_policy_when_missing() -> None:
    plan = plan_enrollment(small_snapshot(), request())
    assert plan.kind == "enroll"
    assert [s.id for s in plan.steps] == [
        "create-devices-group",
        "create-rotate-policy",
        "attach-rotate-policy",
        "create-user",
        f"join.{DEVICES_GROUP}",
        "join.photos",
        "create-key",
        "write-credentials",
        "set-region",
        "verify-key",
    ]
    policy = plan.step("create-rotate-policy")
    assert json.loads(policy.call.params["PolicyDocument"])["Statement"][0]["Resource"] == (
        "arn:aws:iam::*:user/${aws:username}"
    )
    text = plan.render_text()
    assert "<AccessKey.SecretAccessKey from step 7>" in text
    assert "~" not in plan.step("write-credentials").call.params["path"]


def test_plan_reuses_an_existing_devices_group_and_policy() -> None:
    policy_arn = f"arn:aws:iam::{ACCOUNT}:policy/{ROTATE_OWN_KEY_POLICY}"
    from keyhygiene.core.model import PolicyAttachment

    snap = small_snapshot(
        groups=(
            Group("photos", f"arn:aws:iam::{ACCOUNT}:group/photos"),
            Group(
                DEVICES_GROUP,
                f"arn:aws:iam::{ACCOUNT}:group/{DEVICES_GROUP}",
                attached_policies=(PolicyAttachment(ROTATE_OWN_KEY_POLICY, policy_arn),),
            ),
        ),
        managed_policies={policy_arn: {"Statement": [{"Effect": "Allow", "Action": "*"}]}},
    )
    plan = plan_enrollment(snap, request(groups=()))
    assert plan.steps[0].id == "create-user"
    assert any("exists with other rights" in w for w in plan.warnings)
    assert any("joins no group besides" in w for w in plan.warnings)


# --------------------------------------------------------------------------- against moto


@pytest.fixture
def account(isolated_aws: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """An admin profile on this computer, a group photos, a bucket and a KMS key for it."""
    with mock_aws():
        iam = boto3.client("iam", region_name=REGION)
        iam.create_user(UserName="admin")
        admin_key = iam.create_access_key(UserName="admin")["AccessKey"]
        credentials_file.set_access_key(
            credentials_file.credentials_path(),
            "admin",
            admin_key["AccessKeyId"],
            admin_key["SecretAccessKey"],
        )
        credentials_file.set_config_values(
            credentials_file.config_path(), "admin", {"region": REGION}
        )
        iam.create_group(GroupName="photos")
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket="photos-data")
        s3.put_bucket_tagging(
            Bucket="photos-data", Tagging={"TagSet": [{"Key": TAG_GROUPS, "Value": "photos"}]}
        )
        s3.put_bucket_policy(
            Bucket="photos-data",
            Policy=json.dumps({"Version": "2012-10-17", "Statement": [FOREIGN_BUCKET]}),
        )
        kms = boto3.client("kms", region_name=REGION)
        key = kms.create_key(Tags=[{"TagKey": TAG_GROUPS, "TagValue": "photos"}])["KeyMetadata"]
        policy = json.loads(kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"])
        policy["Statement"].append(FOREIGN_KEY)
        kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=json.dumps(policy))
        # The inventory waits for a report being generated; have it ready.
        iam.generate_credential_report()
        # From here on only the admin profile speaks to AWS.
        monkeypatch.delenv("AWS_ACCESS_KEY_ID")
        monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
        yield {"key_id": key["KeyId"], "iam": iam, "s3": s3, "kms": kms}


def admin() -> Connection:
    return Connection(ConnectionOptions(profile="admin", region=REGION))


def laptop_plan(conn: Connection, **changes: Any):  # type: ignore[no-untyped-def]
    snap = load_snapshot(conn)
    fields: dict[str, Any] = {
        "person": "alice",
        "device": "laptop",
        "groups": ("photos",),
        "hostname": "alices-laptop.local",
        "region": "eu-west-1",
        "profiles_in_use": profiles_in_use(),
    }
    fields.update(changes)
    return plan_enrollment(snap, EnrollmentRequest(**fields))


def no_sleep(_seconds: float) -> None:
    pass


def assert_enrolled(account: dict[str, Any]) -> None:
    iam, s3, kms = account["iam"], account["s3"], account["kms"]
    user = iam.get_user(UserName="alice-laptop")["User"]
    tags = {t["Key"]: t["Value"] for t in user.get("Tags", [])}
    assert tags["keyhygiene:person"] == "alice"
    assert tags["keyhygiene:device"] == "laptop"
    assert tags["keyhygiene:hostname"] == "alices-laptop.local"
    assert tags["keyhygiene:enrolled"] == datetime.now(timezone.utc).date().isoformat()
    groups = {g["GroupName"] for g in iam.list_groups_for_user(UserName="alice-laptop")["Groups"]}
    assert groups == {"photos", DEVICES_GROUP}
    attached = iam.list_attached_group_policies(GroupName=DEVICES_GROUP)["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == [ROTATE_OWN_KEY_POLICY]
    bucket_policy = json.loads(s3.get_bucket_policy(Bucket="photos-data")["Policy"])
    assert ALICE in whitelisted_principals(bucket_policy)
    assert FOREIGN_BUCKET in bucket_policy["Statement"]
    key_policy = json.loads(
        kms.get_key_policy(KeyId=account["key_id"], PolicyName="default")["Policy"]
    )
    assert ALICE in whitelisted_principals(key_policy)
    assert FOREIGN_KEY in key_policy["Statement"]
    keys = iam.list_access_keys(UserName="alice-laptop")["AccessKeyMetadata"]
    assert len(keys) == 1
    profile = credentials_file.read_profile(credentials_file.credentials_path(), "alice-laptop")
    assert profile["aws_access_key_id"] == keys[0]["AccessKeyId"]
    config = credentials_file.read_profile(
        credentials_file.config_path(), "alice-laptop", config_style=True
    )
    assert config["region"] == "eu-west-1"


def assert_not_enrolled(account: dict[str, Any]) -> None:
    iam, s3 = account["iam"], account["s3"]
    assert "alice-laptop" not in {u["UserName"] for u in iam.list_users()["Users"]}
    assert DEVICES_GROUP not in {g["GroupName"] for g in iam.list_groups()["Groups"]}
    policies = iam.list_policies(Scope="Local")["Policies"]
    assert ROTATE_OWN_KEY_POLICY not in {p["PolicyName"] for p in policies}
    bucket_policy = json.loads(s3.get_bucket_policy(Bucket="photos-data")["Policy"])
    assert bucket_policy["Statement"] == [FOREIGN_BUCKET]
    profile = credentials_file.read_profile(credentials_file.credentials_path(), "alice-laptop")
    assert "aws_access_key_id" not in profile and "aws_secret_access_key" not in profile
    config = credentials_file.read_profile(
        credentials_file.config_path(), "alice-laptop", config_style=True
    )
    assert "region" not in config


def test_the_whole_checklist_is_applied(account: dict[str, Any]) -> None:
    conn = admin()
    plan = laptop_plan(conn)
    assert [s.id for s in plan.steps][-2:] == [
        "bucket-policy.photos-data",
        f"key-policy.{account['key_id']}",
    ]
    # The policies name a user the same plan creates: they wait for IAM to propagate it.
    assert plan.step("bucket-policy.photos-data").call.params["WaitFor"] == [ALICE]
    assert plan.step(f"key-policy.{account['key_id']}").call.params["WaitFor"] == [ALICE]
    journal = Journal.create(plan)
    report = apply_plan(plan, conn, journal=journal, sleep=no_sleep)
    assert report.ok, report.render_text()
    assert_enrolled(account)
    assert report.kept["verify-key"]["Arn"] == ALICE
    # The journal holds the key id and never the secret.
    secret = credentials_file.read_profile(credentials_file.credentials_path(), "alice-laptop")[
        "aws_secret_access_key"
    ]
    saved = journal.path.read_text()
    assert secret not in saved and secret not in report.render_text()
    assert report.kept["create-key"]["AccessKey.AccessKeyId"] in saved
    assert open_enrollments() == []
    # A second enrollment of the same computer is refused with the reason.
    with pytest.raises(BadInput, match="exists already"):
        laptop_plan(conn)


def test_a_default_session_token_is_overridden_and_said(account: dict[str, Any]) -> None:
    path = credentials_file.credentials_path()
    path.write_text("[DEFAULT]\naws_session_token = STALE\n\n" + path.read_text())
    request = with_local_files(
        EnrollmentRequest(person="alice", device="laptop", groups=("photos",), region=REGION)
    )
    assert request.default_session_keys == ("aws_session_token",)
    assert "admin" in request.profiles_in_use
    conn = admin()
    plan = plan_enrollment(load_snapshot(conn), request)
    write = plan.step("write-credentials").description
    assert "aws_session_token = (empty) in [alice-laptop] to override [DEFAULT]'s" in write
    report = apply_plan(plan, conn, sleep=no_sleep)
    assert report.ok, report.render_text()
    written = credentials_file.read_profile(path, "alice-laptop")
    assert written.get("aws_session_token") == ""


def test_a_hard_linked_credentials_file_is_refused_before_aws(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    path.write_text("[work]\naws_access_key_id = AKIAWORKWORKWORKWORK\n")
    os.link(path, tmp_path / "other-name")
    with pytest.raises(BadInput, match="hard link"):
        with_local_files(EnrollmentRequest(person="alice", credentials_file=str(path)))


def test_a_failed_step_is_rolled_back_to_nothing(
    account: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(ctx: ApplyContext, params: Mapping[str, Any]) -> None:
        raise KeyHygieneError("AWS still refused the new key")

    register_local_action("enroll.verify_key", refuse, replace=True)
    try:
        conn = admin()
        report = apply_plan(laptop_plan(conn), conn, sleep=no_sleep)
        assert not report.ok and report.failed[0].step_id == "verify-key"
        assert credentials_file.read_profile(
            credentials_file.credentials_path(), "alice-laptop"
        ).get("aws_access_key_id")
        undone = rollback(report, conn)
        assert undone.ok, undone.render_text()
    finally:
        register_local_action("enroll.verify_key", enrollment_actions._verify_key, replace=True)
    assert_not_enrolled(account)


def crash_once(name: str) -> None:
    original = enrollment_actions.__dict__
    real = {
        "enroll.verify_key": original["_verify_key"],
        "enroll.write_credentials": original["_write_credentials"],
    }[name]

    def crash(ctx: ApplyContext, params: Mapping[str, Any]) -> Any:
        register_local_action(name, real, replace=True)
        raise SimulatedCrash("the power went out")

    register_local_action(name, crash, replace=True)


def test_interrupted_enrollment_is_resumed(account: dict[str, Any]) -> None:
    conn = admin()
    plan = laptop_plan(conn)
    crash_once("enroll.verify_key")
    with pytest.raises(SimulatedCrash):
        apply_plan(plan, conn, journal=Journal.create(plan), sleep=no_sleep)
    (journal,) = open_enrollments()
    assert journal.status("verify-key") == "running"
    summary = journal.summary()
    assert summary.startswith("Register this computer as alice-laptop (enroll, started ")
    assert summary.endswith(": 9 of 12 steps done, step 10 was interrupted")
    report = resume(journal, admin(), sleep=no_sleep)
    assert report.ok, report.render_text()
    assert_enrolled(account)
    assert open_enrollments() == []


def test_interrupted_enrollment_is_rolled_back(account: dict[str, Any]) -> None:
    conn = admin()
    plan = laptop_plan(conn)
    crash_once("enroll.verify_key")
    with pytest.raises(SimulatedCrash):
        apply_plan(plan, conn, journal=Journal.create(plan), sleep=no_sleep)
    (journal,) = open_enrollments()
    report = rollback(journal, admin())
    assert report.ok, report.render_text()
    assert_not_enrolled(account)
    assert open_enrollments() == []


class _NotYetKnown:
    """The admin's clients; S3 does not know the new user for its first two PutBucketPolicy."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.refused = 0

    def client(self, service: str) -> Any:
        real = self.conn.client(service)
        return _RefusingPut(real, self) if service == "s3" else real


class _RefusingPut:
    def __init__(self, real: Any, owner: _NotYetKnown) -> None:
        self._real = real
        self._owner = owner

    def __getattr__(self, name: str) -> Any:
        if name != "put_bucket_policy":
            return getattr(self._real, name)

        def put(**params: Any) -> Any:
            if self._owner.refused < 2:
                self._owner.refused += 1
                from botocore.exceptions import ClientError

                error = {"Error": {"Code": "MalformedPolicy", "Message": "Invalid principal"}}
                raise ClientError(error, "PutBucketPolicy")  # type: ignore[arg-type]
            return self._real.put_bucket_policy(**params)

        return put


def test_the_new_user_is_whitelisted_once_s3_knows_it(account: dict[str, Any]) -> None:
    clients = _NotYetKnown(admin())
    slept: list[float] = []
    report = apply_plan(laptop_plan(admin()), clients, sleep=slept.append)
    assert report.ok, report.render_text()
    assert clients.refused == 2
    assert slept[-2:] == [1, 2]  # after the key check's pause: the propagation waits
    assert_enrolled(account)


class _Recorder:
    """The admin's clients, recording IAM calls; CreateAccessKey can 'die' after AWS made the key."""

    def __init__(self, conn: Connection, *, crash_in: str = "") -> None:
        self.conn = conn
        self.crash_in = crash_in
        self.calls: list[str] = []

    def client(self, service: str) -> Any:
        real = self.conn.client(service)
        return _RecordingIam(real, self) if service == "iam" else real


class _RecordingIam:
    def __init__(self, real: Any, recorder: _Recorder) -> None:
        self._real = real
        self._recorder = recorder

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._real, name)
        if not callable(method) or name == "get_paginator":
            return method

        def call(**params: Any) -> Any:
            self._recorder.calls.append(name)
            result = method(**params)
            if name == self._recorder.crash_in:
                raise SimulatedCrash("the process died before the answer was journaled")
            return result

        return call


def test_a_crash_inside_create_access_key_rolls_back_to_nothing(account: dict[str, Any]) -> None:
    """AWS made the key, the journal never got its id: the rollback still deletes it
    before the user (on AWS, DeleteUser with a key left fails with DeleteConflict;
    moto would accept it, so the order of the calls is what is checked)."""
    conn = admin()
    plan = laptop_plan(conn)
    dying = _Recorder(conn, crash_in="create_access_key")
    with pytest.raises(SimulatedCrash):
        apply_plan(plan, dying, journal=Journal.create(plan), sleep=no_sleep)
    (journal,) = open_enrollments()
    assert journal.status("create-key") == "running"
    assert "create-key" not in journal.kept_values()
    iam = account["iam"]
    (orphan,) = iam.list_access_keys(UserName="alice-laptop")["AccessKeyMetadata"]

    recorder = _Recorder(admin())
    report = rollback(journal, recorder)
    assert report.ok, report.render_text()
    assert report.result("create-key").status == "undone"
    assert recorder.calls.index("delete_access_key") < recorder.calls.index("delete_user")
    assert recorder.calls.count("delete_user") == 1
    assert_not_enrolled(account)
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.list_access_keys(UserName="alice-laptop")
    assert orphan["AccessKeyId"] not in json.dumps(journal.path.read_text())


def test_deleting_the_new_user_clears_what_blocks_delete_user(account: dict[str, Any]) -> None:
    """The create-user undo alone: keys, memberships and policies go first, then the user."""
    iam = account["iam"]
    iam.create_group(GroupName=DEVICES_GROUP)
    iam.create_user(UserName="alice-laptop")
    iam.create_access_key(UserName="alice-laptop")
    iam.create_access_key(UserName="alice-laptop")
    iam.add_user_to_group(GroupName="photos", UserName="alice-laptop")
    iam.put_user_policy(
        UserName="alice-laptop",
        PolicyName="keyhygiene-expiry",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}],
            }
        ),
    )
    recorder = _Recorder(admin())
    ctx = ApplyContext(recorder, Results(), {})
    undo = enrollment_actions._delete_new_user(ctx, {"UserName": "alice-laptop"})
    assert undo == {"Deleted": True, "AccessKeysDeleted": 2}
    last = recorder.calls.index("delete_user")
    assert recorder.calls.count("delete_access_key") == 2
    for earlier in ("delete_access_key", "remove_user_from_group", "delete_user_policy"):
        assert recorder.calls.index(earlier) < last
    assert "alice-laptop" not in {u["UserName"] for u in iam.list_users()["Users"]}
    # Already gone (an interrupted create-user that never took effect): nothing to do.
    assert enrollment_actions._delete_new_user(ctx, {"UserName": "alice-laptop"}) == {
        "Deleted": False
    }


def test_a_lost_secret_cannot_be_resumed_only_rolled_back(account: dict[str, Any]) -> None:
    conn = admin()
    plan = laptop_plan(conn)
    crash_once("enroll.write_credentials")
    with pytest.raises(SimulatedCrash):
        apply_plan(plan, conn, journal=Journal.create(plan), sleep=no_sleep)
    (journal,) = open_enrollments()
    with pytest.raises(ResumeImpossible, match="SecretAccessKey"):
        resume(journal, admin(), sleep=no_sleep)
    assert rollback(journal, admin()).ok
    assert_not_enrolled(account)
    assert account["iam"].list_users()["Users"][0]["UserName"] == "admin"


def test_verification_retries_with_backoff_then_gives_up(
    account: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError

    calls: list[int] = []

    class RefusingSts:
        def get_caller_identity(self) -> dict[str, str]:
            calls.append(1)
            if len(calls) < 3:
                raise ClientError(
                    {"Error": {"Code": "InvalidClientTokenId", "Message": "not yet"}},
                    "GetCallerIdentity",
                )
            return {"Arn": ALICE}

    class FakeSession:
        def client(self, *args: Any, **kwargs: Any) -> RefusingSts:
            return RefusingSts()

    monkeypatch.setattr(enrollment_actions, "_profile_session", lambda params: FakeSession())
    slept: list[float] = []
    conn = admin()
    report = apply_plan(laptop_plan(conn), conn, sleep=slept.append)
    assert report.ok, report.render_text()
    # Two refusals (backoff), then two answers in a row (one pause between them).
    assert slept == [1.0, 2.0, 1.0] and report.kept["verify-key"]["Arn"] == ALICE
    assert len(calls) == 4

    monkeypatch.setattr(RefusingSts, "get_caller_identity", _always_refused)
    slept.clear()
    conn2 = admin()
    report = apply_plan(
        laptop_plan(conn2, device="desk", profile_name="desk"), conn2, sleep=slept.append
    )
    assert [r.step_id for r in report.failed] == ["verify-key"]
    assert "after 8 tries (InvalidClientTokenId)" in report.failed[0].message
    assert slept == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0]
    assert rollback(report, conn2).ok


def test_verification_needs_consecutive_answers(
    account: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One answer proves little on AWS: a refusal after it starts the count again."""
    from botocore.exceptions import ClientError

    answers = iter([True, False, True, True])
    asked: list[int] = []
    who = [ALICE]

    class FlakySts:
        def get_caller_identity(self) -> dict[str, str]:
            asked.append(1)
            if not next(answers):
                raise ClientError({"Error": {"Code": "InvalidClientTokenId"}}, "GetCallerIdentity")
            return {"Arn": who[0]}

    class FakeSession:
        def client(self, *args: Any, **kwargs: Any) -> FlakySts:
            return FlakySts()

    monkeypatch.setattr(enrollment_actions, "_profile_session", lambda params: FakeSession())
    plan = laptop_plan(admin())
    assert plan.step("verify-key").call.params["successes"] == 2
    slept: list[float] = []
    report = apply_plan(plan, admin(), sleep=slept.append)
    assert report.ok, report.render_text()
    assert len(asked) == 4 and report.kept["verify-key"]["Arn"] == ALICE
    assert slept == [1.0, 1.0, 1.0]

    # Answers that never come twice in a row: bounded, and said so.
    answers = iter([False, True] * 4)
    asked.clear()
    who[0] = f"arn:aws:iam::{ACCOUNT}:user/alice-desk"
    conn = admin()
    report = apply_plan(
        laptop_plan(conn, device="desk", profile_name="desk"), conn, sleep=lambda _s: None
    )
    assert [r.step_id for r in report.failed] == ["verify-key"]
    assert len(asked) == 8
    assert "only 1 time(s) in a row in 8 tries, not the 2 needed" in report.failed[0].message
    assert rollback(report, conn).ok


def _always_refused(self: Any) -> None:
    from botocore.exceptions import ClientError

    raise ClientError({"Error": {"Code": "InvalidClientTokenId"}}, "GetCallerIdentity")


def test_a_bucket_policy_that_is_not_json_stops_the_plan(account: dict[str, Any]) -> None:
    account["s3"].put_bucket_policy(Bucket="photos-data", Policy="{not json")
    with pytest.raises(BadInput, match="not a JSON object"):
        laptop_plan(admin())
    assert "alice-laptop" not in {u["UserName"] for u in account["iam"].list_users()["Users"]}


def test_a_profile_holding_a_key_is_not_overwritten(account: dict[str, Any]) -> None:
    credentials_file.set_access_key(
        credentials_file.credentials_path(), "alice-laptop", "AKIAOLDOLDOLDOLD1234", "old-secret"
    )
    with pytest.raises(BadInput, match="holds a key already"):
        laptop_plan(admin())


def test_admin_with_mfa_uses_a_session_token(account: dict[str, Any]) -> None:
    serial = f"arn:aws:iam::{ACCOUNT}:mfa/admin"
    credentials_file.set_config_values(
        credentials_file.config_path(), "admin", {"mfa_serial": serial}
    )
    options = ConnectionOptions(admin_profile="admin", region=REGION)
    # The code is asked when the connection is first used (Connection's MFA).
    forget_mfa_sessions()
    with pytest.raises(ConnectionProblem, match="--mfa-code"):
        admin_connection(options).whoami()
    with pytest.raises(BadInput, match="6 digits"):
        admin_connection(options, mfa_code="12").whoami()
    asked: list[str] = []
    conn = admin_connection(options, ask_mfa_code=lambda s: asked.append(s) or "123456")
    assert conn.whoami().account_id == ACCOUNT
    assert asked == [serial]
    assert conn.session.get_credentials().token  # a GetSessionToken session
    assert "Secret" not in repr(conn.__dict__)
    forget_mfa_sessions()
    plain = admin_connection(ConnectionOptions(admin_profile="other", region=REGION))
    assert plain.options.profile == "other"


def test_an_admin_lacking_a_permission_is_told_which_and_nothing_stays(
    account: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    document = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"},
            {"Effect": "Deny", "Action": "iam:CreateUser", "Resource": "*"},
        ],
    }
    account["iam"].put_user_policy(
        UserName="admin", PolicyName="almost-admin", PolicyDocument=json.dumps(document)
    )
    # Moto enforces IAM identity policies from now on (IAM and S3; not KMS).
    monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    monkeypatch.setattr(ActionAuthenticatorMixin, "request_count", 0)
    conn = admin()
    report = apply_plan(laptop_plan(conn), conn, sleep=no_sleep)
    (failed,) = report.failed
    assert failed.step_id == "create-user"
    assert "lacks iam:CreateUser" in failed.message
    assert [r.step_id for r in report.done] == [
        "create-devices-group",
        "create-rotate-policy",
        "attach-rotate-policy",
    ]
    assert rollback(report, conn).ok
    check = conn.client("iam")
    assert DEVICES_GROUP not in {g["GroupName"] for g in check.list_groups()["Groups"]}
    policies = check.list_policies(Scope="Local")["Policies"]
    assert ROTATE_OWN_KEY_POLICY not in {p["PolicyName"] for p in policies}
