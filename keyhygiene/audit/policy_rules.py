"""Audit rules decided by the policy evaluator: what the documents do on AWS.

The rules of `keyhygiene.audit.rules` read documents for their shape (who is listed
where). These ask `keyhygiene.core.policy_eval`, through `keyhygiene.core.access`, what AWS would
decide, so that their findings name a concrete harm ("plain `aws s3 cp` is
denied") rather than a form:

| id                          | severity | what it means                                              |
|-----------------------------|----------|------------------------------------------------------------|
| policy.upload-denied        | high     | a bucket policy denies plain or multipart uploads (the     |
|                             |          | strict encryption deny of keyhygiene before 0.2)           |
| policy.bucket-deny-old      | high     | keyhygiene's bucket deny of 0.1: all of s3:* denied to     |
|                             |          | anyone not listed, services and other admins included,     |
|                             |          | and whitelisted computers exempt from all of it            |
| policy.key-not-exclusive    | high     | a tagged key's whitelist is not exclusive: IAM policies    |
|                             |          | alone let others decrypt (medium when nobody does yet)     |
| whitelist.reach-beyond      | high     | someone outside a resource's whitelist can use its data    |
| whitelist.reach-short       | medium   | a whitelisted principal cannot use the resource after all  |
| policy.expiry-unguarded     | high     | a loan's expiry policy without the guard, on a borrower    |
|                             |          | whose IAM rights let it delete it                          |

`app sync` rewrites every one of them (keyhygiene/audit/fixes.py). Pure: no AWS calls.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from keyhygiene.audit.findings import AuditSettings, Finding
from keyhygiene.core import access
from keyhygiene.core.model import EXPIRY_POLICY_NAME, Bucket, KmsKey, Snapshot
from keyhygiene.core.policy_documents import (
    SID_BUCKET_DENY_CONFIGURATION,
    SID_BUCKET_DENY_OTHERS,
    SID_KEY_DENY_OTHERS_ADMIN,
    SID_KEY_DENY_OTHERS_USE,
    is_own_statement,
    statements,
    whitelisted_principals,
)
from keyhygiene.core.policy_eval import PolicySource, Principal, Request, evaluate
from keyhygiene.workflows.membership import GUARD_SID

# A stand-in caller for questions about one statement at a time.
_PROBE = "keyhygiene-audit-probe"


def upload_denied(snapshot: Snapshot, now: datetime, settings: AuditSettings) -> Iterator[Finding]:
    """keyhygiene's own upload denies must let `aws s3 cp` without flags through
    (default SSE-KMS encrypts it with the application's key); the strict form of
    0.1 denied every upload that sent no SSE header, multipart parts included."""
    for bucket in snapshot.buckets:
        upload_denies = [
            s
            for s in statements(bucket.policy)
            if is_own_statement(s) and s.get("Effect") == "Deny" and _about_encryption(s)
        ]
        if not upload_denies:
            continue
        probe = Principal.user(f"arn:{snapshot.partition}:iam::{snapshot.account_id}:user/{_PROBE}")
        request = Request(probe, "s3:PutObject", f"{bucket.arn}/example.jpg", now=now)
        # Only keyhygiene's upload denies, so that the whitelist does not decide.
        decision = evaluate(
            request,
            [_ALLOW_ALL],
            PolicySource(f"the policy of bucket {bucket.name}", {"Statement": upload_denies}),
        )
        if decision.outcome != "explicit-deny":
            continue
        sids = ", ".join(sorted({ref.sid or "?" for ref in decision.deciding}))
        yield Finding(
            id="policy.upload-denied",
            severity="high",
            title=f"Bucket {bucket.name} denies a plain `aws s3 cp`",
            resource=bucket.name,
            detail=f"{sids} denies every upload that sends no encryption header: `aws s3 cp` "
            "and `aws s3 sync` without --sse, and every part of a multipart upload, fail with "
            "AccessDenied, although the bucket's default encryption would use the "
            "application's key.",
            resource_kind="bucket",
            fix=_sync_fix(bucket.for_groups, "deny only the wrong encryption"),
        )


def bucket_deny_old(
    snapshot: Snapshot, now: datetime, settings: AuditSettings
) -> Iterator[Finding]:
    """The 0.1 `KeyHygieneDenyOthers` denied all of s3:* to anyone not listed:
    AWS services (CloudTrail, access logs, inventory: they have no
    aws:PrincipalArn) and every other admin lost the bucket, and a whitelisted
    computer was exempt from all of it, its policy included."""
    for bucket in snapshot.buckets:
        own = {s.get("Sid"): s for s in statements(bucket.policy) if is_own_statement(s)}
        deny = own.get(SID_BUCKET_DENY_OTHERS)
        if deny is None or SID_BUCKET_DENY_CONFIGURATION in own:
            continue
        harms: list[str] = []
        alone = PolicySource(f"the policy of bucket {bucket.name}", {"Statement": [deny]})
        trail = Request(
            Principal.service("cloudtrail.amazonaws.com"), "s3:GetBucketAcl", bucket.arn, now=now
        )
        if evaluate(trail, (), alone).outcome == "explicit-deny":
            harms.append("AWS services (CloudTrail, access logs, inventory) are denied")
        locked = [
            admin.label
            for admin in access.admin_like_principals(snapshot, "s3:PutBucketPolicy", bucket.arn)
            if _denied(snapshot, admin, "s3:PutBucketPolicy", bucket.arn, alone, now)
        ]
        if locked:
            harms.append(f"{_listing(locked)} cannot even read the bucket policy")
        listed = whitelisted_principals(bucket.policy)
        if listed:
            harms.append(
                "its whitelisted computers are exempt from all of s3:*, so one with "
                "s3:PutBucketPolicy in an IAM policy could rewrite the whitelist"
            )
        if not harms:
            continue
        yield Finding(
            id="policy.bucket-deny-old",
            severity="high",
            title=f"Bucket {bucket.name} has keyhygiene 0.1's deny of all S3",
            resource=bucket.name,
            detail="; ".join(harms) + ".",
            resource_kind="bucket",
            fix=_sync_fix(
                bucket.for_groups, "split the deny into data (whitelist) and configuration (admins)"
            ),
        )


def key_not_exclusive(
    snapshot: Snapshot, now: datetime, settings: AuditSettings
) -> Iterator[Finding]:
    """A key tagged for an application is guarded by its whitelist only if no
    IAM policy can reach past it; the default statement delegates to IAM."""
    for key in snapshot.kms_keys:
        if not key.for_groups or key.policy is None:
            continue
        sids = {s.get("Sid") for s in statements(key.policy)}
        if SID_KEY_DENY_OTHERS_USE in sids:
            if SID_KEY_DENY_OTHERS_ADMIN not in sids:
                yield from _key_admin_open(snapshot, key, now)
            continue
        whitelist = whitelisted_principals(key.policy)
        # Directly, or through S3 (statements often allow only kms:ViaService S3).
        direct = access.who_can(snapshot, "kms:Decrypt", key.arn, now).allowed
        via = access.who_can(snapshot, "kms:Decrypt", key.arn, now, context=access.via_s3(key.arn))
        allowed = tuple(dict.fromkeys((*direct, *via.allowed)))
        names = _Names(snapshot)
        outside = [label for label in allowed if names.arn_of(label) not in whitelist]
        detail = (
            f'Any identity whose IAM policies allow kms:Decrypt on "*" can use {key.label}, '
            "whitelisted or not: the key policy delegates to IAM and denies nobody."
        )
        if outside:
            detail += f" Today that is {_listing(outside)}."
        yield Finding(
            id="policy.key-not-exclusive",
            severity="high" if outside else "medium",
            title=f"KMS key {key.label}'s whitelist is not exclusive",
            resource=key.key_id,
            detail=detail,
            resource_kind="kms-key",
            fix=_sync_fix(key.for_groups, "add a Deny of its use to anyone not whitelisted"),
        )


def _key_admin_open(snapshot: Snapshot, key: KmsKey, now: datetime) -> Iterator[Finding]:
    """A key written before keyhygiene kept its administration to the admins:
    whoever IAM allows kms:PutKeyPolicy can delete the whitelist's deny."""
    admins = set(access.admin_principal_arns(snapshot, snapshot.caller_arn))
    who = access.who_can(snapshot, "kms:PutKeyPolicy", key.arn, now).allowed
    names = _Names(snapshot)
    others = [label for label in who if names.arn_of(label) not in admins]
    if not others:
        return
    yield Finding(
        id="policy.key-not-exclusive",
        severity="medium",
        title=f"KMS key {key.label}'s policy can be rewritten by others than its admins",
        resource=key.key_id,
        detail=f"The key policy delegates its administration to IAM, so {_listing(others)} "
        "(allowed kms:PutKeyPolicy by their IAM policies, but no admin by keyhygiene's rule) "
        "could remove its whitelist or schedule the key's deletion.",
        resource_kind="kms-key",
        fix=_sync_fix(key.for_groups, "keep the key's administration to its admins"),
    )


def whitelist_reach(
    snapshot: Snapshot, now: datetime, settings: AuditSettings
) -> Iterator[Finding]:
    """What the whitelist says against what AWS computes: someone who can use a
    tagged resource without being listed, or someone listed who cannot."""
    names = _Names(snapshot)
    resources: list[Bucket | KmsKey] = [*snapshot.buckets, *snapshot.kms_keys]
    for resource in resources:
        if not resource.for_groups or resource.policy is None:
            continue
        action, _target = _use_of(resource)
        listed = whitelisted_principals(resource.policy)
        # A bucket's data is read only with its key too (an admin allowed the
        # objects but not the key reads nothing).
        if isinstance(resource, Bucket):
            allowed = access.who_reads(snapshot, resource, now).allowed
        else:
            allowed = access.who_can(snapshot, action, resource.arn, now).allowed
        allowed_arns = {names.arn_of(who): who for who in allowed}
        kind, name, label = _names(resource)
        # The admins keyhygiene keeps exempt on purpose (a bucket without a KMS
        # key of the account lets them read): not a reach past the whitelist.
        kept = _kept_admins(resource.policy)
        beyond = [who for arn, who in allowed_arns.items() if arn not in listed | kept]
        if beyond:
            yield Finding(
                id="whitelist.reach-beyond",
                severity="high",
                title=f"{_listing(beyond)} can use {label} without being whitelisted",
                resource=name,
                detail=f"On AWS's rules, {action} on {label} is allowed to {_listing(beyond)}, "
                "who are not on its whitelist (an IAM policy or another statement reaches past it).",
                resource_kind=kind,
                fix=_sync_fix(
                    resource.for_groups, "remove the access that reaches past the whitelist"
                ),
            )
        short = sorted(arn for arn in listed if arn not in allowed_arns and names.known(arn))
        if short:
            who = _listing([names.label_of(arn) for arn in short])
            yield Finding(
                id="whitelist.reach-short",
                severity="medium",
                title=f"{who} whitelisted on {label} but denied",
                resource=name,
                detail=f"{who} are whitelisted, yet on AWS's rules {action} on {label} is "
                "denied to them (another statement or an IAM policy denies it): they cannot work.",
                resource_kind=kind,
                fix=_sync_fix(resource.for_groups, "find the statement that denies them"),
            )


def expiry_unguarded(
    snapshot: Snapshot, now: datetime, settings: AuditSettings
) -> Iterator[Finding]:
    """A loan's `keyhygiene-expiry` written before the guard lets a borrower
    whose group grants IAM rights delete it, or move its grant tag, before it
    expires: the loan would never end."""
    for user in snapshot.users:
        expiry = next((p for p in user.inline_policies if p.name == EXPIRY_POLICY_NAME), None)
        if expiry is None:
            continue
        if any(s.get("Sid") == GUARD_SID for s in statements(expiry.document)):
            continue
        escape = access.explain(snapshot, user.arn, "iam:DeleteUserPolicy", user.arn, now=now)
        if not escape.allowed:
            continue  # written before the guard, but its borrower cannot remove it
        groups = ", ".join(sorted(user.grants())) or "its groups"
        yield Finding(
            id="policy.expiry-unguarded",
            severity="high",
            title=f"{user.name}'s loan can be escaped before it expires",
            resource=user.name,
            detail=f"Its {EXPIRY_POLICY_NAME} policy, written before keyhygiene guarded it, "
            "does not stop the borrower changing its own policies, tags and groups, and its "
            "IAM policies let it call iam:DeleteUserPolicy on itself: it can delete the expiry "
            "before it applies and keep the loan for good.",
            resource_kind="user",
            fix="Open this finding in the TUI to add the guard (expiries unchanged), or lend "
            f"it again (`keyhygiene grant {user.name} --group GROUP --for DURATION --force`, "
            f"for {groups}), or end the loan (`--end`).",
        )


RULES = (upload_denied, bucket_deny_old, key_not_exclusive, whitelist_reach, expiry_unguarded)


# ---- helpers ------------------------------------------------------------------------

_ALLOW_ALL = PolicySource(
    "an identity policy allowing everything",
    {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]},
)
_ENCRYPTION_KEYS = (
    "s3:x-amz-server-side-encryption",
    "s3:x-amz-server-side-encryption-aws-kms-key-id",
    "s3:x-amz-server-side-encryption-customer-algorithm",
)


