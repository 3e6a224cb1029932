"""ARNs: reading their parts and building the ones keyhygiene names before they exist.

An ARN is `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`; for IAM the resource
is `user/PATH/NAME`, `role/PATH/NAME`, `policy/PATH/NAME` or `root`. Plans name
users and roles that the same plan creates, so their ARNs are built here from
the account, the partition of the identity that runs keyhygiene (aws, aws-cn,
aws-us-gov) and the path (`/` unless told).

Pure string work: no AWS call, no Textual.
"""

from __future__ import annotations

import re

# The object a question about "a bucket's objects" names (any key would do).
EXAMPLE_OBJECT = "example"

DEFAULT_PARTITION = "aws"

_KMS_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$")


# ---- reading ------------------------------------------------------------------


def partition_of(arn: str) -> str:
    """`arn:aws-cn:iam::1:user/a` -> `aws-cn`; "aws" for anything that is not an ARN."""
    parts = arn.split(":")
    if len(parts) > 2 and parts[0] == "arn" and parts[1]:
        return parts[1]
    return DEFAULT_PARTITION


def account_of(arn: str) -> str:
    """`arn:aws:iam::123456789012:root` -> `123456789012`; "" when the ARN has none."""
    parts = arn.split(":")
    return parts[4] if len(parts) > 5 and parts[0] == "arn" else ""


def resource_type(arn: str) -> str:
    """What the IAM ARN names: `user`, `role`, `assumed-role`, `policy` or `root`."""
    return _resource(arn).partition("/")[0]


def name_of(arn: str) -> str:
    """The last part of the resource: `arn:aws:iam::1:user/team/alice` -> `alice`,
    `arn:aws:s3:::photos` -> `photos`, the account root -> `root`."""
    return _resource(arn).rsplit("/", 1)[-1]


def is_kms_key_arn(text: str) -> bool:
    """A KMS key's ARN (`arn:aws:kms:REGION:ACCOUNT:key/ID`), not an alias or a bare id."""
    return bool(_KMS_KEY_ARN.match(text))


def _resource(arn: str) -> str:
    return arn.split(":", 5)[-1]


# ---- building -------------------------------------------------------------------


def user_arn(account: str, name: str, partition: str = DEFAULT_PARTITION, path: str = "/") -> str:
    """The ARN IAM gives user `name` at `path` (a path starts and ends with `/`)."""
    return _iam_arn(account, "user", name, partition, path)


def role_arn(account: str, name: str, partition: str = DEFAULT_PARTITION, path: str = "/") -> str:
    """The ARN IAM gives role `name` at `path`."""
    return _iam_arn(account, "role", name, partition, path)


def policy_arn(account: str, name: str, partition: str = DEFAULT_PARTITION, path: str = "/") -> str:
    """The ARN of the customer managed policy `name` at `path`."""
    return _iam_arn(account, "policy", name, partition, path)


def root_arn(account: str, partition: str = DEFAULT_PARTITION) -> str:
    """The account root: in a policy's Principal it stands for the whole account."""
    return f"arn:{partition}:iam::{account}:root"


def bucket_arn(bucket: str, partition: str = DEFAULT_PARTITION) -> str:
    """An S3 bucket's ARN (bucket ARNs carry neither region nor account)."""
    return f"arn:{partition}:s3:::{bucket}"


def kms_key_arn(account: str, region: str, key_id: str, partition: str = DEFAULT_PARTITION) -> str:
    return f"arn:{partition}:kms:{region}:{account}:key/{key_id}"


def _iam_arn(account: str, kind: str, name: str, partition: str, path: str) -> str:
    if not (path.startswith("/") and path.endswith("/")):
        raise ValueError(f"An IAM path starts and ends with '/', not {path!r}.")
    return f"arn:{partition}:iam::{account}:{kind}{path}{name}"
