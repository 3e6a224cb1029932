"""The account rules of the audit: one small function per rule over a Snapshot.

Each rule is `rule(snapshot, now, settings) -> Iterator[Finding]`: pure, no
AWS call, no clock (`now` is given). `RULES` lists them in the order the audit
runs them; severities and ids are tabled in `keyhygiene.audit.findings`'s docstring.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from keyhygiene.audit import policy_rules as audit_policies
from keyhygiene.audit.findings import AuditSettings, Finding, ResourceKind
from keyhygiene.core.arns import name_of, resource_type
from keyhygiene.core.formatting import key_tail, parse_utc
from keyhygiene.core.model import (
    EXPIRY_POLICY_NAME,
    REVOKED_POLICY_NAME,
    TAG_DEVICE,
    TAG_ENROLLED,
    TAG_HOSTNAME,
    TAG_PERSON,
    AccessKey,
    Bucket,
    InlinePolicy,
    KmsKey,
    PolicyAttachment,
    Snapshot,
    User,
    split_person_device,
)
from keyhygiene.core.policy_documents import (
    admin_like,
    foreign_accounts,
    has_unencrypted_upload_deny,
    is_public,
    principals_of,
    statements,
    whitelisted_principals,
)

Rule = Callable[[Snapshot, datetime, AuditSettings], Iterable[Finding]]

ADMINS_GROUP = "admins"
# keyhygiene puts these on a user itself, on purpose: they only ever deny.
OWN_USER_POLICIES = frozenset({EXPIRY_POLICY_NAME, REVOKED_POLICY_NAME})
DEVICE_TAGS = (TAG_PERSON, TAG_DEVICE, TAG_HOSTNAME, TAG_ENROLLED)
# The AWS managed policy, in any partition (moto does not load it; real accounts do).
_AWS_ADMIN_POLICY_SUFFIX = ":iam::aws:policy/AdministratorAccess"
_AWS_DENY_ALL_SUFFIX = ":iam::aws:policy/AWSDenyAll"
# Roles AWS itself manages (service-linked, IAM Identity Center): their
# policies cannot be changed from IAM, so a finding on them could not be fixed.
_AWS_MANAGED_ROLE_PATHS = ("/aws-service-role/", "/aws-reserved/")
_PUBLIC_BLOCK_SETTINGS = (
    "BlockPublicAcls",
    "IgnorePublicAcls",
    "BlockPublicPolicy",
    "RestrictPublicBuckets",
)


# ---- account root -----------------------------------------------------------


def root_access_keys(
    snapshot: Snapshot, now: datetime, settings: AuditSettings
) -> Iterator[Finding]:
    """Root keys cannot be limited by any policy: whoever has one owns the account."""
    if snapshot.root.access_keys_present:
        yield Finding(
            id="root.access-keys",
            severity="critical",
            title="The root user has access keys",
            resource="root",
            detail="Root access keys can do anything in the account and no policy can limit them.",
            resource_kind="root",
            fix="Sign in as root and delete its access keys (Security credentials page); "
            "use an IAM user per computer instead.",
        )


def root_without_mfa(
    snapshot: Snapshot, now: datetime, settings: AuditSettings
) -> Iterator[Finding]:
    """A root password alone is one phishing mail away from losing the account."""
    if snapshot.root.mfa_enabled is False:
        yield Finding(
            id="root.no-mfa",
            severity="critical",
            title="The root user has no MFA",
            resource="root",
            detail="Signing in as root needs only the password.",
            resource_kind="root",
            fix="Sign in as root and assign an MFA device (Security credentials page).",
        )


# ---- users and their keys ---------------------------------------------------


def several_active_keys(
    snapshot: Snapshot, now: datetime, settings: AuditSettings
) -> Iterator[Finding]:
    """One key per computer: a second active key lives somewhere it should not."""
    for user in snapshot.users:
        active = user.active_keys
        if len(active) > 1:
            yield _user_finding(
                user,
                "user.several-active-keys",
                "high",
                f"{user.name} has {len(active)} active access keys",
                "Active keys: "
                + ", ".join(_key_summary(key, now) for key in active)
                + ". Only one of them can be in the computer's credentials file.",
                fix=f"On the computer {user.name} stands for, run `keyhygiene rotate`: it keeps "
                "the key in the credentials file and removes the other.",
            )


def keys_too_old(snapshot: Snapshot, now: datetime, settings: AuditSettings) -> Iterator[Finding]:
    """An old key has had time to be copied, logged or backed up somewhere.

    Each computer is held to its own schedule (its `keyhygiene:rotate-every`
    tag) and the others to the audit's rotation age."""
    for user in snapshot.users:
        every = user.rotate_every_days or settings.rotation_age_days
        own = user.rotate_every_days is not None
        limit = timedelta(days=every)
        for key in user.active_keys:
            if key.created is not None and now - _aware(key.created) > limit:
                age = _days(now, key.created)
                schedule = (
                    f"its schedule is every {every} days"
                    if own
                    else f"the rotation age is {every} days"
                )
                yield _user_finding(
                    user,
                    OVERDUE_KEY,
                    "medium",
                    f"{_key_name(key)} of {user.name} is {age} days old, "
                    f"{age - every} days overdue",
                    f"Created {age} days ago; {schedule}.",
                    fix=f"Run `keyhygiene rotate` on the computer {user.name} stands for, or "
                    "`keyhygiene schedule rotate` there to keep it rotated.",
                )