def _about_encryption(statement: Mapping[str, Any]) -> bool:
    condition = statement.get("Condition")
    if not isinstance(condition, Mapping):
        return False
    return any(
        isinstance(block, Mapping) and any(k.lower() in _ENCRYPTION_KEYS for k in block)
        for block in condition.values()
    )


def _denied(
    snapshot: Snapshot,
    who: access.Candidate,
    action: str,
    resource: str,
    policy: PolicySource,
    now: datetime,
) -> bool:
    request = Request(
        who.principal, action, resource, now=now, resource_account=snapshot.account_id
    )
    return evaluate(request, who.sources, policy).outcome == "explicit-deny"


def _kept_admins(policy: Mapping[str, Any] | None) -> set[str]:
    """The principals keyhygiene's own Denies spare besides the whitelist."""
    kept: set[str] = set()
    for statement in statements(policy):
        if not is_own_statement(statement) or statement.get("Effect") != "Deny":
            continue
        condition = statement.get("Condition")
        block = condition.get("ArnNotLike") if isinstance(condition, Mapping) else None
        if isinstance(block, Mapping):
            for key, values in block.items():
                if key.lower() == "aws:principalarn":
                    kept.update(v for v in (values if isinstance(values, list) else [values]))
    return kept


def _use_of(resource: Bucket | KmsKey) -> tuple[str, str]:
    if isinstance(resource, Bucket):
        return "s3:GetObject", f"{resource.arn}/{access.EXAMPLE_OBJECT}"
    return "kms:Decrypt", resource.arn


class _Names:
    """Labels ("alice-laptop", "role photos") and ARNs of a snapshot's users and
    roles, both ways, built once per rule instead of a scan per name."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.arn: dict[str, str] = {u.name: u.arn for u in snapshot.users}
        self.arn.update({f"role {r.name}": r.arn for r in snapshot.roles})
        self.label: dict[str, str] = {arn: label for label, arn in self.arn.items()}

    def arn_of(self, label: str) -> str:
        return self.arn.get(label, label)

    def label_of(self, arn: str) -> str:
        return self.label.get(arn, arn)

    def known(self, arn: str) -> bool:
        return arn in self.label


def _names(resource: Bucket | KmsKey) -> tuple[Any, str, str]:
    if isinstance(resource, Bucket):
        return "bucket", resource.name, f"bucket {resource.name}"
    return "kms-key", resource.key_id, f"KMS key {resource.label}"


def _listing(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _sync_fix(groups: tuple[str, ...], what: str) -> str:
    if groups:
        return f"Run `keyhygiene app sync {groups[0]}` to rewrite keyhygiene's statements ({what})."
    return what[0].upper() + what[1:] + "."
