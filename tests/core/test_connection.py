"""The AWS edge: secrets never reach botocore's DEBUG logs; errors read well."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws

from keyhygiene.aws.connection import (
    Connection,
    ConnectionOptions,
    RedactSecretKeys,
    all_items,
    call_unless_missing,
    error_code,
    translate_errors,
)
from keyhygiene.core.errors import ConnectionProblem


@mock_aws
def test_a_session_token_never_reaches_debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Requests signed with temporary credentials carry the token in a header
    that botocore.auth and botocore.endpoint log at DEBUG."""
    token = boto3.client("sts", region_name="us-east-1").get_session_token()["Credentials"]
    session = boto3.Session(
        aws_access_key_id=token["AccessKeyId"],
        aws_secret_access_key=token["SecretAccessKey"],
        aws_session_token=token["SessionToken"],
        region_name="us-east-1",
    )
    with caplog.at_level(logging.DEBUG):
        session.client("sts").get_caller_identity()
    assert "security-token" in caplog.text.lower()  # the header was logged ...
    assert token["SessionToken"] not in caplog.text  # ... without the token
    assert token["SecretAccessKey"] not in caplog.text


@mock_aws
def test_created_key_secret_never_reaches_debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    conn = Connection(ConnectionOptions(region="us-east-1"))
    iam = conn.client("iam")
    iam.create_user(UserName="alice-laptop")
    with caplog.at_level(logging.DEBUG):
        secret = iam.create_access_key(UserName="alice-laptop")["AccessKey"]["SecretAccessKey"]
        token = boto3.client("sts", region_name="us-east-1").get_session_token()["Credentials"][
            "SessionToken"
        ]
    assert "SecretAccessKey" in caplog.text  # the body was logged ...
    assert secret not in caplog.text  # ... without the secret
    assert token not in caplog.text


@pytest.mark.parametrize(
    "line",
    [
        "<SecretAccessKey>abcdEFGH1234/secret+KEY</SecretAccessKey>",
        "{'SecretAccessKey': 'abcdEFGH1234/secret+KEY'}",
        '{"SecretAccessKey": "abcdEFGH1234/secret+KEY"}',
        "aws_secret_access_key = abcdEFGH1234/secret+KEY",
        "<SessionToken>abcdEFGH1234/secret+KEY</SessionToken>",
        "{'X-Amz-Security-Token': b'abcdEFGH1234/secret+KEY', 'Host': 'sts'}",
        "host:sts.amazonaws.com\nx-amz-security-token:abcdEFGH1234/secret+KEY\n",
    ],
)
def test_redaction_forms(line: str) -> None:
    record = logging.LogRecord("botocore.parsers", logging.DEBUG, __file__, 1, line, (), None)
    RedactSecretKeys().filter(record)
    assert "abcdEFGH1234/secret+KEY" not in record.getMessage()


def test_parameter_errors_do_not_quote_values() -> None:
    client = boto3.client(
        "iam", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    with pytest.raises(ConnectionProblem) as caught, translate_errors("testing", service="iam"):
        client.create_user(UserName="ok", Path=12345)  # type: ignore[arg-type]
    assert "12345" not in str(caught.value)


def _stubbed_iam() -> tuple[Any, Stubber]:
    iam = boto3.client(
        "iam", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    return iam, Stubber(iam)


def test_all_items_reads_every_page() -> None:
    # moto ignores MaxItems for some listings, so paging is tested on a stub.
    iam, stub = _stubbed_iam()
    stub.add_response(
        "list_user_tags",
        {"Tags": [{"Key": "a", "Value": "1"}], "IsTruncated": True, "Marker": "m"},
        {"UserName": "alice-laptop"},
    )
    stub.add_response(
        "list_user_tags",
        {"Tags": [{"Key": "b", "Value": "2"}], "IsTruncated": False},
        {"UserName": "alice-laptop", "Marker": "m"},
    )
    with stub:
        tags = all_items(iam, "list_user_tags", "Tags", UserName="alice-laptop")
    assert tags == [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}]


def test_call_unless_missing_tolerates_only_no_such_entity() -> None:
    iam, stub = _stubbed_iam()
    params = {"UserName": "alice-laptop"}
    stub.add_response("delete_login_profile", {}, params)
    stub.add_client_error("delete_login_profile", service_error_code="NoSuchEntity")
    stub.add_client_error("delete_login_profile", service_error_code="AccessDenied")
    with stub:
        assert call_unless_missing(iam.delete_login_profile, **params) is True
        assert call_unless_missing(iam.delete_login_profile, **params) is False
        with pytest.raises(ClientError) as raised:
            call_unless_missing(iam.delete_login_profile, **params)
    assert error_code(raised.value) == "AccessDenied"


def test_an_sso_profile_without_a_sign_in_says_to_run_aws_sso_login(
    isolated_aws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """botocore's "Token for … does not exist" becomes the one step that fixes it."""
    (isolated_aws / ".aws" / "config").write_text(
        "[profile work-sso]\n"
        "sso_start_url = https://example.awsapps.com/start\n"
        "sso_region = us-east-1\n"
        "sso_account_id = 123456789012\n"
        "sso_role_name = ReadOnly\n"
        "region = us-east-1\n"
    )
    with pytest.raises(ConnectionProblem) as caught:
        Connection(ConnectionOptions(profile="work-sso")).whoami()
    assert "aws sso login --profile work-sso" in str(caught.value)
    assert "IAM Identity Center" in str(caught.value)