def mfa_gated_without_device(
    snapshot: Snapshot, now: datetime, settings: AuditSettings
) -> Iterator[Finding]:
    """A computer in keyhygiene-mfa-devices without an MFA device can never get
    an MFA session: its key cannot rotate itself, and nothing tells it why."""
    from keyhygiene.core.mfa_devices import is_gated

    if snapshot.credential_report_generated is None:
        return  # mfa_active comes from the credential report: unknown without it
    for user in snapshot.users:
        if is_gated(user.groups) and not user.mfa_active:
            yield _user_finding(
                user,
                "user.mfa-gated-without-device",
                "high",
                f"{user.name} is MFA-gated but has no MFA device",
                "It is in keyhygiene-mfa-devices, whose policy denies key management and "
                "other lasting changes without an MFA session; with no device it can never "
                "get one, so it cannot rotate its own key.",
                fix=f"Enroll {user.name} again with --mfa (revoke it first), or take it out of "
                "keyhygiene-mfa-devices.",
            )


def keys_unused(snapshot: Snapshot, now: datetime, settings: AuditSettings) -> Iterator[Finding]:
    """An unused key is risk without use; a key never used counts from its creation."""
    limit = timedelta(days=settings.unused_age_days)
    for user in snapshot.users:
        for key in user.active_keys:
            since = key.last_used or key.created
            if since is None or now - _aware(since) <= limit:
                continue
            how = (
                f"last used {_days(now, key.last_used)} days ago"
                if key.last_used
                else f"never used since it was created {_days(now, since)} days ago"
            )
            yield _user_finding(
                user,
                "user.key-unused",
                "medium",
                f"{_key_name(key)} of {user.name} unused for {_days(now, since)} days",
                f"The key was {how}; the unused age is {settings.unused_age_days} days.",
                fix=f"Deactivate the key until the computer is used again, or "
                f"`keyhygiene revoke {user.name}` if the computer is gone.",
            )


def not_person_device(
    snapshot: Snapshot, now: datetime, settings: AuditSettings
) -> Iterator[Finding]:
    """A user that is not one computer's (named and tagged so) is usually shared by several."""
    for user in snapshot.users:
        if user.is_device:
            continue
        split = split_person_device(user.name)
        if split is None:
            why = "The name is not <person>-<device>."
        else:
            why = "; ".join(_tag_problems(user, split, (TAG_PERSON, TAG_DEVICE))) + "."
        yield _user_finding(
            user,
            "user.not-person-device",
            "medium",
            f"{user.name} is not a person-device user",
            why + " Each computer should have its own user, named <person>-<device> and tagged "
            "so; a user that is not is often shared by several computers, so none of them can "
            "be revoked alone.",
            fix="Enroll each computer that uses it with `keyhygiene enroll`, then delete this user.",
        )


