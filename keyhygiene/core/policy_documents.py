"""Policy documents: keyhygiene's whitelist statements and the checks around them.

Pure functions over JSON-shaped documents (dicts, or the JSON text boto3 returns):
no AWS calls, no Textual.

keyhygiene owns only the statements whose `Sid` starts with `KeyHygiene`. Every
other statement is copied through unchanged and in its place, so a person's own
statements survive every edit. Our statements are written where the first of the
previous ones stood (at the end the first time), with principals sorted, so that
applying the same whitelist twice gives the same document and diffs stay small.

A policy document is loose JSON: `Statement` may be one object or a list,
`Principal` may be "*", {"AWS": "arn"} or {"AWS": [...]} or another type,
`Action`/`Resource` a string or a list. Every reader below accepts all of them.
When AWS meets a principal that was deleted it shows its unique id ("AIDA...")
instead of the ARN; readers leave those out of computed sets instead of failing.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any, Literal

from keyhygiene.core import arns
from keyhygiene.core.errors import BadInput
from keyhygiene.core.policy_eval import Decision, PolicySource, Principal, Request, evaluate

Document = Mapping[str, Any]
PolicyKind = Literal["bucket", "key"]

POLICY_VERSION = "2012-10-17"
SID_PREFIX = "KeyHygiene"
SID_BUCKET_ALLOW = "KeyHygieneAllow"
# The bucket's data actions: denied to whoever is neither whitelisted nor an admin.
SID_BUCKET_DENY_OTHERS = "KeyHygieneDenyOthers"
# Everything else on the bucket (its policy, encryption, ACLs...): admins only.
SID_BUCKET_DENY_CONFIGURATION = "KeyHygieneDenyConfiguration"
# Uploads that ask for an encryption other than the application's key.
SID_BUCKET_DENY_WRONG_ENCRYPTION = "KeyHygieneDenyWrongEncryption"
SID_BUCKET_DENY_AWS_MANAGED_KEY = "KeyHygieneDenyAwsManagedKey"
SID_BUCKET_DENY_OTHER_KEY = "KeyHygieneDenyOtherKey"
SID_BUCKET_DENY_SSE_C = "KeyHygieneDenySseC"
# Written by keyhygiene before 0.2: denied every upload without an SSE header
# (plain `aws s3 cp`). Recognised so that the audit flags it and sync replaces it.
SID_BUCKET_DENY_UNENCRYPTED = "KeyHygieneDenyUnencrypted"
SID_KEY_ALLOW_USE = "KeyHygieneAllowUse"
SID_KEY_DENY_OTHERS_USE = "KeyHygieneDenyOthersUse"
# Both bucket and key whitelist statements start with this; read-back uses it.
SID_ALLOW_PREFIX = "KeyHygieneAllow"

# What a whitelisted computer or role may do in its application's bucket.
# AbortMultipartUpload lets a failed large upload (aws s3 cp) clean up after itself.
# Tags travel with objects: `aws s3 cp` and `sync` between buckets read and
# write them (a multipart copy calls GetObjectTagging and PutObjectTagging).
BUCKET_ACTIONS: tuple[str, ...] = (
    "s3:AbortMultipartUpload",
    "s3:DeleteObject",
    "s3:GetBucketLocation",
    "s3:GetObject",
    "s3:GetObjectTagging",
    "s3:ListBucket",
    "s3:PutObject",
    "s3:PutObjectTagging",
)
# Reading a bucket's configuration (what keyhygiene's inventory reads): spared
# for the whitelisted computers too, so that keyhygiene run with a computer's
# own profile still shows its application. Reading grants nothing by itself.
BUCKET_READ_CONFIG_ACTIONS: tuple[str, ...] = (
    "s3:GetBucketAcl",
    "s3:GetBucketPolicy",
    "s3:GetBucketPolicyStatus",
    "s3:GetBucketPublicAccessBlock",
    "s3:GetBucketTagging",
    "s3:GetEncryptionConfiguration",
)
KEY_ACTIONS: tuple[str, ...] = (
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:Encrypt",
    "kms:GenerateDataKey*",
    "kms:ReEncrypt*",
)
# What only the key's whitelist may do with it. CreateGrant is in: a grant is
# another way to hand out Decrypt, one that no key policy shows.
KEY_CRYPTO_ACTIONS: tuple[str, ...] = (
    "kms:CreateGrant",
    "kms:Decrypt",
    "kms:Encrypt",
    "kms:GenerateDataKey*",
    "kms:ReEncrypt*",
)
# Key administration a key's admins keep and nobody else gets through IAM: the
# policy itself (which holds the whitelist), the key's life, and its tags
# (keyhygiene:groups makes it an application's key).
KEY_ADMIN_ACTIONS: tuple[str, ...] = (
    "kms:DeleteImportedKeyMaterial",
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:PutKeyPolicy",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
)
SID_KEY_DENY_OTHERS_ADMIN = "KeyHygieneDenyOthersAdmin"

_SSE = "s3:x-amz-server-side-encryption"
_SSE_KEY_ID = "s3:x-amz-server-side-encryption-aws-kms-key-id"
_SSE_C = "s3:x-amz-server-side-encryption-customer-algorithm"
# Both use the KMS key the upload names (or, without one, aws/s3).
_KMS_ALGORITHMS = ("aws:kms", "aws:kms:dsse")

# Sizes AWS accepts, measured on the compact JSON.
POLICY_LIMITS: dict[str, int] = {"bucket": 20_480, "key": 32_768}

# The actions keyhygiene needs to read and rewrite each kind of policy next time.
_POLICY_ADMIN_ACTIONS: dict[str, tuple[str, ...]] = {
    "bucket": ("s3:GetBucketPolicy", "s3:PutBucketPolicy"),
    "key": ("kms:GetKeyPolicy", "kms:PutKeyPolicy"),
}

_ARN_PARTITION = r"arn:aws[a-z-]*"
_PRINCIPAL_ARN = re.compile(
    rf"^{_ARN_PARTITION}:iam::\d{{12}}:(root|user/[\w+=,.@/-]+|role/[\w+=,.@/-]+)$"
)
_ASSUMED_ROLE_ARN = re.compile(
    rf"^(?P<partition>{_ARN_PARTITION}):sts::(?P<account>\d{{12}}):assumed-role/(?P<role>[\w+=,.@-]+)/.+$"
)
_BUCKET_NAME = re.compile(r"^[A-Za-z0-9._-]{3,255}$")
_ACCOUNT_ID = re.compile(r"^\d{12}$")
# AIDA…, AROA…: what AWS shows in place of a principal that no longer exists.
_UNIQUE_ID = re.compile(r"^A[A-Z0-9]{3}[A-Z0-9]{12,}$")


class PolicyTooLarge(BadInput):
    """The computed policy exceeds what AWS accepts for that kind of policy."""

    def __init__(self, *, size: int, limit: int, kind: str, resource: str) -> None:
        super().__init__(
            f"The new {kind} policy of {resource} would be {size:,} bytes; "
            f"AWS accepts at most {limit:,}.",
            hint="Whitelist fewer principals (for example use a role shared by several "
            "computers) or remove statements that are no longer needed.",
        )
        self.size = size
        self.limit = limit
        self.kind = kind
        self.resource = resource


class PolicyLockout(BadInput):
    """The computed policy would stop the principal applying it from editing it again."""

    def __init__(self, message: str, *, actor: str, resource: str, action: str) -> None:
        super().__init__(
            message,
            hint="Keep your own IAM user or role among the principals that may administer "
            "it (the account root spares only the root user), or remove the statement that "
            "denies it.",
        )
        self.actor = actor
        self.resource = resource
        self.action = action


# ---- reading documents -------------------------------------------------------


def as_document(document: Document | str | None) -> dict[str, Any] | None:
    """A plain dict from a document, its JSON text (as boto3 returns it) or None."""
    if document is None:
        return None
    if isinstance(document, str):
        if not document.strip():
            return None
        try:
            loaded = json.loads(document)
        except json.JSONDecodeError as exc:
            raise BadInput(f"The policy is not valid JSON ({exc.msg}, line {exc.lineno}).") from exc
        if not isinstance(loaded, Mapping):
            raise BadInput("The policy is not a JSON object.")
        return _plain(loaded)
    if not isinstance(document, Mapping):
        raise BadInput(f"The policy is not a JSON object (got {type(document).__name__}).")
    return _plain(document)


def statements(document: Document | str | None) -> list[dict[str, Any]]:
    """The statements of a document as a list, whether `Statement` is one object or a list.

    Entries that are not objects (malformed documents) are skipped here; the
    builders still carry them through untouched.
    """
    return [dict(s) for s in _raw_statements(as_document(document)) if isinstance(s, Mapping)]


def is_own_statement(statement: Any) -> bool:
    """keyhygiene owns exactly the statements whose Sid starts with `KeyHygiene`."""
    if not isinstance(statement, Mapping):
        return False
    sid = statement.get("Sid")
    return isinstance(sid, str) and sid.startswith(SID_PREFIX)


def principals_of(
    statement: Mapping[str, Any], field: str = "Principal"
) -> dict[str, tuple[str, ...]]:
    """A statement's principals by type: "*" becomes {"AWS": ("*",)}."""
    value = statement.get(field)
    if value is None:
        return {}
    if isinstance(value, str):
        return {"AWS": (value,)}
    if isinstance(value, Mapping):
        return {str(kind): _strings(values) for kind, values in value.items()}
    return {}


