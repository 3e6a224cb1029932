"""Strict computers: nothing at all without an MFA session, proven on AWS's rules
by the offline evaluator, enrolled against moto in-process, and the AWS CLI's
MFA sessions served from the keyring by credential-process."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest
from helpers import act_as_new_admin
from moto import mock_aws

from keyhygiene.aws.connection import Connection, ConnectionOptions, session_for_key
from keyhygiene.aws.inventory import load_snapshot
from keyhygiene.core.errors import BadInput, ConnectionProblem
from keyhygiene.core.mfa_devices import (
    MFA_GROUP,
    REQUIRE_MFA_POLICY,
    STRICT_ALLOWED_WITHOUT_MFA,
    STRICT_GROUP,
    STRICT_POLICY,
    is_gated,
    is_strict,
    require_mfa_document,
    require_mfa_strict_document,
    totp,
)
from keyhygiene.core.policy_documents import default_key_policy
from keyhygiene.core.policy_eval import PolicySource, Principal, Request, evaluate
from keyhygiene.local import credentials_file, vault
from keyhygiene.local.mfa_sessions import SessionRequest, parse_duration, serve_session
from keyhygiene.plans import apply_plan, rollback
from keyhygiene.plans.journal import Journal
from keyhygiene.steps.mfa_device import NewMfaDevice, set_mfa_device_prompt
from keyhygiene.workflows.enrollment import (
    ROTATE_OWN_KEY_POLICY,
    EnrollmentRequest,
    plan_enrollment,
    registered_sentence,
    rotate_own_key_document,
    with_local_files,
)

REGION = "us-east-1"
ACCOUNT = "123456789012"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice-laptop"
EVERYTHING = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}
READ_PHOTOS = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:ListBucket"],
            "Resource": ["arn:aws:s3:::photos-data", "arn:aws:s3:::photos-data/*"],
        }
    ],
}


def no_sleep(_seconds: float) -> None:
    pass


# ---- the policy on AWS's rules ------------------------------------------------------


def _strict_computer(extra: dict[str, Any]) -> list[PolicySource]:
    return [
        PolicySource(f"managed policy {ROTATE_OWN_KEY_POLICY}", rotate_own_key_document()),
        PolicySource(f"managed policy {REQUIRE_MFA_POLICY}", require_mfa_document()),
        PolicySource(f"managed policy {STRICT_POLICY}", require_mfa_strict_document()),
        PolicySource("the group's policy", extra),
    ]


def _ask(action: str, resource: str, context: dict[str, str], extra: dict[str, Any]) -> str:
    # A KMS key's policy and a role's trust policy decide with the identity's.
    resource_policy = None
    if action.startswith("kms:"):
        resource_policy = PolicySource("the default key policy", default_key_policy(ACCOUNT))
    elif action == "sts:AssumeRole":
        trust = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": ALICE}, "Action": action}],
        }
        resource_policy = PolicySource("the role's trust policy", trust)
    request = Request(Principal.user(ALICE), action, resource, context=context)
    return evaluate(request, _strict_computer(extra), resource_policy).outcome


MFA = {"aws:MultiFactorAuthPresent": "true", "aws:MultiFactorAuthAge": "30"}
# A long-term key's request carries no MFA key; a session made without a
# code says "false" (IAM User Guide, aws:MultiFactorAuthPresent).
WITHOUT = [{}, {"aws:MultiFactorAuthPresent": "false"}]


@pytest.mark.parametrize(
    ("action", "resource"),
    [
        # What `aws s3 cp` and a multipart upload make.
        ("s3:GetObject", "arn:aws:s3:::photos-data/a.jpg"),
        ("s3:PutObject", "arn:aws:s3:::photos-data/a.jpg"),
        ("s3:ListBucket", "arn:aws:s3:::photos-data"),
        ("kms:Decrypt", f"arn:aws:kms:{REGION}:{ACCOUNT}:key/k"),
        ("kms:GenerateDataKey", f"arn:aws:kms:{REGION}:{ACCOUNT}:key/k"),
        ("sts:AssumeRole", f"arn:aws:iam::{ACCOUNT}:role/photos"),
        ("iam:ListUsers", "*"),
        ("iam:CreateAccessKey", ALICE),
        ("iam:DeleteAccessKey", ALICE),
        ("ec2:RunInstances", "*"),
    ],
)
def test_a_copied_strict_key_does_nothing_without_mfa(action: str, resource: str) -> None:
    for context in WITHOUT:
        assert _ask(action, resource, context, EVERYTHING) == "explicit-deny", (action, context)
    assert _ask(action, resource, MFA, EVERYTHING) == "allow", action


def test_the_computers_own_work_goes_on_in_an_mfa_session() -> None:
    for action, resource in (
        ("s3:GetObject", "arn:aws:s3:::photos-data/a.jpg"),
        ("s3:PutObject", "arn:aws:s3:::photos-data/a.jpg"),
        ("iam:CreateAccessKey", ALICE),  # its own rotation
    ):
        assert _ask(action, resource, MFA, READ_PHOTOS) == "allow", action
        assert _ask(action, resource, {}, READ_PHOTOS) == "explicit-deny", action


def test_getting_the_session_is_left_without_mfa() -> None:
    # GetSessionToken and GetCallerIdentity cannot be denied at all; the
    # device reads are what the AWS example leaves for self-service.
    for action in STRICT_ALLOWED_WITHOUT_MFA:
        resource = ALICE if action.startswith("iam:") else "*"
        assert _ask(action, resource, {}, EVERYTHING) == "allow", action


def test_strict_computers_count_as_gated() -> None:
    assert is_gated([STRICT_GROUP]) and is_strict(["Keyhygiene-MFA-Strict"])
    assert not is_strict([MFA_GROUP])


# ---- enrolment --------------------------------------------------------------------


class AppPrompt:
    def __init__(self) -> None:
        self.seed = ""

    def __call__(self, device: NewMfaDevice) -> tuple[str, str]:
        self.seed = device.seed.reveal()
        now = time.time()
        return totp(self.seed, now), totp(self.seed, now + 30)


@pytest.fixture
def account(isolated_aws: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with mock_aws():
        iam = boto3.client("iam", region_name=REGION)
        act_as_new_admin(iam, monkeypatch)
        iam.create_group(GroupName="readers")
        yield iam
    set_mfa_device_prompt(None)


def plan_for(mfa: str, store: str | None = None) -> Any:
    conn = Connection(ConnectionOptions(region=REGION))
    request = with_local_files(
        EnrollmentRequest(
            person="alice",
            device="laptop",
            groups=("readers",),
            region=REGION,
            mfa=mfa,
            store=store,
        )
    )
    return conn, plan_enrollment(load_snapshot(conn), request)


def test_a_strict_enrolment_plans_both_gates_and_the_keyring(
    account: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The tests' memory keyring: allowed here, refused for real use.
    monkeypatch.setenv(vault.INSECURE_VAR, "1")
    _, plan = plan_for("strict")
    ids = [step.id for step in plan.steps]
    assert ids.index(f"join.{STRICT_GROUP}") < ids.index("join.readers")
    assert ids.index(f"join.{MFA_GROUP}") < ids.index("join.readers")
    assert "store-key" in ids and "write-credentials" not in ids
    command = plan.step("store-key").call.params["credential_process"]
    assert command.endswith("credential-process --profile alice-laptop --mfa-session")
    assert any(w.startswith("Strict:") for w in plan.warnings)
    with pytest.raises(BadInput, match="cannot make one from a key in the credentials file"):
        plan_for("strict", store="file")


def test_a_strict_enrolment_keeps_the_key_in_the_keyring_only(
    account: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The tests' memory keyring: allowed here, refused for real use.
    monkeypatch.setenv(vault.INSECURE_VAR, "1")
    set_mfa_device_prompt(AppPrompt())
    conn, plan = plan_for("strict")
    report = apply_plan(plan, conn, journal=Journal.create(plan), sleep=no_sleep)
    assert report.ok, report.render_text()
    groups = {
        g["GroupName"] for g in account.list_groups_for_user(UserName="alice-laptop")["Groups"]
    }
    assert groups == {"keyhygiene-devices", MFA_GROUP, STRICT_GROUP, "readers"}
    attached = account.list_attached_group_policies(GroupName=STRICT_GROUP)["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == [STRICT_POLICY]
    stored = vault.load_key("alice-laptop")
    keys = account.list_access_keys(UserName="alice-laptop")["AccessKeyMetadata"]
    assert stored is not None and [k["AccessKeyId"] for k in keys] == [stored.access_key_id]
    assert credentials_file.read_profile(credentials_file.credentials_path(), "alice-laptop") == {}
    config = credentials_file.read_profile(
        credentials_file.config_path(), "alice-laptop", config_style=True
    )
    assert vault.serves_mfa_sessions(config["credential_process"])
    assert config["mfa_serial"] == f"arn:aws:iam::{ACCOUNT}:mfa/alice-laptop"
    sentence = registered_sentence(plan) or ""
    assert "MFA sessions" in sentence and "keyring" in sentence
    # Undone, the keyring and the config lose what the enrolment put there.
    assert rollback(report, conn).ok
    assert vault.load_key("alice-laptop") is None
    config = credentials_file.read_profile(
        credentials_file.config_path(), "alice-laptop", config_style=True
    )
    assert "credential_process" not in config


# ---- MFA sessions for the AWS CLI --------------------------------------------------


class Codes:
    def __init__(self, seed: str) -> None:
        self.seed = seed
        self.asked = 0

    def __call__(self, profile: str, serial: str) -> str:
        self.asked += 1
        return totp(self.seed)


@pytest.fixture
def strict_profile(isolated_aws: Path) -> Iterator[tuple[Any, str]]:
    """alice-laptop with a virtual MFA device, its key in the memory keyring,
    its config naming keyhygiene's credential process with --mfa-session."""
    with mock_aws():
        iam = boto3.client("iam", region_name=REGION)
        iam.create_user(UserName="alice-laptop")
        device = iam.create_virtual_mfa_device(VirtualMFADeviceName="alice-laptop")
        seed = device["VirtualMFADevice"]["Base32StringSeed"].decode()
        serial = device["VirtualMFADevice"]["SerialNumber"]
        iam.enable_mfa_device(
            UserName="alice-laptop",
            SerialNumber=serial,
            AuthenticationCode1=totp(seed),
            AuthenticationCode2=totp(seed, time.time() + 30),
        )
        key = iam.create_access_key(UserName="alice-laptop")["AccessKey"]
        vault.store_key("alice-laptop", key["AccessKeyId"], vault.Secret(key["SecretAccessKey"]))
        credentials_file.set_config_values(
            credentials_file.config_path(),
            "alice-laptop",
            {
                "mfa_serial": serial,
                "credential_process": vault.credential_process_command(
                    "alice-laptop", mfa_session=True
                ),
            },
        )
        yield iam, seed


