"""AWS's naming rule for IAM names, with one message."""

from __future__ import annotations

import pytest

from keyhygiene.core.aws_limits import TAG_TEXT, check_iam_name
from keyhygiene.core.errors import BadInput


@pytest.mark.parametrize("name", ["alice-laptop", "a_b+c=d,e.f@g", "X" * 64])
def test_valid_names_pass(name: str) -> None:
    assert check_iam_name("user", name) == name


@pytest.mark.parametrize(
    ("kind", "name", "message"),
    [
        ("device", "lap top", "'lap top' is not a valid IAM name for a device"),
        ("application", "my/app", "not a valid IAM name for an application"),
        ("group", "", "not a valid IAM name for a group"),
        ("user", "élise", r"use letters, digits and _\+=,\.@- only"),
    ],
)
def test_invalid_names_are_refused_with_one_message(kind: str, name: str, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        check_iam_name(kind, name)


def test_tag_text_allows_no_comma() -> None:
    assert TAG_TEXT.match("keyhygiene:grant:photos team")
    assert not TAG_TEXT.match("keyhygiene:grant:a,b")
