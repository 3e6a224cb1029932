"""The hygiene audit: each rule fires on a case and stays quiet on its clean twin.

Most tests build Snapshots straight from the dataclasses (milliseconds). One
module fixture seeds the demo account on an in-process moto server (its key
dates can only be moved through moto's backend, in this process) and checks
that every planted problem is found; the command line runs against it too.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from keyhygiene.audit.findings import (
    SEVERITIES,
    AuditSettings,
    Finding,
    at_or_above,
    count_by_severity,
    findings_by_resource,
    should_fail,
    sort_findings,
    summary_line,
    worst,
)
from keyhygiene.audit.local_checks import run_local_audit, same_host
from keyhygiene.audit.rules import RULES
from keyhygiene.audit.runner import run_audit
from keyhygiene.core.errors import AwsProblem, BadInput
from keyhygiene.core.model import (
    EXPIRY_POLICY_NAME,
    REVOKED_POLICY_NAME,
    TAG_DEVICE,
    TAG_ENROLLED,
    TAG_GROUPS,
    TAG_HOSTNAME,
    TAG_PERSON,
    TAG_REVOKED,
    AccessKey,
    Bucket,
    Encryption,
    Group,
    InlinePolicy,
    KmsKey,
    PolicyAttachment,
    Role,
    RootSummary,
    Snapshot,
    User,
)
from keyhygiene.core.policy_documents import (
    bucket_policy_with_whitelist,
    default_key_policy,
    key_policy_with_whitelist,
)

ROOT_DIR = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"
OTHER_ACCOUNT = "210987654321"
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)
ROOT_ARN = f"arn:aws:iam::{ACCOUNT}:root"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{KEY_ID}"
ADMIN_DOC = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}
READ_DOC = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:Get*", "Resource": "*"}],
}
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def user_arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:user/{name}"


def role_arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{name}"


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def key(
    user: str,
    *,
    created: float = 10,
    used: float | None = 1,
    status: str = "Active",
    key_id: str | None = None,
    slot: int = 1,
) -> AccessKey:
    return AccessKey(
        user=user,
        status=status,
        created=days_ago(created),
        last_used=None if used is None else days_ago(used),
        id=key_id,
        slot=slot,
    )


def device(name: str, groups: tuple[str, ...] = (), **changes: Any) -> User:
    person, dev = name.split("-", 1)
    user = User(
        name=name,
        arn=user_arn(name),
        tags={
            TAG_PERSON: person,
            TAG_DEVICE: dev,
            TAG_HOSTNAME: f"{dev}-host",
            TAG_ENROLLED: "2025-01-01",
        },
        groups=groups,
        access_keys=(key(name),),
    )
    return replace(user, **changes)


def photos_whitelist() -> list[str]:
    return sorted([user_arn("alice-laptop"), user_arn("alice-work"), role_arn("photos")])


def clean_snapshot() -> Snapshot:
    """An account that follows the practice: the audit must find nothing."""
    users = (
        device("alice-laptop", ("admins", "photos")),
        device("alice-work", ("photos",)),
        device("alice-phone"),
    )
    groups = (
        Group(
            "admins",
            f"arn:aws:iam::{ACCOUNT}:group/admins",
            members=("alice-laptop",),
            attached_policies=(
                PolicyAttachment(
                    "AdministratorAccess", "arn:aws:iam::aws:policy/AdministratorAccess"
                ),
            ),
        ),
        Group(
            "photos",
            f"arn:aws:iam::{ACCOUNT}:group/photos",
            members=("alice-laptop", "alice-work"),
            inline_policies=(InlinePolicy("photos-data", READ_DOC),),
        ),
    )
    roles = (Role("photos", role_arn("photos"), tags={TAG_GROUPS: "photos"}),)
    bucket_policy = bucket_policy_with_whitelist(
        None,
        bucket="alice-photos",
        principals=photos_whitelist(),
        key_arn=KEY_ARN,
        keep_admin_arns=[ROOT_ARN],
    )
    buckets = (
        Bucket(
            "alice-photos",
            "arn:aws:s3:::alice-photos",
            tags={TAG_GROUPS: "photos"},
            policy=bucket_policy,
            encryption=Encryption("aws:kms", KEY_ARN),
            public_access_block=dict.fromkeys(
                (
                    "BlockPublicAcls",
                    "IgnorePublicAcls",
                    "BlockPublicPolicy",
                    "RestrictPublicBuckets",
                ),
                True,
            ),
        ),
    )
    kms_keys = (
        KmsKey(
            KEY_ID,
            KEY_ARN,
            aliases=("alias/photos",),
            tags={TAG_GROUPS: "photos"},
            policy=key_policy_with_whitelist(
                default_key_policy(ACCOUNT),
                principals=photos_whitelist(),
                keep_admin_arns=[ROOT_ARN],
            ),
        ),
    )
    return Snapshot(
        account_id=ACCOUNT,
        caller_arn=user_arn("alice-laptop"),
        loaded_at=NOW,
        root=RootSummary(mfa_enabled=True, access_keys_present=False),
        users=users,
        groups=groups,
        roles=roles,
        buckets=buckets,
        kms_keys=kms_keys,
    )


def audit(snapshot: Snapshot, **settings: int) -> list[Finding]:
    return run_audit(snapshot, now=NOW, settings=AuditSettings(**settings))


def found(findings: list[Finding], rule_id: str) -> list[Finding]:
    return [f for f in findings if f.id == rule_id]


def with_user(snapshot: Snapshot, user: User) -> Snapshot:
    users = [u for u in snapshot.users if u.name != user.name]
    return replace(snapshot, users=tuple(sorted([*users, user], key=lambda u: u.name)))


def with_bucket(snapshot: Snapshot, **changes: Any) -> Snapshot:
    return replace(snapshot, buckets=(replace(snapshot.buckets[0], **changes),))


def with_key(snapshot: Snapshot, **changes: Any) -> Snapshot:
    return replace(snapshot, kms_keys=(replace(snapshot.kms_keys[0], **changes),))


def public_statement(resource: str, **extra: Any) -> dict[str, Any]:
    return {
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": resource,
        **extra,
    }


# ---- the clean account ----------------------------------------------------------


def test_clean_account_has_no_findings() -> None:
    assert audit(clean_snapshot()) == []


def test_every_rule_is_registered_once() -> None:
    assert len(set(RULES)) == len(RULES) == 27


# ---- root -------------------------------------------------------------------------


def test_root_access_keys_is_critical() -> None:
    snapshot = replace(clean_snapshot(), root=RootSummary(True, True))
    [finding] = audit(snapshot)
    assert (finding.id, finding.severity, finding.resource, finding.resource_kind) == (
        "root.access-keys",
        "critical",
        "root",
        "root",
    )


def test_root_without_mfa_is_critical_but_unknown_mfa_is_not_reported() -> None:
    [finding] = audit(replace(clean_snapshot(), root=RootSummary(False, False)))
    assert (finding.id, finding.severity) == ("root.no-mfa", "critical")
    assert audit(replace(clean_snapshot(), root=RootSummary(None, None))) == []


# ---- keys -------------------------------------------------------------------------


def test_two_active_keys_fire_but_an_inactive_second_key_does_not() -> None:
    two = device(
        "alice-work",
        ("photos",),
        access_keys=(key("alice-work", slot=1), key("alice-work", slot=2, created=2)),
    )
    [finding] = audit(with_user(clean_snapshot(), two))
    assert (finding.id, finding.severity, finding.resource) == (
        "user.several-active-keys",
        "high",
        "alice-work",
    )
    assert "key 1" in finding.detail and "key 2" in finding.detail
    inactive = replace(
        two, access_keys=(key("alice-work"), key("alice-work", slot=2, status="Inactive"))
    )
    assert audit(with_user(clean_snapshot(), inactive)) == []


def test_key_older_than_the_rotation_age() -> None:
    old = device("alice-work", ("photos",), access_keys=(key("alice-work", created=91),))
    [finding] = audit(with_user(clean_snapshot(), old))
    assert (finding.id, finding.severity) == ("user.key-too-old", "medium")
    assert "91 days" in finding.title
    exact = replace(old, access_keys=(key("alice-work", created=90),))
    assert audit(with_user(clean_snapshot(), exact)) == []
    assert audit(with_user(clean_snapshot(), old), rotation_age_days=100) == []
    stale_inactive = replace(old, access_keys=(key("alice-work", created=300, status="Inactive"),))
    assert audit(with_user(clean_snapshot(), stale_inactive)) == []


def test_key_id_is_shown_by_its_tail_when_known() -> None:
    old = device(
        "alice-work",
        ("photos",),
        access_keys=(key("alice-work", created=200, key_id="AKIAIOSFODNN7EXAMPLE"),),
    )
    [finding] = audit(with_user(clean_snapshot(), old))
    assert finding.title.startswith("Key …MPLE of alice-work")
    assert "AKIAIOSFODNN7EXAMPLE" not in json.dumps(finding.to_json())


def test_key_unused_for_the_unused_age() -> None:
    unused = device("alice-work", ("photos",), access_keys=(key("alice-work", used=46),))
    [finding] = audit(with_user(clean_snapshot(), unused))
    assert (finding.id, finding.severity) == ("user.key-unused", "medium")
    assert "46 days" in finding.title
    assert audit(with_user(clean_snapshot(), unused), unused_age_days=60) == []
    recent = replace(unused, access_keys=(key("alice-work", used=44),))
    assert audit(with_user(clean_snapshot(), recent)) == []


def test_a_never_used_key_counts_from_its_creation() -> None:
    never = device(
        "alice-work", ("photos",), access_keys=(key("alice-work", created=50, used=None),)
    )
    [finding] = audit(with_user(clean_snapshot(), never))
    assert finding.id == "user.key-unused"
    assert "never used" in finding.detail
    new = replace(never, access_keys=(key("alice-work", created=5, used=None),))
    assert audit(with_user(clean_snapshot(), new)) == []


# ---- users ------------------------------------------------------------------------


def test_user_not_named_person_device() -> None:
    shared = User("deploy", user_arn("deploy"), access_keys=(key("deploy"),))
    [finding] = audit(with_user(clean_snapshot(), shared))
    assert (finding.id, finding.severity, finding.resource) == (
        "user.not-person-device",
        "medium",
        "deploy",
    )


def test_user_named_like_a_device_but_untagged_is_not_a_device() -> None:
    untagged = User("shared-cli", user_arn("shared-cli"), access_keys=(key("shared-cli"),))
    [finding] = audit(with_user(clean_snapshot(), untagged))
    assert finding.id == "user.not-person-device"
    assert "keyhygiene:person missing" in finding.detail


def test_device_user_missing_hostname_tag_is_low() -> None:
    user = device("alice-phone")
    tags = {k: v for k, v in user.tags.items() if k != TAG_HOSTNAME}
    [finding] = audit(with_user(clean_snapshot(), replace(user, tags=tags)))
    assert (finding.id, finding.severity) == ("user.missing-device-tags", "low")
    assert TAG_HOSTNAME in finding.detail


def test_policies_attached_to_a_user_but_not_keyhygienes_own() -> None:
    user = device(
        "alice-phone",
        attached_policies=(PolicyAttachment("s3-read", f"arn:aws:iam::{ACCOUNT}:policy/s3-read"),),
        inline_policies=(InlinePolicy("extra", READ_DOC),),
    )
    [finding] = audit(with_user(clean_snapshot(), user))
    assert (finding.id, finding.severity, finding.resource) == (
        "user.direct-policy",
        "medium",
        "alice-phone",
    )
    assert "s3-read" in finding.detail and "extra" in finding.detail
    own = replace(
        user,
        attached_policies=(),
        inline_policies=(
            InlinePolicy(EXPIRY_POLICY_NAME, READ_DOC),
            InlinePolicy(REVOKED_POLICY_NAME, READ_DOC),
        ),
    )
    assert audit(with_user(clean_snapshot(), own)) == []


def test_revokes_deny_all_on_a_revoked_user_is_not_to_be_detached() -> None:
    deny_all = PolicyAttachment("AWSDenyAll", "arn:aws:iam::aws:policy/AWSDenyAll")
    revoked = device("alice-phone", attached_policies=(deny_all,))
    revoked = replace(revoked, tags={**revoked.tags, "keyhygiene:revoked": "2026-12-02T12:00:00Z"})
    assert "user.direct-policy" not in {f.id for f in audit(with_user(clean_snapshot(), revoked))}
    # On a user that is not revoked, it is a direct policy like any other.
    live = device("alice-phone", attached_policies=(deny_all,))
    assert found(audit(with_user(clean_snapshot(), live)), "user.direct-policy")


# ---- admin-like policies ------------------------------------------------------------


def test_admin_like_inline_policy_on_a_user() -> None:
    user = device("alice-phone", inline_policies=(InlinePolicy("god", ADMIN_DOC),))
    findings = audit(with_user(clean_snapshot(), user))
    [admin] = found(findings, "iam.admin-like-policy")
    assert (admin.severity, admin.resource, admin.resource_kind) == ("high", "alice-phone", "user")
    assert found(findings, "user.direct-policy")


def test_admin_like_policy_on_a_group_other_than_admins() -> None:
    snapshot = clean_snapshot()
    ops = Group(
        "ops",
        f"arn:aws:iam::{ACCOUNT}:group/ops",
        attached_policies=(
            PolicyAttachment("AdministratorAccess", "arn:aws:iam::aws:policy/AdministratorAccess"),
        ),
    )
    [finding] = audit(replace(snapshot, groups=(*snapshot.groups, ops)))
    assert (finding.id, finding.resource, finding.resource_kind) == (
        "iam.admin-like-policy",
        "ops",
        "group",
    )


def test_customer_managed_admin_policy_on_a_role_by_its_document() -> None:
    arn = f"arn:aws:iam::{ACCOUNT}:policy/everything"
    read_arn = f"arn:aws:iam::{ACCOUNT}:policy/read"
    snapshot = replace(clean_snapshot(), managed_policies={arn: ADMIN_DOC, read_arn: READ_DOC})
    role = replace(snapshot.roles[0], attached_policies=(PolicyAttachment("everything", arn),))
    [finding] = audit(replace(snapshot, roles=(role,)))
    assert (finding.id, finding.resource, finding.resource_kind) == (
        "iam.admin-like-policy",
        "photos",
        "role",
    )
    harmless = replace(role, attached_policies=(PolicyAttachment("read", read_arn),))
    assert audit(replace(snapshot, roles=(harmless,))) == []


def test_admin_policy_on_aws_managed_roles_is_left_alone() -> None:
    snapshot = clean_snapshot()
    sso = Role(
        "AWSReservedSSO_Admin_1234",
        role_arn("aws-reserved/sso.amazonaws.com/AWSReservedSSO_Admin_1234"),
        path="/aws-reserved/sso.amazonaws.com/",
        inline_policies=(InlinePolicy("all", ADMIN_DOC),),
    )
    assert audit(replace(snapshot, roles=(*snapshot.roles, sso))) == []


# ---- grants and revoked users ----------------------------------------------------------


def grant(user: User, group: str, expiry: str, **changes: Any) -> User:
    return replace(user, tags={**user.tags, f"keyhygiene:grant:{group}": expiry}, **changes)


def test_expired_grant_still_a_member_is_high() -> None:
    user = grant(device("alice-phone", ("photos",)), "photos", "2025-05-31T12:00:00Z")
    findings = audit(with_user(clean_snapshot(), user))
    [finding] = found(findings, "user.expired-grant")
    assert (finding.severity, finding.resource) == ("high", "alice-phone")
    assert "still a member" in finding.detail


def test_expired_grant_enforced_by_the_expiry_policy_is_medium() -> None:
    user = grant(
        device("alice-phone", ("photos",)),
        "photos",
        "2025-05-31T12:00:00+00:00",
        inline_policies=(InlinePolicy(EXPIRY_POLICY_NAME, READ_DOC),),
    )
    [finding] = found(audit(with_user(clean_snapshot(), user)), "user.expired-grant")
    assert finding.severity == "medium"


def test_expired_grant_tag_left_without_membership_is_low() -> None:
    user = grant(device("alice-phone"), "photos", "2025-05-01T00:00:00Z")
    [finding] = audit(with_user(clean_snapshot(), user))
    assert (finding.id, finding.severity) == ("user.expired-grant", "low")


def test_grant_in_the_future_is_fine_and_an_unreadable_one_is_reported() -> None:
    future = grant(device("alice-phone", ("photos",)), "photos", "2025-06-02T00:00:00Z")
    assert found(audit(with_user(clean_snapshot(), future)), "user.expired-grant") == []
    garbled = grant(device("alice-phone"), "photos", "next tuesday")
    [finding] = audit(with_user(clean_snapshot(), garbled))
    assert (finding.id, finding.severity) == ("user.unreadable-grant", "low")


def test_revoked_user_still_in_a_group() -> None:
    user = device(
        "alice-phone",
        ("keyhygiene-devices",),
        tags={**device("alice-phone").tags, TAG_REVOKED: "2025-05-01T00:00:00Z"},
        access_keys=(key("alice-phone", status="Inactive"),),
    )
    [finding] = audit(with_user(clean_snapshot(), user))
    assert (finding.id, finding.severity) == ("user.revoked-still-listed", "high")
    assert "group keyhygiene-devices" in finding.detail
    gone = replace(user, groups=())
    assert audit(with_user(clean_snapshot(), gone)) == []


def test_revoked_user_still_in_a_whitelist_and_with_an_active_key() -> None:
    snapshot = clean_snapshot()
    work = snapshot.user("alice-work")
    assert work is not None
    revoked = replace(work, groups=(), tags={**work.tags, TAG_REVOKED: "2025-05-01T00:00:00Z"})
    groups = tuple(
        replace(g, members=tuple(m for m in g.members if m != "alice-work"))
        for g in snapshot.groups
    )
    findings = audit(replace(with_user(snapshot, revoked), groups=groups))
    [listed] = found(findings, "user.revoked-still-listed")
    assert "bucket alice-photos" in listed.detail and "KMS key alias/photos" in listed.detail
    assert found(findings, "user.revoked-active-key")
    # Out of the group, still whitelisted: the drift rule says it too.
    assert {f.resource for f in found(findings, "whitelist.extra")} == {"alice-photos", KEY_ID}


# ---- whitelists ------------------------------------------------------------------------


def test_whitelist_missing_a_member_names_it() -> None:
    snapshot = clean_snapshot()
    partial = bucket_policy_with_whitelist(
        None,
        bucket="alice-photos",
        principals=[user_arn("alice-laptop"), role_arn("photos")],
        key_arn=KEY_ARN,
        keep_admin_arns=[ROOT_ARN],
    )
    [finding] = audit(with_bucket(snapshot, policy=partial))
    assert (finding.id, finding.severity, finding.resource, finding.resource_kind) == (
        "whitelist.missing",
        "medium",
        "alice-photos",
        "bucket",
    )
    assert "alice-work" in finding.title
    assert "keyhygiene app sync photos" in (finding.fix or "")


def test_whitelist_with_an_extra_principal_on_a_kms_key() -> None:
    snapshot = clean_snapshot()
    extra = key_policy_with_whitelist(
        default_key_policy(ACCOUNT),
        principals=[*photos_whitelist(), user_arn("alice-phone")],
        keep_admin_arns=[ROOT_ARN],
    )
    [finding] = audit(with_key(snapshot, policy=extra))
    assert (finding.id, finding.severity, finding.resource, finding.resource_kind) == (
        "whitelist.extra",
        "high",
        KEY_ID,
        "kms-key",
    )
    assert "alice-phone" in finding.title and "alias/photos" in finding.title


def test_untagged_resources_have_no_whitelist_to_drift_from() -> None:
    snapshot = clean_snapshot()
    odd = key_policy_with_whitelist(
        default_key_policy(ACCOUNT), principals=[user_arn("alice-phone")]
    )
    findings = audit(with_key(snapshot, tags={}, policy=odd))
    assert [f for f in findings if f.resource == KEY_ID] == []
    # The bucket's computers can no longer decrypt what it holds: that the
    # reach rule sees, on the bucket.
    assert [f.id for f in findings] == ["whitelist.reach-short"]


# ---- buckets ---------------------------------------------------------------------------


def test_bucket_without_default_sse_kms() -> None:
    [none] = audit(with_bucket(clean_snapshot(), encryption=None))
    assert (none.id, none.severity, none.resource) == (
        "bucket.no-default-kms",
        "medium",
        "alice-photos",
    )
    assert "no default encryption" in none.title
    [aes] = audit(with_bucket(clean_snapshot(), encryption=Encryption("AES256")))
    assert aes.id == "bucket.no-default-kms" and "AES256" in aes.title


def test_bucket_without_a_deny_of_unencrypted_uploads() -> None:
    snapshot = clean_snapshot()
    allow_only = {
        "Version": "2012-10-17",
        "Statement": [
            s
            for s in snapshot.buckets[0].policy["Statement"]
            if not s["Sid"].startswith("KeyHygieneDeny")  # type: ignore[index]
        ],
    }
    [finding] = audit(with_bucket(snapshot, policy=allow_only))
    assert (finding.id, finding.severity) == ("bucket.no-unencrypted-deny", "low")


def test_bucket_public_access_block_partly_off_or_missing() -> None:
    snapshot = clean_snapshot()
    partial = {**snapshot.buckets[0].public_access_block, "BlockPublicPolicy": False}  # type: ignore[dict-item]
    [finding] = audit(with_bucket(snapshot, public_access_block=partial))
    assert (finding.id, finding.severity) == ("bucket.public-access-block", "medium")
    assert finding.detail == "Off: BlockPublicPolicy."
    [missing] = audit(with_bucket(snapshot, public_access_block=None))
    assert missing.id == "bucket.public-access-block"


def test_bucket_public_through_its_policy_is_critical() -> None:
    snapshot = clean_snapshot()
    policy = dict(snapshot.buckets[0].policy or {})
    policy["Statement"] = [*policy["Statement"], public_statement("arn:aws:s3:::alice-photos/*")]
    findings = audit(with_bucket(snapshot, policy=policy, public_access_block=None))
    [public] = found(findings, "bucket.public")
    assert (public.severity, public.resource) == ("critical", "alice-photos")
    assert "policy" in public.title


def test_bucket_public_through_its_acl_is_critical_unless_the_block_ignores_it() -> None:
    snapshot = clean_snapshot()
    findings = audit(with_bucket(snapshot, acl_public=True, public_access_block=None))
    [public] = found(findings, "bucket.public")
    assert public.severity == "critical" and "ACL" in public.title
    [neutralised] = audit(with_bucket(snapshot, acl_public=True))
    assert (neutralised.id, neutralised.severity) == ("bucket.public", "medium")


def test_a_conditioned_allow_to_everyone_is_not_public() -> None:
    snapshot = clean_snapshot()
    policy = dict(snapshot.buckets[0].policy or {})
    vpce = public_statement(
        "arn:aws:s3:::alice-photos/*",
        Condition={"StringEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"}},
    )
    policy["Statement"] = [*policy["Statement"], vpce]
    findings = audit(with_bucket(snapshot, policy=policy, public_access_block=None))
    assert found(findings, "bucket.public") == []


def test_bucket_granting_another_account() -> None:
    snapshot = clean_snapshot()
    policy = dict(snapshot.buckets[0].policy or {})
    share = {
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{OTHER_ACCOUNT}:root"},
        "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::alice-photos/*",
    }
    policy["Statement"] = [*policy["Statement"], share]
    [finding] = audit(with_bucket(snapshot, policy=policy))
    assert (finding.id, finding.severity) == ("bucket.foreign-account", "high")
    assert OTHER_ACCOUNT in finding.detail


# ---- KMS keys --------------------------------------------------------------------------


def test_kms_key_open_to_everyone_and_to_another_account() -> None:
    snapshot = clean_snapshot()
    policy = dict(snapshot.kms_keys[0].policy or {})
    everyone = {
        "Effect": "Allow",
        "Principal": {"AWS": "*"},
        "Action": "kms:Decrypt",
        "Resource": "*",
    }
    [public] = audit(
        with_key(snapshot, policy={**policy, "Statement": [*policy["Statement"], everyone]})
    )
    assert (public.id, public.severity, public.resource) == ("kms.public", "critical", KEY_ID)
    assert "alias/photos" in public.title
    other = {**everyone, "Principal": {"AWS": OTHER_ACCOUNT}}
    [foreign] = audit(
        with_key(snapshot, policy={**policy, "Statement": [*policy["Statement"], other]})
    )
    assert (foreign.id, foreign.severity) == ("kms.foreign-account", "high")
    restricted = {**everyone, "Condition": {"StringEquals": {"kms:CallerAccount": ACCOUNT}}}
    assert (
        audit(
            with_key(snapshot, policy={**policy, "Statement": [*policy["Statement"], restricted]})
        )
        == []
    )


# ---- the model and helpers -------------------------------------------------------------


def make(severity: str, resource: str, kind: str = "user", rule: str = "x.y") -> Finding:
    return Finding(rule, severity, f"{rule} on {resource}", resource, "detail", kind)  # type: ignore[arg-type]


def test_findings_by_resource_and_worst_give_the_tree_its_badges() -> None:
    findings = [
        make("low", "alice-work"),
        make("high", "alice-work"),
        make("critical", "root", "root"),
        make("medium", "alice-photos", "bucket"),
    ]
    grouped = findings_by_resource(findings)
    assert set(grouped) == {("user", "alice-work"), ("root", "root"), ("bucket", "alice-photos")}
    assert [f.severity for f in grouped[("user", "alice-work")]] == ["high", "low"]
    assert worst(grouped[("user", "alice-work")]) == "high"
    assert worst(findings) == "critical"
    assert worst([]) is None


def test_thresholds_and_summary() -> None:
    findings = [make("medium", "a"), make("low", "b")]
    assert not should_fail(findings)  # default: high
    assert should_fail(findings, "medium")
    assert not should_fail([make("critical", "a")], "never")
    assert [f.resource for f in at_or_above(findings, "low")] == ["a", "b"]
    with pytest.raises(BadInput):
        should_fail(findings, "severe")
    assert summary_line(findings) == "2 findings: 1 medium, 1 low"
    assert summary_line([]) == "No findings."
    assert count_by_severity(findings) == {"critical": 0, "high": 0, "medium": 1, "low": 1}
    assert [f.severity for f in sort_findings([make("low", "a"), make("critical", "b")])] == [
        "critical",
        "low",
    ]
    assert SEVERITIES == ("critical", "high", "medium", "low")


def test_finding_refuses_an_unknown_severity_or_kind_and_settings_a_bad_age() -> None:
    with pytest.raises(ValueError):
        make("urgent", "a")
    with pytest.raises(ValueError):
        make("low", "a", kind="computer")
    with pytest.raises(BadInput):
        AuditSettings(rotation_age_days=0)
    assert set(make("low", "a").to_json()) >= {"id", "severity", "title", "resource", "detail"}


def test_a_naive_now_is_taken_as_utc_and_the_default_now_is_the_load_time() -> None:
    old = device("alice-work", ("photos",), access_keys=(key("alice-work", created=91),))
    snapshot = with_user(clean_snapshot(), old)
    assert found(run_audit(snapshot, now=NOW.replace(tzinfo=None)), "user.key-too-old")
    assert found(run_audit(snapshot), "user.key-too-old")


# ---- this computer -----------------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "audit-home"
    (folder / ".aws").mkdir(parents=True)
    return folder


def write_credentials(home: Path, text: str, mode: int = 0o600) -> Path:
    path = home / ".aws" / "credentials"
    path.write_text(text)
    path.chmod(mode)
    return path


def local(home: Path, snapshot: Snapshot | None = None, **kwargs: Any) -> list[Finding]:
    kwargs.setdefault("env", {})
    kwargs.setdefault("hostname", "laptop-host")
    return run_local_audit(snapshot, home=home, **kwargs)


def assert_no_secret(findings: list[Finding]) -> None:
    for finding in findings:
        assert SECRET not in repr(finding)
        assert SECRET not in json.dumps(finding.to_json())


CREDENTIALS = f"""[alice-laptop]
aws_access_key_id = AKIAAAAAAAAAAAAALAPT
aws_secret_access_key = {SECRET}
"""


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_credentials_file_wider_than_0600(home: Path) -> None:
    path = write_credentials(home, CREDENTIALS, 0o644)
    [finding] = local(home)
    assert (finding.id, finding.severity, finding.resource, finding.resource_kind) == (
        "local.credentials-mode",
        "high",
        str(path),
        "local",
    )
    assert "0644" in finding.title
    write_credentials(home, CREDENTIALS, 0o600)
    assert local(home) == []
    write_credentials(home, CREDENTIALS, 0o700)
    [owner_only] = local(home)
    assert owner_only.severity == "low"
    assert_no_secret([finding, owner_only])


def test_credentials_file_follows_aws_shared_credentials_file(home: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "creds"
    elsewhere.write_text(CREDENTIALS + "[copy]\naws_access_key_id=AKIAAAAAAAAAAAAALAPT\n")
    findings = local(home, env={"AWS_SHARED_CREDENTIALS_FILE": str(elsewhere)})
    assert [f.resource for f in found(findings, "local.shared-key-id")] == [str(elsewhere)]


def test_one_key_id_in_several_profiles(home: Path) -> None:
    text = (
        CREDENTIALS
        + f"\n[default]\nAWS_ACCESS_KEY_ID=AKIAAAAAAAAAAAAALAPT\naws_secret_access_key={SECRET}\n"
    )
    write_credentials(home, text)
    [finding] = local(home)
    assert (finding.id, finding.severity) == ("local.shared-key-id", "medium")
    assert "alice-laptop" in finding.detail and "default" in finding.detail
    assert "…LAPT" in finding.title
    assert_no_secret([finding])
    write_credentials(home, CREDENTIALS)
    assert local(home) == []


def other_host_snapshot(**changes: Any) -> Snapshot:
    work = device(
        "alice-work",
        ("photos",),
        access_keys=(key("alice-work", key_id="AKIAAAAAAAAAAAAAWORK"),),
        keys_exact=True,
    )
    return replace(with_user(clean_snapshot(), work), **changes)


def test_a_key_of_another_computers_user(home: Path) -> None:
    write_credentials(home, CREDENTIALS + "[work]\naws_access_key_id = AKIAAAAAAAAAAAAAWORK\n")
    [finding] = local(home, other_host_snapshot())
    assert (finding.id, finding.severity) == ("local.other-computers-key", "high")
    assert "alice-work" in finding.title and "work-host" in finding.detail
    assert "profile work" in finding.detail
    # Same host, whatever the case or domain.
    assert local(home, other_host_snapshot(), hostname="WORK-HOST.local") == []
    assert same_host("mbp", "MBP.example.com") and not same_host("mbp", "imac")


def test_this_users_key_found_through_the_profile_in_use(home: Path) -> None:
    # No key ids in the snapshot (credential report only): the profile's key is this_user's.
    write_credentials(home, CREDENTIALS)
    snapshot = replace(clean_snapshot(), this_user="alice-work")
    [finding] = local(home, snapshot, profile="alice-laptop")
    assert finding.id == "local.other-computers-key"
    assert local(home, snapshot, profile="alice-laptop", hostname="work-host") == []
    # Without --profile, environment keys win, as in boto3: the file's key is not the one in use.
    env = {"AWS_ACCESS_KEY_ID": "ASIAAAAAAAAAAAAATEMP", "AWS_SESSION_TOKEN": "token"}
    [from_env] = local(home, snapshot, env=env)
    assert from_env.resource == "environment"


def test_secrets_in_shell_start_up_files(home: Path) -> None:
    (home / ".bashrc").write_text(
        "alias ll='ls -l'\n"
        "export AWS_ACCESS_KEY_ID=AKIAAAAAAAAAAAAALAPT\n"
        f'export AWS_SECRET_ACCESS_KEY="{SECRET}"\n'
    )
    (home / ".zshrc").write_text("export AWS_SECRET_ACCESS_KEY=$(pass show aws/secret)\n")
    (home / ".profile").write_text("export AWS_ACCESS_KEY_ID=AKIAAAAAAAAAAAAALAPT\n")
    findings = local(home)
    by_file = {Path(f.resource).name: f for f in found(findings, "local.secret-in-startup-file")}
    assert set(by_file) == {".bashrc", ".profile"}
    bashrc = by_file[".bashrc"]
    assert bashrc.severity == "high"
    assert "line 2: AWS_ACCESS_KEY_ID" in bashrc.detail
    assert "line 3: AWS_SECRET_ACCESS_KEY" in bashrc.detail
    assert by_file[".profile"].severity == "low"
    assert_no_secret(findings)


def test_a_commented_out_secret_is_still_a_secret_in_the_file(home: Path) -> None:
    (home / ".bash_profile").write_text(f"# export AWS_SECRET_ACCESS_KEY={SECRET}\n")
    [finding] = local(home)
    assert finding.id == "local.secret-in-startup-file"
    assert_no_secret([finding])


def test_long_term_secret_in_the_environment_but_not_temporary_credentials(home: Path) -> None:
    env = {"AWS_ACCESS_KEY_ID": "AKIAAAAAAAAAAAAALAPT", "AWS_SECRET_ACCESS_KEY": SECRET}
    [finding] = local(home, env=env)
    assert (finding.id, finding.severity, finding.resource) == (
        "local.secret-in-environment",
        "medium",
        "environment",
    )
    assert_no_secret([finding])
    temporary = {**env, "AWS_ACCESS_KEY_ID": "ASIAAAAAAAAAAAAATEMP", "AWS_SESSION_TOKEN": "t"}
    assert local(home, env=temporary) == []


# ---- the demo account on moto --------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Snapshot]]:
    """The demo account seeded on an in-process moto server, loaded once."""
    from moto.server import ThreadedMotoServer

    from keyhygiene.aws.connection import Connection, ConnectionOptions
    from keyhygiene.aws.inventory import load_snapshot
    from keyhygiene.demo.account import seed_demo_account

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    folder = tmp_path_factory.mktemp("audit-aws")
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
            patch.delenv(name, raising=False)
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(folder / "credentials"))
        patch.setenv("AWS_CONFIG_FILE", str(folder / "config"))
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            endpoint = f"http://{host}:{port}"
            seed_demo_account(endpoint)
            snapshot = load_snapshot(
                Connection(ConnectionOptions(endpoint_url=endpoint, region="us-east-1"))
            )
            yield endpoint, snapshot
        finally:
            server.stop()


def test_demo_planted_problems_are_all_found(demo: tuple[str, Snapshot]) -> None:
    _, snapshot = demo
    assert snapshot.problems == ()
    findings = run_audit(snapshot)
    pairs = {(f.id, f.resource) for f in findings}
    assert ("user.several-active-keys", "christopher-work") in pairs
    assert ("user.key-too-old", "christopher-home") in pairs
    assert ("user.key-unused", "christopher-vacation") in pairs
    assert ("user.direct-policy", "christopher-phone") in pairs
    assert ("user.not-person-device", "shared-cli") in pairs
    assert ("bucket.public", "christopher-public-share") in pairs
    assert ("bucket.no-default-kms", "christopher-old-backups") in pairs
    old_deny, drift = sorted(
        (f for f in findings if f.resource == "christopher-photos-archive"), key=lambda f: f.id
    )
    assert old_deny.id == "policy.upload-denied" and "plain `aws s3 cp`" in old_deny.title
    assert drift.id == "whitelist.missing" and "christopher-home" in drift.title
    home = [f for f in findings if f.id == "user.key-too-old" and f.resource == "christopher-home"]
    assert "200 days" in home[0].title
    vacation = [f for f in findings if f.id == "user.key-unused"]
    assert [f.resource for f in vacation] == ["christopher-vacation"]
    assert "120 days" in vacation[0].title


def test_demo_clean_parts_raise_nothing(demo: tuple[str, Snapshot]) -> None:
    _, snapshot = demo
    findings = run_audit(snapshot)
    photos_key = snapshot.kms_key("alias/photos")
    assert photos_key is not None
    clean = {
        ("bucket", "christopher-photos"),
        ("kms-key", photos_key.key_id),
        ("user", "christopher-laptop"),
        ("group", "admins"),
        ("group", "photos"),
        ("role", "photos"),
    }
    assert [f for f in findings if (f.resource_kind, f.resource) in clean] == []
    # The phone's only fault is its directly attached policy.
    assert {f.id for f in findings if f.resource == "christopher-phone"} == {"user.direct-policy"}


def run_cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(home), "AWS_SHARED_CREDENTIALS_FILE": str(home / "nothing")}
    return subprocess.run(
        [sys.executable, "-m", "keyhygiene", "audit", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT_DIR,
        timeout=120,
    )


def test_cli_audit_json_reports_the_problems_and_exits_1(
    demo: tuple[str, Snapshot], tmp_path: Path
) -> None:
    endpoint, _ = demo
    result = run_cli("--format", "json", "--endpoint-url", endpoint, home=tmp_path)
    assert result.returncode == 1, result.stderr
    findings = json.loads(result.stdout)
    for finding in findings:
        assert {"id", "severity", "title", "resource", "detail"} <= set(finding)
    by_id: dict[str, set[str]] = {}
    for finding in findings:
        by_id.setdefault(finding["id"], set()).add(finding["resource"])
    assert "christopher-work" in by_id["user.several-active-keys"]
    assert "christopher-phone" in by_id["user.direct-policy"]
    assert "christopher-old-backups" in by_id["bucket.no-default-kms"]
    assert "christopher-public-share" in by_id["bucket.public"]
    assert "christopher-photos-archive" in by_id["whitelist.missing"]
    assert "testing" not in result.stdout + result.stderr


def test_cli_audit_text_with_fail_on_never_exits_0(
    demo: tuple[str, Snapshot], tmp_path: Path
) -> None:
    endpoint, _ = demo
    result = run_cli("--fail-on", "never", "--no-local", "--endpoint-url", endpoint, home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "CRITICAL" in result.stdout and "christopher-public-share" in result.stdout
    assert "findings:" in result.stdout.splitlines()[-1]


def test_cli_audit_exits_2_on_error(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    import keyhygiene.aws.inventory
    from keyhygiene.cli.main import main

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AwsProblem(
            "Access denied while reading IAM users (AccessDenied).", code="AccessDenied"
        )

    monkeypatch.setattr(keyhygiene.aws.inventory, "load_account", refuse)
    assert main(["audit", "--no-local"]) == 2
    assert "Access denied" in capsys.readouterr().err


def test_cli_audit_refuses_a_bad_age(capsys: Any) -> None:
    from keyhygiene.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(["audit", "--rotation-age", "0"])
    assert exit_info.value.code == 2
