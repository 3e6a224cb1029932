"""What a loan leaves a borrower on AWS's real rules: the documents `plan_grant`
writes, judged by the offline evaluator (`keyhygiene.core.policy_eval`), not by moto.

moto enforces no condition, so no apply against it can show that a borrower is
denied after its expiry, or that a borrower whose group grants IAM rights
cannot undo its own expiry before it. Here the borrower's identity policies are
what AWS would evaluate once the plan is applied: its own inline
`keyhygiene-expiry` (taken from the plan step, as it would be written) and its
groups' policies, the lent one included. Pure: no AWS, no moto.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from keyhygiene.core import access
from keyhygiene.core.access import identity_policies, upload_context
from keyhygiene.core.errors import BadInput
from keyhygiene.core.model import (
    DEVICES_GROUP,
    EXPIRY_POLICY_NAME,
    TAG_GROUPS,
    Bucket,
    Group,
    InlinePolicy,
    KmsKey,
    PolicyAttachment,
    Role,
    Snapshot,
    User,
)
from keyhygiene.core.policy_documents import (
    bucket_policy_with_whitelist,
    default_key_policy,
    key_policy_with_whitelist,
)
from keyhygiene.core.policy_eval import Decision, PolicySource, Principal, Request, evaluate
from keyhygiene.plans import Plan
from keyhygiene.workflows.membership import IAM_WRITE_RIGHTS, LoanRefused, loan_risks, plan_grant

ACCOUNT = "123456789012"
NOW = datetime(2026, 11, 28, 19, 0, tzinfo=timezone.utc)
EXPIRY = NOW + timedelta(hours=2)  # every loan here is lent "2h" at NOW
BEFORE = EXPIRY - timedelta(minutes=1)
AFTER = EXPIRY + timedelta(seconds=1)
PHONE = "alice-phone"
LAPTOP = "alice-laptop"
ADMIN = "keyhygiene-admin"
BUCKET = "photos-data"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{KEY_ID}"
EVERYTHING = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}
PHOTOS_WORK = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:ListBucket"],
            "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
        },
        {
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": KEY_ARN,
        },
    ],
}


TRUST_ACCOUNT = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Action": "sts:AssumeRole",
        }
    ],
}


def iam_arn(kind: str, name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:{kind}/{name}"


def account(**group_policies: dict[str, Any]) -> Snapshot:
    """alice-laptop in photos, alice-phone in no group but the devices one, the
    bucket photos-data and a KMS key tagged for photos and whitelisting the
    laptop; group admins allowed everything; keyhygiene runs as keyhygiene-admin.
    `group_policies` adds groups: name -> one inline policy."""
    root = f"arn:aws:iam::{ACCOUNT}:root"
    whitelist = [iam_arn("user", LAPTOP)]
    groups = [
        Group(DEVICES_GROUP, iam_arn("group", DEVICES_GROUP), (LAPTOP, PHONE)),
        Group(
            "admins",
            iam_arn("group", "admins"),
            (ADMIN,),
            inline_policies=(InlinePolicy("everything", EVERYTHING),),
        ),
        Group(
            "photos",
            iam_arn("group", "photos"),
            (LAPTOP,),
            inline_policies=(InlinePolicy("photos-work", PHOTOS_WORK),),
        ),
    ]
    groups += [
        Group(name, iam_arn("group", name), (), inline_policies=(InlinePolicy(name, doc),))
        for name, doc in group_policies.items()
    ]
    return Snapshot(
        account_id=ACCOUNT,
        caller_arn=iam_arn("user", ADMIN),
        loaded_at=NOW,
        users=(
            User(LAPTOP, iam_arn("user", LAPTOP), groups=(DEVICES_GROUP, "photos")),
            User(PHONE, iam_arn("user", PHONE), groups=(DEVICES_GROUP,)),
            User(ADMIN, iam_arn("user", ADMIN), groups=("admins",)),
        ),
        groups=tuple(groups),
        roles=(
            Role(
                "photos",
                iam_arn("role", "photos"),
                trust_policy=TRUST_ACCOUNT,
                tags={TAG_GROUPS: "photos"},
            ),
        ),
        buckets=(
            Bucket(
                BUCKET,
                f"arn:aws:s3:::{BUCKET}",
                tags={TAG_GROUPS: "photos"},
                policy=bucket_policy_with_whitelist(
                    None,
                    bucket=BUCKET,
                    principals=whitelist,
                    key_arn=KEY_ARN,
                    keep_admin_arns=[root, iam_arn("user", ADMIN)],
                ),
            ),
        ),
        kms_keys=(
            KmsKey(
                KEY_ID,
                KEY_ARN,
                aliases=("alias/photos",),
                tags={TAG_GROUPS: "photos"},
                policy=key_policy_with_whitelist(default_key_policy(ACCOUNT), principals=whitelist),
            ),
        ),
    )


def expiry_document(plan: Plan) -> dict[str, Any]:
    """The keyhygiene-expiry the plan writes, as the put_user_policy call sends it."""
    step = plan.step("grant-expiry-policy")
    assert step.call.operation == "put_user_policy"
    assert step.call.params["PolicyName"] == EXPIRY_POLICY_NAME
    written = json.loads(step.call.params["PolicyDocument"])
    assert written == step.after  # what the review shows is what is written
    return dict(written)


def after_plan(snapshot: Snapshot, plan: Plan, group: str) -> Snapshot:
    """The account as the borrower's requests find it once `plan` is applied:
    the borrower in `group` with its expiry policy, the whitelists rewritten."""
    user = snapshot.user(PHONE)
    assert user is not None
    borrower = replace(
        user,
        groups=(*user.groups, group),
        inline_policies=(InlinePolicy(EXPIRY_POLICY_NAME, expiry_document(plan)),),
    )
    after = snapshot.with_user(borrower)
    policies = {step.id: step.after for step in plan.steps if step.after is not None}
    buckets = tuple(
        replace(b, policy=policies.get(f"bucket-policy.{b.name}", b.policy)) for b in after.buckets
    )
    keys = tuple(
        replace(k, policy=policies.get(f"key-policy.{k.key_id}", k.policy)) for k in after.kms_keys
    )
    return replace(after, buckets=buckets, kms_keys=keys)


def ask(
    snapshot: Snapshot,
    action: str,
    resource: str,
    at: datetime,
    *,
    resource_policy: PolicySource | None = None,
    context: dict[str, Any] | None = None,
) -> Decision:
    """AWS's decision for the borrower's request: its identity policies (its own
    keyhygiene-expiry and its groups') and the resource's policy, if any."""
    user = snapshot.user(PHONE)
    assert user is not None
    principal = Principal.user(user.arn)
    request = Request(
        principal, action, resource, dict(context or {}), now=at, resource_account=ACCOUNT
    )
    if resource_policy is None and ":role/" in resource:
        resource_policy = access.resource_policy(snapshot, resource)  # the role's trust policy
    return evaluate(request, identity_policies(snapshot, principal), resource_policy)


def bucket_policy(snapshot: Snapshot) -> PolicySource:
    bucket = snapshot.bucket(BUCKET)
    assert bucket is not None and bucket.policy is not None
    return PolicySource(f"the policy of bucket {BUCKET}", bucket.policy)


def key_policy(snapshot: Snapshot) -> PolicySource:
    key = snapshot.kms_key(KEY_ID)
    assert key is not None and key.policy is not None
    return PolicySource("the key policy of alias/photos", key.policy)


def sids(decision: Decision) -> set[str | None]:
    return {ref.sid for ref in decision.deciding}


# ---- a group that grants IAM rights: refused, unless forced -------------------------


def test_lending_a_group_that_grants_everything_is_refused_with_the_reason() -> None:
    with pytest.raises(LoanRefused) as refused:
        plan_grant(account(), PHONE, "admins", "2h", now=NOW)
    error = refused.value
    assert isinstance(error, BadInput) and error.exit_code == 2
    assert error.group == "admins"
    message = error.message
    assert "Group admins is not lent to alice-phone" in message
    assert "its inline policy everything allows iam:CreateUser on any user" in message
    assert "no expiry covers" in message and "Nothing was changed." in message
    assert error.hint is not None and "--force" in error.hint


def test_the_refusal_is_decided_on_aws_rules() -> None:
    snapshot = account()
    phone, admins = snapshot.user(PHONE), snapshot.group("admins")
    assert phone is not None and admins is not None
    risks = loan_risks(snapshot, phone, admins, now=NOW)
    assert risks.refused and not risks.unreadable
    assert len(risks.iam_rights) == len(IAM_WRITE_RIGHTS)  # every IAM write asked about
    assert risks.roles == ("any role",)


GUARDED_ON_ITSELF = [
    "iam:DeleteUserPolicy",
    "iam:PutUserPolicy",
    "iam:AttachUserPolicy",
    "iam:DetachUserPolicy",
    "iam:TagUser",
    "iam:UntagUser",
    "iam:UpdateUser",
    "iam:PutUserPermissionsBoundary",
    "iam:DeleteUserPermissionsBoundary",
]


@pytest.fixture(scope="module")
def forced_admins() -> tuple[Plan, Snapshot]:
    snapshot = account()
    plan = plan_grant(snapshot, PHONE, "admins", "2h", now=NOW, force=True)
    return plan, after_plan(snapshot, plan, "admins")


@pytest.mark.parametrize("action", GUARDED_ON_ITSELF)
def test_before_the_expiry_a_borrower_with_every_right_cannot_touch_its_own_expiry(
    forced_admins: tuple[Plan, Snapshot], action: str
) -> None:
    _, after = forced_admins
    decision = ask(after, action, iam_arn("user", PHONE), BEFORE)
    assert decision.outcome == "explicit-deny", decision.summary()
    assert sids(decision) == {"KeyHygieneExpiryGuard"}


@pytest.mark.parametrize(
    "group", [iam_arn("group", "admins"), iam_arn("group", "photos"), iam_arn("group", "new")]
)
def test_before_the_expiry_a_borrower_cannot_add_itself_to_any_group(
    forced_admins: tuple[Plan, Snapshot], group: str
) -> None:
    """iam:AddUserToGroup is authorized on the group: denied on "*"."""
    _, after = forced_admins
    decision = ask(after, "iam:AddUserToGroup", group, BEFORE)
    assert decision.outcome == "explicit-deny", decision.summary()
    assert sids(decision) == {"KeyHygieneExpiryGuardGroups"}


@pytest.mark.parametrize(
    ("action", "resource"),
    [
        ("s3:GetObject", f"arn:aws:s3:::{BUCKET}/a.jpg"),
        ("s3:ListAllMyBuckets", "*"),
        ("dynamodb:PutItem", f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/notes"),
        ("iam:ListUsers", "*"),
        ("iam:RemoveUserFromGroup", iam_arn("group", "admins")),
        ("sts:AssumeRole", iam_arn("role", "photos")),
        ("ec2:RunInstances", "*"),
    ],
)
def test_before_the_expiry_the_borrower_does_the_groups_work(
    forced_admins: tuple[Plan, Snapshot], action: str, resource: str
) -> None:
    """Identity policies alone (a KMS key would need its key policy to allow too)."""
    _, after = forced_admins
    decision = ask(after, action, resource, BEFORE)
    assert decision.outcome == "allow", decision.summary()


@pytest.mark.parametrize(
    ("action", "resource"),
    [
        ("s3:GetObject", f"arn:aws:s3:::{BUCKET}/a.jpg"),
        ("kms:Decrypt", KEY_ARN),
        ("iam:ListUsers", "*"),
        ("iam:CreateUser", iam_arn("user", "intruder")),
        ("iam:CreateAccessKey", iam_arn("user", LAPTOP)),
        ("iam:DeleteUserPolicy", iam_arn("user", PHONE)),
        ("sts:AssumeRole", iam_arn("role", "photos")),
        ("ec2:RunInstances", "*"),
    ],
)
def test_after_the_expiry_every_action_is_denied(
    forced_admins: tuple[Plan, Snapshot], action: str, resource: str
) -> None:
    _, after = forced_admins
    decision = ask(after, action, resource, AFTER)
    assert decision.outcome == "explicit-deny", decision.summary()
    assert "KeyHygieneExpiryAll" in sids(decision)


def test_what_the_guard_leaves_a_forced_borrower_is_what_the_plan_warns_about(
    forced_admins: tuple[Plan, Snapshot],
) -> None:
    plan, after = forced_admins
    # Other users and keys, before the expiry: nothing on AWS's side stops them.
    assert ask(after, "iam:CreateUser", iam_arn("user", "intruder"), BEFORE).allowed
    assert ask(after, "iam:CreateAccessKey", iam_arn("user", LAPTOP), BEFORE).allowed
    forced = [w for w in plan.warnings if w.startswith("Lent by force")]
    assert len(forced) == 1
    assert "group admins grants IAM rights" in forced[0]
    assert "could still create users, access keys or rights that no expiry covers" in forced[0]
    roles = [w for w in plan.warnings if "sts:AssumeRole" in w]
    assert len(roles) == 1 and "on any role" in roles[0]
    assert "outlives it" in roles[0] and "1 h by default, up to 12 h" in roles[0]


# ---- an ordinary group: lent, and its work goes on until the expiry ----------------


@pytest.fixture(scope="module")
def photos_loan() -> tuple[Plan, Snapshot]:
    snapshot = account()
    plan = plan_grant(snapshot, PHONE, "photos", "2h", now=NOW)
    return plan, after_plan(snapshot, plan, "photos")


def test_an_ordinary_group_is_lent_without_refusal_or_warning(
    photos_loan: tuple[Plan, Snapshot],
) -> None:
    plan, _ = photos_loan
    assert plan.kind == "grant"
    assert plan.warnings == ()
    document = expiry_document(plan)
    assert [s["Sid"] for s in document["Statement"]] == [
        "KeyHygieneExpiry20261128T210000Z",
        "KeyHygieneExpiryGuard",
        "KeyHygieneExpiryGuardGroups",
    ]


def normal_work(snapshot: Snapshot) -> list[tuple[str, str, PolicySource, dict[str, Any]]]:
    """(action, resource, resource policy, request keys) of a photos member's day."""
    objects = f"arn:aws:s3:::{BUCKET}/2026/a.jpg"
    upload = upload_context("kms-key", KEY_ARN)
    return [
        ("s3:GetObject", objects, bucket_policy(snapshot), {}),
        ("s3:PutObject", objects, bucket_policy(snapshot), upload),
        ("s3:ListBucket", f"arn:aws:s3:::{BUCKET}", bucket_policy(snapshot), {}),
        ("kms:Decrypt", KEY_ARN, key_policy(snapshot), {}),
        ("kms:GenerateDataKey", KEY_ARN, key_policy(snapshot), {}),
    ]


def test_before_the_expiry_the_borrower_of_an_ordinary_group_does_its_work(
    photos_loan: tuple[Plan, Snapshot],
) -> None:
    _, after = photos_loan
    for action, resource, policy, context in normal_work(after):
        decision = ask(after, action, resource, BEFORE, resource_policy=policy, context=context)
        assert decision.outcome == "allow", (action, decision.summary())


def test_after_the_expiry_the_ordinary_groups_resources_are_denied(
    photos_loan: tuple[Plan, Snapshot],
) -> None:
    _, after = photos_loan
    for action, resource, policy, context in normal_work(after):
        decision = ask(after, action, resource, AFTER, resource_policy=policy, context=context)
        assert decision.outcome == "explicit-deny", (action, decision.summary())
        assert "KeyHygieneExpiry20261128T210000Z" in sids(decision)
    # Even a right the borrower's whitelist entry alone would give (no IAM Allow).
    decision = ask(after, "s3:DeleteObject", f"arn:aws:s3:::{BUCKET}/a.jpg", AFTER)
    assert decision.outcome == "explicit-deny"


def test_the_guard_is_there_for_an_ordinary_loan_too(photos_loan: tuple[Plan, Snapshot]) -> None:
    _, after = photos_loan
    for action in GUARDED_ON_ITSELF:
        assert ask(after, action, iam_arn("user", PHONE), BEFORE).outcome == "explicit-deny"
    assert ask(after, "iam:AddUserToGroup", iam_arn("group", "photos"), BEFORE).outcome == (
        "explicit-deny"
    )


# ---- how the rights are read -----------------------------------------------------------


def _allow(action: str | list[str], resource: str | list[str], **extra: Any) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": action, "Resource": resource, **extra}],
    }


