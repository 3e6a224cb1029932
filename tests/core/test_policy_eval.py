"""keyhygiene.core.policy_eval against AWS's documented policy rules.

Each case cites the rule it proves; the URLs are the ones in the module's
docstring. No AWS, no moto: the evaluator is pure.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keyhygiene.core.policy_eval import (
    ALLOW,
    EXPLICIT_DENY,
    IMPLICIT_DENY,
    UNKNOWN,
    Decision,
    Outcome,
    PolicySource,
    Principal,
    Request,
    StatementRef,
    evaluate,
    request_context,
)

ACCOUNT = "111122223333"
OTHER = "444455556666"

ALICE = Principal.user(f"arn:aws:iam::{ACCOUNT}:user/alice")
BOB = Principal.user(f"arn:aws:iam::{OTHER}:user/bob")  # another account
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/deploy"
DEPLOY = Principal.role_session(ROLE_ARN, session="ci")
ROOT = Principal.root(ACCOUNT)
OTHER_ROOT = Principal.root(OTHER)
CLOUDTRAIL = Principal.service("cloudtrail.amazonaws.com")
ANONYMOUS = Principal.anonymous()

BUCKET = "arn:aws:s3:::photos"
OBJECT = "arn:aws:s3:::photos/2024/cat.jpg"
KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


# ---- building blocks ---------------------------------------------------------------


def stmt(
    effect: str = "Allow",
    action: Any = "s3:GetObject",
    resource: Any = OBJECT,
    *,
    sid: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One statement; `extra` adds Principal, Condition, NotAction... (None drops a key)."""
    found: dict[str, Any] = {"Effect": effect}
    if action is not None:
        found["Action"] = action
    if resource is not None:
        found["Resource"] = resource
    if sid:
        found["Sid"] = sid
    for name, value in extra.items():
        if value is None:
            found.pop(name, None)
        else:
            found[name] = value
    return found


def doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def iam(*statements: dict[str, Any], label: str = "inline policy") -> PolicySource:
    return PolicySource(label, doc(*statements))


def bucket(*statements: dict[str, Any]) -> PolicySource:
    return PolicySource("bucket policy of photos", doc(*statements))


def key_policy(*statements: dict[str, Any]) -> PolicySource:
    return PolicySource("key policy", doc(*statements))


def req(
    principal: Principal = ALICE,
    action: str = "s3:GetObject",
    resource: str = OBJECT,
    **kwargs: Any,
) -> Request:
    if principal.account_id != ACCOUNT and "resource_account" not in kwargs:
        kwargs["resource_account"] = ACCOUNT  # S3 ARNs carry no account
    return Request(principal, action, resource, **kwargs)


def aws(*arns: str) -> dict[str, Any]:
    return {"AWS": list(arns) if len(arns) > 1 else arns[0]}


ALLOW_GET = stmt(sid="AllowGet")
ROOT_ARN = f"arn:aws:iam::{ACCOUNT}:root"
OTHER_ROOT_ARN = f"arn:aws:iam::{OTHER}:root"
# The default key policy's first statement: delegation to IAM.
# https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html
ENABLE_IAM = stmt(
    action="kms:*", resource="*", sid="Enable IAM User Permissions", Principal=aws(ROOT_ARN)
)
IAM_DECRYPT = stmt(action="kms:Decrypt", resource=KEY, sid="UseKey")


def decrypt(principal: Principal = ALICE) -> Request:
    return Request(principal, "kms:Decrypt", KEY)


# ---- AWS's documented examples -----------------------------------------------------

