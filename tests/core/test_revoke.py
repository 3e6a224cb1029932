"""Emergency revoke against moto: every step done, enforcement, failures at each step, reruns."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core import set_initial_no_auth_action_count

from keyhygiene.aws.connection import Connection, ConnectionOptions, Identity
from keyhygiene.aws.inventory import load_snapshot
from keyhygiene.core.aws_limits import USER_INLINE_POLICIES_LIMIT
from keyhygiene.core.errors import BadInput
from keyhygiene.core.model import (
    REVOKED_POLICY_NAME,
    TAG_DEVICE,
    TAG_HOSTNAME,
    TAG_PERSON,
    TAG_REVOKED,
)
from keyhygiene.core.policy_documents import (
    bucket_policy_with_whitelist,
    key_policy_with_whitelist,
    statements,
    whitelisted_principals,
)
from keyhygiene.plans import ApplyReport, Plan, PlanEvent, apply_plan
from keyhygiene.workflows.revoke import (
    DENY_ALL_DOCUMENT,
    DENY_ALL_POLICY_NAME,
    MANAGED_POLICIES_PER_USER,
    NO_ROOM,
    REVOKED_DOCUMENT,
    STEP_DELETE_KEYS,
    STEP_DELETE_USER,
    STEP_DENY,
    STEP_KEYS,
    STEP_LOGIN,
    STEP_MFA,
    STEP_TAG,
    ContainmentTimer,
    RevokeReport,
    UserExtras,
    describe_reach,
    find_user,
    load_for_revoke,
    plan_revoke,
    revoke_report,
)

ACCOUNT = "123456789012"
TARGET = "stolen-phone"
TARGET_ARN = f"arn:aws:iam::{ACCOUNT}:user/{TARGET}"
OTHER_ARN = f"arn:aws:iam::{ACCOUNT}:user/alice-laptop"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
# Who may administer the buckets: the root and the admin that runs keyhygiene
# (else their deny would lock it out, and keyhygiene refuses to edit them).
ADMINS = [ROOT, f"arn:aws:iam::{ACCOUNT}:user/admin"]
GROUPS = ("photos", "music", "keyhygiene-devices")
# A statement keyhygiene does not own that names the target: kept as it is.
FOREIGN = {
    "Sid": "PersonalShare",
    "Effect": "Allow",
    "Principal": {"AWS": TARGET_ARN},
    "Action": "s3:GetObject",
    "Resource": "arn:aws:s3:::photos-data/shared/*",
}
UNRELATED = {
    "Sid": "AuditorRead",
    "Effect": "Allow",
    "Principal": {"AWS": ROOT},
    "Action": "s3:GetBucketPolicy",
    "Resource": "arn:aws:s3:::photos-data",
}


def _policy(effect: str, action: Any) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": effect, "Action": action, "Resource": "*"}],
        }
    )


# One session for the whole file: a new boto3 Session loads every service model
# again (a few hundred ms), a client from a warm one takes a few ms.
SESSION = boto3.Session(region_name="us-east-1")


class Keys:
    """A ClientProvider (and AccountReader) calling with one access key, like a Connection."""

    def __init__(self, keys: dict[str, str] | None = None) -> None:
        self.keys = keys
        self.clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self.clients:
            credentials = {
                "aws_access_key_id": self.keys["AccessKeyId"] if self.keys else "testing",
                "aws_secret_access_key": self.keys["SecretAccessKey"] if self.keys else "testing",
            }
            if self.keys and self.keys.get("SessionToken"):
                credentials["aws_session_token"] = self.keys["SessionToken"]
            self.clients[service] = SESSION.client(service, **credentials)
        return self.clients[service]

    def whoami(self) -> Identity:
        answer = self.client("sts").get_caller_identity()
        return Identity(answer["Account"], answer["Arn"])


@dataclass
class Account:
    """The seeded account; the code under test calls as `admin`."""

    seeder: Keys  # the "testing" keys, refused once moto's enforcement is on
    admin: Keys
    target_keys: list[dict[str, str]]
    key_id: str
    mfa_serial: str
    originals: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str, keys: dict[str, str] | None = None) -> Any:
        if keys is None:
            return self.admin.client(service)
        return Keys(keys).client(service)


@pytest.fixture
def account() -> Iterator[Account]:
    with mock_aws():
        yield _seed(Keys())


def _seed(seeder: Keys) -> Account:
    iam, s3, kms = seeder.client("iam"), seeder.client("s3"), seeder.client("kms")
    iam.create_user(UserName="admin")
    iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=_policy("Allow", "*"))
    admin_keys = iam.create_access_key(UserName="admin")["AccessKey"]
    iam.create_user(
        UserName=TARGET,
        Tags=[
            {"Key": TAG_PERSON, "Value": "stolen"},
            {"Key": TAG_DEVICE, "Value": "phone"},
            {"Key": TAG_HOSTNAME, "Value": "pixel-7"},
        ],
    )
    iam.create_user(UserName="alice-laptop")
    for group in GROUPS:
        iam.create_group(GroupName=group)
        iam.add_user_to_group(GroupName=group, UserName=TARGET)
    iam.add_user_to_group(GroupName="photos", UserName="alice-laptop")
    iam.put_group_policy(
        GroupName="photos",
        PolicyName="photos-read",
        PolicyDocument=_policy("Allow", ["s3:ListAllMyBuckets", "iam:GetUser", "s3:GetObject"]),
    )
    target_keys = [iam.create_access_key(UserName=TARGET)["AccessKey"] for _ in range(2)]
    iam.create_login_profile(UserName=TARGET, Password="Correct-Horse-9!")
    serial = iam.create_virtual_mfa_device(VirtualMFADeviceName=TARGET)["VirtualMFADevice"][
        "SerialNumber"
    ]
    iam.enable_mfa_device(
        UserName=TARGET,
        SerialNumber=serial,
        AuthenticationCode1="123456",
        AuthenticationCode2="654321",
    )

    whitelist = bucket_policy_with_whitelist(
        None, bucket="photos-data", principals=[TARGET_ARN, OTHER_ARN], keep_admin_arns=ADMINS
    )
    whitelist["Statement"] = [UNRELATED, *whitelist["Statement"], FOREIGN]
    s3.create_bucket(Bucket="photos-data")
    s3.put_bucket_policy(Bucket="photos-data", Policy=json.dumps(whitelist))
    # Not tagged for any group, and the target is all its whitelist holds.
    s3.create_bucket(Bucket="loose-share")
    s3.put_bucket_policy(
        Bucket="loose-share",
        Policy=json.dumps(
            bucket_policy_with_whitelist(
                None, bucket="loose-share", principals=[TARGET_ARN], keep_admin_arns=ADMINS
            )
        ),
    )
    s3.create_bucket(Bucket="other-data")
    other = bucket_policy_with_whitelist(
        None, bucket="other-data", principals=[OTHER_ARN], keep_admin_arns=ADMINS
    )
    s3.put_bucket_policy(Bucket="other-data", Policy=json.dumps(other))
    key_id = kms.create_key(Description="photos")["KeyMetadata"]["KeyId"]
    default = json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
    kms.put_key_policy(
        KeyId=key_id,
        PolicyName="default",
        Policy=json.dumps(key_policy_with_whitelist(default, principals=[TARGET_ARN, OTHER_ARN])),
    )
    return Account(
        seeder,
        Keys(admin_keys),
        target_keys,
        key_id,
        serial,
        originals={"photos-data": whitelist, "other-data": other, "key-default": default},
    )


def revoke(conn: Keys | Connection, **options: Any) -> tuple[Plan, ApplyReport, RevokeReport]:
    snapshot, extras = load_for_revoke(conn, TARGET)
    plan = plan_revoke(snapshot, TARGET, extras=extras, **options)
    timer = ContainmentTimer(plan)
    report = apply_plan(plan, conn, on_event=timer, stop_on_failure=False)
    return (
        plan,
        report,
        revoke_report(report, find_user(snapshot, TARGET), timer=timer, snapshot=snapshot),
    )


def enforced(func: Callable[[], Any]) -> Any:
    """Run `func` with moto checking every request's signature and IAM policies."""
    return set_initial_no_auth_action_count(0)(func)()