def _request() -> SessionRequest:
    return SessionRequest(
        profile="alice-laptop",
        config_file=str(credentials_file.config_path()),
        region=REGION,
        duration_seconds=3600,
    )


def test_one_code_serves_sessions_until_the_session_ends(strict_profile: Any) -> None:
    _, seed = strict_profile
    codes = Codes(seed)
    first = serve_session(_request(), ask_code=codes, make_session=session_for_key)
    second = serve_session(_request(), ask_code=codes, make_session=session_for_key)
    assert codes.asked == 1
    assert second.access_key_id == first.access_key_id and second.token == first.token
    assert first.expiration > datetime.now(timezone.utc) + timedelta(minutes=50)
    # The session is a working one: STS answers to it.
    sts = boto3.client(
        "sts",
        region_name=REGION,
        aws_access_key_id=first.access_key_id,
        aws_secret_access_key=first.secret.reveal(),
        aws_session_token=first.token.reveal(),
    )
    assert sts.get_caller_identity()["Account"] == ACCOUNT
    # Nothing secret in what a traceback or a log would show.
    for text in (repr(first), str(first)):
        assert first.secret.reveal() not in text and first.token.reveal() not in text


def test_a_session_near_its_end_is_made_afresh(strict_profile: Any) -> None:
    _, seed = strict_profile
    codes = Codes(seed)
    serve_session(_request(), ask_code=codes, make_session=session_for_key)
    # Ten minutes before the end: botocore would ask again at once.
    later = datetime.now(timezone.utc) + timedelta(minutes=50)
    serve_session(_request(), ask_code=codes, make_session=session_for_key, now=lambda: later)
    assert codes.asked == 2