CASES = [
    # Evaluation logic: explicit deny wins, same-account union, cross-account both.
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
    pytest.param(req(), [], None, IMPLICIT_DENY, (), id="nothing-allows-implicit-deny"),
    pytest.param(req(), [iam(ALLOW_GET)], None, ALLOW, ("AllowGet",), id="identity-allow"),
    pytest.param(
        req(),
        [iam(ALLOW_GET, stmt("Deny", "s3:*", "*", sid="DenyS3"))],
        None,
        EXPLICIT_DENY,
        ("DenyS3",),
        id="deny-in-same-policy-wins",
    ),
    pytest.param(
        req(),
        [iam(ALLOW_GET)],
        bucket(stmt("Deny", sid="BucketDeny", Principal="*")),
        EXPLICIT_DENY,
        ("BucketDeny",),
        id="bucket-deny-beats-identity-allow",
    ),
    pytest.param(
        req(),
        [iam(stmt("Deny", "s3:*", "*", sid="NoS3"))],
        bucket(stmt(sid="BucketAllow", Principal=aws(ALICE.arn))),
        EXPLICIT_DENY,
        ("NoS3",),
        id="identity-deny-beats-bucket-allow",
    ),
    pytest.param(
        req(),
        [],
        bucket(stmt(sid="BucketAllow", Principal=aws(ALICE.arn))),
        ALLOW,
        ("BucketAllow",),
        id="same-account-bucket-policy-alone-allows",
    ),
    pytest.param(
        req(),
        [],
        bucket(stmt(sid="ToAccount", Principal=aws(ROOT_ARN))),
        IMPLICIT_DENY,
        (),
        id="same-account-naming-the-account-delegates-to-iam",
    ),
    pytest.param(
        req(),
        [iam(ALLOW_GET)],
        bucket(stmt(sid="ToAccount", Principal=aws(ACCOUNT))),
        ALLOW,
        ("AllowGet",),
        id="same-account-delegation-plus-iam-allows",
    ),
    pytest.param(
        req(),
        [],
        bucket(stmt(sid="ToBob", Principal=aws(BOB.arn))),
        IMPLICIT_DENY,
        (),
        id="bucket-policy-naming-someone-else",
    ),
    pytest.param(req(BOB), [iam(ALLOW_GET)], None, IMPLICIT_DENY, (), id="cross-account-iam-only"),
    pytest.param(
        req(BOB),
        [],
        bucket(stmt(sid="ToBob", Principal=aws(BOB.arn))),
        IMPLICIT_DENY,
        (),
        id="cross-account-bucket-only",
    ),
    pytest.param(
        req(BOB),
        [iam(ALLOW_GET)],
        bucket(stmt(sid="ToBob", Principal=aws(BOB.arn))),
        ALLOW,
        ("AllowGet", "ToBob"),
        id="cross-account-both-sides",
    ),
    pytest.param(
        req(BOB),
        [iam(ALLOW_GET)],
        bucket(stmt(sid="ToOther", Principal=aws(OTHER_ROOT_ARN))),
        ALLOW,
        ("AllowGet", "ToOther"),
        id="cross-account-to-the-account-and-iam",
    ),
    pytest.param(
        req(BOB),
        [iam(ALLOW_GET)],
        bucket(stmt(sid="Everyone", Principal="*")),
        ALLOW,
        ("AllowGet", "Everyone"),
        id="cross-account-principal-star-and-iam",
    ),
    pytest.param(
        req(BOB),
        [],
        bucket(stmt(sid="Everyone", Principal="*")),
        IMPLICIT_DENY,
        (),
        id="cross-account-principal-star-still-needs-iam",
    ),
    pytest.param(
        req(OTHER_ROOT),
        [],
        bucket(stmt(sid="ToOther", Principal=aws(OTHER))),
        ALLOW,
        ("ToOther",),
        id="cross-account-root-needs-no-iam-policy",
    ),
    pytest.param(
        req(BOB),
        [iam(ALLOW_GET)],
        bucket(stmt("Deny", sid="NoOther", Principal=aws(OTHER_ROOT_ARN)), stmt(Principal="*")),
        EXPLICIT_DENY,
        ("NoOther",),
        id="deny-to-an-account-reaches-its-users",
    ),
    # KMS: the key policy is authoritative.
    # https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html
    # https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-modifying-external-accounts.html
    pytest.param(
        decrypt(),
        [iam(IAM_DECRYPT)],
        key_policy(stmt(action="kms:*", resource="*", Principal=aws(ROLE_ARN))),
        IMPLICIT_DENY,
        (),
        id="kms-iam-allow-without-key-policy-delegation",
    ),
    pytest.param(
        decrypt(), [iam(IAM_DECRYPT)], None, IMPLICIT_DENY, (), id="kms-no-key-policy-given"
    ),
    pytest.param(
        decrypt(),
        [iam(IAM_DECRYPT)],
        key_policy(ENABLE_IAM),
        ALLOW,
        ("Enable IAM User Permissions", "UseKey"),
        id="kms-key-policy-delegates-iam-allows",
    ),
    pytest.param(
        decrypt(),
        [],
        key_policy(ENABLE_IAM),
        IMPLICIT_DENY,
        (),
        id="kms-key-policy-delegates-iam-silent",
    ),
    pytest.param(
        decrypt(),
        [],
        key_policy(stmt(action="kms:Decrypt", resource="*", sid="Alice", Principal=aws(ALICE.arn))),
        ALLOW,
        ("Alice",),
        id="kms-key-policy-names-user-no-iam-needed",
    ),
    pytest.param(
        decrypt(),
        [iam(stmt("Deny", "kms:*", "*", sid="NoKms"))],
        key_policy(stmt(action="kms:Decrypt", resource="*", sid="Alice", Principal=aws(ALICE.arn))),
        EXPLICIT_DENY,
        ("NoKms",),
        id="kms-iam-deny-beats-key-policy-allow",
    ),
    pytest.param(
        decrypt(ROOT), [], key_policy(ENABLE_IAM), ALLOW, (), id="kms-root-through-default"
    ),
    pytest.param(
        decrypt(ROOT),
        [],
        key_policy(stmt(action="kms:*", resource="*", Principal=aws(ROLE_ARN))),
        IMPLICIT_DENY,
        (),
        id="kms-root-not-in-key-policy",
    ),
    pytest.param(
        decrypt(BOB),
        [iam(IAM_DECRYPT)],
        key_policy(ENABLE_IAM, stmt(action="kms:Decrypt", resource="*", Principal=aws(OTHER))),
        ALLOW,
        (),
        id="kms-cross-account-key-policy-and-iam",
    ),
    pytest.param(
        decrypt(BOB),
        [],
        key_policy(stmt(action="kms:Decrypt", resource="*", Principal=aws(BOB.arn))),
        IMPLICIT_DENY,
        (),
        id="kms-cross-account-key-policy-alone-is-not-enough",
    ),
    pytest.param(
        decrypt(BOB),
        [iam(IAM_DECRYPT)],
        key_policy(ENABLE_IAM),
        IMPLICIT_DENY,
        (),
        id="kms-cross-account-iam-alone-is-not-enough",
    ),
    pytest.param(
        decrypt(CLOUDTRAIL),
        [],
        key_policy(
            stmt(
                action="kms:Decrypt",
                resource="*",
                sid="Trail",
                Principal={"Service": "cloudtrail.amazonaws.com"},
            )
        ),
        ALLOW,
        ("Trail",),
        id="kms-service-principal-in-key-policy",
    ),
    # The root user: every right of its account unless denied.
    pytest.param(req(ROOT), [], None, ALLOW, (), id="root-allowed-without-any-policy"),
    pytest.param(
        req(ROOT),
        [],
        bucket(stmt("Deny", "s3:*", [BUCKET, f"{BUCKET}/*"], sid="LockOut", Principal="*")),
        EXPLICIT_DENY,
        ("LockOut",),
        id="root-denied-by-bucket-policy",
    ),
    pytest.param(
        req(ROOT),
        [iam(stmt("Deny", "*", "*"))],
        None,
        ALLOW,
        (),
        id="identity-policies-do-not-apply-to-root",
    ),
    # Principal element.
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html
    pytest.param(
        req(ANONYMOUS),
        [],
        bucket(stmt(sid="Public", Principal="*")),
        ALLOW,
        ("Public",),
        id="principal-star-covers-anonymous",
    ),
    pytest.param(
        req(CLOUDTRAIL),
        [],
        bucket(stmt(sid="Public", Principal="*")),
        ALLOW,
        ("Public",),
        id="principal-star-covers-services",
    ),
    pytest.param(
        req(ANONYMOUS),
        [],
        bucket(stmt(Principal=aws(ROOT_ARN))),
        IMPLICIT_DENY,
        (),
        id="anonymous-not-covered-by-the-account",
    ),
    pytest.param(
        req(CLOUDTRAIL),
        [],
        bucket(stmt(Principal={"Service": "config.amazonaws.com"})),
        IMPLICIT_DENY,
        (),
        id="another-service-principal",
    ),
    pytest.param(
        req(DEPLOY),
        [],
        bucket(stmt(sid="Deploy", Principal=aws(ROLE_ARN))),
        ALLOW,
        ("Deploy",),
        id="role-arn-covers-its-sessions",
    ),
    pytest.param(
        req(DEPLOY),
        [],
        bucket(stmt(sid="Session", Principal=aws(DEPLOY.session_arn or ""))),
        ALLOW,
        ("Session",),
        id="session-arn-names-the-session",
    ),
    pytest.param(
        req(ALICE),
        [],
        bucket(stmt(Principal=aws(ROLE_ARN))),
        IMPLICIT_DENY,
        (),
        id="role-arn-does-not-cover-a-user",
    ),
    # NotAction / NotResource.
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notaction.html
    pytest.param(
        req(),
        [iam(stmt(resource="*", sid="AllButIam", action=None, NotAction="iam:*"))],
        None,
        ALLOW,
        ("AllButIam",),
        id="notaction-allows-other-services",
    ),
    pytest.param(
        req(action="iam:CreateUser", resource="*"),
        [iam(stmt(resource="*", action=None, NotAction="iam:*"))],
        None,
        IMPLICIT_DENY,
        (),
        id="notaction-excludes-the-named",
    ),
    pytest.param(
        req(resource="arn:aws:s3:::private/x"),
        [
            iam(
                stmt(action="s3:*", resource="*"),
                stmt("Deny", "s3:*", sid="OnlyPhotos", resource=None, NotResource=f"{BUCKET}/*"),
            )
        ],
        None,
        EXPLICIT_DENY,
        ("OnlyPhotos",),
        id="notresource-deny-everything-else",
    ),
    pytest.param(
        req(),
        [
            iam(
                stmt(action="s3:*", resource="*", sid="S3"),
                stmt("Deny", "s3:*", resource=None, NotResource=f"{BUCKET}/*"),
            )
        ],
        None,
        ALLOW,
        ("S3",),
        id="notresource-spares-the-named",
    ),
    # Case: action names are not case-sensitive, resources are.
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_action.html
    pytest.param(
        req(action="S3:GETOBJECT"),
        [iam(stmt(action="s3:Get*", sid="Lower"))],
        None,
        ALLOW,
        ("Lower",),
        id="action-case-insensitive",
    ),
    pytest.param(
        req(),
        [iam(stmt(action="S3:getobject", sid="Mixed"))],
        None,
        ALLOW,
        ("Mixed",),
        id="action-pattern-case-insensitive",
    ),
    pytest.param(
        req(),
        [iam(stmt(resource="arn:aws:s3:::Photos/*"))],
        None,
        IMPLICIT_DENY,
        (),
        id="resource-case-sensitive",
    ),
    pytest.param(
        req(resource="arn:aws:s3:::photos/a/b"),
        [iam(stmt(resource="arn:aws:s3:::photos/?/b", sid="One"))],
        None,
        ALLOW,
        ("One",),
        id="resource-question-mark-one-character",
    ),
    pytest.param(
        req(resource="arn:aws:s3:::photos/ab/b"),
        [iam(stmt(resource="arn:aws:s3:::photos/?/b"))],
        None,
        IMPLICIT_DENY,
        (),
        id="resource-question-mark-only-one",
    ),
    # Policy variables.
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html
    pytest.param(
        req(resource=f"{BUCKET}/home/alice/notes.txt"),
        [iam(stmt(action="s3:*", resource=f"{BUCKET}/home/${{aws:username}}/*", sid="Home"))],
        None,
        ALLOW,
        ("Home",),
        id="username-variable-own-home",
    ),
    pytest.param(
        req(resource=f"{BUCKET}/home/bob/notes.txt"),
        [iam(stmt(action="s3:*", resource=f"{BUCKET}/home/${{aws:username}}/*"))],
        None,
        IMPLICIT_DENY,
        (),
        id="username-variable-someone-elses-home",
    ),
    pytest.param(
        req(DEPLOY, resource=f"{BUCKET}/home//notes.txt"),
        [iam(stmt(action="s3:*", resource=f"{BUCKET}/home/${{aws:username}}/*"))],
        None,
        IMPLICIT_DENY,
        (),
        id="username-variable-role-matches-nothing",
    ),
    pytest.param(
        req(DEPLOY, resource=f"{BUCKET}/home/shared/notes.txt"),
        [iam(stmt(action="s3:*", resource=f"{BUCKET}/home/${{aws:username, 'shared'}}/*"))],
        None,
        ALLOW,
        (),
        id="variable-default-when-absent",
    ),
    pytest.param(
        req(resource=f"{BUCKET}/home/shared/notes.txt"),
        [iam(stmt(action="s3:*", resource=f"{BUCKET}/home/${{aws:username, 'shared'}}/*"))],
        None,
        IMPLICIT_DENY,
        (),
        id="variable-default-unused-when-present",
    ),
    pytest.param(
        req(resource=f"{BUCKET}/*"),
        [iam(stmt(resource=f"{BUCKET}/${{*}}", sid="Literal"))],
        None,
        ALLOW,
        ("Literal",),
        id="variable-star-is-a-literal-asterisk",
    ),
    pytest.param(
        req(resource=f"{BUCKET}/x"),
        [iam(stmt(resource=f"{BUCKET}/${{*}}"))],
        None,
        IMPLICIT_DENY,
        (),
        id="variable-star-is-no-wildcard",
    ),
]


