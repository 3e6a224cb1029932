"""MFA-gated computers: the policy that makes a copied key useless without MFA,
the codes of a virtual MFA device, and how its secret is shown once.

A computer keeps a long-term key; AWS accepts that only with MFA and regular
rotation. A computer enrolled "MFA-gated" gets a virtual MFA device of its
own and joins the group `keyhygiene-mfa-devices`, whose policy denies, unless
the request was made in an MFA session, every change that outlives the
owner noticing a copied key: new keys and passwords (for itself or anyone),
new rights for any identity, new roles or trust, MFA devices, and resource
policies, grants and ACLs that let someone else in. The computer's own work
(reading and writing its buckets with its key) is not gated.

The rules this rests on, from the AWS documentation:
- `aws:MultiFactorAuthPresent` is absent from requests signed with a
  long-term access key, and true in those of a session that GetSessionToken
  made with an MFA code; hence `BoolIfExists ... "false"`, which denies both
  "false" and absent (IAM User Guide, "AWS global condition context keys",
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html#condition-keys-multifactorauthpresent,
  and the example "Allows MFA-authenticated IAM users to manage their own
  credentials",
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_examples_aws_my-sec-creds-self-manage.html).
- GetSessionToken needs no permission and cannot be denied by a policy, and
  with MFA its session may call IAM
  (https://docs.aws.amazon.com/STS/latest/APIReference/API_GetSessionToken.html,
  https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_temp_request.html).
- Temporary credentials stay valid until they expire, whatever happens to the
  key that requested them: one MFA session can deactivate and delete the old
  key it was made with
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_temp_control-access.html).
- A virtual MFA device is enabled with two consecutive codes, and a code is
  accepted once: a second session in the same 30-second window needs the
  next code (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_mfa_enable_virtual.html).

Pure: no AWS calls, no Textual.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from keyhygiene.core.access import group_policies
from keyhygiene.core.model import Snapshot
from keyhygiene.core.policy_eval import may_cover_action

MFA_GROUP = "keyhygiene-mfa-devices"
REQUIRE_MFA_POLICY = "keyhygiene-require-mfa"
SID_DENY_WITHOUT_MFA = "KeyHygieneDenyLastingChangesWithoutMfa"
# Strict computers (a second group, on top of MFA_GROUP): without an MFA
# session their key can do nothing at all but get one.
STRICT_GROUP = "keyhygiene-mfa-strict"
STRICT_POLICY = "keyhygiene-require-mfa-for-everything"
SID_DENY_ALL_WITHOUT_MFA = "KeyHygieneDenyEverythingWithoutMfa"
TOTP_STEP_SECONDS = 30
TOTP_DIGITS = 6

# What a copied key must not do without MFA: every change that outlives the
# owner noticing. Names, not wildcards, so that the policy reads as a list and
# the evaluator can prove each one.
GATED_ACTIONS: tuple[str, ...] = (
    # Credentials, for itself or anyone.
    "iam:CreateAccessKey",
    "iam:UpdateAccessKey",
    "iam:DeleteAccessKey",
    "iam:CreateLoginProfile",
    "iam:UpdateLoginProfile",
    "iam:CreateServiceSpecificCredential",
    "iam:UploadSSHPublicKey",
    "iam:UploadSigningCertificate",
    # MFA devices: a thief must not replace or remove the one that gates it.
    "iam:CreateVirtualMFADevice",
    "iam:EnableMFADevice",
    "iam:DeactivateMFADevice",
    "iam:DeleteVirtualMFADevice",
    "iam:ResyncMFADevice",
    # New identities and rights for any identity.
    "iam:CreateUser",
    "iam:PutUserPolicy",
    "iam:AttachUserPolicy",
    "iam:DetachUserPolicy",
    "iam:DeleteUserPolicy",
    "iam:AddUserToGroup",
    "iam:RemoveUserFromGroup",
    "iam:PutGroupPolicy",
    "iam:AttachGroupPolicy",
    "iam:CreateRole",
    "iam:UpdateAssumeRolePolicy",
    "iam:PutRolePolicy",
    "iam:AttachRolePolicy",
    "iam:PassRole",
    "iam:CreatePolicy",
    "iam:CreatePolicyVersion",
    "iam:SetDefaultPolicyVersion",
    "iam:TagUser",
    "iam:UntagUser",
    # Resource policies, grants and ACLs that let someone else in.
    "kms:CreateGrant",
    "kms:PutKeyPolicy",
    "kms:ScheduleKeyDeletion",
    "s3:PutBucketPolicy",
    "s3:DeleteBucketPolicy",
    "s3:PutBucketAcl",
    "s3:PutObjectAcl",
    "s3:PutBucketPublicAccessBlock",
    "s3:DeleteBucketPublicAccessBlock",
)

# What a strict computer's key may still do without MFA: get the session, say
# who it is, and look at its own MFA device (the AWS example "Allows
# MFA-authenticated IAM users to manage their own credentials" lists the same
# calls in its NotAction, https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_examples_aws_my-sec-creds-self-manage.html).
# GetSessionToken and GetCallerIdentity cannot be denied by any policy; they
# are listed so that the document says what it leaves.
STRICT_ALLOWED_WITHOUT_MFA: tuple[str, ...] = (
    "sts:GetSessionToken",
    "sts:GetCallerIdentity",
    "iam:GetUser",
    "iam:ListMFADevices",
    "iam:ListVirtualMFADevices",
)

# Allowing one of these makes a computer's key worth MFA by default.
_ADMIN_LIKE = frozenset(a for a in GATED_ACTIONS if a.startswith("iam:"))


def require_mfa_document() -> dict[str, Any]:
    """The managed policy of `keyhygiene-mfa-devices`: a Deny, so whatever
    else allows these actions (`*:*` included) gives them only in an MFA session."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": SID_DENY_WITHOUT_MFA,
                "Effect": "Deny",
                "Action": list(GATED_ACTIONS),
                "Resource": "*",
                "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}},
            }
        ],
    }