def missing_device_tags(
    snapshot: Snapshot, now: datetime, settings: AuditSettings
) -> Iterator[Finding]:
    """The host name tag is how a copied key is recognised; the enrolment date dates it."""
    for user in snapshot.users:
        split = split_person_device(user.name)
        if not user.is_device or split is None:
            continue  # `not_person_device` already says what to do.
        problems = _tag_problems(user, split, DEVICE_TAGS)
        if problems:
            yield _user_finding(
                user,
                "user.missing-device-tags",
                "low",
                f"{user.name} lacks device tags",
                "; ".join(problems) + ".",
                fix="Tag the user with keyhygiene:hostname and keyhygiene:enrolled, or enroll "
                "the computer again with `keyhygiene enroll`.",
            )


def _tag_problems(user: User, split: tuple[str, str], tags: Iterable[str]) -> list[str]:
    wanted = {TAG_PERSON: split[0], TAG_DEVICE: split[1]}
    problems = []
    for tag in tags:
        value = user.tags.get(tag)
        if not value:
            problems.append(f"{tag} missing")
        elif tag in wanted and value != wanted[tag]:
            problems.append(f"{tag} is {value!r}, the name says {wanted[tag]!r}")
    return problems


def direct_user_policies(
    snapshot: Snapshot, now: datetime, settings: AuditSettings
) -> Iterator[Finding]:
    """Rights should come from groups, which are the whitelists people review."""
    for user in snapshot.users:
        names = [
            p.name
            for p in user.attached_policies
            # Revoke attaches AWSDenyAll when the inline policy does not fit:
            # detaching it would undo the containment.
            if not (user.revoked and p.arn.endswith(_AWS_DENY_ALL_SUFFIX))
        ] + [p.name for p in user.inline_policies if p.name not in OWN_USER_POLICIES]
        if names:
            yield _user_finding(
                user,
                "user.direct-policy",
                "medium",
                f"{user.name} has policies attached directly",
                "Attached to the user itself: " + ", ".join(sorted(names)) + ".",
                fix="Detach them and give the rights through a group "
                "(`keyhygiene grant` for a limited time).",
            )


def admin_like_policies(
    snapshot: Snapshot, now: datetime, settings: AuditSettings
) -> Iterator[Finding]:
    """Full rights belong to the admins group, where they are seen and reviewed."""
    holders: list[tuple[ResourceKind, str, tuple[PolicyAttachment, ...], tuple[InlinePolicy, ...]]]
    holders = [("user", u.name, u.attached_policies, u.inline_policies) for u in snapshot.users]
    holders += [
        ("group", g.name, g.attached_policies, g.inline_policies)
        for g in snapshot.groups
        if g.name.lower() != ADMINS_GROUP
    ]
    holders += [
        ("role", r.name, r.attached_policies, r.inline_policies)
        for r in snapshot.roles
        if not r.path.startswith(_AWS_MANAGED_ROLE_PATHS)
    ]
    for kind, name, attached, inline in holders:
        admin = [p.name for p in attached if _managed_is_admin(p, snapshot.managed_policies)]
        admin += [p.name for p in inline if admin_like(p.document)]
        if admin:
            yield Finding(
                id="iam.admin-like-policy",
                severity="high",
                title=f"Admin-like policy on {kind} {name}",
                resource=name,
                detail=f"{', '.join(sorted(admin))} allows every action on every resource; "
                f"only the {ADMINS_GROUP} group should hold such a policy.",
                resource_kind=kind,
                fix=f"Detach the policy; put the computers that need full rights in the "
                f"{ADMINS_GROUP} group instead.",
            )