@pytest.mark.parametrize(
    ("document", "words"),
    [
        (_allow("iam:*", "*"), "allows iam:CreateUser on any user"),
        (_allow("iam:CreateAccessKey", iam_arn("user", LAPTOP)), "on user alice-laptop"),
        (_allow("iam:AddUserToGroup", iam_arn("group", "photos")), "on group photos"),
        (_allow(["iam:CreateRole"], "arn:aws:iam::*:role/*"), "iam:CreateRole on any role"),
        (_allow("iam:UpdateAssumeRolePolicy", iam_arn("role", "photos")), "on role photos"),
        (
            # Only with MFA: a borrower's MFA session would have it (fail closed).
            _allow("iam:*", "*", Condition={"Bool": {"aws:MultiFactorAuthPresent": "true"}}),
            "allows iam:CreateUser on any user",
        ),
        (
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "NotAction": "s3:*", "Resource": "*"}],
            },
            "allows iam:CreateUser on any user",
        ),
    ],
)
def test_iam_writes_in_any_form_refuse_the_loan(document: dict[str, Any], words: str) -> None:
    with pytest.raises(LoanRefused, match="is not lent to alice-phone") as refused:
        plan_grant(account(ops=document), PHONE, "ops", "2h", now=NOW)
    assert words in refused.value.message
    assert "its inline policy ops" in refused.value.message