# --------------------------------------------------------------------------- checks


def bucket_policy(account: Account, bucket: str) -> dict[str, Any] | None:
    try:
        return json.loads(account.client("s3").get_bucket_policy(Bucket=bucket)["Policy"])
    except ClientError:
        return None


def key_policy(account: Account) -> dict[str, Any]:
    text = account.client("kms").get_key_policy(KeyId=account.key_id, PolicyName="default")
    return json.loads(text["Policy"])


def fully_revoked(account: Account) -> dict[str, bool]:
    """Each part of the revoke, checked in the account (True: done)."""
    iam = account.client("iam")
    keys = iam.list_access_keys(UserName=TARGET)["AccessKeyMetadata"]
    tags = {t["Key"] for t in iam.list_user_tags(UserName=TARGET)["Tags"]}
    try:
        iam.get_login_profile(UserName=TARGET)
        login_gone = False
    except ClientError:
        login_gone = True
    photos = bucket_policy(account, "photos-data") or {}
    return {
        STEP_KEYS: bool(keys) and all(k["Status"] == "Inactive" for k in keys),
        STEP_DENY: REVOKED_POLICY_NAME in iam.list_user_policies(UserName=TARGET)["PolicyNames"],
        STEP_TAG: TAG_REVOKED in tags,
        "groups": iam.list_groups_for_user(UserName=TARGET)["Groups"] == [],
        "buckets": TARGET_ARN
        not in json.dumps(
            [s for s in statements(photos) if s.get("Sid", "").startswith("KeyHygiene")]
        )
        and TARGET_ARN not in json.dumps(bucket_policy(account, "loose-share")),
        "keys-policy": TARGET_ARN not in json.dumps(key_policy(account)),
        STEP_LOGIN: login_gone,
        STEP_MFA: iam.list_mfa_devices(UserName=TARGET)["MFADevices"] == []
        and iam.list_virtual_mfa_devices()["VirtualMFADevices"] == [],
    }


