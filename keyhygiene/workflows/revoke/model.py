"""The revoke's step names, the deny policies' names and limits, and what it reads
besides the snapshot."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from keyhygiene.aws.connection import (
    Identity,
)
from keyhygiene.core.access import KNOWN_AWS_MANAGED
from keyhygiene.core.policy_documents import (
    POLICY_VERSION,
)

T = TypeVar("T")

PLAN_KIND = "revoke"
STEP_KEYS = "deactivate-keys"
STEP_DENY = "deny-everything"
STEP_TAG = "tag-revoked"
STEP_LOGIN = "delete-login-profile"
STEP_MFA = "remove-mfa-devices"
STEP_DELETE_KEYS = "delete-keys"
STEP_DELETE_REVOKED_POLICY = "delete-revoked-policy"
STEP_DELETE_USER = "delete-user"
# The steps that put the user out of action, in the order they count.
CONTAINMENT_STEPS = (STEP_KEYS, STEP_DENY)

REVOKED_DOCUMENT: dict[str, Any] = {
    "Version": POLICY_VERSION,
    "Statement": [{"Sid": "KeyHygieneRevoked", "Effect": "Deny", "Action": "*", "Resource": "*"}],
}
# The fallback when the user's inline policies leave no room for REVOKED_DOCUMENT:
# AWS's own Deny of everything on everything, as the AWS Managed Policy Reference
# documents it (https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSDenyAll.html).
DENY_ALL_POLICY_NAME = "AWSDenyAll"
DENY_ALL_DOCUMENT: Mapping[str, Any] = KNOWN_AWS_MANAGED[DENY_ALL_POLICY_NAME]
# IAM's default quota of managed policies attached to one user. An account may
# have it raised (up to 20), so reaching it only warns: the step still tries,
# and IAM's LimitExceeded decides. Kept here: keyhygiene.core.aws_limits has no such constant.
MANAGED_POLICIES_PER_USER = 10
# Where the deny goes, in the order the step tries them.
DENY_INLINE = "inline"
DENY_MANAGED = "managed"
MAX_PARALLEL = 8

# What each local action calls, for the report of a failed step.
_LOCAL_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "revoke.deactivate_keys": ("iam:ListAccessKeys", "iam:UpdateAccessKey"),
    "revoke.deny_everything": ("iam:PutUserPolicy", "iam:AttachUserPolicy"),
    "revoke.remove_deny": ("iam:DeleteUserPolicy", "iam:DetachUserPolicy"),
    "revoke.delete_keys": ("iam:ListAccessKeys", "iam:DeleteAccessKey"),
    "revoke.delete_login_profile": ("iam:DeleteLoginProfile",),
    "revoke.remove_mfa_devices": (
        "iam:ListMFADevices",
        "iam:DeactivateMFADevice",
        "iam:DeleteVirtualMFADevice",
    ),
    "revoke.delete_user": (
        "iam:ListSigningCertificates",
        "iam:DeleteSigningCertificate",
        "iam:ListSSHPublicKeys",
        "iam:DeleteSSHPublicKey",
        "iam:DeleteUser",
    ),
}
_LACKS = re.compile(r"lacks ([A-Za-z0-9-]+:[A-Za-z0-9*]+)")
# How the deny step's message starts when IAM refused both policies for its quotas.
NO_ROOM = "No room for a deny policy"


class AccountReader(Protocol):
    """What `load_for_revoke` reads through: a `Connection` is one."""

    def client(self, service: str) -> Any: ...

    def whoami(self) -> Identity: ...


@dataclass(frozen=True)
class UserExtras:
    """What revoke needs that the snapshot model does not hold. None: not known,
    so the step is planned and finds out when it runs."""

    login_profile: bool | None = None
    mfa_serials: tuple[str, ...] | None = None