def whitelisted_principals(document: Document | str | None) -> frozenset[str]:
    """The ARNs keyhygiene's own Allow statements (bucket or key) currently list."""
    found: set[str] = set()
    for statement in statements(document):
        sid = statement.get("Sid")
        if not (isinstance(sid, str) and sid.startswith(SID_ALLOW_PREFIX)):
            continue
        if statement.get("Effect") != "Allow":
            continue
        found.update(p for p in principals_of(statement).get("AWS", ()) if p.startswith("arn:"))
    return frozenset(found)


def allowed_principals(document: Document | str | None) -> frozenset[str]:
    """Every AWS principal any Allow statement names: ARNs, account ids and "*".

    Service and CanonicalUser principals are left out (see `principals_of` for
    those), and so are the unique ids of deleted principals.
    """
    found: set[str] = set()
    for statement in _allows(document):
        found.update(p for p in principals_of(statement).get("AWS", ()) if _is_usable_principal(p))
    return frozenset(found)


def orphaned_principal_ids(document: Document | str | None) -> frozenset[str]:
    """Unique ids ("AIDA…", "AROA…") AWS put in place of principals that were deleted."""
    found: set[str] = set()
    for statement in statements(document):
        for field in ("Principal", "NotPrincipal"):
            found.update(
                p for p in principals_of(statement, field).get("AWS", ()) if _UNIQUE_ID.match(p)
            )
    return frozenset(found)


