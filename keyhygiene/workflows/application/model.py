"""The application's limits, name patterns and the local actions' names."""

from __future__ import annotations

import re

EC2_SERVICE = "ec2.amazonaws.com"
# The China partition names EC2's service principal with its own domain
# (https://docs.amazonaws.cn/en_us/aws/latest/userguide/iam.html#iam-service-principals).
EC2_SERVICES = {"aws": EC2_SERVICE, "aws-cn": "ec2.amazonaws.com.cn"}


def ec2_service(partition: str) -> str:
    """EC2's service principal in `partition` (aws, aws-cn, aws-us-gov)."""
    return EC2_SERVICES.get(partition, EC2_SERVICE)


SID_TRUST_EC2 = "KeyHygieneTrustEc2"
KEY_DELETION_DAYS = 7  # the shortest window KMS allows
PUBLIC_ACCESS_BLOCK_ALL: dict[str, bool] = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}

# The name becomes an IAM group, a role (64 characters at most), an instance
# profile and a KMS alias (letters, digits, '/', '_' and '-' only); the
# intersection of those rules is what an application name may be.
_APP_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_NEW_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IP_ADDRESS = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
_BUCKET_PREFIXES_RESERVED = ("xn--", "sthree-", "amzn-s3-demo-")
_BUCKET_SUFFIXES_RESERVED = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")

# The new key's ARN exists only once the key does; bucket policy documents
# carry this marker in its place, and the local action below swaps it in.
# Checks run on the document with a stand-in ARN of the real length.
_STANDIN_KEY_ID = "00000000-0000-0000-0000-000000000000"


FIND_UNNAMED_KEY = "application.find_unnamed_key"
CREATE_KEY = "application.create_key"
FIND_ALIAS = "application.find_alias"


def new_key_marker(name: str) -> str:
    return f"<ARN of the new key alias/{name}>"
