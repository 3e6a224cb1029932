"""Buckets and keys written by keyhygiene 0.1: the audit names the harm on
AWS's rules, and `app sync` rewrites them into documents that hold."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from policy_account import (
    ACCOUNT,
    BUCKET,
    BUCKET_ARN,
    KEY_ARN,
    NOW,
    OBJECT,
    account,
    applied,
    ask,
)

from keyhygiene.audit.findings import Finding
from keyhygiene.audit.fixes import fix_for
from keyhygiene.audit.runner import run_audit
from keyhygiene.core.access import upload_context
from keyhygiene.core.model import EXPIRY_POLICY_NAME, Group, InlinePolicy, Snapshot
from keyhygiene.core.policy_documents import default_key_policy
from keyhygiene.workflows.membership import plan_grant

PRINCIPALS = [
    f"arn:aws:iam::{ACCOUNT}:role/photos",
    f"arn:aws:iam::{ACCOUNT}:user/christopher-desktop",
    f"arn:aws:iam::{ACCOUNT}:user/christopher-laptop",
]
BOTH = [BUCKET_ARN, f"{BUCKET_ARN}/*"]

# Exactly what keyhygiene 0.1 wrote for the photos application.
OLD_BUCKET_POLICY: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "KeyHygieneAllow",
            "Effect": "Allow",
            "Principal": {"AWS": PRINCIPALS},
            "Action": [
                "s3:AbortMultipartUpload",
                "s3:DeleteObject",
                "s3:GetBucketLocation",
                "s3:GetObject",
                "s3:ListBucket",
                "s3:PutObject",
            ],
            "Resource": BOTH,
        },
        {
            "Sid": "KeyHygieneDenyOthers",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": BOTH,
            "Condition": {
                "ArnNotLike": {
                    "aws:PrincipalArn": sorted(
                        [
                            *PRINCIPALS,
                            f"arn:aws:iam::{ACCOUNT}:root",
                            f"arn:aws:iam::{ACCOUNT}:user/admin",
                        ]
                    )
                }
            },
        },
        {
            "Sid": "KeyHygieneDenyUnencrypted",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": f"{BUCKET_ARN}/*",
            "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}},
        },
        {
            "Sid": "KeyHygieneDenyOtherKey",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": f"{BUCKET_ARN}/*",
            "Condition": {
                "StringNotEquals": {"s3:x-amz-server-side-encryption-aws-kms-key-id": KEY_ARN}
            },
        },
    ],
}
OLD_KEY_POLICY: dict[str, Any] = {
    **default_key_policy(ACCOUNT),
    "Statement": [
        *default_key_policy(ACCOUNT)["Statement"],
        {
            "Sid": "KeyHygieneAllowUse",
            "Effect": "Allow",
            "Principal": {"AWS": PRINCIPALS},
            "Action": [
                "kms:Decrypt",
                "kms:DescribeKey",
                "kms:Encrypt",
                "kms:GenerateDataKey*",
                "kms:ReEncrypt*",
            ],
            "Resource": "*",
        },
    ],
}


@pytest.fixture(scope="module")
def old() -> Snapshot:
    snapshot = account(OLD_BUCKET_POLICY)
    return replace(snapshot, kms_keys=(replace(snapshot.kms_keys[0], policy=OLD_KEY_POLICY),))


def findings(snapshot: Snapshot) -> dict[str, Finding]:
    return {f.id: f for f in run_audit(snapshot, now=NOW)}


def test_the_old_documents_really_fail_on_aws_rules(old: Snapshot) -> None:
    laptop = "christopher-laptop"
    assert ask(old, laptop, "s3:PutObject", OBJECT, **upload_context("plain")) == "explicit-deny"
    assert ask(old, "colleague", "s3:GetBucketPolicy", BUCKET_ARN) == "explicit-deny"
    assert ask(old, "christopher-desktop", "s3:PutBucketPolicy", BUCKET_ARN) == "allow"
    assert ask(old, "colleague", "kms:Decrypt", KEY_ARN) == "allow"


def test_the_audit_names_each_harm(old: Snapshot) -> None:
    found = findings(old)
    upload = found["policy.upload-denied"]
    assert upload.severity == "high" and upload.resource == BUCKET
    assert "plain `aws s3 cp`" in upload.title
    assert "KeyHygieneDenyUnencrypted" in upload.detail and "multipart" in upload.detail
    deny = found["policy.bucket-deny-old"]
    assert "CloudTrail" in deny.detail
    assert "colleague" in deny.detail and "could rewrite the whitelist" in deny.detail
    key = found["policy.key-not-exclusive"]
    assert key.severity == "high" and key.resource_kind == "kms-key"
    assert "colleague" in key.detail and "admin" in key.detail
    beyond = found["whitelist.reach-beyond"]
    assert "colleague" in beyond.title
    for finding in (upload, deny, key):
        assert finding.fix is not None and "keyhygiene app sync photos" in finding.fix


def test_app_sync_rewrites_them_as_a_reviewed_plan(old: Snapshot) -> None:
    fix = fix_for(old, findings(old)["policy.upload-denied"], NOW)
    assert fix is not None and fix.plan is not None
    bucket_step, key_step = (s for s in fix.plan.steps if s.after is not None)
    assert "drops KeyHygieneDenyUnencrypted" in bucket_step.description
    assert "adds KeyHygieneDenyAwsManagedKey, KeyHygieneDenyConfiguration" in (
        bucket_step.description
    )
    # christopher-desktop loses the bucket's configuration on purpose: not a warning.
    assert "Warning" not in bucket_step.description
    assert "adds KeyHygieneDenyOthersAdmin, KeyHygieneDenyOthersUse" in key_step.description
    text = fix.plan.render_text()
    assert '-      "Action": "s3:*",' in text  # the diff is shown for review
    synced = applied(old, fix.plan)
    left = findings(synced)
    for rule in ("policy.upload-denied", "policy.bucket-deny-old", "policy.key-not-exclusive"):
        assert rule not in left, rule
    assert "whitelist.reach-beyond" not in left
    laptop = "christopher-laptop"
    assert ask(synced, laptop, "s3:PutObject", OBJECT, **upload_context("plain")) == "allow"
    assert ask(synced, "christopher-desktop", "s3:PutBucketPolicy", BUCKET_ARN) == "explicit-deny"
    assert ask(synced, "colleague", "kms:Decrypt", KEY_ARN) == "explicit-deny"
    # The sync was run by `admin`: it keeps the bucket, and so would a tagged admin.
    assert ask(synced, "admin", "s3:PutBucketPolicy", BUCKET_ARN) == "allow"
    assert ask(synced, "ops", "s3:PutBucketPolicy", BUCKET_ARN) == "allow"


def test_the_new_documents_raise_none_of_these_findings() -> None:
    from keyhygiene.workflows.application import plan_sync_application

    fresh = account(None)
    synced = applied(fresh, plan_sync_application(fresh, "photos"))
    left = findings(synced)
    assert not {i for i in left if i.startswith(("policy.", "whitelist."))}, left.keys()


def test_a_loan_from_before_the_guard_is_flagged_with_its_escape() -> None:
    expiry = "2026-12-02T14:00:00Z"
    old_expiry = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "KeyHygieneExpiryAll",
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {"DateGreaterThan": {"aws:CurrentTime": expiry}},
            }
        ],
    }
    base = account()
    administrator = base.user("admin").attached_policies  # type: ignore[union-attr]
    admins = Group(
        "admins",
        f"arn:aws:iam::{ACCOUNT}:group/admins",
        members=("christopher-phone",),
        attached_policies=administrator,
    )
    phone = base.user("christopher-phone")
    assert phone is not None
    phone = replace(
        phone,
        groups=("admins",),
        tags={**phone.tags, "keyhygiene:grant:admins": expiry},
        inline_policies=(InlinePolicy(EXPIRY_POLICY_NAME, old_expiry),),
    )
    lent = replace(base.with_user(phone), groups=(*base.groups, admins))
    [finding] = [f for f in run_audit(lent, now=NOW) if f.id == "policy.expiry-unguarded"]
    assert finding.severity == "high" and finding.resource == "christopher-phone"
    assert "iam:DeleteUserPolicy" in finding.detail
    # The harm is real on AWS's rules: before the expiry it may delete its expiry.
    assert ask(lent, "christopher-phone", "iam:DeleteUserPolicy", phone.arn) == "allow"

    # The finding's fix rewrites the policy from the loans as they stand.
    fix = fix_for(lent, finding, NOW)
    assert fix is not None and fix.plan is not None
    [step] = fix.plan.steps
    assert step.after is not None and step.call.params["PolicyName"] == EXPIRY_POLICY_NAME
    assert f'"aws:CurrentTime": "{expiry}"' in json.dumps(step.after)  # the same expiry
    fixed = lent.with_user(
        replace(phone, inline_policies=(InlinePolicy(EXPIRY_POLICY_NAME, step.after),))
    )
    assert ask(fixed, "christopher-phone", "iam:DeleteUserPolicy", phone.arn) == "explicit-deny"
    assert not [f for f in run_audit(fixed, now=NOW) if f.id == "policy.expiry-unguarded"]

    # Lending again (by force: admins grants IAM writes) writes the guarded policy.
    plan = plan_grant(lent, "christopher-phone", "admins", "1h", now=NOW, force=True)
    [guarded] = [
        s.after for s in plan.steps if s.call.params.get("PolicyName") == EXPIRY_POLICY_NAME
    ]
    assert guarded is not None
    relent = lent.with_user(
        replace(phone, inline_policies=(InlinePolicy(EXPIRY_POLICY_NAME, guarded),))
    )
    assert not [f for f in run_audit(relent, now=NOW) if f.id == "policy.expiry-unguarded"]
    assert ask(relent, "christopher-phone", "iam:DeleteUserPolicy", phone.arn) == "explicit-deny"
