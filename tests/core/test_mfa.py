"""A profile with `mfa_serial`: every Connection gets a GetSessionToken session,
the code asked once per profile and process."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
from moto import mock_aws

from keyhygiene.aws import connection as connection_module
from keyhygiene.aws.connection import (
    MFA_SESSION_SECONDS,
    Connection,
    ConnectionOptions,
    forget_mfa_sessions,
    set_mfa_code_provider,
)
from keyhygiene.core.errors import BadInput, ConnectionProblem
from keyhygiene.local import credentials_file
from keyhygiene.workflows.enrollment import admin_connection

ACCOUNT = "123456789012"
SERIAL = f"arn:aws:iam::{ACCOUNT}:mfa/admin"
REGION = "eu-west-1"
ADMIN = ConnectionOptions(profile="admin")


@pytest.fixture(autouse=True)
def no_mfa_state() -> Iterator[None]:
    forget_mfa_sessions()
    set_mfa_code_provider(None)
    yield
    forget_mfa_sessions()
    set_mfa_code_provider(None)


@pytest.fixture
def account(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """The user admin with a virtual MFA device; its key is the profile admin, whose
    config has mfa_serial. Yields the GetSessionToken requests made."""
    with mock_aws():
        import boto3

        iam = boto3.client("iam", region_name="us-east-1")
        iam.create_user(UserName="admin")
        device = iam.create_virtual_mfa_device(VirtualMFADeviceName="admin")["VirtualMFADevice"]
        iam.enable_mfa_device(
            UserName="admin",
            SerialNumber=device["SerialNumber"],
            AuthenticationCode1="123456",
            AuthenticationCode2="654321",
        )
        key = iam.create_access_key(UserName="admin")["AccessKey"]
        credentials_file.set_access_key(
            credentials_file.credentials_path(),
            "admin",
            key["AccessKeyId"],
            key["SecretAccessKey"],
        )
        credentials_file.set_config_values(
            credentials_file.config_path(), "admin", {"region": REGION, "mfa_serial": SERIAL}
        )
        yield record_sts_requests(monkeypatch, "GetSessionToken")


def record_sts_requests(monkeypatch: pytest.MonkeyPatch, operation: str) -> list[dict[str, Any]]:
    """The parameters of every STS `operation` the Connection's sessions send,
    the clients botocore makes itself (a role profile's AssumeRole) included."""
    requests: list[dict[str, Any]] = []
    plain_session = connection_module.new_botocore_session

    def recording_session(*args: Any) -> Any:
        core = plain_session(*args)
        core.register(
            f"provide-client-params.sts.{operation}",
            lambda params, **_: requests.append(dict(params)),
        )
        return core

    monkeypatch.setattr(connection_module, "new_botocore_session", recording_session)
    return requests


def test_a_profile_with_mfa_serial_gets_a_session_token(
    account: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    asked: list[tuple[str, str]] = []
    set_mfa_code_provider(lambda profile, serial: asked.append((profile, serial)) or "123456")
    conn = Connection(ADMIN)
    identity = conn.whoami()
    assert asked == [("admin", SERIAL)]
    assert account == [
        {"SerialNumber": SERIAL, "TokenCode": "123456", "DurationSeconds": MFA_SESSION_SECONDS}
    ]
    credentials = conn.session.get_credentials()
    assert credentials is not None and credentials.token  # temporary credentials
    assert credentials.method != "shared-credentials-file"
    assert conn.mfa_serial == SERIAL
    assert conn.region == REGION  # the profile's settings stay
    # moto answers GetCallerIdentity for GetSessionToken keys with its default user.
    assert identity.account_id == ACCOUNT
    assert conn.client("iam").get_user(UserName="admin")["User"]["UserName"] == "admin"
    assert credentials.secret_key not in repr(conn.__dict__)
    assert credentials.token not in repr(connection_module._mfa_sessions)


def test_the_code_is_asked_once_per_profile_and_again_when_the_session_ends(
    account: list[dict[str, Any]],
) -> None:
    asked: list[str] = []
    set_mfa_code_provider(lambda profile, serial: asked.append(profile) or f"12345{len(asked)}")
    for _ in range(3):
        Connection(ADMIN).whoami()
    assert asked == ["admin"] and len(account) == 1
    for cached in connection_module._mfa_sessions.values():
        cached.expires = datetime(2000, 1, 1, tzinfo=timezone.utc)
    # The session ended an hour later: the code window it used is long past.
    connection_module._last_code_window.clear()
    Connection(ADMIN).whoami()
    assert asked == ["admin", "admin"]


def test_without_a_code_the_connection_says_how_to_give_one(
    account: list[dict[str, Any]],
) -> None:
    with pytest.raises(ConnectionProblem, match="requires MFA") as problem:
        Connection(ADMIN).whoami()
    assert SERIAL in str(problem.value) and "--mfa-code" in str(problem.value)
    set_mfa_code_provider(lambda profile, serial: "  ")
    with pytest.raises(ConnectionProblem, match="requires MFA"):
        Connection(ADMIN).whoami()
    set_mfa_code_provider(lambda profile, serial: "12")
    with pytest.raises(BadInput, match="6 digits"):
        Connection(ADMIN).whoami()
    assert account == []  # nothing was sent to AWS


def test_role_profiles_and_environment_keys_are_left_to_botocore(
    account: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []
    set_mfa_code_provider(lambda profile, serial: asked.append(profile) or "123456")
    credentials_file.set_config_values(
        credentials_file.config_path(),
        "role",
        {
            "role_arn": f"arn:aws:iam::{ACCOUNT}:role/admin",
            "source_profile": "admin",
            "mfa_serial": SERIAL,
        },
    )
    assert Connection(ConnectionOptions(profile="role")).session is not None
    # No --profile: botocore uses the environment's key, not the profile's.
    credentials_file.set_config_values(
        credentials_file.config_path(), "default", {"mfa_serial": SERIAL}
    )
    Connection(ConnectionOptions()).whoami()
    monkeypatch.setenv("AWS_PROFILE", "admin")
    Connection(ConnectionOptions()).whoami()
    assert asked == [] and account == []


def test_admin_connection_takes_the_code_it_is_given(account: list[dict[str, Any]]) -> None:
    conn = admin_connection(
        ConnectionOptions(profile="me", admin_profile="admin"), mfa_code="654321"
    )
    assert conn.options.profile == "admin"
    conn.whoami()
    assert [r["TokenCode"] for r in account] == ["654321"]
    asked: list[str] = []
    forget_mfa_sessions()
    admin_connection(ADMIN, ask_mfa_code=lambda s: asked.append(s) or "111111").whoami()
    assert asked == [SERIAL]


def _role_profile_recording(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Profile `role` assumes role admin with mfa_serial, from profile admin's key
    (through `base`, which has no mfa_serial). Returns the AssumeRole requests."""
    values = credentials_file.read_profile(credentials_file.credentials_path(), "admin")
    credentials_file.set_access_key(
        credentials_file.credentials_path(),
        "base",
        values["aws_access_key_id"],
        values["aws_secret_access_key"],
    )
    import boto3

    boto3.client("iam", region_name="us-east-1").create_role(
        RoleName="admin", AssumeRolePolicyDocument="{}"
    )
    credentials_file.set_config_values(
        credentials_file.config_path(),
        "role",
        {
            "role_arn": f"arn:aws:iam::{ACCOUNT}:role/admin",
            "source_profile": "base",
            "mfa_serial": SERIAL,
            "region": REGION,
        },
    )
    return record_sts_requests(monkeypatch, "AssumeRole")


def test_a_role_profiles_mfa_code_comes_from_keyhygiene_not_botocores_prompt(
    account: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """botocore would ask with getpass (EOFError without a terminal, and over the
    TUI's screen with one): the code comes from --mfa-code, the environment or
    the TUI's dialog, like every other MFA code."""
    assumed = _role_profile_recording(monkeypatch)
    asked: list[tuple[str, str]] = []
    set_mfa_code_provider(lambda profile, serial: asked.append((profile, serial)) or "246810")
    identity = Connection(ConnectionOptions(profile="role")).whoami()
    assert ":assumed-role/admin/" in identity.arn
    assert asked == [("role", SERIAL)]
    assert [(r["SerialNumber"], r["TokenCode"]) for r in assumed] == [(SERIAL, "246810")]


def test_a_role_profile_without_a_code_says_how_to_give_one(
    account: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    assumed = _role_profile_recording(monkeypatch)
    with pytest.raises(ConnectionProblem, match="requires MFA") as problem:
        Connection(ConnectionOptions(profile="role")).whoami()
    assert "--mfa-code" in str(problem.value)
    assert assumed == []
