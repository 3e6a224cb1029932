"""What the account's documents allow: the policy evaluator fed from a snapshot.

`keyhygiene.core.policy_eval` knows AWS's rules but nothing of an account; this module
finds, for a principal and a resource of a `Snapshot`, the documents AWS would
evaluate (the user's inline and attached policies and those of its groups, a
role's, the bucket or key policy), builds the request a real client makes, and
asks. Everything that says who can do what (`keyhygiene explain`, the tree's
"reach", the audit's reach rule, the plans' lock-out and loan checks) goes
through here, so they all read the account the same way.

AWS managed policies are not in a snapshot (the inventory reads customer
managed ones only). The few whose meaning matters to keyhygiene are known here
by their documented content; any other one makes the answer `unknown`.

Pure: no AWS calls, no Textual.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from keyhygiene.core import arns
from keyhygiene.core.model import (
    Bucket,
    Group,
    InlinePolicy,
    KmsKey,
    PolicyAttachment,
    Role,
    Snapshot,
    User,
)
from keyhygiene.core.policy_documents import caller_principal_arn
from keyhygiene.core.policy_eval import (
    Decision,
    PolicySource,
    Principal,
    Request,
    evaluate,
    may_apply,
)

# AWS managed policies by name, as the AWS Managed Policy Reference documents
# them (https://docs.aws.amazon.com/aws-managed-policy/latest/reference/):
# only their effect on the actions keyhygiene reasons about is kept.
_STAR = {"Version": "2012-10-17"}
KNOWN_AWS_MANAGED: dict[str, Mapping[str, Any]] = {
    "AdministratorAccess": {
        **_STAR,
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    },
    "AWSDenyAll": {**_STAR, "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]},
    "AmazonS3FullAccess": {
        **_STAR,
        "Statement": [
            {"Effect": "Allow", "Action": ["s3:*", "s3-object-lambda:*"], "Resource": "*"}
        ],
    },
    "IAMFullAccess": {
        **_STAR,
        "Statement": [{"Effect": "Allow", "Action": "iam:*", "Resource": "*"}],
    },
    "PowerUserAccess": {
        **_STAR,
        "Statement": [
            {
                "Effect": "Allow",
                "NotAction": ["iam:*", "organizations:*", "account:*"],
                "Resource": "*",
            },
            {
                "Effect": "Allow",
                "Action": [
                    "iam:CreateServiceLinkedRole",
                    "iam:DeleteServiceLinkedRole",
                    "iam:ListRoles",
                    "organizations:DescribeOrganization",
                    "account:ListRegions",
                    "account:GetAccountInformation",
                ],
                "Resource": "*",
            },
        ],
    },
}

# The principal tag that marks an identity as an administrator of keyhygiene's
# buckets and keys (on an IAM user or role; see `admin_principal_arns`).
TAG_ADMIN = "keyhygiene:admin"
# IAM Identity Center creates its roles under this path (with a region after it):
# https://docs.aws.amazon.com/singlesignon/latest/userguide/referencingpermissionsets.html
SSO_ROLE_PATH = "/aws-reserved/sso.amazonaws.com/"
SSO_ADMIN_PERMISSION_SET = "AWSReservedSSO_AdministratorAccess_"

# The object a question about "a bucket's objects" names (any key would do);
# kept in core.arns, light enough for the command line's parser.
EXAMPLE_OBJECT = arns.EXAMPLE_OBJECT

# Requests a real client sends, as condition keys present or absent.
UploadKind = Literal["plain", "kms-key", "kms-no-key", "other-key", "aes256", "sse-c"]


def upload_context(kind: UploadKind, key_arn: str | None = None) -> dict[str, str]:
    """The SSE condition keys of an upload: `plain` is `aws s3 cp` without flags
    (no header at all), `kms-key` is `--sse aws:kms --sse-kms-key-id KEY_ARN`,
    `kms-no-key` is `--sse aws:kms` alone (S3 then uses aws/s3), `other-key`
    another key's ARN, `aes256` is `--sse AES256`, `sse-c` a customer key."""
    sse = "s3:x-amz-server-side-encryption"
    key_id = "s3:x-amz-server-side-encryption-aws-kms-key-id"
    if kind == "plain":
        return {}
    if kind == "kms-key":
        return {sse: "aws:kms", key_id: key_arn or ""}
    if kind == "kms-no-key":
        return {sse: "aws:kms"}
    if kind == "other-key":
        return {sse: "aws:kms", key_id: "arn:aws:kms:us-east-1:111122223333:key/other"}
    if kind == "aes256":
        return {sse: "AES256"}
    return {"s3:x-amz-server-side-encryption-customer-algorithm": "AES256"}