# ---- building whitelist statements ------------------------------------------


def bucket_policy_with_whitelist(
    document: Document | str | None,
    *,
    bucket: str,
    principals: Iterable[str],
    key_arn: str | None = None,
    keep_admin_arns: Iterable[str] = (),
) -> dict[str, Any]:
    """The bucket policy with keyhygiene's statements set for `principals`.

    - `KeyHygieneAllow`: the whitelisted principals may use the bucket's objects
      (left out when the whitelist is empty: AWS refuses an empty principal list);
    - `KeyHygieneDenyOthers`: the data actions (`BUCKET_ACTIONS`) and reading
      the configuration (`BUCKET_READ_CONFIG_ACTIONS`) are denied to whoever
      is neither whitelisted nor an admin (`keep_admin_arns`). AWS advises
      `aws:PrincipalArn` over `NotPrincipal`; it also matches a role's sessions;
    - `KeyHygieneDenyConfiguration`: every other action on the bucket (putting
      its policy, encryption, ACLs, lifecycle...) is denied to all but the
      admins, so a whitelisted computer cannot rewrite the whitelist;
    - both spare AWS service principals (`aws:PrincipalIsAWSService`): a
      service is judged by the statements that name it (CloudTrail, access
      logs, inventory), whose own conditions (`aws:SourceAccount`...) hold it;
      and the account's service-linked roles (`role/aws-service-role/*`);
    - uploads asking for the wrong encryption are denied: another algorithm
      (AES256), SSE-C, `aws:kms` without a key (S3 would use aws/s3) and, with
      `key_arn`, another key. An upload with no encryption header at all
      (plain `aws s3 cp`, `aws s3 sync`, every part of a multipart upload) is
      let through to the bucket's default encryption, the application's key.
    """
    whitelist = _checked_principals(principals, what="a whitelisted principal")
    admins = _checked_principals(
        (caller_principal_arn(arn) for arn in keep_admin_arns), what="an admin principal"
    )
    # The principals share the partition of the account: any of them tells it.
    partition = arns.partition_of(next(iter(whitelist + admins), ""))
    bucket_arn = _bucket_arn(bucket, partition=partition)
    if key_arn is not None and not arns.is_kms_key_arn(key_arn):
        raise BadInput(
            f"{key_arn!r} is not a KMS key ARN.",
            hint="Bucket policy conditions compare the full key ARN; a key id or alias never matches.",
        )
    own = _bucket_statements(
        bucket_arn,
        whitelist=whitelist,
        admins=admins,
        key_arn=key_arn,
    )
    return _with_own_statements(as_document(document), own)