# --------------------------------------------------------------------------- the plan


def test_plan_puts_containment_first_and_covers_every_place(account: Account) -> None:
    conn = account.admin
    snapshot, extras = load_for_revoke(conn, TARGET)
    assert extras == UserExtras(login_profile=True, mfa_serials=(account.mfa_serial,))
    plan = plan_revoke(snapshot, TARGET, extras=extras)
    ids = [step.id for step in plan.steps]
    assert ids[:3] == [STEP_KEYS, STEP_DENY, STEP_TAG]
    assert ids[3:6] == ["leave-group-1", "leave-group-2", "leave-group-3"]
    assert sum(i.startswith("bucket-policy-") for i in ids) == 2  # not other-data
    assert sum(i.startswith("key-policy-") for i in ids) == 1
    assert ids[-2:] == [STEP_LOGIN, STEP_MFA]
    assert all(not step.must_succeed and step.undo is None for step in plan.steps)
    keys_step = plan.step(STEP_KEYS)
    assert sorted(keys_step.call.params["AccessKeyIds"]) == sorted(
        k["AccessKeyId"] for k in account.target_keys
    )
    # The foreign statement naming the target is kept, and said so.
    assert any("PersonalShare" in warning for warning in plan.warnings)
    text = plan.render_text()
    for keys in account.target_keys:
        assert keys["SecretAccessKey"] not in text
        assert keys["SecretAccessKey"] not in json.dumps(plan.to_json())


def test_reach_lists_what_the_computer_can_touch(account: Account) -> None:
    snapshot, extras = load_for_revoke(account.admin, TARGET)
    reach = describe_reach(snapshot, find_user(snapshot, TARGET), extras)
    # One line lists exactly the groups (in the order IAM returns them).
    (groups_line,) = [line for line in reach if line.startswith("Groups: ")]
    assert sorted(groups_line.removeprefix("Groups: ").split(", ")) == sorted(GROUPS)
    lines = "\n".join(reach)
    assert "loose-share" in lines and "photos-data" in lines and "other-data" not in lines
    assert "Console password: yes" in lines and "MFA devices: 1" in lines
    assert account.target_keys[0]["AccessKeyId"] in lines