# ---- principals and their documents -----------------------------------------------


def principal_of(snapshot: Snapshot, who: str) -> Principal:
    """The principal a name or ARN means: a user, a role (its session), `root`,
    or a service (`cloudtrail.amazonaws.com`). Raises LookupError otherwise."""
    if who in ("root", arns.root_arn(snapshot.account_id, snapshot.partition)):
        return Principal.root(snapshot.account_id, partition=snapshot.partition)
    if who.endswith(".amazonaws.com"):
        return Principal.service(who)
    user = _find_user(snapshot, who)
    if user is not None:
        return Principal.user(user.arn, tags=user.tags, user_id=user.user_id)
    role = _find_role(snapshot, who)
    if role is not None:
        return Principal.role_session(role.arn, session="keyhygiene", tags=role.tags)
    raise LookupError(f"{who!r} is no user, role, service or root of account {snapshot.account_id}")


def identity_policies(snapshot: Snapshot, principal: Principal) -> list[PolicySource]:
    """The identity policies AWS evaluates for `principal`: a user's own and its
    groups', a role's. None for the root user and services."""
    if principal.kind == "user":
        user = _find_user(snapshot, principal.arn)
        if user is None:
            return []
        sources = _documents(
            snapshot, f"user {user.name}", user.inline_policies, user.attached_policies
        )
        for name in user.groups:
            group = snapshot.group(name)
            if group is not None:
                sources += group_policies(snapshot, group)
        return sources
    if principal.kind == "role":
        role = _find_role(snapshot, principal.arn)
        if role is None:
            return []
        return _documents(
            snapshot, f"role {role.name}", role.inline_policies, role.attached_policies
        )
    return []


def group_policies(snapshot: Snapshot, group: Group) -> list[PolicySource]:
    return _documents(
        snapshot, f"group {group.name}", group.inline_policies, group.attached_policies
    )


def resource_policy(snapshot: Snapshot, resource: str) -> PolicySource | None:
    """The bucket policy for a bucket or object ARN, the key policy for a key
    ARN, the trust policy for a role ARN (what `sts:AssumeRole` is judged by)."""
    if ":iam::" in resource and ":role/" in resource:
        role = _find_role(snapshot, resource)
        return (
            PolicySource(f"the trust policy of role {role.name}", role.trust_policy)
            if role
            else None
        )
    bucket = bucket_of(snapshot, resource)
    if bucket is not None:
        return (
            PolicySource(f"the policy of bucket {bucket.name}", bucket.policy)
            if bucket.policy
            else None
        )
    key = key_of(snapshot, resource)
    if key is not None:
        # Every key has a policy: one not read may hold anything.
        return PolicySource(f"the key policy of {key.label}", key.policy)
    return None


def bucket_of(snapshot: Snapshot, resource: str) -> Bucket | None:
    name = (
        resource.split(":::", 1)[-1].split("/", 1)[0] if resource.startswith("arn:") else resource
    )
    if resource.startswith("arn:") and ":s3:::" not in resource:
        return None
    return snapshot.bucket(name)


def key_of(snapshot: Snapshot, resource: str) -> KmsKey | None:
    if resource.startswith("arn:") and ":kms:" not in resource:
        return None
    return snapshot.kms_key(resource)


# ---- questions --------------------------------------------------------------------