def key_policy_with_whitelist(
    document: Document | str | None,
    *,
    principals: Iterable[str],
    keep_admin_arns: Iterable[str] = (),
) -> dict[str, Any]:
    """The KMS key policy with `KeyHygieneAllowUse` listing `principals`,
    `KeyHygieneDenyOthersUse` denying the key's cryptographic use to anyone
    else, and, with `keep_admin_arns`, `KeyHygieneDenyOthersAdmin` keeping the
    key's administration (`KEY_ADMIN_ACTIONS`) to those admins: without it the
    default statement would let anyone IAM allows kms:PutKeyPolicy (a
    PowerUserAccess holder) delete the whitelist or schedule the key's deletion.

    An empty whitelist removes the Allow (an Allow with no principal is
    invalid) and leaves the Deny covering everyone. The default key policy's
    "Enable IAM User Permissions" and every other statement stay as they were.
    """
    whitelist = _checked_principals(principals, what="a whitelisted principal")
    admins = _checked_principals(
        (caller_principal_arn(arn) for arn in keep_admin_arns), what="an admin principal"
    )
    own: list[dict[str, Any]] = []
    if whitelist:
        own.append(
            {
                "Sid": SID_KEY_ALLOW_USE,
                "Effect": "Allow",
                "Principal": {"AWS": whitelist},
                "Action": list(KEY_ACTIONS),
                "Resource": "*",
            }
        )
    # The default statement hands the key to IAM: any identity whose IAM
    # policies allow kms:Decrypt on "*" could use it. This Deny makes the
    # whitelist exclusive; key administration stays with IAM.
    condition: dict[str, Any] = {"BoolIfExists": {"aws:PrincipalIsAWSService": "false"}}
    if whitelist:
        condition = {"ArnNotLike": {"aws:PrincipalArn": whitelist}, **condition}
    own.append(
        {
            "Sid": SID_KEY_DENY_OTHERS_USE,
            "Effect": "Deny",
            "Principal": "*",
            "Action": list(KEY_CRYPTO_ACTIONS),
            "Resource": "*",
            "Condition": condition,
        }
    )
    if admins:
        own.append(
            {
                "Sid": SID_KEY_DENY_OTHERS_ADMIN,
                "Effect": "Deny",
                "Principal": "*",
                "Action": list(KEY_ADMIN_ACTIONS),
                "Resource": "*",
                "Condition": _unless_listed(admins),
            }
        )
    return _with_own_statements(as_document(document), own)


def default_key_policy(account_id: str, *, partition: str = "aws") -> dict[str, Any]:
    """The policy AWS gives a new key: the account (hence IAM policies) may do everything."""
    if not _ACCOUNT_ID.match(account_id):
        raise BadInput(f"{account_id!r} is not a 12-digit AWS account id.")
    return {
        "Version": POLICY_VERSION,
        "Id": "key-default-1",
        "Statement": [
            {
                "Sid": "Enable IAM User Permissions",
                "Effect": "Allow",
                "Principal": {"AWS": arns.root_arn(account_id, partition)},
                "Action": "kms:*",
                "Resource": "*",
            }
        ],
    }


def remove_principal(document: Document | str | None, arn: str) -> dict[str, Any]:
    """The document without `arn` in keyhygiene's own statements (used by revoke).

    It leaves every Allow and the exception list of `KeyHygieneDenyOthers`; an
    Allow left with nobody is dropped. Statements keyhygiene does not own are
    never touched, even when they name `arn`.
    """
    plain = as_document(document)
    if plain is None:
        return {"Version": POLICY_VERSION, "Statement": []}
    result: list[Any] = []
    for statement in _raw_statements(plain):
        if not is_own_statement(statement):
            result.append(statement)
            continue
        trimmed = _without_principal(statement, arn)
        if trimmed is not None:
            result.append(trimmed)
    return _replace_statements(plain, result)


def with_admin_exempt(document: Document | str | None, principal_arn: str) -> dict[str, Any]:
    """The document with `principal_arn` in the exception lists of
    `KeyHygieneDenyOthers` and `KeyHygieneDenyConfiguration` (where they are),
    so that the identity editing the policy is not denied. Nothing else changes."""
    plain = as_document(document)
    if plain is None:
        return {"Version": POLICY_VERSION, "Statement": []}
    result: list[Any] = []
    for statement in _raw_statements(plain):
        if isinstance(statement, Mapping) and statement.get("Sid") in (
            SID_BUCKET_DENY_OTHERS,
            SID_BUCKET_DENY_CONFIGURATION,
        ):
            condition = dict(statement.get("Condition") or {})
            not_like = dict(condition.get("ArnNotLike") or {})
            listed = list(_strings(not_like.get("aws:PrincipalArn")))
            if principal_arn not in listed:
                not_like["aws:PrincipalArn"] = sorted([*listed, principal_arn])
                condition["ArnNotLike"] = not_like
                statement = {**statement, "Condition": condition}
        result.append(statement)
    return _replace_statements(plain, result)


def is_listable_principal(arn: str) -> bool:
    """An IAM user, role or account-root ARN: what a whitelist or an exception list can name."""
    return isinstance(arn, str) and bool(_PRINCIPAL_ARN.match(arn))


def caller_principal_arn(arn: str) -> str:
    """The ARN that `aws:PrincipalArn` holds for a caller.

    For an assumed-role session (`arn:aws:sts::A:assumed-role/R/session`) that is
    the role's ARN. The session ARN does not carry the role's path, so a role with
    a path gets `role/R` here: prefer the role's real ARN from the snapshot.
    """
    match = _ASSUMED_ROLE_ARN.match(arn)
    if not match:
        return arn
    return f"{match['partition']}:iam::{match['account']}:role/{match['role']}"