def expired_grants(snapshot: Snapshot, now: datetime, settings: AuditSettings) -> Iterator[Finding]:
    """A temporary grant must end; its tag left behind means the sweep did not run."""
    for user in snapshot.users:
        for group, expiry in sorted(user.grants().items()):
            when = parse_utc(expiry)
            if when is None:
                yield _user_finding(
                    user,
                    "user.unreadable-grant",
                    "low",
                    f"Grant of {user.name} to {group} has an unreadable expiry",
                    f"The tag keyhygiene:grant:{group} holds {expiry!r}, not an ISO 8601 time.",
                    fix="Grant again with `keyhygiene grant`, or remove the tag.",
                )
                continue
            if when > now:
                continue
            yield _expired_grant(user, group, when, now)


def _expired_grant(user: User, group: str, when: datetime, now: datetime) -> Finding:
    member = any(g.lower() == group.lower() for g in user.groups)
    enforced = any(p.name == EXPIRY_POLICY_NAME for p in user.inline_policies)
    if not member:
        severity, state = "low", "The membership is gone but the grant tag remains."
    elif enforced:
        severity = "medium"
        state = f"{user.name} is still a member; the {EXPIRY_POLICY_NAME} deny blocks it meanwhile."
    else:
        severity = "high"
        state = f"{user.name} is still a member and nothing stops it using the group's rights."
    return _user_finding(
        user,
        "user.expired-grant",
        severity,  # type: ignore[arg-type]
        f"Grant of {user.name} to {group} expired {_days(now, when)} days ago",
        f"Expired {when.isoformat()}. {state}",
        fix="Run `keyhygiene sweep` to remove what expired.",
    )


def revoked_still_listed(
    snapshot: Snapshot, now: datetime, settings: AuditSettings
) -> Iterator[Finding]:
    """A revoke is finished only when the user is out of every group and whitelist."""
    for user in snapshot.users:
        if not user.revoked:
            continue
        places = [f"group {g}" for g in user.groups]
        places += [
            f"the whitelist of {label}"
            for label, policy in _whitelisted_resources(snapshot)
            if user.arn in whitelisted_principals(policy)
        ]
        if places:
            yield _user_finding(
                user,
                "user.revoked-still-listed",
                "high",
                f"Revoked {user.name} is still listed",
                "Still in " + ", ".join(places) + ".",
                fix=f"Finish the revoke with `keyhygiene revoke {user.name}`.",
            )


def revoked_active_keys(
    snapshot: Snapshot, now: datetime, settings: AuditSettings
) -> Iterator[Finding]:
    """A revoke deactivates the keys first; an active one means it stopped early."""
    for user in snapshot.users:
        if user.revoked and user.active_keys:
            yield _user_finding(
                user,
                "user.revoked-active-key",
                "high",
                f"Revoked {user.name} still has an active key",
                "Active: " + ", ".join(_key_summary(key, now) for key in user.active_keys) + ".",
                fix=f"Finish the revoke with `keyhygiene revoke {user.name}`.",
            )


# ---- whitelists ---------------------------------------------------------------


def whitelist_drift(
    snapshot: Snapshot, now: datetime, settings: AuditSettings
) -> Iterator[Finding]:
    """Each tagged bucket and key must whitelist exactly its groups' members and roles."""
    tagged: list[Bucket | KmsKey] = [*snapshot.buckets, *snapshot.kms_keys]
    # An application's bucket and key share their groups: compute each whitelist once
    # (snapshot look-ups are linear, which matters on a 500-user account).
    wanted: dict[tuple[str, ...], set[str]] = {}
    for resource in tagged:
        groups = resource.for_groups
        if not groups:
            continue
        if groups not in wanted:
            wanted[groups] = set(snapshot.whitelist_principals(groups))
        expected = wanted[groups]
        actual = set(whitelisted_principals(resource.policy))
        kind, name, label = _resource_names(resource)
        sync = " and ".join(f"`keyhygiene app sync {g}`" for g in groups)
        missing = sorted(expected - actual)
        if missing:
            yield Finding(
                id="whitelist.missing",
                severity="medium",
                title=f"Whitelist of {label} misses {_names(missing)}",
                resource=name,
                detail=f"Tagged for {', '.join(groups)}, whose members and roles include "
                f"{_names(missing, with_kind=True)}, not whitelisted here: they cannot use it.",
                resource_kind=kind,
                fix=f"Run {sync} to rewrite the whitelist from the group.",
            )
        extra = sorted(actual - expected)
        if extra:
            yield Finding(
                id="whitelist.extra",
                severity="high",
                title=f"Whitelist of {label} lists {_names(extra)} outside {', '.join(groups)}",
                resource=name,
                detail=f"{_names(extra, with_kind=True)} whitelisted here but neither a member "
                f"nor a role of {', '.join(groups)}: access nobody granted through the group.",
                resource_kind=kind,
                fix=f"Run {sync} to rewrite the whitelist from the group.",
            )


