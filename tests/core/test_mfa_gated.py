"""MFA-gated computers: enrolment against moto in-process, and the gate proven on
AWS's rules by the offline evaluator (moto evaluates no condition)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from helpers import act_as_new_admin
from moto import mock_aws

from keyhygiene.aws.connection import Connection, ConnectionOptions
from keyhygiene.aws.inventory import load_snapshot
from keyhygiene.core.mfa_devices import (
    GATED_ACTIONS,
    MFA_GROUP,
    REQUIRE_MFA_POLICY,
    grouped_seed,
    otpauth_uri,
    qr_lines,
    require_mfa_document,
    seconds_to_next_code,
    totp,
)
from keyhygiene.core.policy_documents import default_key_policy
from keyhygiene.core.policy_eval import PolicySource, Principal, Request, evaluate
from keyhygiene.local import credentials_file
from keyhygiene.plans import apply_plan
from keyhygiene.plans.journal import Journal
from keyhygiene.steps.mfa_device import NewMfaDevice, set_mfa_device_prompt
from keyhygiene.workflows.enrollment import (
    ROTATE_OWN_KEY_POLICY,
    EnrollmentRequest,
    plan_enrollment,
    rotate_own_key_document,
    with_local_files,
)

REGION = "us-east-1"
ACCOUNT = "123456789012"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice-laptop"
ADMINS_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


def no_sleep(_seconds: float) -> None:
    pass


@pytest.fixture
def account(isolated_aws: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with mock_aws():
        iam = boto3.client("iam", region_name=REGION)
        act_as_new_admin(iam, monkeypatch)
        iam.create_group(GroupName="admins")
        iam.put_group_policy(
            GroupName="admins", PolicyName="all", PolicyDocument=json.dumps(ADMINS_POLICY)
        )
        iam.create_group(GroupName="readers")
        iam.generate_credential_report()
        yield iam
    set_mfa_device_prompt(None)


class AppPrompt:
    """A person with an authenticator app: reads the seed, answers two codes."""

    def __init__(self, *, same_code: bool = False) -> None:
        self.devices: list[NewMfaDevice] = []
        self.seed = ""
        self.same_code = same_code

    def __call__(self, device: NewMfaDevice) -> tuple[str, str]:
        self.devices.append(device)
        self.seed = device.seed.reveal()
        now = time.time()
        first = totp(self.seed, now)
        return first, first if self.same_code else totp(self.seed, now + 30)


def plan_for(groups: tuple[str, ...], mfa: str = "auto") -> Any:
    conn = Connection(ConnectionOptions(region=REGION))
    request = with_local_files(
        EnrollmentRequest(person="alice", device="laptop", groups=groups, region=REGION, mfa=mfa)
    )
    return conn, plan_enrollment(load_snapshot(conn), request)


# ---- enrolment --------------------------------------------------------------------


def test_a_computer_in_an_admin_group_is_gated_by_default(account: Any) -> None:
    _, plan = plan_for(("admins",))
    ids = [step.id for step in plan.steps]
    assert ids.index("mfa-device") < ids.index(f"join.{MFA_GROUP}") < ids.index("join.admins")
    assert "set-mfa-serial" in ids
    assert any("MFA-gated because admins may allow IAM writes" in w for w in plan.warnings)
    _, plain = plan_for(("readers",))
    assert "mfa-device" not in [step.id for step in plain.steps]
    assert any("Not MFA-gated" in w for w in plain.warnings)
    _, refused = plan_for(("admins",), mfa="off")
    assert "mfa-device" not in [step.id for step in refused.steps]


def test_enrolment_creates_and_confirms_the_device(account: Any) -> None:
    prompt = AppPrompt()
    set_mfa_device_prompt(prompt)
    conn, plan = plan_for(("readers",), mfa="on")
    journal = Journal.create(plan)
    report = apply_plan(plan, conn, journal=journal, sleep=no_sleep)
    assert report.ok, report.render_text()
    devices = account.list_mfa_devices(UserName="alice-laptop")["MFADevices"]
    assert [d["SerialNumber"] for d in devices] == [f"arn:aws:iam::{ACCOUNT}:mfa/alice-laptop"]
    groups = {
        g["GroupName"] for g in account.list_groups_for_user(UserName="alice-laptop")["Groups"]
    }
    assert groups == {"keyhygiene-devices", MFA_GROUP, "readers"}
    attached = account.list_attached_group_policies(GroupName=MFA_GROUP)["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == [REQUIRE_MFA_POLICY]
    config = credentials_file.read_profile(
        credentials_file.config_path(), "alice-laptop", config_style=True
    )
    assert config["mfa_serial"] == devices[0]["SerialNumber"]
    # The seed reached the person and nothing else.
    assert len(prompt.devices) == 1 and "****" in repr(prompt.devices[0])
    for text in (journal.path.read_text(), report.render_text(), json.dumps(plan.to_json())):
        assert prompt.seed not in text
    assert report.kept["mfa-device"] == {"SerialNumber": devices[0]["SerialNumber"]}


@pytest.mark.parametrize("prompt", [AppPrompt(same_code=True), None])
def test_an_unconfirmed_device_rolls_everything_back(account: Any, prompt: Any) -> None:
    set_mfa_device_prompt(prompt)
    conn, plan = plan_for(("readers",), mfa="on")
    report = apply_plan(plan, conn, sleep=no_sleep)
    assert not report.ok
    failed = next(r for r in report.results if r.status == "failed")
    assert failed.step_id == "mfa-device"
    assert "codes" in failed.message or "terminal" in failed.message
    from keyhygiene.plans import rollback

    assert rollback(report, conn).ok
    users = [u["UserName"] for u in account.list_users()["Users"]]
    assert "alice-laptop" not in users
    assert account.list_virtual_mfa_devices()["VirtualMFADevices"] == []


# ---- the gate on AWS's rules ------------------------------------------------------


def _computer_policies(*, admin: bool) -> list[PolicySource]:
    sources = [
        PolicySource(f"managed policy {ROTATE_OWN_KEY_POLICY}", rotate_own_key_document()),
        PolicySource(f"managed policy {REQUIRE_MFA_POLICY}", require_mfa_document()),
    ]
    if admin:
        sources.append(PolicySource("inline policy all of group admins", ADMINS_POLICY))
    return sources


def _ask(action: str, resource: str, *, mfa: bool, admin: bool = False) -> str:
    # A request signed with the long-term key carries no aws:MultiFactorAuthPresent;
    # one signed with a GetSessionToken session made with a code carries "true".
    context = {"aws:MultiFactorAuthPresent": "true", "aws:MultiFactorAuthAge": "30"} if mfa else {}
    request = Request(Principal.user(ALICE), action, resource, context=context)
    # A KMS key's policy decides; the default one hands the decision to IAM.
    key_policy = (
        PolicySource("the default key policy", default_key_policy(ACCOUNT))
        if action.startswith("kms:")
        else None
    )
    return evaluate(request, _computer_policies(admin=admin), key_policy).outcome


@pytest.mark.parametrize(
    "action", ["iam:CreateAccessKey", "iam:UpdateAccessKey", "iam:DeleteAccessKey"]
)
def test_a_copied_key_cannot_manage_keys_without_mfa(action: str) -> None:
    assert _ask(action, ALICE, mfa=False) == "explicit-deny"
    assert _ask(action, ALICE, mfa=True) == "allow"


@pytest.mark.parametrize(
    ("action", "resource"),
    [
        ("iam:CreateUser", f"arn:aws:iam::{ACCOUNT}:user/backdoor"),
        ("iam:CreateAccessKey", f"arn:aws:iam::{ACCOUNT}:user/bob-desktop"),
        ("iam:AttachUserPolicy", ALICE),
        ("iam:CreateRole", f"arn:aws:iam::{ACCOUNT}:role/backdoor"),
        ("iam:UpdateAssumeRolePolicy", f"arn:aws:iam::{ACCOUNT}:role/photos"),
        ("iam:DeactivateMFADevice", ALICE),
        ("iam:CreateLoginProfile", ALICE),
        ("kms:CreateGrant", f"arn:aws:kms:{REGION}:{ACCOUNT}:key/k"),
        ("kms:PutKeyPolicy", f"arn:aws:kms:{REGION}:{ACCOUNT}:key/k"),
        ("s3:PutBucketPolicy", "arn:aws:s3:::photos-data"),
        ("s3:PutObjectAcl", "arn:aws:s3:::photos-data/a.jpg"),
    ],
)
def test_an_admin_computer_makes_no_lasting_change_without_mfa(action: str, resource: str) -> None:
    assert _ask(action, resource, mfa=False, admin=True) == "explicit-deny"
    assert _ask(action, resource, mfa=True, admin=True) == "allow"


def test_the_computers_own_work_is_not_gated() -> None:
    for action, resource in (
        ("s3:GetObject", "arn:aws:s3:::photos-data/a.jpg"),
        ("s3:PutObject", "arn:aws:s3:::photos-data/a.jpg"),
        ("kms:Decrypt", f"arn:aws:kms:{REGION}:{ACCOUNT}:key/k"),
        ("iam:ListUsers", "*"),
    ):
        assert _ask(action, resource, mfa=False, admin=True) == "allow", action


def test_mfa_present_false_is_denied_too() -> None:
    # A session made without a code says "false", not absent.
    request = Request(
        Principal.user(ALICE),
        "iam:CreateAccessKey",
        ALICE,
        context={"aws:MultiFactorAuthPresent": "false"},
    )
    assert evaluate(request, _computer_policies(admin=False)).outcome == "explicit-deny"


def test_every_gated_action_is_denied_without_mfa() -> None:
    for action in GATED_ACTIONS:
        assert _ask(action, "*", mfa=False, admin=True) == "explicit-deny", action


# ---- codes and the QR code --------------------------------------------------------


def test_totp_matches_rfc_6238() -> None:
    # RFC 6238 appendix B, SHA-1 seed "12345678901234567890", 6 digits of the 8.
    seed = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
    assert totp(seed, 59) == "287082"
    assert totp(seed, 1111111109) == "081804"
    assert totp(seed, 2000000000) == "279037"
    assert 0 < seconds_to_next_code(61.5) == 28.5


def test_the_qr_code_holds_the_uri_and_the_seed_reads_in_groups() -> None:
    uri = otpauth_uri("JBSWY3DPEHPK3PXP", "alice-laptop", ACCOUNT)
    assert uri.startswith(
        "otpauth://totp/AWS%20123456789012%3Aalice-laptop?secret=JBSWY3DPEHPK3PXP"
    )
    lines = qr_lines(uri)
    assert len({len(line) for line in lines}) == 1 and len(lines) > 10
    assert set("".join(lines)) <= {"█", "▀", "▄", " "}
    assert grouped_seed("JBSWY3DPEHPK3PXP") == "JBSW Y3DP EHPK 3PXP"


# ---- rotation in an MFA session ---------------------------------------------------


def test_rotation_asks_one_code_and_signs_iam_with_the_mfa_session(
    account: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keyhygiene.aws import connection
    from keyhygiene.workflows.rotation import (
        HeldKeyClients,
        KeyLocation,
        RotationRequest,
        execute_rotation,
        inspect_rotation,
        plan_rotation,
    )

    account.create_user(UserName="alice-laptop")
    key = account.create_access_key(UserName="alice-laptop")["AccessKey"]
    serial = f"arn:aws:iam::{ACCOUNT}:mfa/alice-laptop"
    location = KeyLocation.for_profile("alice-laptop")
    credentials_file.set_access_key(
        location.credentials_file, "alice-laptop", key["AccessKeyId"], key["SecretAccessKey"]
    )
    credentials_file.set_config_values(
        location.config_file, "alice-laptop", {"region": REGION, "mfa_serial": serial}
    )
    asked: list[str] = []
    connection.forget_mfa_sessions()
    monkeypatch.setattr(connection, "_mfa_code_provider", lambda p, s: asked.append(s) or "123456")
    clients = HeldKeyClients(ConnectionOptions(profile="alice-laptop", region=REGION), location)
    plan = plan_rotation(
        inspect_rotation(clients), RotationRequest(profile="alice-laptop", verify_interval=0)
    )
    # IAM goes through the session (moto's temporary credentials), STS does not.
    signing = clients.client("iam")._request_signer._credentials
    assert signing.token and signing.access_key != key["AccessKeyId"]
    assert clients.client("sts")._request_signer._credentials.access_key == key["AccessKeyId"]
    outcome = execute_rotation(plan, clients, sleep=no_sleep)
    assert outcome.ok, outcome.render_text()
    assert asked == [serial]  # one code for the whole rotation
    keys = account.list_access_keys(UserName="alice-laptop")["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in keys] != [key["AccessKeyId"]] and len(keys) == 1
    connection.forget_mfa_sessions()


def test_a_second_code_waits_for_the_next_window(monkeypatch: pytest.MonkeyPatch) -> None:
    from keyhygiene.aws import connection

    connection.forget_mfa_sessions()
    now = [100.0]  # window 3 (90-120 s)
    notices: list[str] = []
    monkeypatch.setattr(connection, "mfa_wait_notice", notices.append)

    def sleep(seconds: float) -> None:
        now[0] += seconds

    codes = iter(["111111", "222222"])
    serial = f"arn:aws:iam::{ACCOUNT}:mfa/alice-laptop"
    ask = lambda: connection.ask_mfa_code(  # noqa: E731
        "alice-laptop", serial, lambda p, s: next(codes), clock=lambda: now[0], sleep=sleep
    )
    assert ask() == "111111"
    assert ask() == "222222"
    assert now[0] >= 120 and notices and "next one shows in 21 s" in notices[0]
    # A code given once (--mfa-code) cannot serve a second session.
    connection.forget_mfa_sessions()
    fixed = lambda: connection.ask_mfa_code(  # noqa: E731
        "alice-laptop", serial, lambda p, s: "333333", clock=lambda: now[0], sleep=sleep
    )
    fixed()
    with pytest.raises(connection.ConnectionProblem, match="second MFA code"):
        fixed()
    connection.forget_mfa_sessions()


def test_the_rotation_schedule_is_tagged_and_holds_the_audit(account: Any) -> None:
    from datetime import datetime, timedelta, timezone

    from keyhygiene.audit.findings import AuditSettings, should_fail
    from keyhygiene.audit.runner import run_audit

    conn = Connection(ConnectionOptions(region=REGION))
    request = with_local_files(
        EnrollmentRequest(
            person="alice", device="laptop", region=REGION, mfa="off", rotate_every_days=30
        )
    )
    report = apply_plan(plan_enrollment(load_snapshot(conn), request), conn, sleep=no_sleep)
    assert report.ok, report.render_text()
    tags = {t["Key"]: t["Value"] for t in account.get_user(UserName="alice-laptop")["User"]["Tags"]}
    assert tags["keyhygiene:rotate-every"] == "30d"
    snapshot = load_snapshot(conn)
    user = snapshot.user("alice-laptop")
    assert user is not None and user.rotate_every_days == 30
    later = datetime.now(timezone.utc) + timedelta(days=40)
    age = user.key_age(later, 90)
    assert age is not None and age.is_overdue and age.overdue in (9, 10)
    findings = run_audit(snapshot, settings=AuditSettings(), now=later)
    overdue = [f for f in findings if f.id == "user.key-too-old"]
    assert [f.resource for f in overdue] == ["alice-laptop"]
    assert "its schedule is every 30 days" in overdue[0].detail
    assert should_fail(findings, "overdue")
    assert not should_fail(run_audit(snapshot, settings=AuditSettings()), "overdue")