def test_no_terminal_says_how_to_start_a_session(strict_profile: Any) -> None:
    with pytest.raises(ConnectionProblem, match="no code could be asked") as caught:
        serve_session(_request(), ask_code=lambda p, s: "", make_session=session_for_key)
    assert "aws sts get-caller-identity --profile alice-laptop" in (caught.value.hint or "")
    assert vault.load_session("alice-laptop") is None


def test_a_profile_without_mfa_serial_is_refused(strict_profile: Any) -> None:
    credentials_file.set_config_values(
        credentials_file.config_path(), "alice-laptop", {}, remove=("mfa_serial",)
    )
    with pytest.raises(BadInput, match="no mfa_serial"):
        serve_session(_request(), ask_code=lambda p, s: "123456", make_session=session_for_key)


def test_a_damaged_cache_is_no_cache(strict_profile: Any) -> None:
    _, seed = strict_profile
    vault.keyring_backend().set_password(vault.SERVICE_NAME, "alice-laptop#mfa-session", "{nope")
    codes = Codes(seed)
    serve_session(_request(), ask_code=codes, make_session=session_for_key)
    assert codes.asked == 1 and vault.load_session("alice-laptop") is not None


@pytest.mark.parametrize(
    ("text", "seconds"), [("12h", 43200), ("90m", 5400), ("900", 900), ("36h", 129600)]
)
def test_session_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["10m", "37h", "soon", ""])
def test_bad_session_durations(text: str) -> None:
    with pytest.raises(BadInput):
        parse_duration(text)