# ---- limits, lock-out, diff -------------------------------------------------


def policy_size(document: Document | str | None) -> int:
    """Bytes of the compact JSON, which is what the AWS limits count."""
    plain = as_document(document) or {}
    return len(json.dumps(plain, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def ensure_within_limit(
    document: Document | str | None, kind: PolicyKind, resource_name: str
) -> None:
    """Raise `PolicyTooLarge` when AWS would refuse the document for its size."""
    limit = POLICY_LIMITS[_checked_kind(kind)]
    size = policy_size(document)
    if size > limit:
        raise PolicyTooLarge(size=size, limit=limit, kind=kind, resource=resource_name)


def check_lockout(
    document: Document | str | None,
    kind: PolicyKind,
    actor_arn: str,
    account_id: str,
    *,
    resource_arn: str | None = None,
    actor_principal_arn: str | None = None,
) -> None:
    """Raise `PolicyLockout` if `actor_arn` could not read and rewrite this policy after it is applied.

    The same idea as KMS's lock-out safety check, decided by the policy
    evaluator (`keyhygiene.core.policy_eval`) on AWS's rules: the actor's own IAM policies
    are taken to allow everything (they are what made it an admin), so only
    the new document can take the right away. Buckets: no Deny may apply to
    the actor's GetBucketPolicy / PutBucketPolicy (the account root in an
    exception list spares only the root user, which S3 never locks out of its
    bucket policy). Keys: the key policy must allow the actor, directly or by
    naming the account (delegation to IAM), and deny it nothing. A Deny the
    evaluator cannot decide counts as denying. `resource_arn` (the bucket or
    key ARN) lets Denies on other resources (a bucket's objects) be ignored;
    `actor_principal_arn` is what `aws:PrincipalArn` holds for the actor when
    `caller_principal_arn` cannot tell (a role with a path).
    """
    kind = _checked_kind(kind)
    plain = as_document(document)
    actor = _actor_principal(actor_arn, account_id, actor_principal_arn)
    everything = PolicySource(
        "the actor's IAM policies (taken to allow everything)",
        {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]},
    )
    new_policy = PolicySource(f"the new {kind} policy", plain or {"Statement": []})
    for resource in _lockout_resources(plain, kind, account_id, resource_arn):
        for action in _POLICY_ADMIN_ACTIONS[kind]:
            request = Request(
                actor, action, resource, resource_account=account_id, now=datetime.now(timezone.utc)
            )
            decision = evaluate(request, [everything], new_policy if plain else None)
            if decision.allowed:
                continue
            shown = resource_arn or f"this {kind}"
            if decision.outcome == "explicit-deny":
                why = f"{_statement_label(decision)} would deny {action} to {actor_arn}"
            elif decision.outcome == "unknown":
                why = f"keyhygiene cannot tell whether {action} stays allowed to {actor_arn} ({decision.reason})"
            else:
                why = f"no statement would allow {action} to {actor_arn} or to the account {account_id}"
            raise PolicyLockout(
                f"Refusing this {kind} policy for {shown}: {why}, who could then not change "
                "the policy again.",
                actor=actor_arn,
                resource=shown,
                action=action,
            )


def _actor_principal(actor_arn: str, account_id: str, principal_arn: str | None) -> Principal:
    if actor_arn == arns.root_arn(account_id, arns.partition_of(actor_arn)):
        return Principal.root(account_id, partition=arns.partition_of(actor_arn))
    match = _ASSUMED_ROLE_ARN.match(actor_arn)
    if match:
        role = principal_arn or caller_principal_arn(actor_arn)
        return Principal.role_session(role, session=actor_arn.rsplit("/", 1)[-1])
    return Principal.user(principal_arn or actor_arn)


def _lockout_resources(
    document: dict[str, Any] | None, kind: PolicyKind, account_id: str, resource_arn: str | None
) -> list[str]:
    """The resources whose policy the actor must keep: the one given, else every
    S3 resource the document names (conservative: a Deny on any of them counts)."""
    if resource_arn:
        return [resource_arn]
    if kind == "key":
        return [f"arn:aws:kms:us-east-1:{account_id}:key/this-key"]
    # Each pattern matches itself, so a Deny on any S3 resource counts.
    named = {r for statement in statements(document) for r in _strings(statement.get("Resource"))}
    return sorted(r for r in named if ":s3:::" in r) or ["arn:aws:s3:::this-bucket"]


def _statement_label(decision: Decision) -> str:
    ref = decision.deciding[0]
    return f"statement {ref.sid!r}" if ref.sid else "a statement without Sid"


def policy_diff(
    before: Document | str | None,
    after: Document | str | None,
    *,
    before_label: str = "current",
    after_label: str = "planned",
) -> list[str]:
    """Unified-diff lines between two documents as pretty JSON (sorted keys, indent 2).

    An empty list means no change. No policy at all (None) diffs as no lines.
    """
    return list(
        difflib.unified_diff(
            _pretty_lines(as_document(before)),
            _pretty_lines(as_document(after)),
            fromfile=before_label,
            tofile=after_label,
            lineterm="",
        )
    )


# ---- audit helpers ----------------------------------------------------------

# Condition keys that, with fixed values, keep an Allow to "*" from being public
# (S3's "meaning of public", plus the organisation and principal keys).
_RESTRICTING_KEYS = frozenset(
    {
        "aws:sourcearn",
        "aws:sourcevpc",
        "aws:sourcevpce",
        "aws:sourceowner",
        "aws:sourceaccount",
        "aws:sourceip",
        "aws:userid",
        "aws:principalarn",
        "aws:principalaccount",
        "aws:principalorgid",
        "aws:principalorgpaths",
        "kms:calleraccount",
        "s3:x-amz-server-side-encryption-aws-kms-key-id",
    }
)
# Wildcards are the normal way to write org paths, which still stay within the organisation.
_WILDCARD_OK_KEYS = frozenset({"aws:principalorgpaths"})
_POSITIVE_OPERATORS = frozenset(
    {"StringEquals", "StringEqualsIgnoreCase", "StringLike", "ArnEquals", "ArnLike", "IpAddress"}
)
_OPEN_CIDRS = frozenset({"0.0.0.0/0", "::/0"})


def is_public(document: Document | str | None) -> bool:
    """An Allow to everyone ("*", {"AWS": "*"} or a NotPrincipal) that no condition restricts."""
    for statement in _allows(document):
        to_everyone = "*" in principals_of(statement).get("AWS", ()) or "NotPrincipal" in statement
        if to_everyone and not _restricted(statement.get("Condition")):
            return True
    return False


def foreign_accounts(document: Document | str | None, account_id: str) -> set[str]:
    """Account ids other than ours named by Allow principals (ARNs or bare ids)."""
    found: set[str] = set()
    for statement in _allows(document):
        for principal in principals_of(statement).get("AWS", ()):
            account = _account_of(principal)
            if account and account != account_id:
                found.add(account)
    return found


def has_unencrypted_upload_deny(document: Document | str | None) -> bool:
    """A Deny for everyone of s3:PutObject conditioned on the SSE header (ours or an equivalent)."""
    for statement in statements(document):
        if statement.get("Effect") != "Deny":
            continue
        if "*" not in principals_of(statement).get("AWS", ()):
            continue
        if not _covers_action(statement, "s3:PutObject"):
            continue
        for operator, key, values in _conditions(statement.get("Condition")):
            if key.lower() != "s3:x-amz-server-side-encryption":
                continue
            if operator.startswith("StringNotEquals") or (
                operator == "Null" and any(str(v).lower() == "true" for v in values)
            ):
                return True
    return False


def admin_like(policy_document: Document | str | None) -> bool:
    """An identity policy that allows every action on every resource."""
    for statement in _allows(policy_document):
        actions = _strings(statement.get("Action"))
        resources = _strings(statement.get("Resource"))
        if ("*" in actions or "*:*" in actions) and "*" in resources:
            return True
    return False


# ---- internals --------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A deep copy with plain dicts and lists, so callers' documents are never aliased."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (list, tuple)):
        return tuple(item for item in value if isinstance(item, str))
    return ()


def _raw_statements(document: Mapping[str, Any] | None) -> list[Any]:
    if not document:
        return []
    raw = document.get("Statement")
    if raw is None:
        return []
    if isinstance(raw, Mapping):
        return [raw]
    if isinstance(raw, list):
        return list(raw)
    return [raw]


def _allows(document: Document | str | None) -> list[dict[str, Any]]:
    return [s for s in statements(document) if s.get("Effect") == "Allow"]


def _is_usable_principal(principal: str) -> bool:
    return principal == "*" or principal.startswith("arn:") or bool(_ACCOUNT_ID.match(principal))


def _account_of(principal: str) -> str | None:
    if _ACCOUNT_ID.match(principal):
        return principal
    if principal.startswith("arn:"):
        parts = principal.split(":")
        if len(parts) > 4 and _ACCOUNT_ID.match(parts[4]):
            return parts[4]
    return None


def _checked_kind(kind: str) -> PolicyKind:
    # Callers without a type checker can pass any string; a literal back narrows it.
    if kind == "bucket":
        return "bucket"
    if kind == "key":
        return "key"
    raise ValueError(f"policy kind must be 'bucket' or 'key', not {kind!r}")


def _checked_principals(principals: Iterable[str], *, what: str) -> list[str]:
    """Sorted, unique IAM user/role/root ARNs; anything else is refused.

    A wildcard or an account id here would whitelist far more than one computer.
    """
    if isinstance(principals, str):
        principals = (principals,)
    checked: set[str] = set()
    for arn in principals:
        if not isinstance(arn, str) or not _PRINCIPAL_ARN.match(arn):
            raise BadInput(
                f"{arn!r} cannot be {what}: only IAM user, role or account-root ARNs can.",
                hint="Use the ARN shown for the user or role, e.g. arn:aws:iam::123456789012:user/alice-laptop.",
            )
        checked.add(arn)
    return sorted(checked)


def _bucket_arn(bucket: str, *, partition: str) -> str:
    if not isinstance(bucket, str) or not _BUCKET_NAME.match(bucket):
        raise BadInput(f"{bucket!r} is not a bucket name.")
    return arns.bucket_arn(bucket, partition)


def _bucket_statements(
    bucket_arn: str,
    *,
    whitelist: list[str],
    admins: list[str],
    key_arn: str | None,
) -> list[dict[str, Any]]:
    objects = f"{bucket_arn}/*"
    own: list[dict[str, Any]] = []
    if whitelist:
        own.append(
            {
                "Sid": SID_BUCKET_ALLOW,
                "Effect": "Allow",
                "Principal": {"AWS": whitelist},
                "Action": list(BUCKET_ACTIONS),
                "Resource": [bucket_arn, objects],
            }
        )
    if not admins:
        # A deny with no exception denies everyone, the admins included.
        raise BadInput(
            f"Refusing a bucket policy for {bucket_arn} that no admin could change.",
            hint="Pass the admin principals (the account root, the caller) to keep.",
        )
    whitelisted_actions = sorted({*BUCKET_ACTIONS, *BUCKET_READ_CONFIG_ACTIONS})
    own.append(
        {
            "Sid": SID_BUCKET_DENY_OTHERS,
            "Effect": "Deny",
            "Principal": "*",
            "Action": whitelisted_actions,
            "Resource": [bucket_arn, objects],
            "Condition": _unless_listed(sorted(set(whitelist) | set(admins))),
        }
    )
    own.append(
        {
            "Sid": SID_BUCKET_DENY_CONFIGURATION,
            "Effect": "Deny",
            "Principal": "*",
            "NotAction": whitelisted_actions,
            "Resource": [bucket_arn, objects],
            "Condition": _unless_listed(admins),
        }
    )
    own.append(
        _upload_deny(
            SID_BUCKET_DENY_WRONG_ENCRYPTION,
            objects,
            {"StringNotEquals": {_SSE: list(_KMS_ALGORITHMS)}, "Null": {_SSE: "false"}},
        )
    )
    own.append(_upload_deny(SID_BUCKET_DENY_SSE_C, objects, {"Null": {_SSE_C: "false"}}))
    if key_arn:
        own.append(
            _upload_deny(
                SID_BUCKET_DENY_AWS_MANAGED_KEY,
                objects,
                {"Null": {_SSE: "false", _SSE_KEY_ID: "true"}},
            )
        )
        own.append(
            _upload_deny(
                SID_BUCKET_DENY_OTHER_KEY,
                objects,
                {
                    # The full ARN only: S3 compares the header as sent, and a
                    # plan fills in a new key's ARN where it wrote a marker.
                    "StringNotEquals": {_SSE_KEY_ID: key_arn},
                    "Null": {_SSE_KEY_ID: "false"},
                },
            )
        )
    return own


def _unless_listed(principal_arns: list[str]) -> dict[str, Any]:
    """A Deny's condition that spares the listed principals, the account's
    service-linked roles (AWS creates them, only their service assumes them:
    Config, Access Analyzer, Macie read buckets through them) and AWS service
    principals (judged by their own statements). An anonymous caller has no
    aws:PrincipalIsAWSService, so IfExists holds and the Deny applies.

    Admins are named by ARN only, never by a principal tag: a session tag can
    carry any tag its caller may set (sts:TagSession), so a tag condition would
    make an admin of whoever can assume a role and tag the session."""
    spared = list(principal_arns)
    root = next((arn for arn in principal_arns if arn.endswith(":root")), None)
    if root is not None:
        prefix = root[: -len("root")]
        spared = sorted({*spared, f"{prefix}role/aws-service-role/*"})
    return {
        "ArnNotLike": {"aws:PrincipalArn": spared},
        "BoolIfExists": {"aws:PrincipalIsAWSService": "false"},
    }


def _upload_deny(sid: str, objects: str, condition: dict[str, Any]) -> dict[str, Any]:
    return {
        "Sid": sid,
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:PutObject",
        "Resource": objects,
        "Condition": condition,
    }


def _with_own_statements(
    document: dict[str, Any] | None, own: list[dict[str, Any]]
) -> dict[str, Any]:
    """Foreign statements kept in order; ours replaced at the place the first of them held."""
    result: list[Any] = []
    placed = False
    for statement in _raw_statements(document):
        if is_own_statement(statement):
            if not placed:
                result.extend(own)
                placed = True
            continue
        result.append(statement)
    if not placed:
        result.extend(own)
    return _replace_statements(document or {}, result)


def _replace_statements(document: dict[str, Any], new: list[Any]) -> dict[str, Any]:
    """The document with `Statement` replaced, other keys kept in their order."""
    result = {key: (new if key == "Statement" else value) for key, value in document.items()}
    result.setdefault("Statement", new)
    if "Version" not in result:
        result = {"Version": POLICY_VERSION, **result}
    return result


def _without_principal(statement: Mapping[str, Any], arn: str) -> dict[str, Any] | None:
    """One own statement with `arn` taken out; None when an Allow is left empty."""
    result = dict(statement)
    principal = result.get("Principal")
    if isinstance(principal, Mapping) and "AWS" in principal:
        remaining = [p for p in _strings(principal["AWS"]) if p != arn]
        if not remaining:
            return None
        result["Principal"] = {**principal, "AWS": remaining}
    condition = result.get("Condition")
    if isinstance(condition, Mapping):
        new_condition: dict[str, Any] = {}
        for operator, block in condition.items():
            if isinstance(block, Mapping):
                block = {
                    key: (
                        [v for v in _strings(values) if v != arn]
                        if key.lower() == "aws:principalarn"
                        else values
                    )
                    for key, values in block.items()
                }
                emptied = any(
                    key.lower() == "aws:principalarn" and not values
                    for key, values in block.items()
                )
                if emptied and statement.get("Sid") == SID_KEY_DENY_OTHERS_USE:
                    # Nobody left on the key's whitelist: its deny covers everyone.
                    continue
                if emptied:
                    raise BadInput(
                        f"Removing {arn} would leave {statement.get('Sid')} denying everyone.",
                        hint="Recompute the policy with the admin principals to keep.",
                    )
            new_condition[operator] = block
        result["Condition"] = new_condition
    return result


def _pretty_lines(document: dict[str, Any] | None) -> list[str]:
    if document is None:
        return []
    return json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False).splitlines()


