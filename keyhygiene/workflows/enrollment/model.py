"""The enrollment's plan kind, its rotate-own-key policy, and the name patterns it checks."""

from __future__ import annotations

import re

from keyhygiene.core.aws_limits import (
    IAM_NAME,
)

PLAN_KIND = "enroll"
ROTATE_OWN_KEY_POLICY = "keyhygiene-rotate-own-key"
ROTATE_OWN_KEY_ACTIONS = (
    "iam:CreateAccessKey",
    "iam:DeleteAccessKey",
    # Rotation reads when a key it may have orphaned was last used before deleting it.
    "iam:GetAccessKeyLastUsed",
    "iam:GetUser",
    "iam:ListAccessKeys",
    "iam:UpdateAccessKey",
)
DEFAULT_DEVICE = "computer"

# The person part may not hold a dash: it is what separates person from device.
_PERSON = re.compile(r"^[A-Za-z0-9_+=,.@]+$")
# Profile names follow IAM's rule: the default profile is the user name.
_PROFILE = IAM_NAME
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_TAG_VALUE_UNSAFE = re.compile(r"[^\w\s.:/=+\-@]", re.UNICODE)
# What STS answers while a brand-new key has not reached every endpoint yet.
_NOT_YET_CODES = frozenset({"InvalidClientTokenId", "SignatureDoesNotMatch", "AccessDenied"})