@pytest.mark.parametrize(
    "document",
    [
        # Its own keys only: a new key of its own is still under its expiry policy.
        _allow(
            ["iam:CreateAccessKey", "iam:UpdateAccessKey", "iam:DeleteAccessKey"],
            "arn:aws:iam::*:user/${aws:username}",
        ),
        _allow(["iam:Get*", "iam:List*"], "*"),
        # IAM writes allowed, but denied by the same group without condition.
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "*", "Resource": "*"},
                {"Effect": "Deny", "Action": ["iam:*", "sts:*"], "Resource": "*"},
            ],
        },
    ],
)
def test_rights_that_make_nothing_outliving_the_loan_do_not_refuse_it(
    document: dict[str, Any],
) -> None:
    plan = plan_grant(account(ops=document), PHONE, "ops", "2h", now=NOW)
    assert not [w for w in plan.warnings if "IAM rights" in w]


def test_a_deny_with_a_condition_does_not_count_against_the_rights() -> None:
    """It may not hold for some request: the rights it would take away still count."""
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "iam:*", "Resource": "*"},
            {
                "Effect": "Deny",
                "Action": "iam:*",
                "Resource": "*",
                "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "false"}},
            },
        ],
    }
    with pytest.raises(LoanRefused):
        plan_grant(account(ops=document), PHONE, "ops", "2h", now=NOW)