def _wildcard_match(pattern: str, value: str, *, ignore_case: bool) -> bool:
    """IAM wildcards: `*` any run of characters, `?` one character."""
    regex = "".join(
        ".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern
    )
    flags = re.IGNORECASE if ignore_case else 0
    return re.fullmatch(regex, value, flags | re.DOTALL) is not None


def _covers_action(statement: Mapping[str, Any], action: str) -> bool:
    # Action names are case-insensitive in IAM.
    if "Action" in statement:
        return any(
            _wildcard_match(p, action, ignore_case=True) for p in _strings(statement["Action"])
        )
    if "NotAction" in statement:
        return not any(
            _wildcard_match(p, action, ignore_case=True) for p in _strings(statement["NotAction"])
        )
    return False


def _covers_resource(statement: Mapping[str, Any], resource_arn: str | None) -> bool:
    if resource_arn is None:
        return True
    if "Resource" in statement:
        return any(
            _wildcard_match(p, resource_arn, ignore_case=False)
            for p in _strings(statement["Resource"])
        )
    if "NotResource" in statement:
        return not any(
            _wildcard_match(p, resource_arn, ignore_case=False)
            for p in _strings(statement["NotResource"])
        )
    return True


def _conditions(condition: Any) -> list[tuple[str, str, tuple[str, ...]]]:
    """(operator, key, values) triples; values as strings (booleans become "true"/"false")."""
    if not isinstance(condition, Mapping):
        return []
    triples: list[tuple[str, str, tuple[str, ...]]] = []
    for operator, block in condition.items():
        if not isinstance(block, Mapping):
            continue
        for key, values in block.items():
            items = values if isinstance(values, (list, tuple)) else [values]
            as_text = tuple(
                ("true" if v else "false") if isinstance(v, bool) else str(v) for v in items
            )
            triples.append((str(operator), str(key), as_text))
    return triples


def _restricted(condition: Any) -> bool:
    """True when some positive condition pins the caller or source to fixed values."""
    for operator, key, values in _conditions(condition):
        base = operator.removeprefix("ForAnyValue:")
        if base not in _POSITIVE_OPERATORS or not values:
            continue
        lowered = key.lower()
        if lowered not in _RESTRICTING_KEYS:
            continue
        if lowered == "aws:sourceip" and any(v in _OPEN_CIDRS for v in values):
            continue
        if lowered not in _WILDCARD_OK_KEYS and any("*" in v or "?" in v for v in values):
            continue
        return True
    return False
