"""The AWS edge: secrets never reach botocore's DEBUG logs; errors read well."""

from __future__ import annotations

import logging

import boto3
import pytest
from moto import mock_aws

from tui.connection import Connection, ConnectionOptions, RedactSecretKeys, translate_errors
from tui.errors import ConnectionProblem


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