def test_revoke_does_every_step_and_keeps_foreign_statements(
    account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real Connection here; the other tests reuse one warm boto3 session.
    assert account.admin.keys is not None
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", account.admin.keys["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", account.admin.keys["SecretAccessKey"])
    conn = Connection(ConnectionOptions(region="us-east-1"))
    plan, report, summary = revoke(conn)
    assert report.ok, report.render_text()
    assert all(fully_revoked(account).values()), fully_revoked(account)
    assert summary.containment_requested and summary.containment_seconds is not None
    assert 0 <= summary.containment_seconds <= report.elapsed

    photos = bucket_policy(account, "photos-data")
    assert photos is not None
    assert photos["Statement"][0] == UNRELATED and photos["Statement"][-1] == FOREIGN
    assert whitelisted_principals(photos) == {OTHER_ARN}
    deny = next(s for s in photos["Statement"] if s["Sid"] == "KeyHygieneDenyOthers")
    service_linked = f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/*"
    assert deny["Condition"]["ArnNotLike"]["aws:PrincipalArn"] == sorted(
        [*ADMINS, OTHER_ARN, service_linked]
    )
    loose = bucket_policy(account, "loose-share")
    assert loose is not None and whitelisted_principals(loose) == frozenset()
    assert bucket_policy(account, "other-data") == account.originals["other-data"]
    key = key_policy(account)
    assert account.originals["key-default"]["Statement"][0] in key["Statement"]
    assert whitelisted_principals(key) == {OTHER_ARN}
    # The other computer is untouched.
    assert account.client("iam").list_groups_for_user(UserName="alice-laptop")["Groups"]

    snapshot, extras = load_for_revoke(conn, TARGET)
    assert plan_revoke(snapshot, TARGET, extras=extras).steps == ()


def test_revoked_key_is_refused_with_enforcement_on(account: Account) -> None:
    conn = account.admin
    thief_s3 = account.client("s3", account.target_keys[0])
    thief_iam = account.client("iam", account.target_keys[1])

    def scenario() -> RevokeReport:
        thief_s3.list_buckets()  # allowed through the photos group before
        thief_iam.get_user(UserName=TARGET)
        _, report, summary = revoke(conn)
        assert report.ok, report.render_text()
        # moto still authenticates a deactivated key: the deny policy refuses it.
        for attempt in (
            thief_s3.list_buckets,
            lambda: thief_iam.get_user(UserName=TARGET),
            lambda: thief_iam.create_access_key(UserName=TARGET),
        ):
            with pytest.raises(ClientError) as refused:
                attempt()
            assert refused.value.response["Error"]["Code"] == "AccessDenied"
        return summary

    summary = enforced(scenario)
    assert summary.containment_requested
    statuses = {
        k["Status"]
        for k in account.client("iam").list_access_keys(UserName=TARGET)["AccessKeyMetadata"]
    }
    assert statuses == {"Inactive"}


INJECTED = [
    ("iam:UpdateAccessKey", STEP_KEYS),
    ("iam:PutUserPolicy", STEP_DENY),
    ("iam:TagUser", STEP_TAG),
    ("iam:RemoveUserFromGroup", "groups"),
    ("s3:PutBucketPolicy", "buckets"),
    ("kms:PutKeyPolicy", "keys-policy"),
    ("iam:DeleteLoginProfile", STEP_LOGIN),
    ("iam:DeactivateMFADevice", STEP_MFA),
]


@pytest.mark.parametrize(("action", "part"), INJECTED, ids=[a for a, _ in INJECTED])
def test_a_failing_step_leaves_the_others_done_and_a_rerun_finishes(
    account: Account, action: str, part: str
) -> None:
    account.client("iam").put_user_policy(
        UserName="admin", PolicyName="injected", PolicyDocument=_policy("Deny", action)
    )
    conn = account.admin

    def first_run() -> RevokeReport:
        return revoke(conn)[2]

    summary = enforced(first_run)
    assert not summary.ok
    state = fully_revoked(account)
    assert not state[part]
    assert all(done for name, done in state.items() if name != part), state
    assert summary.failures and all(f.permission == action for f in summary.failures)
    assert action in summary.render_text()
    # Containment holds as long as one of its two halves went through.
    assert summary.containment_requested

    account.client("iam").delete_user_policy(UserName="admin", PolicyName="injected")

    def second_run() -> tuple[Plan, ApplyReport]:
        plan, report, _ = revoke(conn)
        return plan, report

    plan, report = enforced(second_run)
    assert report.ok, report.render_text()
    assert 1 <= len(plan.steps) <= 3  # only what was missing
    assert all(fully_revoked(account).values())


def test_nothing_contained_is_urgent(account: Account) -> None:
    account.client("iam").put_user_policy(
        UserName="admin",
        PolicyName="injected",
        PolicyDocument=_policy("Deny", ["iam:UpdateAccessKey", "iam:PutUserPolicy"]),
    )
    conn = account.admin
    summary = enforced(lambda: revoke(conn)[2])
    assert not summary.containment_requested and summary.containment_seconds is None
    text = summary.render_text()
    assert "NOT contained" in text and "URGENT" in text
    assert "iam:UpdateAccessKey" in text and "iam:PutUserPolicy" in text


def test_unknown_user_is_a_clear_error_and_changes_nothing(account: Account) -> None:
    conn = account.admin
    before = fully_revoked(account)
    with pytest.raises(BadInput) as error:
        load_for_revoke(conn, "stolen-phon")
    assert "stolen-phone" in str(error.value) and "nothing was changed" in str(error.value)
    snapshot, _ = load_for_revoke(conn, TARGET)
    with pytest.raises(BadInput):
        plan_revoke(snapshot, "nobody")
    assert fully_revoked(account) == before
    assert not any(before.values())


def test_revoking_yourself_denies_last_and_refuses_to_delete(account: Account) -> None:
    snapshot, extras = load_for_revoke(account.admin, TARGET)
    plan = plan_revoke(snapshot, TARGET, extras=extras, actor_arn=TARGET_ARN)
    ids = [step.id for step in plan.steps]
    assert ids[-1] == STEP_DENY and STEP_KEYS not in ids
    assert not any(i.startswith("leave-group") for i in ids)
    assert any("running as stolen-phone itself" in w for w in plan.warnings)
    with pytest.raises(BadInput):
        plan_revoke(snapshot, TARGET, extras=extras, actor_arn=TARGET_ARN, delete_keys=True)


def test_revoking_this_computer_is_allowed_with_a_warning(account: Account) -> None:
    snapshot, extras = load_for_revoke(account.admin, TARGET, this_user=TARGET)
    plan = plan_revoke(snapshot, TARGET, extras=extras)
    assert plan.steps[0].id == STEP_KEYS
    assert any("the computer you are on" in w for w in plan.warnings)


def test_delete_user_removes_everything_it_needs_first(account: Account) -> None:
    iam = account.client("iam")
    arn = iam.create_policy(PolicyName="extra", PolicyDocument=_policy("Allow", "s3:*"))["Policy"][
        "Arn"
    ]
    iam.attach_user_policy(UserName=TARGET, PolicyArn=arn)
    iam.put_user_policy(UserName=TARGET, PolicyName="old", PolicyDocument=_policy("Allow", "s3:*"))
    iam.upload_ssh_public_key(UserName=TARGET, SSHPublicKeyBody="ssh-rsa AAAAB3NzaC1yc2E u@host")
    conn = account.admin
    plan, report, summary = revoke(conn, delete_user=True)
    assert report.ok, report.render_text()
    ids = [step.id for step in plan.steps]
    assert ids[0] == STEP_KEYS and ids[-1] == STEP_DELETE_USER
    assert ids.index(STEP_DELETE_KEYS) < ids.index(STEP_DELETE_USER)
    with pytest.raises(ClientError):
        iam.get_user(UserName=TARGET)
    assert TARGET not in [u["UserName"] for u in iam.list_users()["Users"]]
    assert summary.containment_requested


def test_delete_keys_keeps_the_user(account: Account) -> None:
    conn = account.admin
    _, report, _ = revoke(conn, delete_keys=True)
    assert report.ok
    iam = account.client("iam")
    assert iam.list_access_keys(UserName=TARGET)["AccessKeyMetadata"] == []
    assert iam.get_user(UserName=TARGET)["User"]["UserName"] == TARGET


def test_keys_from_a_stale_report_are_listed_when_the_step_runs(account: Account) -> None:
    """A snapshot from the credential report knows no key ids (and may be hours old)."""
    conn = account.admin
    snapshot = load_snapshot(conn)
    user = find_user(snapshot, TARGET)
    assert not user.keys_exact
    # A key made after the report: the step must still catch it.
    account.client("iam").delete_access_key(
        UserName=TARGET, AccessKeyId=account.target_keys[0]["AccessKeyId"]
    )
    account.client("iam").create_access_key(UserName=TARGET)
    plan = plan_revoke(replace(snapshot, users=(user,)), TARGET)
    assert plan.step(STEP_KEYS).call.params["AccessKeyIds"] == []
    report = apply_plan(plan, conn, stop_on_failure=False)
    assert report.ok, report.render_text()
    assert fully_revoked(account)[STEP_KEYS]
    assert fully_revoked(account)[STEP_LOGIN] and fully_revoked(account)[STEP_MFA]


def test_a_whitelist_that_would_deny_everyone_is_left_with_a_warning(account: Account) -> None:
    # A hand-made DenyOthers whose only exception is the target: removing it would lock all out.
    lonely = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "KeyHygieneDenyOthers",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": ["arn:aws:s3:::lonely-data", "arn:aws:s3:::lonely-data/*"],
                "Condition": {"ArnNotLike": {"aws:PrincipalArn": [TARGET_ARN]}},
            }
        ],
    }
    account.client("s3").create_bucket(Bucket="lonely-data")
    account.client("s3").put_bucket_policy(Bucket="lonely-data", Policy=json.dumps(lonely))
    snapshot, extras = load_for_revoke(account.admin, TARGET)
    plan = plan_revoke(snapshot, TARGET, extras=extras)
    assert not any(s.call.params.get("Bucket") == "lonely-data" for s in plan.steps)
    assert any("lonely-data" in w and "left unchanged" in w for w in plan.warnings)


def test_report_without_timer_sums_step_times(account: Account) -> None:
    conn = account.admin
    snapshot, extras = load_for_revoke(conn, TARGET)
    plan = plan_revoke(snapshot, TARGET, extras=extras)
    report = apply_plan(plan, conn, stop_on_failure=False)
    summary = revoke_report(report, find_user(snapshot, TARGET), snapshot=snapshot)
    assert summary.containment_seconds == pytest.approx(report.results[0].seconds)
    text = summary.render_text()
    # No timer: the time of day is not known, the time to containment is.
    assert f"Containment of {TARGET} requested, " in text and "CloudTrail" in text
    assert "contained" not in text.replace("NOT contained", "")
    assert account.target_keys[0]["AccessKeyId"] in text
    assert "bucket photos-data" in text
    for keys in account.target_keys:
        assert keys["SecretAccessKey"] not in text


def test_a_key_made_after_planning_is_deactivated_too(account: Account) -> None:
    conn = account.admin
    snapshot, extras = load_for_revoke(conn, TARGET)
    plan = plan_revoke(snapshot, TARGET, extras=extras)
    account.client("iam").delete_access_key(
        UserName=TARGET, AccessKeyId=account.target_keys[0]["AccessKeyId"]
    )
    late = account.client("iam").create_access_key(UserName=TARGET)["AccessKey"]["AccessKeyId"]
    report = apply_plan(plan, conn, stop_on_failure=False)
    assert report.ok, report.render_text()
    assert fully_revoked(account)[STEP_KEYS]
    assert late in report.kept[STEP_KEYS]["AccessKeyIds"]


def test_a_bucket_exempting_only_the_root_gets_the_admin_exempted_too(account: Account) -> None:
    """A DenyOthers that spares only the root would lock the admin out once the
    stolen computer leaves it: revoke adds the admin to the exception list."""
    s3 = account.client("s3")
    s3.create_bucket(Bucket="root-only")
    s3.put_bucket_policy(
        Bucket="root-only",
        Policy=json.dumps(
            bucket_policy_with_whitelist(
                None, bucket="root-only", principals=[TARGET_ARN, OTHER_ARN], keep_admin_arns=[ROOT]
            )
        ),
    )
    _, report, _ = revoke(account.admin)
    assert report.ok, report.render_text()
    after = bucket_policy(account, "root-only")
    assert after is not None and whitelisted_principals(after) == {OTHER_ARN}
    deny = next(s for s in after["Statement"] if s["Sid"] == "KeyHygieneDenyOthers")
    excepted = deny["Condition"]["ArnNotLike"]["aws:PrincipalArn"]
    assert f"arn:aws:iam::{ACCOUNT}:user/admin" in excepted and TARGET_ARN not in excepted


def _role_session(account: Account) -> tuple[Keys, str]:
    """An assumed-role connection like an SSO admin's, and its role's real ARN (with a path)."""
    iam = account.client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "sts:AssumeRole"}],
    }
    role = iam.create_role(
        RoleName="break-glass", Path="/admins/", AssumeRolePolicyDocument=json.dumps(trust)
    )["Role"]
    iam.put_role_policy(
        RoleName="break-glass", PolicyName="all", PolicyDocument=_policy("Allow", "*")
    )
    session = account.client("sts").assume_role(RoleArn=role["Arn"], RoleSessionName="sso-admin")
    return Keys(session["Credentials"]), role["Arn"]


def test_an_assumed_role_admin_removes_the_computer_from_bucket_policies(
    account: Account,
) -> None:
    conn, role_arn = _role_session(account)
    assert ":assumed-role/break-glass/" in conn.whoami().arn
    snapshot, extras = load_for_revoke(conn, TARGET)
    assert [r.arn for r in snapshot.roles] == [role_arn]
    plan = plan_revoke(snapshot, TARGET, extras=extras)
    buckets = {s.call.params.get("Bucket") for s in plan.steps if s.id.startswith("bucket-")}
    assert buckets == {"photos-data", "loose-share"}
    assert not any("left unchanged" in warning for warning in plan.warnings)

    report = apply_plan(plan, conn, stop_on_failure=False)
    assert report.ok, report.render_text()
    assert fully_revoked(account)["buckets"]
    photos = bucket_policy(account, "photos-data")
    assert photos is not None
    deny = next(s for s in photos["Statement"] if s["Sid"] == "KeyHygieneDenyOthers")
    excepted = deny["Condition"]["ArnNotLike"]["aws:PrincipalArn"]
    assert role_arn in excepted and TARGET_ARN not in excepted


def test_revoking_yourself_does_not_exempt_yourself_again(account: Account) -> None:
    snapshot, extras = load_for_revoke(account.admin, TARGET)
    plan = plan_revoke(snapshot, TARGET, extras=extras, actor_arn=TARGET_ARN)
    for step in plan.steps:
        assert TARGET_ARN not in json.dumps(step.after), step.id
    # Without its exemption the user would lock itself out: those buckets wait for another admin.
    assert not any(s.id.startswith("bucket-") for s in plan.steps)
    assert any("photos-data" in w and "left unchanged" in w for w in plan.warnings)
    assert any("Finish from another identity" in w for w in plan.warnings)


def _only_target_bucket(account: Account) -> None:
    only = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "KeyHygieneAllowObjects",
                "Effect": "Allow",
                "Principal": {"AWS": TARGET_ARN},
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::only-target/*",
            }
        ],
    }
    account.client("s3").create_bucket(Bucket="only-target")
    account.client("s3").put_bucket_policy(Bucket="only-target", Policy=json.dumps(only))


def test_an_emptied_bucket_policy_is_deleted_only_if_unchanged(account: Account) -> None:
    _only_target_bucket(account)
    snapshot, extras = load_for_revoke(account.admin, TARGET)
    plan = plan_revoke(snapshot, TARGET, extras=extras)
    (step,) = [s for s in plan.steps if s.call.params.get("Bucket") == "only-target"]
    assert step.call.operation == "policy.put_if_unchanged" and step.after is None
    assert "Delete the policy of bucket only-target" in step.description
    # A statement added after the plan was read is not wiped.
    added = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AddedLater",
                "Effect": "Allow",
                "Principal": {"AWS": OTHER_ARN},
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::only-target/*",
            }
        ],
    }
    account.client("s3").put_bucket_policy(Bucket="only-target", Policy=json.dumps(added))
    report = apply_plan(plan, account.admin, stop_on_failure=False)
    assert [r.step_id for r in report.results if r.status != "done"] == [step.id]
    assert bucket_policy(account, "only-target") == added

    _only_target_bucket(account)  # back to what a fresh plan reads
    _, report, _ = revoke(account.admin)
    assert report.ok, report.render_text()
    assert bucket_policy(account, "only-target") is None


# --------------------------------------------------------------------------- no room for the deny

DENY_ALL_ARN = f"arn:aws:iam::aws:policy/{DENY_ALL_POLICY_NAME}"


@pytest.fixture
def managed_account(monkeypatch: pytest.MonkeyPatch) -> Iterator[Account]:
    """The seeded account with AWS's managed policies loaded (AWSDenyAll among them):
    moto loads them only with this variable set before its IAM backend starts."""
    monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    with mock_aws():
        yield _seed(Keys())


def _fill_inline_space(account: Account, room: int = 40) -> None:
    """Inline policies on the target that leave `room` characters of the 2,048."""
    resources = [f"arn:aws:s3:::filler-{i:03d}/*" for i in range(120)]
    document: dict[str, Any] = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": resources}],
    }
    target = USER_INLINE_POLICIES_LIMIT - room
    while len(json.dumps(document, separators=(",", ":"))) > target:
        resources.pop()
    account.client("iam").put_user_policy(
        UserName=TARGET, PolicyName="filler", PolicyDocument=json.dumps(document)
    )


def _attach_managed(account: Account, count: int) -> None:
    iam = account.client("iam")
    for index in range(count):
        arn = iam.create_policy(
            PolicyName=f"extra-{index}", PolicyDocument=_policy("Allow", "s3:ListBucket")
        )["Policy"]["Arn"]
        iam.attach_user_policy(UserName=TARGET, PolicyArn=arn)


class LimitedIam:
    """An IAM client that refuses some calls with LimitExceeded, as IAM does at its
    quotas (moto enforces neither the inline size nor the managed policy count)."""

    def __init__(self, iam: Any, refuse: set[str]) -> None:
        self.iam = iam
        self.refuse = refuse

    def __getattr__(self, name: str) -> Any:
        if name not in self.refuse:
            return getattr(self.iam, name)

        def refused(**_: Any) -> Any:
            error = {"Code": "LimitExceeded", "Message": f"Cannot exceed quota ({name})."}
            raise ClientError({"Error": error}, name)

        return refused


class Limited(Keys):
    def __init__(self, keys: Keys, refuse: set[str]) -> None:
        super().__init__(keys.keys)
        self.refuse = refuse

    def client(self, service: str) -> Any:
        client = super().client(service)
        return LimitedIam(client, self.refuse) if service == "iam" else client


def test_full_inline_space_attaches_aws_deny_all_instead(managed_account: Account) -> None:
    account = managed_account
    _fill_inline_space(account)
    snapshot, extras = load_for_revoke(account.admin, TARGET)
    plan = plan_revoke(snapshot, TARGET, extras=extras)
    assert [s.id for s in plan.steps][:3] == [STEP_KEYS, STEP_DENY, STEP_TAG]
    deny = plan.step(STEP_DENY)
    assert deny.call.params["Order"] == ["managed", "inline"]
    assert deny.call.params["PolicyArn"] == DENY_ALL_ARN
    assert deny.after == DENY_ALL_DOCUMENT and DENY_ALL_POLICY_NAME in deny.description
    assert any("AWSDenyAll instead" in w for w in plan.warnings), plan.warnings

    def scenario() -> RevokeReport:
        report = apply_plan(plan, account.admin, stop_on_failure=False)
        assert report.ok, report.render_text()
        # AWS's own Deny * refuses the stolen key, as the inline policy would.
        for attempt in (
            account.client("s3", account.target_keys[0]).list_buckets,
            lambda: account.client("iam", account.target_keys[1]).create_access_key(
                UserName=TARGET
            ),
        ):
            with pytest.raises(ClientError) as refused:
                attempt()
            assert refused.value.response["Error"]["Code"] == "AccessDenied"
        return revoke_report(report, find_user(snapshot, TARGET), snapshot=snapshot)

    summary = enforced(scenario)
    iam = account.client("iam")
    attached = iam.list_attached_user_policies(UserName=TARGET)["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == [DENY_ALL_ARN]
    assert REVOKED_POLICY_NAME not in iam.list_user_policies(UserName=TARGET)["PolicyNames"]
    assert summary.containment_requested and summary.deny_policy == DENY_ALL_POLICY_NAME
    assert "deny-all attached (AWS managed policy AWSDenyAll)" in summary.headline()
    # A second run finds the deny in place.
    snapshot, extras = load_for_revoke(account.admin, TARGET)
    assert plan_revoke(snapshot, TARGET, extras=extras).steps == ()


def test_iam_refusing_the_inline_policy_for_size_falls_back_when_it_runs(
    managed_account: Account,
) -> None:
    """The snapshot said it fits (IAM's count has the last word): LimitExceeded on
    PutUserPolicy attaches AWSDenyAll in the same step."""
    account = managed_account
    snapshot, extras = load_for_revoke(account.admin, TARGET)
    plan = plan_revoke(snapshot, TARGET, extras=extras)
    assert plan.step(STEP_DENY).call.params["Order"] == ["inline", "managed"]
    report = apply_plan(plan, Limited(account.admin, {"put_user_policy"}), stop_on_failure=False)
    assert report.ok, report.render_text()
    assert report.kept[STEP_DENY]["Attached"] == "managed"
    attached = account.client("iam").list_attached_user_policies(UserName=TARGET)
    assert [p["PolicyArn"] for p in attached["AttachedPolicies"]] == [DENY_ALL_ARN]
    summary = revoke_report(report, find_user(snapshot, TARGET))
    assert "AWS managed policy AWSDenyAll" in summary.render_text()


def test_no_room_for_either_fails_closed_after_the_keys(account: Account) -> None:
    _fill_inline_space(account)
    _attach_managed(account, MANAGED_POLICIES_PER_USER)
    snapshot, extras = load_for_revoke(account.admin, TARGET)
    plan = plan_revoke(snapshot, TARGET, extras=extras)
    ids = [s.id for s in plan.steps]
    assert ids[:2] == [STEP_KEYS, STEP_DENY]  # the keys go first, whatever comes next
    (warning,) = [w for w in plan.warnings if "no room for a deny policy" in w]
    assert "10 managed policies" in warning and "keyhygiene revoke stolen-phone" in warning

    limited = Limited(account.admin, {"put_user_policy", "attach_user_policy"})
    timer = ContainmentTimer(plan)
    report = apply_plan(plan, limited, on_event=timer, stop_on_failure=False)
    summary = revoke_report(report, find_user(snapshot, TARGET), timer=timer, snapshot=snapshot)
    assert [r.step_id for r in report.failed] == [STEP_DENY]
    assert fully_revoked(account)[STEP_KEYS]  # deactivated before the deny was tried
    (failure,) = summary.failures
    assert failure.message.startswith(NO_ROOM) and "detach one of" in failure.message
    assert failure.permission.startswith("room for a deny policy")
    text = summary.render_text()
    assert "the deny policy is NOT attached" in text and "Not done:" in text
    assert not summary.ok  # exit 3 on the command line


def test_a_denied_put_is_not_a_reason_to_fall_back(managed_account: Account) -> None:
    """Only IAM's quota moves the step to AWSDenyAll; an access denied fails it, and
    says which permission was missing."""
    account = managed_account
    account.client("iam").put_user_policy(
        UserName="admin", PolicyName="injected", PolicyDocument=_policy("Deny", "iam:PutUserPolicy")
    )
    summary = enforced(lambda: revoke(account.admin)[2])
    assert [f.permission for f in summary.failures] == ["iam:PutUserPolicy"]
    attached = account.client("iam").list_attached_user_policies(UserName=TARGET)
    assert attached["AttachedPolicies"] == []


def test_delete_user_removes_aws_deny_all_last(managed_account: Account) -> None:
    account = managed_account
    _fill_inline_space(account)
    plan, report, _ = revoke(account.admin, delete_user=True)
    assert report.ok, report.render_text()
    assert plan.step(STEP_DENY).call.params["Order"][0] == "managed"
    with pytest.raises(ClientError):
        account.client("iam").get_user(UserName=TARGET)


def test_the_report_says_requested_with_the_time_never_done(account: Account) -> None:
    snapshot, extras = load_for_revoke(account.admin, TARGET)
    plan = plan_revoke(snapshot, TARGET, extras=extras)
    moments = iter(datetime(2026, 11, 28, 14, 3, second, tzinfo=timezone.utc) for second in (5, 7))
    timer = ContainmentTimer(plan, wall=lambda: next(moments))
    seen: list[PlanEvent] = []

    def on_event(event: PlanEvent) -> None:
        seen.append(event)
        timer(event)

    report = apply_plan(plan, account.admin, on_event=on_event, stop_on_failure=False)
    summary = revoke_report(report, find_user(snapshot, TARGET), timer=timer, snapshot=snapshot)
    headline = summary.headline()
    # The time AWS accepted the last of the two containment calls (the deny).
    assert headline.startswith(f"Containment of {TARGET} requested at 14:03:07Z, ")
    assert "keys deactivated, deny-all attached (inline policy keyhygiene-revoked)" in headline
    assert "AWS may take a few minutes to apply it everywhere" in headline
    text = summary.render_text()
    assert "contained" not in text and " done" not in text.split("What to check next")[0]
    assert "eventually consistent" in text and "after 14:03:07Z" in text

    # A rerun with nothing left says when the first revoke asked for it.
    snapshot, extras = load_for_revoke(account.admin, TARGET)
    again = plan_revoke(snapshot, TARGET, extras=extras)
    rerun = revoke_report(apply_plan(again, account.admin), find_user(snapshot, TARGET))
    assert rerun.headline().startswith(
        f"Containment of {TARGET} was requested before this run (keyhygiene:revoked="
    )


def test_the_inline_deny_document_fits_an_empty_user() -> None:
    size = len(json.dumps(REVOKED_DOCUMENT, separators=(",", ":")))
    assert size < USER_INLINE_POLICIES_LIMIT