@pytest.mark.parametrize(("request_", "identity", "resource", "outcome", "sids"), CASES)
def test_documented_cases(
    request_: Request,
    identity: list[PolicySource],
    resource: PolicySource | None,
    outcome: str,
    sids: tuple[str, ...],
) -> None:
    decision = evaluate(request_, identity, resource)
    assert decision.outcome == outcome, decision.summary()
    named = tuple(ref.sid for ref in decision.deciding if ref.sid)
    for sid in sids:
        assert sid in named, decision.deciding


# ---- the root user and its bucket policy -------------------------------------------

LOCK_OUT = bucket(stmt("Deny", "s3:*", [BUCKET, f"{BUCKET}/*"], Principal="*"))


@pytest.mark.parametrize(
    "action", ["s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy"]
)
def test_root_can_always_manage_its_bucket_policy(action: str) -> None:
    # https://docs.aws.amazon.com/AmazonS3/latest/userguide/example-bucket-policies.html
    assert evaluate(req(ROOT, action, BUCKET), [], LOCK_OUT).outcome == ALLOW
    # ... only its own bucket's root; anyone else stays denied.
    assert evaluate(req(OTHER_ROOT, action, BUCKET), [], LOCK_OUT).outcome == EXPLICIT_DENY
    admin = iam(stmt(action="*", resource="*"))
    assert evaluate(req(ALICE, action, BUCKET), [admin], LOCK_OUT).outcome == EXPLICIT_DENY