# ---- buckets ------------------------------------------------------------------


def bucket_default_kms(
    snapshot: Snapshot, now: datetime, settings: AuditSettings
) -> Iterator[Finding]:
    """Without SSE-KMS the key's whitelist protects nothing in the bucket."""
    for bucket in snapshot.buckets:
        if bucket.encryption is not None and bucket.encryption.is_kms:
            continue
        what = (
            "has no default encryption"
            if bucket.encryption is None
            else f"encrypts by default with {bucket.encryption.algorithm}, not SSE-KMS"
        )
        yield _bucket_finding(
            bucket,
            "bucket.no-default-kms",
            "medium",
            f"Bucket {bucket.name} {what}",
            "New objects are not encrypted with a KMS key, so the key policy's whitelist "
            "does not guard them.",
            fix=_app_fix(bucket, "set default encryption to SSE-KMS with the application's key"),
        )


def bucket_unencrypted_upload_deny(
    snapshot: Snapshot, now: datetime, settings: AuditSettings
) -> Iterator[Finding]:
    """The deny makes an upload asking for the wrong encryption fail loudly
    instead of landing under another key (or none)."""
    for bucket in snapshot.buckets:
        if not has_unencrypted_upload_deny(bucket.policy):
            yield _bucket_finding(
                bucket,
                "bucket.no-unencrypted-deny",
                "low",
                f"Bucket {bucket.name} accepts uploads under any key",
                "No bucket policy statement denies s3:PutObject asking for AES256, SSE-C, "
                "aws/s3 or another KMS key than the application's.",
                fix=_app_fix(bucket, "add keyhygiene's KeyHygieneDenyWrongEncryption statements"),
            )


def bucket_public_access_block(
    snapshot: Snapshot, now: datetime, settings: AuditSettings
) -> Iterator[Finding]:
    """The block is the account's safety net against a public policy or ACL."""
    for bucket in snapshot.buckets:
        if bucket.public_access_fully_blocked:
            continue
        block = bucket.public_access_block
        if block is None:
            detail = "No public access block is set on the bucket."
        else:
            off = [name for name in _PUBLIC_BLOCK_SETTINGS if not block.get(name, False)]
            detail = "Off: " + ", ".join(off) + "."
        yield _bucket_finding(
            bucket,
            "bucket.public-access-block",
            "medium",
            f"Bucket {bucket.name} does not block public access",
            detail,
            fix="Turn on all four settings of the bucket's public access block.",
        )