def require_mfa_strict_document() -> dict[str, Any]:
    """The managed policy of `keyhygiene-mfa-strict`: a Deny of everything but
    getting an MFA session, unless the request was made in one. A copied key
    then reads no bucket, decrypts nothing and assumes no role."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": SID_DENY_ALL_WITHOUT_MFA,
                "Effect": "Deny",
                "NotAction": list(STRICT_ALLOWED_WITHOUT_MFA),
                "Resource": "*",
                "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}},
            }
        ],
    }


def is_require_mfa_document(document: Mapping[str, Any] | None) -> bool:
    """Whether `document` is keyhygiene's policy (a newer list counts as ours)."""
    return _has_sid(document, SID_DENY_WITHOUT_MFA)


def is_require_mfa_strict_document(document: Mapping[str, Any] | None) -> bool:
    return _has_sid(document, SID_DENY_ALL_WITHOUT_MFA)


def _has_sid(document: Mapping[str, Any] | None, sid: str) -> bool:
    if not document:
        return False
    raw = document.get("Statement", [])
    items = raw if isinstance(raw, list) else [raw]
    return any(isinstance(item, Mapping) and item.get("Sid") == sid for item in items)


def groups_wanting_mfa(snapshot: Snapshot, groups: Iterable[str]) -> list[str]:
    """The groups among `groups` whose policies may allow an IAM write (or
    `*:*`): a computer in one of them is MFA-gated unless told otherwise."""
    found = []
    for name in groups:
        group = snapshot.group(name)
        if group is None:
            continue
        for source in group_policies(snapshot, group):
            # A policy keyhygiene could not read may allow anything.
            if source.document is None or _allows_any(source.document, _ADMIN_LIKE):
                found.append(group.name)
                break
    return found


def _allows_any(document: Mapping[str, Any], actions: Iterable[str]) -> bool:
    raw = document.get("Statement", [])
    items = raw if isinstance(raw, list) else [raw]
    allows = [i for i in items if isinstance(i, Mapping) and i.get("Effect") == "Allow"]
    return any(may_cover_action(item, action) for item in allows for action in actions)


def is_gated(group_names: Sequence[str]) -> bool:
    """Whether a computer in these groups is MFA-gated."""
    return any(name.lower() in (MFA_GROUP, STRICT_GROUP) for name in group_names)


def is_strict(group_names: Sequence[str]) -> bool:
    """Whether a computer in these groups can do nothing without an MFA session."""
    return any(name.lower() == STRICT_GROUP for name in group_names)


# ---- codes -----------------------------------------------------------------------


def totp(seed_base32: str, at: float | None = None) -> str:
    """The RFC 6238 code (SHA-1, 30 s, 6 digits, as AWS's virtual devices use)
    for a Base32 seed at time `at`: what the person's authenticator app shows.
    keyhygiene itself uses it only in the demo and in tests."""
    key = base64.b32decode(seed_base32.strip().upper() + "=" * (-len(seed_base32.strip()) % 8))
    counter = int((time.time() if at is None else at) // TOTP_STEP_SECONDS)
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    number = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(number % 10**TOTP_DIGITS).zfill(TOTP_DIGITS)


def time_step(at: float | None = None) -> int:
    """The 30-second window a code belongs to."""
    return int((time.time() if at is None else at) // TOTP_STEP_SECONDS)


def seconds_to_next_code(at: float | None = None) -> float:
    now = time.time() if at is None else at
    return TOTP_STEP_SECONDS - (now % TOTP_STEP_SECONDS)


def otpauth_uri(seed_base32: str, user_name: str, account: str) -> str:
    """What an authenticator app reads from the QR code."""
    label = quote(f"AWS {account}:{user_name}", safe="")
    return f"otpauth://totp/{label}?secret={seed_base32}&issuer=Amazon%20Web%20Services"


def qr_lines(text: str) -> list[str]:
    """`text` as a QR code drawn with half blocks, two rows of modules per line,
    light modules as blocks (on a dark terminal the dark ones are the
    background), with the quiet zone scanners need."""
    import segno

    code = segno.make(text, error="l", micro=False)
    rows = [[bool(module) for module in row] for row in code.matrix_iter(scale=1, border=2)]
    if len(rows) % 2:
        rows.append([False] * len(rows[0]))
    # (top dark, bottom dark) -> character drawing the light part.
    glyph = {(False, False): "█", (True, False): "▄", (False, True): "▀", (True, True): " "}
    return [
        "".join(glyph[(top, bottom)] for top, bottom in zip(upper, lower, strict=True))
        for upper, lower in zip(rows[0::2], rows[1::2], strict=True)
    ]


def grouped_seed(seed_base32: str) -> str:
    """The seed in groups of four, easier to type into an app by hand."""
    seed = seed_base32.strip()
    return " ".join(seed[i : i + 4] for i in range(0, len(seed), 4))