def with_attached(snapshot: Snapshot, group: str, policy: str) -> Snapshot:
    groups = tuple(
        replace(
            g,
            attached_policies=(
                *g.attached_policies,
                PolicyAttachment(policy, f"arn:aws:iam::aws:policy/{policy}"),
            ),
        )
        if g.name == group
        else g
        for g in snapshot.groups
    )
    return replace(snapshot, groups=groups)


def test_a_policy_that_cannot_be_read_refuses_the_loan_unless_forced() -> None:
    snapshot = with_attached(account(ops=_allow("s3:GetObject", "*")), "ops", "ReadOnlyAccess")
    with pytest.raises(LoanRefused) as refused:
        plan_grant(snapshot, PHONE, "ops", "2h", now=NOW)
    message = refused.value.message
    assert "its attached policy ReadOnlyAccess could not be read" in message
    assert "it may grant IAM rights" in message
    plan = plan_grant(snapshot, PHONE, "ops", "2h", now=NOW, force=True)
    assert any(
        w.startswith("Lent by force although group ops has a policy that could not be read")
        for w in plan.warnings
    )


def test_an_aws_managed_policy_keyhygiene_knows_is_read() -> None:
    snapshot = with_attached(account(ops=_allow("s3:GetObject", "*")), "ops", "AmazonS3FullAccess")
    plan_grant(snapshot, PHONE, "ops", "2h", now=NOW)  # S3 rights only: lent
    snapshot = with_attached(snapshot, "ops", "IAMFullAccess")
    with pytest.raises(LoanRefused, match="attached policy IAMFullAccess allows iam:CreateUser"):
        plan_grant(snapshot, PHONE, "ops", "2h", now=NOW)