def test_the_stored_session_never_shows(strict_profile: Any) -> None:
    _, seed = strict_profile
    serve_session(_request(), ask_code=Codes(seed), make_session=session_for_key)
    stored = vault.load_session("alice-laptop")
    assert stored is not None
    for hidden in (stored.secret.reveal(), stored.token.reveal()):
        assert hidden not in repr(stored) and hidden not in str(stored)
    assert (
        json.loads(
            vault.keyring_backend().get_password(vault.SERVICE_NAME, "alice-laptop#mfa-session")
        )["SessionToken"]
        == stored.token.reveal()
    )


def test_a_strict_computer_rotates_in_the_keyring_and_keeps_its_sessions(
    strict_profile: Any, monkeypatch: pytest.MonkeyPatch
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

    iam, seed = strict_profile
    before = vault.load_key("alice-laptop")
    assert before is not None
    connection.forget_mfa_sessions()
    monkeypatch.setattr(connection, "_mfa_code_provider", lambda p, s: totp(seed))
    location = KeyLocation.for_profile("alice-laptop")
    clients = HeldKeyClients(ConnectionOptions(profile="alice-laptop", region=REGION), location)
    plan = plan_rotation(
        inspect_rotation(clients), RotationRequest(profile="alice-laptop", verify_interval=0)
    )
    outcome = execute_rotation(plan, clients, sleep=no_sleep)
    assert outcome.ok, outcome.render_text()
    after = vault.load_key("alice-laptop")
    keys = iam.list_access_keys(UserName="alice-laptop")["AccessKeyMetadata"]
    assert after is not None and [k["AccessKeyId"] for k in keys] == [after.access_key_id]
    assert after.access_key_id != before.access_key_id
    config = credentials_file.read_profile(location.config_file, "alice-laptop", config_style=True)
    assert vault.serves_mfa_sessions(config["credential_process"])
    connection.forget_mfa_sessions()


def test_moving_the_key_out_of_the_keyring_drops_its_cached_session(strict_profile: Any) -> None:
    from keyhygiene.local.key_location import KeyLocation
    from keyhygiene.workflows.rotation.actions import _finish_write

    _, seed = strict_profile
    serve_session(_request(), ask_code=Codes(seed), make_session=session_for_key)
    assert vault.load_session("alice-laptop") is not None
    _finish_write(
        {"store": "file", "old_store": "keyring"}, KeyLocation.for_profile("alice-laptop")
    )
    assert vault.load_session("alice-laptop") is None and vault.load_key("alice-laptop") is None
    config = credentials_file.read_profile(
        credentials_file.config_path(), "alice-laptop", config_style=True
    )
    assert "credential_process" not in config