def explain(
    snapshot: Snapshot,
    who: str | Principal,
    action: str,
    resource: str,
    *,
    context: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> Decision:
    """AWS's decision for `who` calling `action` on `resource` (an ARN, a bucket
    or `bucket/key`, a key id or alias), with `context` as extra condition keys."""
    principal = who if isinstance(who, Principal) else principal_of(snapshot, who)
    resource_arn = resource_arn_of(snapshot, resource)
    request = Request(
        principal,
        action,
        resource_arn,
        dict(context or {}),
        now=now or datetime.now(timezone.utc),
        resource_account=snapshot.account_id,
    )
    return evaluate(
        request, identity_policies(snapshot, principal), resource_policy(snapshot, resource_arn)
    )


def resource_arn_of(snapshot: Snapshot, resource: str) -> str:
    """An ARN for what a person types: `photos-data`, `photos-data/a.jpg`,
    `alias/photos`, a key id; ARNs stay as they are, but an alias ARN becomes
    its key's ARN (KMS authorizes on the key). A bare name that is a bucket is
    the bucket, even when `alias/NAME` exists too (an application's key and
    bucket may share its name)."""
    if resource.startswith("arn:"):
        if ":kms:" in resource and ":alias/" in resource:
            key = snapshot.kms_key("alias/" + resource.split(":alias/", 1)[1])
            return key.arn if key is not None else resource
        return resource
    is_bucket = snapshot.bucket(resource.split("/", 1)[0]) is not None
    if not is_bucket or resource.startswith("alias/"):
        key = snapshot.kms_key(resource)
        if key is not None:
            return key.arn
    return arns.bucket_arn(resource, snapshot.partition)


@dataclass(frozen=True)
class Reach:
    """What one principal can do with one bucket or key, on AWS's rules."""

    resource: str  # bucket name or key label
    kind: Literal["bucket", "key"]
    abilities: tuple[str, ...]  # "read", "write", "list" / "decrypt", "encrypt"
    unknown: tuple[str, ...] = ()


def principal_reach(snapshot: Snapshot, who: str, now: datetime) -> list[Reach]:
    """Every bucket and key of the snapshot this principal can use (or might).

    A bucket's objects are read and written through S3, which asks the
    bucket's default KMS key as the caller: "read" needs kms:Decrypt and
    "write" kms:GenerateDataKey on it too (as `who_reads` counts them)."""
    principal = principal_of(snapshot, who)
    sources = identity_policies(snapshot, principal)  # once, not per question

    def outcome(action: str, resource: str, context: Mapping[str, Any] | None = None) -> str:
        request = Request(
            principal,
            action,
            resource,
            dict(context or {}),
            now=now,
            resource_account=snapshot.account_id,
        )
        return evaluate(request, sources, resource_policy(snapshot, resource)).outcome

    def with_key(action: str, resource: str, key_action: str, key: KmsKey | None) -> list[str]:
        answers = [outcome(action, resource)]
        if key is not None:
            answers.append(outcome(key_action, key.arn, via_s3(key.arn)))
        return answers

    found: list[Reach] = []
    for bucket in sorted(snapshot.buckets, key=lambda b: b.name):
        key = _default_key(snapshot, bucket)
        objects = f"{bucket.arn}/{EXAMPLE_OBJECT}"
        found.append(
            _reach(
                bucket.name,
                "bucket",
                [
                    ("read", with_key("s3:GetObject", objects, "kms:Decrypt", key)),
                    ("write", with_key("s3:PutObject", objects, "kms:GenerateDataKey", key)),
                    ("list", [outcome("s3:ListBucket", bucket.arn)]),
                ],
            )
        )
    for k in sorted(snapshot.kms_keys, key=lambda k: k.label):
        found.append(
            _reach(
                k.label,
                "key",
                [
                    ("decrypt", [outcome("kms:Decrypt", k.arn)]),
                    ("encrypt", [outcome("kms:GenerateDataKey", k.arn)]),
                ],
            )
        )
    return [r for r in found if r.abilities or r.unknown]


def _reach(
    resource: str, kind: Literal["bucket", "key"], asked: list[tuple[str, list[str]]]
) -> Reach:
    """An ability is there when every request it takes is allowed, unknown when
    none is denied but some cannot be told."""
    can = [ability for ability, outcomes in asked if all(o == "allow" for o in outcomes)]
    unknown = [
        ability
        for ability, outcomes in asked
        if ability not in can and all(o in ("allow", "unknown") for o in outcomes)
    ]
    return Reach(resource, kind, tuple(can), tuple(unknown))


@dataclass(frozen=True)
class WhoCan:
    """Who may call an action on a resource, by name (roles as `role NAME`)."""

    allowed: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()
    # KMS: allowed through the key policy's delegation to the account (their
    # IAM policies decided), not by a statement naming them.
    through_iam: tuple[str, ...] = ()
    # Anonymous callers are allowed: the resource is public.
    anyone: bool = False
    # Users and roles that might be allowed but were not evaluated (`budget`).
    unchecked: int = 0


def who_can(
    snapshot: Snapshot,
    action: str,
    resource: str,
    now: datetime,
    *,
    budget: int | None = None,
    with_root: bool = False,
    context: Mapping[str, Any] | None = None,
) -> WhoCan:
    """The users and roles of the snapshot (and, `with_root`, the root user)
    that may call `action` on `resource` on AWS's rules (with `context` as the
    request's own condition keys).

    Only the principals some policy could allow are evaluated (`candidates`):
    on a 500-user account a question costs milliseconds, not 500 evaluations.
    `budget` caps how many are evaluated, those the resource policy names
    first; the rest are counted in `unchecked`.
    """
    extra = dict(context or {})
    anonymous = explain(snapshot, Principal.anonymous(), action, resource, context=extra, now=now)
    if anonymous.allowed:
        return WhoCan(anyone=True)
    policy = resource_policy(snapshot, resource)
    found = candidates(snapshot, action, resource)
    checked = found
    if budget is not None and len(found) > budget:
        # Named ones first (sorted is stable), then back in the account's order.
        order = sorted(range(len(found)), key=lambda i: not found[i].named)[:budget]
        checked = [found[i] for i in sorted(order)]
    entries = [(c.label, c.principal, c.sources) for c in checked]
    if with_root:
        entries.append(
            ("root", Principal.root(snapshot.account_id, partition=snapshot.partition), [])
        )
    allowed: list[str] = []
    unknown: list[str] = []
    through_iam: list[str] = []
    kms = action.lower().startswith("kms:")
    for label, principal, sources in entries:
        request = Request(
            principal, action, resource, extra, now=now, resource_account=snapshot.account_id
        )
        decision = evaluate(request, sources, policy)
        if decision.allowed:
            allowed.append(label)
            # A key policy statement naming the caller decides alone; otherwise
            # the deciding statements include the caller's own IAM policies.
            if (
                kms
                and policy is not None
                and any(r.source != policy.label for r in decision.deciding)
            ):
                through_iam.append(label)
        elif decision.outcome == "unknown":
            unknown.append(label)
    if anonymous.outcome == "unknown":
        unknown.append("anonymous callers")
    return WhoCan(
        tuple(allowed), tuple(unknown), tuple(through_iam), unchecked=len(found) - len(checked)
    )


def who_reads(
    snapshot: Snapshot,
    bucket: Bucket,
    now: datetime,
    *,
    budget: int | None = None,
    with_root: bool = False,
) -> WhoCan:
    """Who can read a bucket's objects: s3:GetObject and, when the bucket
    encrypts with a KMS key by default, kms:Decrypt with that key (S3 decrypts
    as the caller, so an admin allowed the object but not the key reads nothing)."""
    objects = who_can(
        snapshot,
        "s3:GetObject",
        f"{bucket.arn}/{EXAMPLE_OBJECT}",
        now,
        budget=budget,
        with_root=with_root,
    )
    key = _default_key(snapshot, bucket)
    if objects.anyone or key is None:
        return objects
    decrypt = who_can(
        snapshot,
        "kms:Decrypt",
        key.arn,
        now,
        budget=budget,
        with_root=with_root,
        context=via_s3(key.arn),
    )
    # Both must allow; either side unknown (and neither denying) is unknown.
    key_side = {**dict.fromkeys(decrypt.unknown, None), **dict.fromkeys(decrypt.allowed, True)}
    allowed = tuple(n for n in objects.allowed if key_side.get(n) is True)
    unknown = tuple(
        n for n in (*objects.allowed, *objects.unknown) if n in key_side and n not in allowed
    )
    return WhoCan(allowed, unknown, unchecked=max(objects.unchecked, decrypt.unchecked))


def via_s3(key_arn: str) -> dict[str, str]:
    """The context of the KMS request S3 makes as the caller for an SSE-KMS
    object: through S3 in the key's region (kms:ViaService, aws:ViaAWSService)."""
    region = key_arn.split(":")[3] if key_arn.count(":") >= 5 else "us-east-1"
    return {"kms:ViaService": f"s3.{region}.amazonaws.com", "aws:ViaAWSService": "true"}


def _default_key(snapshot: Snapshot, bucket: Bucket) -> KmsKey | None:
    encryption = bucket.encryption
    if encryption is None or not encryption.is_kms or not encryption.kms_key_id:
        return None
    return snapshot.kms_key(encryption.kms_key_id)


@dataclass(frozen=True)
class Candidate:
    label: str  # the user's name, or `role NAME`
    principal: Principal
    sources: list[PolicySource]  # its identity policies
    named: bool  # the resource policy names it


def candidates(snapshot: Snapshot, action: str, resource: str) -> list[Candidate]:
    """The users and roles that could be allowed `action` on `resource`.

    Within one account an Allow comes from an identity policy of the caller or
    from a resource policy statement naming the caller (or everyone); a KMS
    key's delegation to the account still needs the IAM side. A principal with
    neither is denied whatever the conditions say, so it is left out without
    evaluating anything. The test (`policy_eval.may_apply`) reads Action and
    Resource only and takes whatever it does not understand as matching, so it
    never leaves out one the evaluator would allow or could not tell.
    """
    policy = resource_policy(snapshot, resource)
    if policy is None:
        everyone, named = False, frozenset[str]()
    elif policy.document is None:
        everyone, named = True, frozenset()
    else:
        everyone, named = _resource_names(policy.document, action, resource)
    verdicts: dict[int, bool] = {}

    def may_allow(sources: list[PolicySource]) -> bool:
        for source in sources:
            if source.document is None:
                return True
            key = id(source.document)
            if key not in verdicts:
                verdicts[key] = _identity_may_allow(source.document, action, resource)
            if verdicts[key]:
                return True
        return False

    groups = {g.name.lower(): group_policies(snapshot, g) for g in snapshot.groups}
    found: list[Candidate] = []
    for user in snapshot.users:
        sources = _documents(
            snapshot, f"user {user.name}", user.inline_policies, user.attached_policies
        )
        for name in user.groups:
            sources += groups.get(name.lower(), [])
        is_named = user.arn in named
        if everyone or is_named or may_allow(sources):
            principal = Principal.user(user.arn, tags=user.tags, user_id=user.user_id)
            found.append(Candidate(user.name, principal, sources, is_named))
    for role in snapshot.roles:
        if role.service_linked:
            continue
        sources = _documents(
            snapshot, f"role {role.name}", role.inline_policies, role.attached_policies
        )
        principal = Principal.role_session(role.arn, session="keyhygiene", tags=role.tags)
        is_named = bool(principal.identifiers() & named)
        if everyone or is_named or may_allow(sources):
            found.append(Candidate(f"role {role.name}", principal, sources, is_named))
    return found


def _identity_may_allow(document: Mapping[str, Any], action: str, resource: str) -> bool:
    for statement in _statement_list(document):
        if not isinstance(statement, Mapping) or statement.get("Effect") not in ("Allow", "Deny"):
            return True
        if statement["Effect"] == "Allow" and may_apply(statement, action, resource):
            return True
    return False


def _resource_names(
    document: Mapping[str, Any], action: str, resource: str
) -> tuple[bool, frozenset[str]]:
    """(everyone, named): whether an Allow that may apply could name any caller
    at all, and the principals the others name."""
    named: set[str] = set()
    for statement in _statement_list(document):
        if not isinstance(statement, Mapping) or statement.get("Effect") not in ("Allow", "Deny"):
            return True, frozenset()
        if statement["Effect"] != "Allow" or not may_apply(statement, action, resource):
            continue
        principal = statement.get("Principal")
        if "NotPrincipal" in statement or not isinstance(principal, Mapping):
            return True, frozenset()  # "*", a NotPrincipal, or a form not understood
        for kind, items in principal.items():
            values = items if isinstance(items, list) else [items]
            if kind == "AWS":
                if "*" in values:
                    return True, frozenset()
                named.update(str(v) for v in values)
            elif kind not in ("Service", "Federated"):
                return True, frozenset()  # a CanonicalUser may be anyone's
    return False, frozenset(named)


def _statement_list(document: Mapping[str, Any]) -> list[Any]:
    raw = document.get("Statement")
    if raw is None:
        return []
    return list(raw) if isinstance(raw, list) else [raw]


# ---- administrators -----------------------------------------------------------------


def admin_principal_arns(snapshot: Snapshot, actor_arn: str | None) -> tuple[str, ...]:
    """Who keyhygiene keeps in control of the buckets and keys it writes, by a
    rule a person can check:

    - the identity running keyhygiene (the actor; a role session counts as its role);
    - every IAM user or role tagged `keyhygiene:admin` = `true`;
    - the account's IAM Identity Center roles of the AdministratorAccess
      permission set (path `/aws-reserved/sso.amazonaws.com/`).

    The account root is always kept too (it stands for the root user only).
    """
    found: set[str] = {arns.root_arn(snapshot.account_id, snapshot.partition)}
    if actor_arn:
        found.add(_actor_principal_arn(snapshot, actor_arn))
    for user in snapshot.users:
        if _tagged_admin(user.tags):
            found.add(user.arn)
    for role in snapshot.roles:
        if _tagged_admin(role.tags) or is_sso_admin_role(role):
            found.add(role.arn)
    return tuple(sorted(found))


def is_sso_admin_role(role: Role) -> bool:
    return role.path.startswith(SSO_ROLE_PATH) and role.name.startswith(SSO_ADMIN_PERMISSION_SET)


def admin_like_principals(snapshot: Snapshot, action: str, resource: str) -> list[Candidate]:
    """Every user and role whose IAM policies alone give `action` on `resource`
    (the resource policy left out): the admins of that resource as IAM sees
    them, the identities a resource policy must not lock out unawares."""
    found: list[Candidate] = []
    for candidate in candidates(snapshot, action, resource):
        request = Request(
            candidate.principal, action, resource, resource_account=snapshot.account_id
        )
        if evaluate(request, candidate.sources).allowed:
            found.append(candidate)
    return found


# ---- internals ----------------------------------------------------------------------


def _documents(
    snapshot: Snapshot,
    owner: str,
    inline: Iterable[InlinePolicy],
    attached: Iterable[PolicyAttachment],
) -> list[PolicySource]:
    sources = [PolicySource(f"{owner} inline policy {p.name}", p.document) for p in inline]
    for policy in attached:
        sources.append(
            PolicySource(
                f"{owner} attached policy {policy.name}", managed_document(snapshot, policy)
            )
        )
    return sources


def managed_document(snapshot: Snapshot, policy: PolicyAttachment) -> Mapping[str, Any] | None:
    """A managed policy's document: the customer's from the snapshot, an AWS
    one keyhygiene knows, else None (not read)."""
    document = snapshot.managed_policies.get(policy.arn)
    if document is not None:
        return document
    if ":iam::aws:policy/" in policy.arn:
        return KNOWN_AWS_MANAGED.get(policy.arn.rsplit("/", 1)[-1])
    return None


def _find_user(snapshot: Snapshot, who: str) -> User | None:
    if who.startswith("arn:"):
        return next((u for u in snapshot.users if u.arn == who), None)
    return snapshot.user(who)


def _find_role(snapshot: Snapshot, who: str) -> Role | None:
    if who.startswith("arn:"):
        if ":assumed-role/" in who:
            who = who.split(":assumed-role/", 1)[1].split("/", 1)[0]
        else:
            return next((r for r in snapshot.roles if r.arn == who), None)
    elif who.startswith("role/"):
        who = who[len("role/") :]
    return snapshot.role(who)


def _actor_principal_arn(snapshot: Snapshot, actor_arn: str) -> str:
    """What `aws:PrincipalArn` holds for the actor: a session's role ARN, with its path."""
    if ":assumed-role/" in actor_arn:
        role = _find_role(snapshot, actor_arn)
        if role is not None:
            return role.arn
        return caller_principal_arn(actor_arn)
    return actor_arn


def _tagged_admin(tags: Mapping[str, str]) -> bool:
    # IAM tag keys are case-insensitive: KeyHygiene:Admin is the same tag.
    return any(k.lower() == TAG_ADMIN and v.lower() == "true" for k, v in tags.items())