def test_a_group_that_may_assume_a_role_is_warned_about() -> None:
    snapshot = account(ops=_allow("sts:AssumeRole", iam_arn("role", "photos")))
    plan = plan_grant(snapshot, PHONE, "ops", "2h", now=NOW)
    (warning,) = [w for w in plan.warnings if "sts:AssumeRole" in w]
    assert warning.startswith("Group ops allows sts:AssumeRole on role photos")
    assert "a role session alice-phone starts during the loan outlives it" in warning
    assert "maximum session duration (1 h by default, up to 12 h)" in warning


def test_extending_a_loan_of_such_a_group_needs_force_again() -> None:
    snapshot = account()
    plan = plan_grant(snapshot, PHONE, "admins", "2h", now=NOW, force=True)
    lent = after_plan(snapshot, plan, "admins")
    phone = lent.user(PHONE)
    assert phone is not None
    lent = lent.with_user(replace(phone, tags={"keyhygiene:grant:admins": "2026-11-28T21:00:00Z"}))
    with pytest.raises(LoanRefused):
        plan_grant(lent, PHONE, "admins", "1d", now=NOW)
    assert plan_grant(lent, PHONE, "admins", "1d", now=NOW, force=True).kind == "grant-extend"


def test_passing_a_role_refuses_the_loan() -> None:
    # A Lambda function created as role photos would keep its access after the loan.
    snapshot = account(ops=_allow(["iam:PassRole", "lambda:*"], "*"))
    with pytest.raises(LoanRefused, match="allows iam:PassRole on any role"):
        plan_grant(snapshot, PHONE, "ops", "2h", now=NOW)


def _with_role(snapshot: Snapshot, role: Role) -> Snapshot:
    return replace(snapshot, roles=(*snapshot.roles, role))


def test_an_assumable_role_with_iam_writes_refuses_the_loan() -> None:
    keys = Role(
        "key-maker",
        iam_arn("role", "key-maker"),
        trust_policy=TRUST_ACCOUNT,
        inline_policies=(InlinePolicy("keys", _allow("iam:CreateAccessKey", "*")),),
    )
    snapshot = _with_role(account(ops=_allow("sts:AssumeRole", "*")), keys)
    with pytest.raises(LoanRefused) as refused:
        plan_grant(snapshot, PHONE, "ops", "2h", now=NOW)
    assert "it may assume role key-maker" in refused.value.message
    assert "iam:CreateAccessKey" in refused.value.message
    # The same role, trusting nobody in this account: only the warning remains.
    closed = replace(keys, trust_policy={"Version": "2012-10-17", "Statement": []})
    plan = plan_grant(
        _with_role(account(ops=_allow("sts:AssumeRole", "*")), closed), PHONE, "ops", "2h", now=NOW
    )
    assert [w for w in plan.warnings if "sts:AssumeRole" in w]