def bucket_public(snapshot: Snapshot, now: datetime, settings: AuditSettings) -> Iterator[Finding]:
    """Anyone on the internet: the worst a bucket can be."""
    for bucket in snapshot.buckets:
        block = bucket.public_access_block or {}
        # RestrictPublicBuckets / IgnorePublicAcls make AWS disregard what is public.
        ways = []
        if is_public(bucket.policy):
            ways.append(("its policy", bool(block.get("RestrictPublicBuckets"))))
        if bucket.acl_public:
            ways.append(("its ACL", bool(block.get("IgnorePublicAcls"))))
        if not ways:
            continue
        neutralised = all(blocked for _, blocked in ways)
        how = " and ".join(way for way, _ in ways)
        verb = "grants" if len(ways) == 1 else "grant"
        detail = f"{how[0].upper()}{how[1:]} {verb} access to everyone."
        if neutralised:
            detail += " The public access block makes AWS ignore it for now."
        yield _bucket_finding(
            bucket,
            "bucket.public",
            "medium" if neutralised else "critical",
            f"Bucket {bucket.name} is public through {how}",
            detail,
            fix="Remove the statement or ACL grant to everyone and turn on the public access "
            "block; share single objects with presigned URLs instead.",
        )


def bucket_foreign_accounts(
    snapshot: Snapshot, now: datetime, settings: AuditSettings
) -> Iterator[Finding]:
    """Another account's access escapes this account's groups and reviews."""
    for bucket in snapshot.buckets:
        accounts = foreign_accounts(bucket.policy, snapshot.account_id)
        if accounts:
            yield _bucket_finding(
                bucket,
                "bucket.foreign-account",
                "high",
                f"Bucket {bucket.name} grants access to another account",
                "The bucket policy allows account " + ", ".join(sorted(accounts)) + ".",
                fix="Remove the other accounts from the bucket policy unless sharing with them "
                "is intended.",
            )


# ---- KMS keys -----------------------------------------------------------------


def kms_public(snapshot: Snapshot, now: datetime, settings: AuditSettings) -> Iterator[Finding]:
    """A key usable by anyone decrypts every object it protects."""
    for key in snapshot.kms_keys:
        if is_public(key.policy):
            yield _kms_finding(
                key,
                "kms.public",
                "critical",
                f"KMS key {key.label} is open to everyone",
                f"The policy of {key.label} ({key.key_id}) allows principal * without a "
                "condition that restricts it.",
                fix="Replace the statement to * by the whitelisted principals "
                "(`keyhygiene app sync <group>`).",
            )


def kms_foreign_accounts(
    snapshot: Snapshot, now: datetime, settings: AuditSettings
) -> Iterator[Finding]:
    """Another account that may use the key may read what it encrypts."""
    for key in snapshot.kms_keys:
        accounts = foreign_accounts(key.policy, snapshot.account_id)
        if accounts:
            yield _kms_finding(
                key,
                "kms.foreign-account",
                "high",
                f"KMS key {key.label} allows another account",
                f"The policy of {key.label} ({key.key_id}) allows account "
                + ", ".join(sorted(accounts))
                + ".",
                fix="Remove the other accounts from the key policy unless sharing is intended.",
            )


# ---- roles -----------------------------------------------------------------------


def role_foreign_trust(
    snapshot: Snapshot, now: datetime, settings: AuditSettings
) -> Iterator[Finding]:
    """A role another account may assume: whoever that account lets call
    sts:AssumeRole gets the role's rights, outside this account's groups and
    reviews (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_common-scenarios_aws-accounts.html)."""
    for role in snapshot.roles:
        if role.service_linked:
            continue
        accounts = foreign_accounts(role.trust_policy, snapshot.account_id)
        if not accounts:
            continue
        # The account itself as principal (its root, or a bare id) delegates to
        # every identity the other account's admins choose.
        whole = any(
            p == a or p.endswith(f":{a}:root")
            for a in accounts
            for p in _aws_principals(role.trust_policy)
        )
        yield Finding(
            id="role.foreign-trust",
            severity="high" if whole else "medium",
            title=f"Role {role.name} may be assumed from another account",
            resource=role.name,
            detail=f"Its trust policy allows account {', '.join(sorted(accounts))}"
            + (" as a whole (any identity its admins allow)." if whole else "."),
            resource_kind="role",
            fix="Remove the other account from the trust policy unless that access is intended; "
            "when it is, name the one role or user there and require sts:ExternalId or MFA.",
        )


def _aws_principals(document: Any) -> list[str]:
    found: list[str] = []
    for statement in statements(document):
        if statement.get("Effect") == "Allow":
            found.extend(principals_of(statement).get("AWS", ()))
    return found


