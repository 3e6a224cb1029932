"""ARN parts and the ARNs plans build before the principal exists."""

from __future__ import annotations

import pytest

from keyhygiene.core import arns

ACCOUNT = "123456789012"


@pytest.mark.parametrize(
    ("arn", "partition"),
    [
        (f"arn:aws:iam::{ACCOUNT}:user/alice-laptop", "aws"),
        (f"arn:aws-cn:sts::{ACCOUNT}:assumed-role/admin/me", "aws-cn"),
        (f"arn:aws-us-gov:iam::{ACCOUNT}:root", "aws-us-gov"),
        ("", "aws"),
        ("not an arn", "aws"),
        ("arn::iam::1:root", "aws"),  # an empty partition is no partition
    ],
)
def test_partition_of(arn: str, partition: str) -> None:
    assert arns.partition_of(arn) == partition


def test_parts_of_iam_arns() -> None:
    user = f"arn:aws:iam::{ACCOUNT}:user/team/alice-laptop"
    assert arns.account_of(user) == ACCOUNT
    assert arns.resource_type(user) == "user"
    assert arns.name_of(user) == "alice-laptop"
    root = arns.root_arn(ACCOUNT)
    assert (arns.resource_type(root), arns.name_of(root)) == ("root", "root")
    session = f"arn:aws:sts::{ACCOUNT}:assumed-role/admin/me"
    assert arns.resource_type(session) == "assumed-role"
    assert arns.name_of("arn:aws:s3:::photos") == "photos"
    assert arns.account_of("arn:aws:s3:::photos") == ""
    assert arns.account_of("*") == ""
    assert arns.name_of("*") == "*"


def test_built_arns() -> None:
    assert arns.user_arn(ACCOUNT, "bob-phone") == f"arn:aws:iam::{ACCOUNT}:user/bob-phone"
    assert (
        arns.role_arn(ACCOUNT, "photos", "aws-cn", path="/apps/")
        == f"arn:aws-cn:iam::{ACCOUNT}:role/apps/photos"
    )
    assert arns.policy_arn(ACCOUNT, "p") == f"arn:aws:iam::{ACCOUNT}:policy/p"
    assert arns.root_arn(ACCOUNT, "aws-cn") == f"arn:aws-cn:iam::{ACCOUNT}:root"
    assert arns.bucket_arn("photos") == "arn:aws:s3:::photos"
    key = arns.kms_key_arn(ACCOUNT, "eu-west-1", "1234abcd-12ab-34cd-56ef-1234567890ab")
    assert arns.is_kms_key_arn(key)
    assert not arns.is_kms_key_arn("alias/photos")
    assert not arns.is_kms_key_arn("1234abcd-12ab-34cd-56ef-1234567890ab")
    with pytest.raises(ValueError, match="starts and ends with '/'"):
        arns.user_arn(ACCOUNT, "alice", path="apps")