# ---- condition operators and absent keys -------------------------------------------
# https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html
# https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-logic-multiple-context-keys-or-values.html
# https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys.html

TAGS = "aws:TagKeys"
CONDITIONS = [
    # absent keys
    pytest.param({"StringNotEquals": {"s3:prefix": "x"}}, {}, True, id="StringNotEquals-absent"),
    pytest.param({"ArnNotLike": {"aws:SourceArn": "arn:*"}}, {}, True, id="ArnNotLike-absent"),
    pytest.param({"StringEquals": {"s3:prefix": "x"}}, {}, False, id="StringEquals-absent"),
    pytest.param({"StringLike": {"s3:prefix": "*"}}, {}, False, id="StringLike-star-absent"),
    pytest.param({"StringEqualsIfExists": {"s3:prefix": "x"}}, {}, True, id="IfExists-absent"),
    pytest.param(
        {"StringEqualsIfExists": {"s3:prefix": "x"}},
        {"s3:prefix": "y"},
        False,
        id="IfExists-present-mismatch",
    ),
    pytest.param(
        {"StringEqualsIfExists": {"s3:prefix": "x"}},
        {"s3:prefix": "x"},
        True,
        id="IfExists-present-match",
    ),
    pytest.param({"Null": {"s3:prefix": "true"}}, {}, True, id="Null-true-absent"),
    pytest.param(
        {"Null": {"s3:prefix": "true"}}, {"s3:prefix": "a"}, False, id="Null-true-present"
    ),
    pytest.param(
        {"Null": {"s3:prefix": "false"}}, {"s3:prefix": "a"}, True, id="Null-false-present"
    ),
    pytest.param({"Null": {"s3:prefix": "false"}}, {}, False, id="Null-false-absent"),
    pytest.param({"Null": {"s3:prefix": True}}, {}, True, id="Null-json-boolean"),
    # set operators
    pytest.param(
        {"ForAllValues:StringEquals": {TAGS: ["team", "cost"]}}, {}, True, id="ForAllValues-absent"
    ),
    pytest.param(
        {"ForAllValues:StringEquals": {TAGS: ["team", "cost"]}},
        {TAGS: ["team"]},
        True,
        id="ForAllValues-subset",
    ),
    pytest.param(
        {"ForAllValues:StringEquals": {TAGS: ["team", "cost"]}},
        {TAGS: ["team", "owner"]},
        False,
        id="ForAllValues-extra-value",
    ),
    pytest.param(
        {"ForAllValues:StringEquals": {TAGS: ["team"]}}, {TAGS: []}, True, id="ForAllValues-empty"
    ),
    pytest.param(
        {"ForAnyValue:StringEquals": {TAGS: ["team", "cost"]}}, {}, False, id="ForAnyValue-absent"
    ),
    pytest.param(
        {"ForAnyValue:StringEquals": {TAGS: ["team", "cost"]}},
        {TAGS: ["owner", "cost"]},
        True,
        id="ForAnyValue-one-matches",
    ),
    pytest.param(
        {"ForAnyValue:StringEquals": {TAGS: ["team", "cost"]}},
        {TAGS: ["owner"]},
        False,
        id="ForAnyValue-none-matches",
    ),
    # several values ORed; a negated operator: matches none of them (NOR)
    pytest.param(
        {"StringEquals": {"s3:prefix": ["a", "b"]}}, {"s3:prefix": "b"}, True, id="values-ORed"
    ),
    pytest.param(
        {"StringEquals": {"s3:prefix": ["a", "b"]}}, {"s3:prefix": "c"}, False, id="values-none"
    ),
    pytest.param(
        {"StringNotEquals": {"s3:prefix": ["a", "b"]}},
        {"s3:prefix": "b"},
        False,
        id="negated-values-NOR-one-equal",
    ),
    pytest.param(
        {"StringNotEquals": {"s3:prefix": ["a", "b"]}},
        {"s3:prefix": "c"},
        True,
        id="negated-values-NOR-none-equal",
    ),
    # keys and operators ANDed
    pytest.param(
        {"StringEquals": {"s3:prefix": "a", "s3:delimiter": "/"}},
        {"s3:prefix": "a", "s3:delimiter": "/"},
        True,
        id="keys-ANDed-both",
    ),
    pytest.param(
        {"StringEquals": {"s3:prefix": "a", "s3:delimiter": "/"}},
        {"s3:prefix": "a"},
        False,
        id="keys-ANDed-one-absent",
    ),
    pytest.param(
        {"StringEquals": {"s3:prefix": "a"}, "Bool": {"aws:SecureTransport": "true"}},
        {"s3:prefix": "a", "aws:SecureTransport": False},
        False,
        id="operators-ANDed",
    ),
    # condition key names are case-insensitive, StringEquals values are not
    pytest.param({"StringEquals": {"S3:Prefix": "a"}}, {"s3:prefix": "a"}, True, id="key-case"),
    pytest.param({"StringEquals": {"s3:prefix": "a"}}, {"s3:prefix": "A"}, False, id="value-case"),
    pytest.param(
        {"StringEqualsIgnoreCase": {"s3:prefix": "a"}}, {"s3:prefix": "A"}, True, id="IgnoreCase"
    ),
    pytest.param(
        {"StringNotEqualsIgnoreCase": {"s3:prefix": "a"}},
        {"s3:prefix": "A"},
        False,
        id="NotEqualsIgnoreCase",
    ),
    # Bool
    pytest.param({"Bool": {"aws:SecureTransport": "true"}}, {}, True, id="Bool-secure-transport"),
    pytest.param({"Bool": {"aws:SecureTransport": True}}, {}, True, id="Bool-json-true"),
    pytest.param({"Bool": {"aws:SecureTransport": "false"}}, {}, False, id="Bool-false-on-https"),
    pytest.param(
        {"Bool": {"aws:SecureTransport": "false"}},
        {"aws:SecureTransport": False},
        True,
        id="Bool-false-on-http",
    ),
    # Date: the request carries the time (NOW = 2026-01-01)
    pytest.param(
        {"DateGreaterThan": {"aws:CurrentTime": "2025-12-31T00:00:00Z"}}, {}, True, id="Date-after"
    ),
    pytest.param(
        {"DateGreaterThan": {"aws:CurrentTime": "2026-06-01T00:00:00Z"}},
        {},
        False,
        id="Date-before",
    ),
    pytest.param(
        {"DateLessThan": {"aws:CurrentTime": "2026-06-01"}}, {}, True, id="Date-plain-day"
    ),
    pytest.param(
        {"DateLessThan": {"aws:EpochTime": "1767225601"}}, {}, True, id="Date-epoch-seconds"
    ),
    pytest.param(
        {"DateGreaterThanEquals": {"aws:CurrentTime": "2026-01-01T00:00:00Z"}},
        {},
        True,
        id="Date-equals-bound",
    ),
    # Numeric
    pytest.param({"NumericLessThan": {"s3:max-keys": "10"}}, {"s3:max-keys": 5}, True, id="Num-lt"),
    pytest.param(
        {"NumericLessThan": {"s3:max-keys": "10"}}, {"s3:max-keys": 10}, False, id="Num-lt-equal"
    ),
    pytest.param(
        {"NumericLessThanEquals": {"s3:max-keys": "10"}},
        {"s3:max-keys": "10"},
        True,
        id="Num-le",
    ),
    pytest.param(
        {"NumericGreaterThan": {"s3:max-keys": "10"}}, {"s3:max-keys": 9}, False, id="Num-gt"
    ),
    pytest.param(
        {"NumericNotEquals": {"s3:max-keys": "10"}}, {"s3:max-keys": 11}, True, id="Num-ne"
    ),
    pytest.param({"NumericEquals": {"s3:max-keys": "10"}}, {}, False, id="Num-absent"),
    # Arn operators: each of the six colon-separated parts on its own
    pytest.param(
        {"ArnLike": {"aws:SourceArn": "arn:aws:cloudtrail:*:111122223333:trail/*"}},
        {"aws:SourceArn": "arn:aws:cloudtrail:us-east-1:111122223333:trail/main"},
        True,
        id="ArnLike-wildcards",
    ),
    pytest.param(
        {"ArnLike": {"aws:SourceArn": "arn:aws:sns:*:111122223333:topic"}},
        {"aws:SourceArn": "arn:aws:sns:us-east-1:999999999999:111122223333:topic"},
        False,
        id="ArnLike-wildcard-stays-in-its-part",
    ),
    pytest.param(
        {"ArnLike": {"aws:SourceArn": "arn:aws:iam::111122223333:*"}},
        {"aws:SourceArn": "arn:aws:sts::111122223333:assumed-role/deploy/ci"},
        False,
        id="ArnLike-service-part",
    ),
    pytest.param(
        {"ArnEquals": {"aws:SourceArn": "arn:aws:iam::*:role/deploy"}},
        {"aws:SourceArn": ROLE_ARN},
        True,
        id="ArnEquals-wildcards-too",
    ),
    pytest.param(
        {"ArnNotLike": {"aws:SourceArn": "arn:aws:iam::111122223333:*"}},
        {"aws:SourceArn": f"arn:aws:iam::{OTHER}:role/x"},
        True,
        id="ArnNotLike-other-account",
    ),
    # StringLike
    pytest.param(
        {"StringLike": {"s3:prefix": "home/*"}}, {"s3:prefix": "home/alice/"}, True, id="Like-star"
    ),
    pytest.param(
        {"StringLike": {"s3:prefix": "home/?"}}, {"s3:prefix": "home/ab"}, False, id="Like-question"
    ),
    pytest.param(
        {"StringNotLike": {"s3:prefix": ["home/*", "tmp/*"]}},
        {"s3:prefix": "tmp/x"},
        False,
        id="NotLike-NOR",
    ),
    pytest.param(
        {"StringLike": {"s3:prefix": "home/${aws:username}/*"}},
        {"s3:prefix": "home/alice/x"},
        True,
        id="Like-with-policy-variable",
    ),
    pytest.param(
        {"StringLike": {"s3:prefix": "home/${aws:username}/*"}},
        {"s3:prefix": "home/bob/x"},
        False,
        id="Like-with-policy-variable-other",
    ),
    pytest.param(
        {"StringEquals": {"s3:prefix": "${*}"}}, {"s3:prefix": "*"}, True, id="Equals-literal-star"
    ),
    pytest.param(
        {"StringLike": {"s3:prefix": "a${*}"}}, {"s3:prefix": "ab"}, False, id="Like-literal-star"
    ),
    # IP addresses
    pytest.param(
        {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}},
        {"aws:SourceIp": "203.0.113.7"},
        True,
        id="Ip-in",
    ),
    pytest.param(
        {"IpAddress": {"aws:SourceIp": ["203.0.113.0/24", "2001:db8::/32"]}},
        {"aws:SourceIp": "2001:db8::1"},
        True,
        id="Ip-v6-ORed",
    ),
    pytest.param(
        {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}},
        {"aws:SourceIp": "198.51.100.1"},
        False,
        id="Ip-out",
    ),
    pytest.param({"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, {}, False, id="Ip-absent"),
    pytest.param({"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, {}, True, id="NotIp-absent"),
    pytest.param(
        {"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}},
        {"aws:SourceIp": "203.0.113.9"},
        False,
        id="NotIp-in",
    ),
    pytest.param(
        {"IpAddress": {"aws:SourceIp": "203.0.113.7"}},
        {"aws:SourceIp": "203.0.113.7"},
        True,
        id="Ip-single-address",
    ),
]


@pytest.mark.parametrize(("condition", "context", "holds"), CONDITIONS)
def test_condition_operators(
    condition: dict[str, Any], context: dict[str, Any], holds: bool
) -> None:
    """An Allow with the condition allows exactly when the condition holds."""
    allow = iam(stmt(sid="Cond", Condition=condition))
    decision = evaluate(req(context=context, now=NOW), [allow])
    assert decision.outcome == (ALLOW if holds else IMPLICIT_DENY), decision.summary()


def test_loan_expires_with_date_condition() -> None:
    """A loan: an Allow plus a Deny once aws:CurrentTime passes the expiry."""
    loan = iam(
        stmt(sid="Loan"),
        stmt(
            "Deny",
            sid="LoanExpired",
            Condition={"DateGreaterThan": {"aws:CurrentTime": "2026-03-01T00:00:00Z"}},
        ),
    )
    before = evaluate(req(now=datetime(2026, 2, 28, 23, 59, tzinfo=timezone.utc)), [loan])
    after = evaluate(req(now=datetime(2026, 3, 1, 0, 1, tzinfo=timezone.utc)), [loan])
    assert (before.outcome, [r.sid for r in before.deciding]) == (ALLOW, ["Loan"])
    assert (after.outcome, [r.sid for r in after.deciding]) == (EXPLICIT_DENY, ["LoanExpired"])


# ---- global condition keys ---------------------------------------------------------
# https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html


def everyone_if(condition: dict[str, Any], effect: str = "Allow") -> PolicySource:
    return bucket(stmt(effect, sid="If", Principal="*", Condition=condition))


@pytest.mark.parametrize(
    ("principal", "condition", "holds"),
    [
        pytest.param(DEPLOY, {"ArnEquals": {"aws:PrincipalArn": ROLE_ARN}}, True, id="role-arn"),
        pytest.param(
            DEPLOY,
            {"StringEquals": {"aws:PrincipalArn": DEPLOY.session_arn}},
            False,
            id="not-the-session-arn",
        ),
        pytest.param(ALICE, {"ArnEquals": {"aws:PrincipalArn": ALICE.arn}}, True, id="user-arn"),
        pytest.param(ROOT, {"ArnEquals": {"aws:PrincipalArn": ROOT_ARN}}, True, id="root-arn"),
        pytest.param(
            CLOUDTRAIL, {"Bool": {"aws:PrincipalIsAWSService": "true"}}, True, id="service-true"
        ),
        pytest.param(
            ALICE, {"Bool": {"aws:PrincipalIsAWSService": "true"}}, False, id="user-false"
        ),
        pytest.param(
            DEPLOY, {"Bool": {"aws:PrincipalIsAWSService": "false"}}, True, id="role-false"
        ),
        pytest.param(
            CLOUDTRAIL,
            {"Null": {"aws:PrincipalArn": "true"}},
            True,
            id="service-has-no-principal-arn",
        ),
        pytest.param(
            CLOUDTRAIL,
            {"ArnNotLike": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:*"}},
            True,
            id="service-ArnNotLike-principal-arn",
        ),
        pytest.param(
            ALICE,
            {"ArnNotLike": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:*"}},
            False,
            id="user-ArnNotLike-principal-arn",
        ),
        pytest.param(
            CLOUDTRAIL,
            {"StringEquals": {"aws:PrincipalServiceName": "cloudtrail.amazonaws.com"}},
            True,
            id="service-name",
        ),
        pytest.param(ALICE, {"StringEquals": {"aws:username": "alice"}}, True, id="username"),
        pytest.param(DEPLOY, {"Null": {"aws:username": "true"}}, True, id="role-has-no-username"),
        pytest.param(
            DEPLOY, {"StringEquals": {"aws:PrincipalAccount": ACCOUNT}}, True, id="principal-acct"
        ),
        pytest.param(
            ALICE, {"Null": {"aws:MultiFactorAuthPresent": "true"}}, True, id="mfa-absent"
        ),
        pytest.param(
            ANONYMOUS,
            {"Null": {"aws:PrincipalIsAWSService": "true"}},
            True,
            id="anonymous-unsigned",
        ),
    ],
)
def test_global_condition_keys(
    principal: Principal, condition: dict[str, Any], holds: bool
) -> None:
    decision = evaluate(req(principal), [], everyone_if(condition))
    assert decision.outcome == (ALLOW if holds else IMPLICIT_DENY), decision.summary()


def test_arn_not_like_principal_arn_deny_also_denies_services() -> None:
    """The documented pitfall: a Deny on ArnNotLike aws:PrincipalArn reaches services."""
    policy = bucket(
        stmt(sid="Trail", action="s3:PutObject", Principal={"Service": CLOUDTRAIL.arn}),
        stmt(
            "Deny",
            "s3:PutObject",
            sid="OnlyOurs",
            Principal="*",
            Condition={"ArnNotLike": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:*"}},
        ),
    )
    trail = evaluate(req(CLOUDTRAIL, "s3:PutObject"), [], policy)
    assert trail.outcome == EXPLICIT_DENY
    assert [r.sid for r in trail.deciding] == ["OnlyOurs"]
    admin = iam(stmt(action="s3:*"))
    assert evaluate(req(ALICE, "s3:PutObject"), [admin], policy).outcome == ALLOW
    assert evaluate(req(BOB, "s3:PutObject"), [admin], policy).outcome == EXPLICIT_DENY


@pytest.mark.parametrize(
    ("operator", "mfa", "outcome"),
    [
        pytest.param("BoolIfExists", None, EXPLICIT_DENY, id="IfExists-long-term-key-denied"),
        pytest.param("Bool", None, ALLOW, id="Bool-long-term-key-not-denied"),
        pytest.param("BoolIfExists", False, EXPLICIT_DENY, id="IfExists-no-mfa-session"),
        pytest.param("Bool", False, EXPLICIT_DENY, id="Bool-no-mfa-session"),
        pytest.param("BoolIfExists", True, ALLOW, id="IfExists-mfa-session"),
        pytest.param("Bool", True, ALLOW, id="Bool-mfa-session"),
    ],
)
def test_mfa_deny_pattern(operator: str, mfa: bool | None, outcome: str) -> None:
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html#condition-keys-multifactorauthpresent
    policy = iam(
        stmt(sid="Work"),
        stmt(
            "Deny",
            "*",
            "*",
            sid="NoMfaNoAccess",
            Condition={operator: {"aws:MultiFactorAuthPresent": "false"}},
        ),
    )
    context = {} if mfa is None else {"aws:MultiFactorAuthPresent": mfa}
    decision = evaluate(req(context=context), [policy])
    assert decision.outcome == outcome, decision.summary()


def test_request_context() -> None:
    session = request_context(req(DEPLOY, now=NOW))
    assert session["aws:principalarn"] == (ROLE_ARN,)
    assert session["aws:principalisawsservice"] == ("false",)
    assert session["aws:rolesessionname"] == ("ci",)
    assert session["aws:currenttime"] == ("2026-01-01T00:00:00Z",)
    assert "aws:username" not in session
    assert "aws:multifactorauthpresent" not in session
    service = request_context(req(CLOUDTRAIL))
    assert service["aws:principalisawsservice"] == ("true",)
    assert "aws:principalarn" not in service
    assert "aws:principalisawsservice" not in request_context(req(ANONYMOUS))
    # The request's own context wins; None removes a key.
    assert "aws:securetransport" not in request_context(req(context={"aws:SecureTransport": None}))


# ---- unknown, never allow ----------------------------------------------------------

FUZZY = {"StringFuzzy": {"s3:prefix": "a"}}
UNKNOWN_CASES = [
    pytest.param([iam(stmt(Condition=FUZZY))], None, id="unknown-operator-in-allow"),
    pytest.param(
        [iam(ALLOW_GET, stmt("Deny", Condition=FUZZY))], None, id="unknown-operator-in-deny"
    ),
    pytest.param([PolicySource("AWS managed policy", None)], None, id="unread-identity-policy"),
    pytest.param(
        [], bucket(stmt(NotPrincipal=aws(ALICE.arn))), id="notprincipal-allow-naming-caller"
    ),
    pytest.param(
        [iam(ALLOW_GET)],
        bucket(stmt("Deny", NotPrincipal=aws(ALICE.arn))),
        id="notprincipal-deny-naming-caller-without-its-account",
    ),
    pytest.param(
        [],
        bucket(stmt(Principal={"CanonicalUser": "79a59df900b949e55d96a1e698fbace"})),
        id="canonical",
    ),
    pytest.param([iam(stmt(effect="Permit"))], None, id="invalid-effect"),
    pytest.param([iam(stmt(action=None))], None, id="no-action-element"),
    pytest.param([iam(stmt(Condition={"StringEquals": "s3:prefix"}))], None, id="malformed-block"),
    pytest.param(
        [iam(stmt(Condition={"NumericLessThan": {"s3:max-keys": "ten"}}))],
        None,
        id="not-a-number",
    ),
    pytest.param(
        [iam(stmt(Condition={"StringEquals": {"aws:TagKeys": "team"}}))],
        None,
        id="multivalued-key-without-set-operator",
    ),
    pytest.param(
        [iam({"Effect": "Allow", "Action": "s3:GetObject"})], None, id="no-resource-element"
    ),
]


@pytest.mark.parametrize(("identity", "resource"), UNKNOWN_CASES)
def test_unknown_is_never_allow(
    identity: list[PolicySource], resource: PolicySource | None
) -> None:
    context = {"s3:prefix": "a", "s3:max-keys": "5", "aws:TagKeys": ["team", "cost"]}
    decision = evaluate(req(context=context), identity, resource)
    assert decision.outcome == UNKNOWN, decision.summary()
    assert decision.unknowns
    assert not decision.allowed
    # An explicit deny still wins over whatever could not be told.
    deny = iam(stmt("Deny", "*", "*", sid="Stop"), label="guard")
    denied = evaluate(req(context=context), [*identity, deny], resource)
    assert denied.outcome == EXPLICIT_DENY
    assert [r.sid for r in denied.deciding] == ["Stop"]


def test_unknown_allow_next_to_a_known_allow_allows() -> None:
    """Whatever an unread policy says, it cannot take an Allow away except by denying."""
    decision = evaluate(req(), [iam(ALLOW_GET), iam(stmt(Condition=FUZZY))])
    assert decision.outcome == ALLOW
    unread = evaluate(req(), [iam(ALLOW_GET), PolicySource("managed", None)])
    assert unread.outcome == UNKNOWN  # it might deny


def test_unknown_deny_cannot_make_an_implicit_deny_allow() -> None:
    decision = evaluate(req(), [iam(stmt("Deny", Condition=FUZZY))])
    assert decision.outcome == IMPLICIT_DENY


def test_notprincipal_not_naming_the_caller_applies() -> None:
    policy = bucket(stmt("Deny", sid="AllButBob", NotPrincipal=aws(BOB.arn)))
    decision = evaluate(req(), [iam(ALLOW_GET)], policy)
    assert decision.outcome == EXPLICIT_DENY
    assert [r.sid for r in decision.deciding] == ["AllButBob"]


# ---- deciding statements are named -------------------------------------------------


def test_deciding_statements_are_named() -> None:
    denied = evaluate(req(), [iam(ALLOW_GET, stmt("Deny", sid="Stop"), label="alice-inline")])
    assert denied.deciding == (StatementRef("alice-inline", 1, "Stop", "Deny"),)
    assert str(denied.deciding[0]) == "Deny statement 'Stop' of alice-inline"
    assert denied.denied and not denied.allowed
    assert "Stop" in denied.summary()
    allowed = evaluate(req(), [iam(stmt())])
    assert allowed.deciding == (StatementRef("inline policy", 0, None, "Allow"),)
    assert str(allowed.deciding[0]) == "Allow statement #1 of inline policy"
    assert isinstance(allowed, Decision) and allowed.allowed
    assert evaluate(req(), []).deciding == ()


# ---- properties --------------------------------------------------------------------

OUTCOMES = set(get_args(Outcome))
PRINCIPALS = [ALICE, BOB, DEPLOY, ROOT, OTHER_ROOT, CLOUDTRAIL, ANONYMOUS]
USERS_AND_ROLES = [ALICE, BOB, DEPLOY]
ACTIONS = ["s3:GetObject", "s3:PutObject", "s3:GetBucketPolicy", "kms:Decrypt", "iam:ListUsers"]
RESOURCES = [OBJECT, BUCKET, "arn:aws:s3:::other/x", KEY, "*", f"{BUCKET}/home/alice/x"]
ACTION_PATTERNS = ["*", "s3:*", "s3:Get*", "s3:GetObject", "kms:*", "kms:Decrypt", "iam:*"]
RESOURCE_PATTERNS = ["*", OBJECT, f"{BUCKET}/*", BUCKET, KEY, f"{BUCKET}/home/${{aws:username}}/*"]
PRINCIPAL_ELEMENTS: list[Any] = [
    "*",
    aws(ALICE.arn),
    aws(BOB.arn),
    aws(ROLE_ARN),
    aws(ROOT_ARN),
    aws(OTHER),
    {"Service": CLOUDTRAIL.arn},
    {"CanonicalUser": "abc"},
]
CONDITION_ELEMENTS: list[Any] = [
    {"Bool": {"aws:SecureTransport": "true"}},
    {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}},
    {"StringEquals": {"s3:prefix": "a"}},
    {"StringNotEquals": {"s3:prefix": ["a", "b"]}},
    {"ArnNotLike": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:*"}},
    {"Null": {"aws:username": "true"}},
    {"DateGreaterThan": {"aws:CurrentTime": "2025-06-01T00:00:00Z"}},
    {"ForAnyValue:StringEquals": {"aws:TagKeys": "team"}},
    FUZZY,
]


def statements(*, resource_side: bool, effect: str | None = None) -> st.SearchStrategy[dict]:
    def build(
        chosen_effect: str,
        sid: int,
        negate_action: bool,
        action: list[str],
        negate_resource: bool,
        resource: list[str],
        condition: Any,
        principal: Any,
        not_principal: bool,
    ) -> dict[str, Any]:
        found: dict[str, Any] = {"Sid": f"S{sid}", "Effect": chosen_effect}
        found["NotAction" if negate_action else "Action"] = action
        found["NotResource" if negate_resource else "Resource"] = resource
        if condition is not None:
            found["Condition"] = condition
        if resource_side:
            found["NotPrincipal" if not_principal else "Principal"] = principal
        return found

    return st.builds(
        build,
        st.just(effect) if effect else st.sampled_from(["Allow", "Deny"]),
        st.integers(0, 99),
        st.sampled_from([False, False, False, True]),
        st.lists(st.sampled_from(ACTION_PATTERNS), min_size=1, max_size=2),
        st.sampled_from([False, False, False, True]),
        st.lists(st.sampled_from(RESOURCE_PATTERNS), min_size=1, max_size=2),
        st.none() | st.sampled_from(CONDITION_ELEMENTS),
        st.sampled_from(PRINCIPAL_ELEMENTS),
        st.sampled_from([False, False, False, True]),
    )


def documents(*, resource_side: bool) -> st.SearchStrategy[list[dict]]:
    return st.lists(statements(resource_side=resource_side), max_size=4)


CONTEXTS = st.fixed_dictionaries(
    {},
    optional={
        "s3:prefix": st.sampled_from(["a", "b", "c"]),
        "aws:MultiFactorAuthPresent": st.booleans(),
        "aws:TagKeys": st.lists(st.sampled_from(["team", "cost"]), max_size=2),
    },
)


@st.composite
def scenarios(draw: st.DrawFn, principals: list[Principal] = PRINCIPALS) -> dict[str, Any]:
    principal = draw(st.sampled_from(principals))
    return {
        "request": Request(
            principal,
            draw(st.sampled_from(ACTIONS)),
            draw(st.sampled_from(RESOURCES)),
            draw(CONTEXTS),
            resource_account=ACCOUNT,
            secure_transport=draw(st.booleans()),
        ),
        "identity": draw(st.lists(documents(resource_side=False), max_size=2)),
        "resource": draw(st.none() | documents(resource_side=True)),
    }


def run(request: Request, identity: list[list[dict]], resource: list[dict] | None) -> Decision:
    return evaluate(
        request,
        [PolicySource(f"identity {i}", doc(*d)) for i, d in enumerate(identity)],
        None if resource is None else PolicySource("resource policy", doc(*resource)),
    )


# The autouse fixtures of tests/conftest.py only isolate AWS files; every example is pure.
PROPERTY = settings(
    max_examples=75, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PROPERTY
@given(scenarios(), st.data())
def test_statement_order_does_not_matter(scenario: dict[str, Any], data: st.DataObject) -> None:
    before = run(**scenario)
    shuffled = {
        **scenario,
        "identity": [data.draw(st.permutations(d)) for d in scenario["identity"]],
        "resource": None
        if scenario["resource"] is None
        else data.draw(st.permutations(scenario["resource"])),
    }
    assert run(**shuffled).outcome == before.outcome
    assert before.outcome in OUTCOMES


def _add(scenario: dict[str, Any], statement: dict[str, Any], where: int) -> dict[str, Any]:
    """`scenario` with `statement` in identity document `where`, or the resource policy (-1)."""
    identity = [list(d) for d in scenario["identity"]]
    resource = None if scenario["resource"] is None else list(scenario["resource"])
    if where < 0:
        statement = {**statement, "Principal": statement.get("Principal", "*")}
        resource = [*(resource or []), statement]
    elif where < len(identity):
        statement = {k: v for k, v in statement.items() if k not in ("Principal", "NotPrincipal")}
        identity[where].append(statement)
    else:
        statement = {k: v for k, v in statement.items() if k not in ("Principal", "NotPrincipal")}
        identity.append([statement])
    return {**scenario, "identity": identity, "resource": resource}


@PROPERTY
@given(scenarios(), statements(resource_side=True, effect="Deny"), st.integers(-1, 2))
def test_adding_a_deny_never_allows(
    scenario: dict[str, Any], deny: dict[str, Any], where: int
) -> None:
    before = run(**scenario).outcome
    after = run(**_add(scenario, deny, where)).outcome
    assert after in OUTCOMES
    if before != ALLOW:
        assert after != ALLOW, (before, after)
    if before == EXPLICIT_DENY:
        assert after == EXPLICIT_DENY


@PROPERTY
@given(scenarios(), statements(resource_side=True, effect="Allow"), st.integers(-1, 2))
def test_adding_an_allow_never_denies(
    scenario: dict[str, Any], allow: dict[str, Any], where: int
) -> None:
    before = run(**scenario).outcome
    after = run(**_add(scenario, allow, where)).outcome
    assert after in OUTCOMES
    if before == ALLOW:
        assert after not in (EXPLICIT_DENY, IMPLICIT_DENY), (before, after)
    if before == EXPLICIT_DENY:
        assert after == EXPLICIT_DENY


@PROPERTY
@given(scenarios(USERS_AND_ROLES), st.integers(0, 2), st.integers(0, 4))
def test_unconditional_deny_everything_denies_everything(
    scenario: dict[str, Any], where: int, position: int
) -> None:
    identity = [list(d) for d in scenario["identity"]] or [[]]
    target = identity[where % len(identity)]
    target.insert(position % (len(target) + 1), {"Effect": "Deny", "Action": "*", "Resource": "*"})
    decision = run(scenario["request"], identity, scenario["resource"])
    assert decision.outcome == EXPLICIT_DENY
    assert decision.denied


@PROPERTY
@given(scenarios())
def test_outcome_is_one_of_four(scenario: dict[str, Any]) -> None:
    decision = run(**scenario)
    assert decision.outcome in OUTCOMES
    assert decision.allowed == (decision.outcome == ALLOW)
    if decision.outcome == EXPLICIT_DENY:
        assert decision.deciding and all(ref.effect == "Deny" for ref in decision.deciding)


def test_a_deny_notprincipal_naming_the_caller_and_its_account_spares_it() -> None:
    # AWS: with NotPrincipal in a Deny, name the principal and its account.
    document = bucket(stmt("Deny", NotPrincipal=aws(ALICE.arn, ROOT_ARN)))
    assert evaluate(req(), [iam(ALLOW_GET)], document).outcome == "allow"
    carol = Principal.user(f"arn:aws:iam::{ACCOUNT}:user/carol")
    assert evaluate(req(carol), [iam(ALLOW_GET)], document).outcome == "explicit-deny"
