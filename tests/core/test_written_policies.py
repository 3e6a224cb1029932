"""Every bucket and key policy keyhygiene writes, proven on AWS's rules.

moto stores bucket and key policies but enforces neither, and evaluates no
condition, so a green moto run says nothing about what AWS will allow. These
tests take the documents the real plans compute (`app sync`, `app create`,
a membership change), put them in a snapshot, and ask the offline evaluator
(`keyhygiene.core.policy_eval`, through `keyhygiene.core.access`) the questions real users and AWS
services ask: a plain `aws s3 cp`, each request of a multipart upload, the
`--sse` variants, another admin, CloudTrail, a computer trying to rewrite the
whitelist, an admin trying to decrypt.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from policy_account import (
    ACCOUNT,
    BUCKET,
    BUCKET_ARN,
    CLOUDTRAIL_ACL,
    CLOUDTRAIL_WRITE,
    KEY_ARN,
    KEY_ID,
    NOW,
    OBJECT,
    REGION,
    SSO_ADMIN,
    account,
    applied,
    ask,
)

from keyhygiene.core import access
from keyhygiene.core.access import upload_context
from keyhygiene.core.model import InlinePolicy, Role, Snapshot
from keyhygiene.core.policy_eval import Principal
from keyhygiene.plans import Plan
from keyhygiene.steps.whitelists import members_after_change, replace_value, whitelist_steps
from keyhygiene.workflows.application import (
    new_key_marker,
    plan_create_application,
    plan_sync_application,
)


@pytest.fixture(scope="module")
def synced() -> Snapshot:
    """The account after `keyhygiene app sync photos`, run by `admin`; the
    bucket already had CloudTrail's statements (the console's own)."""
    before = account({"Version": "2012-10-17", "Statement": [CLOUDTRAIL_ACL, CLOUDTRAIL_WRITE]})
    return applied(before, plan_sync_application(before, "photos"))


# ---- uploads: what a whitelisted computer sends -------------------------------------


def test_a_plain_upload_and_download_pass(synced: Snapshot) -> None:
    laptop = "christopher-laptop"
    assert ask(synced, laptop, "s3:PutObject", OBJECT, **upload_context("plain")) == "allow"
    assert ask(synced, laptop, "s3:GetObject", OBJECT) == "allow"
    assert ask(synced, laptop, "s3:ListBucket", BUCKET_ARN) == "allow"
    assert ask(synced, laptop, "s3:DeleteObject", OBJECT) == "allow"
    # Default SSE-KMS: S3 asks KMS for a data key as the caller, via S3.
    via_s3 = {"kms:ViaService": f"s3.{REGION}.amazonaws.com", "aws:ViaAWSService": "true"}
    assert ask(synced, laptop, "kms:GenerateDataKey", KEY_ARN, **via_s3) == "allow"
    assert ask(synced, laptop, "kms:Decrypt", KEY_ARN, **via_s3) == "allow"


def test_every_request_of_a_multipart_upload_passes(synced: Snapshot) -> None:
    # CreateMultipartUpload, UploadPart and CompleteMultipartUpload are all
    # authorized as s3:PutObject, and `aws s3 cp` sends no SSE header with any
    # of them (without --sse): one question, asked once. Parts need kms:Decrypt
    # as well, and a copy between buckets reads and writes the object's tags.
    laptop = "christopher-laptop"
    assert ask(synced, laptop, "s3:PutObject", OBJECT) == "allow"
    assert ask(synced, laptop, "s3:AbortMultipartUpload", OBJECT) == "allow"
    assert ask(synced, laptop, "kms:Decrypt", KEY_ARN) == "allow"
    assert ask(synced, laptop, "s3:GetObjectTagging", OBJECT) == "allow"
    assert ask(synced, laptop, "s3:PutObjectTagging", OBJECT) == "allow"


def test_a_tag_alone_makes_no_admin(synced: Snapshot) -> None:
    # A principal tag can come from a session tag (sts:TagSession): keyhygiene
    # lists its admins by ARN when it writes, never trusts the tag at request time.
    colleague = synced.user("colleague")
    assert colleague is not None
    tagged = synced.with_user(replace(colleague, tags={"keyhygiene:admin": "true"}))
    assert ask(tagged, "colleague", "s3:PutBucketPolicy", BUCKET_ARN) == "explicit-deny"
    session = Principal.role_session(
        f"arn:aws:iam::{ACCOUNT}:role/photos", tags={"keyhygiene:admin": "true"}
    )
    assert ask(synced, session, "s3:PutBucketPolicy", BUCKET_ARN) == "explicit-deny"
    # `app sync` after tagging lists it by ARN: then it is an admin.
    resynced = applied(tagged, plan_sync_application(tagged, "photos"))
    assert ask(resynced, "colleague", "s3:PutBucketPolicy", BUCKET_ARN) == "allow"
    assert ask(resynced, "colleague", "kms:PutKeyPolicy", KEY_ARN) == "allow"


def test_service_linked_roles_keep_reading_the_bucket(synced: Snapshot) -> None:
    # AWS Config, Access Analyzer and Macie read buckets through service-linked
    # roles, for which aws:PrincipalIsAWSService is false.
    role = Role(
        "AWSServiceRoleForConfig",
        f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/config.amazonaws.com/AWSServiceRoleForConfig",
        inline_policies=(
            InlinePolicy(
                "read",
                {"Statement": [{"Effect": "Allow", "Action": "s3:Get*", "Resource": "*"}]},
            ),
        ),
        path="/aws-service-role/config.amazonaws.com/",
    )
    with_role = replace(synced, roles=(*synced.roles, role))
    who = Principal.role_session(role.arn)
    assert ask(with_role, who, "s3:GetBucketPolicy", BUCKET_ARN) == "allow"
    assert ask(with_role, who, "s3:GetEncryptionConfiguration", BUCKET_ARN) == "allow"


def test_others_allowed_key_administration_through_iam_are_denied_it(synced: Snapshot) -> None:
    # colleague (AdministratorAccess) is no admin by keyhygiene's rule.
    for action in ("kms:PutKeyPolicy", "kms:ScheduleKeyDeletion", "kms:DisableKey"):
        assert ask(synced, "colleague", action, KEY_ARN) == "explicit-deny", action
    assert ask(synced, "colleague", "kms:DescribeKey", KEY_ARN) == "allow"


def test_the_application_key_named_in_full_passes(synced: Snapshot) -> None:
    context = upload_context("kms-key", KEY_ARN)
    assert ask(synced, "christopher-laptop", "s3:PutObject", OBJECT, **context) == "allow"


@pytest.mark.parametrize(
    ("kind", "sid"),
    [
        ("kms-no-key", "KeyHygieneDenyAwsManagedKey"),  # S3 would use aws/s3
        ("other-key", "KeyHygieneDenyOtherKey"),
        ("aes256", "KeyHygieneDenyWrongEncryption"),
        ("sse-c", "KeyHygieneDenySseC"),
    ],
)
def test_wrong_encryption_is_denied(synced: Snapshot, kind: Any, sid: str) -> None:
    decision = access.explain(
        synced,
        "christopher-laptop",
        "s3:PutObject",
        OBJECT,
        context=upload_context(kind, KEY_ARN),
        now=NOW,
    )
    assert decision.outcome == "explicit-deny"
    assert sid in {ref.sid for ref in decision.deciding}


def test_a_key_id_instead_of_the_arn_is_denied(synced: Snapshot) -> None:
    # S3 compares the header as sent: the README says to name the full ARN.
    context = {
        "s3:x-amz-server-side-encryption": "aws:kms",
        "s3:x-amz-server-side-encryption-aws-kms-key-id": KEY_ID,
    }
    assert ask(synced, "christopher-laptop", "s3:PutObject", OBJECT, **context) == "explicit-deny"


# ---- who else: computers outside, admins, services ----------------------------------


def test_a_computer_outside_the_group_gets_nothing(synced: Snapshot) -> None:
    phone = "christopher-phone"
    assert ask(synced, phone, "s3:GetObject", OBJECT) == "explicit-deny"
    assert ask(synced, phone, "s3:PutObject", OBJECT) == "explicit-deny"
    assert ask(synced, phone, "kms:Decrypt", KEY_ARN) == "explicit-deny"


def test_a_whitelisted_computer_cannot_rewrite_the_whitelist(synced: Snapshot) -> None:
    # christopher-desktop's own IAM policy allows s3:PutBucketPolicy.
    desktop = "christopher-desktop"
    assert ask(synced, desktop, "s3:GetObject", OBJECT) == "allow"
    for action in ("s3:PutBucketPolicy", "s3:DeleteBucketPolicy", "s3:PutEncryptionConfiguration"):
        assert ask(synced, desktop, action, BUCKET_ARN) == "explicit-deny", action


def test_whitelisted_computers_may_read_the_configuration_others_may_not(synced: Snapshot) -> None:
    # keyhygiene run with a computer's own profile still reads its application
    # (given an IAM policy allowing it); reading changes nothing.
    reader = InlinePolicy(
        "read-config", {"Statement": [{"Effect": "Allow", "Action": "s3:Get*", "Resource": "*"}]}
    )
    with_reader = synced
    for name in ("christopher-laptop", "christopher-phone"):
        user = with_reader.user(name)
        assert user is not None
        with_reader = with_reader.with_user(replace(user, inline_policies=(reader,)))
    for action in ("s3:GetBucketPolicy", "s3:GetEncryptionConfiguration", "s3:GetBucketTagging"):
        assert ask(with_reader, "christopher-laptop", action, BUCKET_ARN) == "allow", action
        assert ask(with_reader, "christopher-phone", action, BUCKET_ARN) == "explicit-deny"


@pytest.mark.parametrize(
    "admin", ["admin", "ops", f"role/{SSO_ADMIN}"], ids=["actor", "tagged", "sso"]
)
def test_admins_keep_the_bucket_and_key_configuration(synced: Snapshot, admin: str) -> None:
    for action in ("s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy"):
        assert ask(synced, admin, action, BUCKET_ARN) == "allow", action
    assert ask(synced, admin, "s3:PutBucketPublicAccessBlock", BUCKET_ARN) == "allow"
    for action in ("kms:GetKeyPolicy", "kms:PutKeyPolicy", "kms:DescribeKey"):
        assert ask(synced, admin, action, KEY_ARN) == "allow", action


@pytest.mark.parametrize("admin", ["admin", "colleague", "ops", f"role/{SSO_ADMIN}"])
def test_no_admin_decrypts_with_an_application_key(synced: Snapshot, admin: str) -> None:
    for action in ("kms:Decrypt", "kms:GenerateDataKey", "kms:Encrypt", "kms:CreateGrant"):
        assert ask(synced, admin, action, KEY_ARN) == "explicit-deny", (admin, action)


def test_an_untagged_admin_loses_the_bucket_and_the_plan_says_so() -> None:
    before = account(None)
    plan = plan_sync_application(before, "photos")
    after = applied(before, plan)
    assert ask(after, "colleague", "s3:PutBucketPolicy", BUCKET_ARN) == "explicit-deny"
    bucket_step = next(s for s in plan.steps if s.call.params.get("Bucket") == BUCKET)
    assert "colleague would lose control" in bucket_step.description
    assert "keyhygiene:admin=true" in bucket_step.description
    # The tagged admin and the SSO role are not listed: they keep control.
    assert "ops" not in bucket_step.description.split("Warning:")[1]


def test_the_root_user_can_always_repair_the_bucket_policy(synced: Snapshot) -> None:
    for action in ("s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy"):
        assert ask(synced, "root", action, BUCKET_ARN) == "allow"
    # ... and the key's administration, through the default statement.
    assert ask(synced, "root", "kms:PutKeyPolicy", KEY_ARN) == "allow"


def test_aws_services_are_judged_by_their_own_statements(synced: Snapshot) -> None:
    trail = Principal.service("cloudtrail.amazonaws.com")
    log = f"{BUCKET_ARN}/AWSLogs/{ACCOUNT}/CloudTrail/x.json.gz"
    ours = {"aws:SourceAccount": ACCOUNT}
    assert ask(synced, trail, "s3:GetBucketAcl", BUCKET_ARN, **ours) == "allow"
    assert ask(synced, trail, "s3:PutObject", log, **ours) == "allow"
    # Its statement's own condition still holds it: another account's trail is refused.
    assert ask(synced, trail, "s3:PutObject", log, **{"aws:SourceAccount": "999999999999"}) in (
        "implicit-deny",
        "explicit-deny",
    )
    # A service no statement names gets nothing.
    logs = Principal.service("logging.s3.amazonaws.com")
    assert ask(synced, logs, "s3:PutObject", OBJECT) == "implicit-deny"


def test_anonymous_callers_are_denied(synced: Snapshot) -> None:
    assert ask(synced, Principal.anonymous(), "s3:GetObject", OBJECT) == "explicit-deny"


def test_the_application_role_uses_bucket_and_key(synced: Snapshot) -> None:
    assert ask(synced, "role/photos", "s3:PutObject", OBJECT) == "allow"
    assert ask(synced, "role/photos", "kms:Decrypt", KEY_ARN) == "allow"


# ---- the other plans that write the same documents ----------------------------------


def test_app_create_writes_documents_that_hold() -> None:
    before = replace(account(), buckets=(), kms_keys=(), roles=account().roles[1:])
    plan = plan_create_application(
        before, "photos", [BUCKET], ["christopher-laptop"], region=REGION
    )
    marker = new_key_marker("photos")
    policies = {
        step.id: replace_value(step.after, marker, KEY_ARN) for step in plan.steps if step.after
    }
    bucket_policy = next(doc for sid, doc in policies.items() if "bucket" in sid)
    key_policy = next(doc for sid, doc in policies.items() if sid.startswith("key"))
    after = replace(
        account(bucket_policy),
        kms_keys=(replace(account().kms_keys[0], policy=key_policy),),
    )
    laptop = "christopher-laptop"
    assert ask(after, laptop, "s3:PutObject", OBJECT) == "allow"
    assert ask(after, laptop, "kms:Decrypt", KEY_ARN) == "allow"
    assert ask(after, "colleague", "kms:Decrypt", KEY_ARN) == "explicit-deny"
    assert ask(after, "admin", "kms:PutKeyPolicy", KEY_ARN) == "allow"
    assert ask(after, "admin", "s3:PutBucketPolicy", BUCKET_ARN) == "allow"
    kinds = ("kms-no-key", "aes256", "sse-c")
    for kind in kinds:
        assert ask(after, laptop, "s3:PutObject", OBJECT, **upload_context(kind)) == "explicit-deny"


def test_leaving_the_group_takes_the_computer_off_bucket_and_key(synced: Snapshot) -> None:
    change = members_after_change(synced, "christopher-laptop", leaves=["photos"])
    steps = whitelist_steps(synced, change)
    after = applied(synced, Plan("group", "leave", tuple(steps)))
    assert ask(after, "christopher-laptop", "s3:GetObject", OBJECT) == "explicit-deny"
    assert ask(after, "christopher-laptop", "kms:Decrypt", KEY_ARN) == "explicit-deny"
    assert ask(after, "christopher-desktop", "s3:GetObject", OBJECT) == "allow"


def test_an_emptied_key_whitelist_still_denies_everyone(synced: Snapshot) -> None:
    change = {"photos": set()}
    steps = whitelist_steps(replace(synced, roles=synced.roles[1:]), change)
    after = applied(synced, Plan("group", "empty", tuple(steps)))
    for who in ("christopher-laptop", "admin", "colleague"):
        assert ask(after, who, "kms:Decrypt", KEY_ARN) == "explicit-deny", who
    assert ask(after, "admin", "kms:PutKeyPolicy", KEY_ARN) == "allow"