OVERDUE_KEY = "user.key-too-old"

RULES: tuple[Rule, ...] = (
    root_access_keys,
    root_without_mfa,
    several_active_keys,
    keys_too_old,
    keys_unused,
    mfa_gated_without_device,
    not_person_device,
    missing_device_tags,
    direct_user_policies,
    admin_like_policies,
    expired_grants,
    revoked_still_listed,
    revoked_active_keys,
    whitelist_drift,
    bucket_default_kms,
    bucket_unencrypted_upload_deny,
    bucket_public_access_block,
    bucket_public,
    bucket_foreign_accounts,
    kms_public,
    kms_foreign_accounts,
    role_foreign_trust,
    *audit_policies.RULES,
)


# ---- helpers ------------------------------------------------------------------


def _user_finding(
    user: User, rule_id: str, severity: Any, title: str, detail: str, *, fix: str
) -> Finding:
    return Finding(rule_id, severity, title, user.name, detail, "user", fix)


def _bucket_finding(
    bucket: Bucket, rule_id: str, severity: Any, title: str, detail: str, *, fix: str
) -> Finding:
    return Finding(rule_id, severity, title, bucket.name, detail, "bucket", fix)


def _kms_finding(
    key: KmsKey, rule_id: str, severity: Any, title: str, detail: str, *, fix: str
) -> Finding:
    return Finding(rule_id, severity, title, key.key_id, detail, "kms-key", fix)


def _app_fix(bucket: Bucket, what: str) -> str:
    if bucket.for_groups:
        return f"Run `keyhygiene app sync {bucket.for_groups[0]}`, or {what}."
    return what[0].upper() + what[1:] + "."


def _managed_is_admin(policy: PolicyAttachment, documents: Mapping[str, Mapping[str, Any]]) -> bool:
    if policy.arn.endswith(_AWS_ADMIN_POLICY_SUFFIX):
        return True
    document = documents.get(policy.arn)
    return document is not None and admin_like(document)


def _whitelisted_resources(
    snapshot: Snapshot,
) -> list[tuple[str, Mapping[str, Any] | None]]:
    return [(f"bucket {b.name}", b.policy) for b in snapshot.buckets] + [
        (f"KMS key {k.label}", k.policy) for k in snapshot.kms_keys
    ]


def _resource_names(resource: Bucket | KmsKey) -> tuple[ResourceKind, str, str]:
    """(kind, resource name for the tree, label for people)."""
    if isinstance(resource, Bucket):
        return "bucket", resource.name, f"bucket {resource.name}"
    return "kms-key", resource.key_id, f"KMS key {resource.label}"


def _names(principals: Iterable[str], *, with_kind: bool = False) -> str:
    """`arn:…:user/christopher-home` -> `christopher-home` (or `user christopher-home`)."""
    names = []
    for arn in principals:
        # Only a resource with a path ("user/...", "role/...") has a kind to say.
        with_its_kind = with_kind and "/" in arn
        name = name_of(arn)
        names.append(f"{resource_type(arn)} {name}" if with_its_kind else name)
    return ", ".join(names)


def _key_name(key: AccessKey, *, start: bool = True) -> str:
    """`Key …ABCD`, or `Key 2` when only the credential report's slot is known."""
    word = "Key" if start else "key"
    if key.id:
        return f"{word} {key_tail(key.id)}"
    return f"{word} {key.slot}" if key.slot else f"{word} with no id"


def _key_summary(key: AccessKey, now: datetime) -> str:
    age = f"{_days(now, key.created)} days old" if key.created else "age unknown"
    return f"{_key_name(key, start=False)} ({age})"


def _aware(when: datetime) -> datetime:
    """Naive times from a hand-built snapshot are taken as UTC."""
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _days(now: datetime, when: datetime | None) -> int:
    if when is None:
        return 0
    return max((_aware(now) - _aware(when)).days, 0)
