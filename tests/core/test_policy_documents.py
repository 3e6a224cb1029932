"""The whitelist engine and policy helpers: pure functions, no AWS."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keyhygiene.core.errors import BadInput
from keyhygiene.core.policy_documents import (
    BUCKET_ACTIONS,
    BUCKET_READ_CONFIG_ACTIONS,
    KEY_ACTIONS,
    SID_BUCKET_ALLOW,
    SID_BUCKET_DENY_AWS_MANAGED_KEY,
    SID_BUCKET_DENY_CONFIGURATION,
    SID_BUCKET_DENY_OTHER_KEY,
    SID_BUCKET_DENY_OTHERS,
    SID_BUCKET_DENY_SSE_C,
    SID_BUCKET_DENY_WRONG_ENCRYPTION,
    SID_KEY_ALLOW_USE,
    SID_KEY_DENY_OTHERS_USE,
    PolicyLockout,
    PolicyTooLarge,
    admin_like,
    allowed_principals,
    as_document,
    bucket_policy_with_whitelist,
    caller_principal_arn,
    check_lockout,
    default_key_policy,
    ensure_within_limit,
    foreign_accounts,
    has_unencrypted_upload_deny,
    is_own_statement,
    is_public,
    key_policy_with_whitelist,
    orphaned_principal_ids,
    policy_diff,
    policy_size,
    remove_principal,
    statements,
    whitelisted_principals,
)

ACCOUNT = "123456789012"
OTHER_ACCOUNT = "210987654321"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
ADMIN = f"arn:aws:iam::{ACCOUNT}:user/admin-desktop"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice-laptop"
BOB = f"arn:aws:iam::{ACCOUNT}:user/bob-desktop"
APP_ROLE = f"arn:aws:iam::{ACCOUNT}:role/photos-app"
KEY_ARN = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
BUCKET = "photos-data"
BUCKET_ARN = f"arn:aws:s3:::{BUCKET}"


def by_sid(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in statements(document) if "Sid" in s}


def foreign(document: Any) -> list[Any]:
    raw = (as_document(document) or {}).get("Statement", [])
    raw = [raw] if isinstance(raw, dict) else raw
    return [s for s in raw if not is_own_statement(s)]


def whitelist_bucket(
    document: Any, principals: Any = (ALICE, BOB), **kwargs: Any
) -> dict[str, Any]:
    kwargs.setdefault("key_arn", KEY_ARN)
    kwargs.setdefault("keep_admin_arns", (ROOT, ADMIN))
    return bucket_policy_with_whitelist(document, bucket=BUCKET, principals=principals, **kwargs)


# ---- bucket policies ---------------------------------------------------------


OWN_BUCKET_SIDS = [
    SID_BUCKET_ALLOW,
    SID_BUCKET_DENY_OTHERS,
    SID_BUCKET_DENY_CONFIGURATION,
    SID_BUCKET_DENY_WRONG_ENCRYPTION,
    SID_BUCKET_DENY_SSE_C,
    SID_BUCKET_DENY_AWS_MANAGED_KEY,
    SID_BUCKET_DENY_OTHER_KEY,
]


SERVICE_LINKED = f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/*"


def unless(principals: list[str]) -> dict[str, Any]:
    # Admins by ARN only (a principal tag can come from a session tag), plus the
    # account's service-linked roles and AWS services.
    return {
        "ArnNotLike": {"aws:PrincipalArn": sorted([*principals, SERVICE_LINKED])},
        "BoolIfExists": {"aws:PrincipalIsAWSService": "false"},
    }


def test_bucket_policy_from_nothing_has_our_statements() -> None:
    # What these statements allow and deny is proven on AWS's rules in
    # test_written_policies.py; this test pins their shape.
    policy = whitelist_bucket(None, principals=[BOB, ALICE, BOB])
    assert policy["Version"] == "2012-10-17"
    assert [s["Sid"] for s in policy["Statement"]] == OWN_BUCKET_SIDS
    sids = by_sid(policy)
    allow = sids[SID_BUCKET_ALLOW]
    assert allow["Effect"] == "Allow"
    assert allow["Principal"] == {"AWS": [ALICE, BOB]}
    assert set(allow["Action"]) == set(BUCKET_ACTIONS)
    assert allow["Resource"] == [BUCKET_ARN, f"{BUCKET_ARN}/*"]

    deny = sids[SID_BUCKET_DENY_OTHERS]
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*"
    spared = sorted({*BUCKET_ACTIONS, *BUCKET_READ_CONFIG_ACTIONS})
    assert deny["Action"] == spared
    assert deny["Resource"] == [BUCKET_ARN, f"{BUCKET_ARN}/*"]
    assert deny["Condition"] == unless(sorted([ADMIN, ALICE, BOB, ROOT]))
    configuration = sids[SID_BUCKET_DENY_CONFIGURATION]
    assert configuration["NotAction"] == spared
    assert configuration["Condition"] == unless(sorted([ADMIN, ROOT]))

    wrong = sids[SID_BUCKET_DENY_WRONG_ENCRYPTION]
    assert wrong["Action"] == "s3:PutObject"
    assert wrong["Resource"] == f"{BUCKET_ARN}/*"
    assert wrong["Condition"] == {
        "StringNotEquals": {"s3:x-amz-server-side-encryption": ["aws:kms", "aws:kms:dsse"]},
        "Null": {"s3:x-amz-server-side-encryption": "false"},
    }
    assert sids[SID_BUCKET_DENY_OTHER_KEY]["Condition"] == {
        "StringNotEquals": {"s3:x-amz-server-side-encryption-aws-kms-key-id": KEY_ARN},
        "Null": {"s3:x-amz-server-side-encryption-aws-kms-key-id": "false"},
    }
    assert has_unencrypted_upload_deny(policy)
    assert not is_public(policy)
    json.dumps(policy)  # plain JSON


def test_bucket_policy_without_key_has_no_key_statement() -> None:
    sids = by_sid(whitelist_bucket(None, key_arn=None))
    assert SID_BUCKET_DENY_OTHER_KEY not in sids
    assert SID_BUCKET_DENY_AWS_MANAGED_KEY not in sids
    assert SID_BUCKET_DENY_WRONG_ENCRYPTION in sids and SID_BUCKET_DENY_SSE_C in sids


def test_bucket_whitelist_keeps_foreign_statements_in_place_and_order() -> None:
    secure_transport = {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Action": "s3:*",
        "Resource": [BUCKET_ARN, f"{BUCKET_ARN}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
    no_sid = {
        "Effect": "Allow",
        "Principal": {"Service": "logging.s3.amazonaws.com"},
        "Action": "s3:PutObject",
        "Resource": f"{BUCKET_ARN}/logs/*",
    }
    current = {
        "Version": "2012-10-17",
        "Id": "custom",
        "Statement": [
            secure_transport,
            {"Sid": SID_BUCKET_ALLOW, "Effect": "Allow", "Principal": {"AWS": ALICE}},
            no_sid,
            {"Sid": "KeyHygieneSomethingOld", "Effect": "Deny", "Principal": "*"},
        ],
    }
    before = copy.deepcopy(current)
    policy = whitelist_bucket(current)
    assert current == before, "the input document must not be modified"
    assert list(policy) == ["Version", "Id", "Statement"]
    assert policy["Statement"][0] == secure_transport
    assert [s.get("Sid") for s in policy["Statement"]] == [
        "DenyInsecureTransport",
        *OWN_BUCKET_SIDS,
        None,
    ]
    assert policy["Statement"][-1] == no_sid
    assert foreign(policy) == foreign(current)


def test_single_statement_object_and_json_text_are_accepted() -> None:
    single = {
        "Version": "2012-10-17",
        "Statement": {
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": "*",
        },
    }
    policy = whitelist_bucket(json.dumps(single))
    assert policy["Statement"][0] == single["Statement"]
    assert len(policy["Statement"]) == 1 + len(OWN_BUCKET_SIDS)


def test_bucket_whitelist_is_idempotent_and_sorted() -> None:
    once = whitelist_bucket({"Statement": [{"Sid": "Mine", "Effect": "Deny", "Principal": "*"}]})
    twice = whitelist_bucket(once, principals=(BOB, ALICE))
    assert once == twice
    assert policy_diff(once, twice) == []


def test_empty_bucket_whitelist_keeps_the_deny() -> None:
    policy = whitelist_bucket(whitelist_bucket(None), principals=())
    sids = by_sid(policy)
    assert SID_BUCKET_ALLOW not in sids
    excepted = sids[SID_BUCKET_DENY_OTHERS]["Condition"]["ArnNotLike"]["aws:PrincipalArn"]
    assert excepted == sorted([ADMIN, ROOT, SERVICE_LINKED])
    assert whitelisted_principals(policy) == frozenset()


def test_a_deny_with_no_exception_at_all_is_refused() -> None:
    with pytest.raises(BadInput, match="no admin could change"):
        whitelist_bucket(None, principals=(), keep_admin_arns=())


@pytest.mark.parametrize(
    "bad",
    [
        "*",
        ACCOUNT,
        "AIDAABCDEFGHIJKLMNOPQ",
        f"arn:aws:iam::{ACCOUNT}:user/*",
        f"arn:aws:iam::{ACCOUNT}:group/devs",
        "",
    ],
)
def test_principals_that_are_not_user_or_role_arns_are_refused(bad: str) -> None:
    with pytest.raises(BadInput):
        whitelist_bucket(None, principals=(ALICE, bad))
    with pytest.raises(BadInput):
        key_policy_with_whitelist(None, principals=(bad,))


def test_bad_bucket_name_and_key_id_are_refused() -> None:
    with pytest.raises(BadInput):
        bucket_policy_with_whitelist(
            None, bucket="a/b*", principals=(ALICE,), keep_admin_arns=(ROOT,)
        )
    with pytest.raises(BadInput, match="not a KMS key ARN"):
        whitelist_bucket(None, key_arn="alias/photos")


def test_assumed_role_admin_is_kept_as_its_role() -> None:
    session = f"arn:aws:sts::{ACCOUNT}:assumed-role/Admin/alice"
    assert caller_principal_arn(session) == f"arn:aws:iam::{ACCOUNT}:role/Admin"
    assert caller_principal_arn(ALICE) == ALICE
    policy = whitelist_bucket(None, keep_admin_arns=(session,))
    excepted = by_sid(policy)[SID_BUCKET_DENY_OTHERS]["Condition"]["ArnNotLike"]["aws:PrincipalArn"]
    assert f"arn:aws:iam::{ACCOUNT}:role/Admin" in excepted
    check_lockout(policy, "bucket", session, ACCOUNT, resource_arn=BUCKET_ARN)


def test_partition_follows_the_principals() -> None:
    cn_user = "arn:aws-cn:iam::123456789012:user/alice-laptop"
    cn_root = "arn:aws-cn:iam::123456789012:root"
    policy = bucket_policy_with_whitelist(
        None, bucket=BUCKET, principals=(cn_user,), keep_admin_arns=(cn_root,)
    )
    assert by_sid(policy)[SID_BUCKET_ALLOW]["Resource"][0] == f"arn:aws-cn:s3:::{BUCKET}"


# ---- key policies ------------------------------------------------------------


def test_key_policy_adds_use_statement_after_the_default() -> None:
    default = default_key_policy(ACCOUNT)
    policy = key_policy_with_whitelist(default, principals=(BOB, ALICE, APP_ROLE))
    assert policy["Statement"][0] == default["Statement"][0]
    use = policy["Statement"][1]
    assert use["Sid"] == SID_KEY_ALLOW_USE
    assert use["Principal"] == {"AWS": sorted([ALICE, BOB, APP_ROLE])}
    assert set(use["Action"]) == set(KEY_ACTIONS)
    assert use["Resource"] == "*"
    assert whitelisted_principals(policy) == {ALICE, BOB, APP_ROLE}
    assert key_policy_with_whitelist(policy, principals=(APP_ROLE, ALICE, BOB)) == policy
    check_lockout(policy, "key", ADMIN, ACCOUNT)


def test_empty_key_whitelist_removes_the_allow_and_denies_everyone() -> None:
    policy = key_policy_with_whitelist(default_key_policy(ACCOUNT), principals=(ALICE,))
    emptied = key_policy_with_whitelist(policy, principals=())
    assert [s.get("Sid") for s in emptied["Statement"]] == [
        "Enable IAM User Permissions",
        SID_KEY_DENY_OTHERS_USE,
    ]
    assert by_sid(emptied)[SID_KEY_DENY_OTHERS_USE]["Condition"] == {
        "BoolIfExists": {"aws:PrincipalIsAWSService": "false"}
    }
    assert whitelisted_principals(emptied) == frozenset()


# ---- remove_principal --------------------------------------------------------


def test_remove_principal_touches_only_our_statements() -> None:
    theirs = {
        "Sid": "Theirs",
        "Effect": "Allow",
        "Principal": {"AWS": [ALICE]},
        "Action": "s3:GetObject",
    }
    policy = whitelist_bucket({"Statement": [theirs]})
    revoked = remove_principal(policy, ALICE)
    sids = by_sid(revoked)
    assert sids["Theirs"] == theirs
    assert sids[SID_BUCKET_ALLOW]["Principal"] == {"AWS": [BOB]}
    assert ALICE not in sids[SID_BUCKET_DENY_OTHERS]["Condition"]["ArnNotLike"]["aws:PrincipalArn"]
    assert whitelisted_principals(revoked) == {BOB}
    # Equal to recomputing with the smaller whitelist.
    assert revoked == whitelist_bucket({"Statement": [theirs]}, principals=(BOB,))


def test_remove_last_principal_drops_the_allow() -> None:
    policy = key_policy_with_whitelist(default_key_policy(ACCOUNT), principals=(ALICE,))
    # The key's deny then covers everyone: equal to recomputing with nobody.
    assert remove_principal(policy, ALICE) == key_policy_with_whitelist(policy, principals=())
    single = {
        "Statement": {"Sid": SID_KEY_ALLOW_USE, "Effect": "Allow", "Principal": {"AWS": ALICE}}
    }
    assert remove_principal(single, ALICE)["Statement"] == []
    assert remove_principal(None, ALICE)["Statement"] == []


def test_remove_principal_refuses_to_empty_the_exception_list() -> None:
    policy = whitelist_bucket(None, principals=(ALICE,), keep_admin_arns=(ROOT,))
    lone = by_sid(policy)[SID_BUCKET_DENY_OTHERS]
    alone = {**lone, "Condition": {"ArnNotLike": {"aws:PrincipalArn": [ALICE]}}}
    with pytest.raises(BadInput, match="denying everyone"):
        remove_principal({"Statement": [alone]}, ALICE)


# ---- reading back ------------------------------------------------------------


def test_readers_accept_every_principal_shape_and_skip_unique_ids() -> None:
    document = {
        "Statement": [
            {
                "Sid": SID_KEY_ALLOW_USE,
                "Effect": "Allow",
                "Principal": {"AWS": [ALICE, "AIDAJQABLZS4A3QDU576Q"]},
            },
            {"Sid": "KeyHygieneAllow", "Effect": "Allow", "Principal": {"AWS": BOB}},
            {"Sid": "KeyHygieneAllowUse", "Effect": "Deny", "Principal": {"AWS": ADMIN}},
            {"Effect": "Allow", "Principal": "*"},
            {"Effect": "Allow", "Principal": {"AWS": OTHER_ACCOUNT}},
            {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}},
            {"Effect": "Allow", "Principal": {"CanonicalUser": "79a59df900b949e55d96a1e698fbace"}},
            {"Effect": "Allow"},
            "not a statement",
        ]
    }
    assert whitelisted_principals(document) == {ALICE, BOB}
    assert allowed_principals(document) == {ALICE, BOB, "*", OTHER_ACCOUNT}
    assert orphaned_principal_ids(document) == {"AIDAJQABLZS4A3QDU576Q"}
    assert whitelisted_principals(None) == frozenset()
    assert allowed_principals({"Statement": {"Effect": "Allow", "Principal": {"AWS": ALICE}}}) == {
        ALICE
    }


def test_invalid_json_text_is_a_clear_error() -> None:
    with pytest.raises(BadInput, match="not valid JSON"):
        statements("{not json")
    with pytest.raises(BadInput, match="not a JSON object"):
        statements("[1, 2]")
    assert statements("") == []


# ---- limits ------------------------------------------------------------------


def test_size_limits() -> None:
    many = [f"arn:aws:iam::{ACCOUNT}:user/person{n:04d}-laptop" for n in range(400)]
    bucket_policy = whitelist_bucket(None, principals=many)
    assert policy_size(bucket_policy) > 20_480
    with pytest.raises(PolicyTooLarge) as caught:
        ensure_within_limit(bucket_policy, "bucket", BUCKET)
    assert caught.value.limit == 20_480
    assert caught.value.size == policy_size(bucket_policy)
    assert caught.value.resource == BUCKET
    assert BUCKET in str(caught.value) and "20,480" in str(caught.value)
    assert isinstance(caught.value, BadInput)

    # A key lists its whitelist twice (the Allow and the Deny of everyone else).
    key_policy = key_policy_with_whitelist(default_key_policy(ACCOUNT), principals=many[:250])
    assert 20_480 < policy_size(key_policy) <= 32_768
    ensure_within_limit(key_policy, "key", "alias/photos")
    huge = key_policy_with_whitelist(None, principals=many)
    with pytest.raises(PolicyTooLarge):
        ensure_within_limit(huge, "key", "alias/photos")
    ensure_within_limit(whitelist_bucket(None), "bucket", BUCKET)


def test_size_is_measured_on_compact_json() -> None:
    document = {"Version": "2012-10-17", "Statement": []}
    assert policy_size(document) == len('{"Version":"2012-10-17","Statement":[]}')


# ---- lock-out ----------------------------------------------------------------


def test_our_bucket_policy_passes_for_the_admin_and_root() -> None:
    policy = whitelist_bucket(None)
    check_lockout(policy, "bucket", ADMIN, ACCOUNT, resource_arn=BUCKET_ARN)
    check_lockout(policy, "bucket", ROOT, ACCOUNT)
    check_lockout(None, "bucket", ADMIN, ACCOUNT)


def test_deny_without_the_actor_is_refused() -> None:
    policy = whitelist_bucket(None, keep_admin_arns=(ROOT,))
    with pytest.raises(PolicyLockout) as caught:
        check_lockout(policy, "bucket", ADMIN, ACCOUNT, resource_arn=BUCKET_ARN)
    assert caught.value.actor == ADMIN
    # Reading the policy is denied by the first, writing it by the second.
    assert SID_BUCKET_DENY_OTHERS in str(caught.value)
    # A whitelisted computer is not an admin: it could not change the policy either.
    with pytest.raises(PolicyLockout):
        check_lockout(policy, "bucket", ALICE, ACCOUNT)


def test_a_listed_root_spares_the_root_user_only() -> None:
    # aws:PrincipalArn is the root ARN for the root user alone: an admin user
    # not listed is denied s3:* on the bucket, its policy included.
    root_only = whitelist_bucket(None, keep_admin_arns=(ROOT,))
    with pytest.raises(PolicyLockout, match=SID_BUCKET_DENY_OTHERS) as caught:
        check_lockout(root_only, "bucket", ADMIN, ACCOUNT, resource_arn=BUCKET_ARN)
    assert caught.value.actor == ADMIN and ADMIN in str(caught.value)
    check_lockout(root_only, "bucket", ROOT, ACCOUNT, resource_arn=BUCKET_ARN)
    # The same with a wildcard or a string operator: the root entry still spares nobody else.
    for operator in ("ArnLike", "StringNotEquals"):
        deny = {
            "Sid": "OnlyRoot",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [BUCKET_ARN, f"{BUCKET_ARN}/*"],
            "Condition": {
                operator if operator != "ArnLike" else "ArnNotLike": {"aws:PrincipalArn": ROOT}
            },
        }
        with pytest.raises(PolicyLockout, match="OnlyRoot"):
            check_lockout({"Statement": [deny]}, "bucket", ADMIN, ACCOUNT)


@pytest.mark.parametrize(
    "actor",
    [
        f"arn:aws:sts::{ACCOUNT}:federated-user/alice",
        f"arn:aws:sts::{ACCOUNT}:user/moto",  # moto's default identity
    ],
)
def test_an_actor_no_exception_list_can_name_is_locked_out(actor: str) -> None:
    policy = whitelist_bucket(None, keep_admin_arns=(ROOT, ADMIN))
    with pytest.raises(PolicyLockout) as caught:
        check_lockout(policy, "bucket", actor, ACCOUNT, resource_arn=BUCKET_ARN)
    assert caught.value.actor == actor
    with pytest.raises(BadInput, match="cannot be an admin principal"):
        whitelist_bucket(None, keep_admin_arns=(ROOT, actor))


def test_a_role_with_a_path_is_known_by_its_real_arn() -> None:
    session = f"arn:aws:sts::{ACCOUNT}:assumed-role/Admin/alice"
    real_role = f"arn:aws:iam::{ACCOUNT}:role/ops/Admin"
    policy = whitelist_bucket(None, keep_admin_arns=(ROOT, real_role))
    # The session ARN has no path: alone it does not match the listed role.
    with pytest.raises(PolicyLockout):
        check_lockout(policy, "bucket", session, ACCOUNT, resource_arn=BUCKET_ARN)
    check_lockout(
        policy, "bucket", session, ACCOUNT, resource_arn=BUCKET_ARN, actor_principal_arn=real_role
    )


def test_foreign_unconditional_deny_is_refused() -> None:
    deny_all = {
        "Sid": "NoOne",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": "*",
    }
    policy = whitelist_bucket({"Statement": [deny_all]})
    with pytest.raises(PolicyLockout, match="NoOne"):
        check_lockout(policy, "bucket", ADMIN, ACCOUNT, resource_arn=BUCKET_ARN)

    deny_admin = {
        "Effect": "Deny",
        "Principal": {"AWS": [ADMIN]},
        "Action": ["s3:PutBucket*"],
        "Resource": BUCKET_ARN,
    }
    with pytest.raises(PolicyLockout, match="without Sid"):
        check_lockout({"Statement": deny_admin}, "bucket", ADMIN, ACCOUNT, resource_arn=BUCKET_ARN)
    # ... but it does not lock out somebody else.
    check_lockout({"Statement": deny_admin}, "bucket", BOB, ACCOUNT, resource_arn=BUCKET_ARN)

    not_action = {"Effect": "Deny", "Principal": "*", "NotAction": "s3:GetObject", "Resource": "*"}
    with pytest.raises(PolicyLockout):
        check_lockout({"Statement": [not_action]}, "bucket", ADMIN, ACCOUNT)


def test_denies_that_do_not_reach_the_policy_pass() -> None:
    objects_only = {
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": f"{BUCKET_ARN}/*",
    }
    check_lockout({"Statement": [objects_only]}, "bucket", ADMIN, ACCOUNT, resource_arn=BUCKET_ARN)
    # Without the bucket ARN every Deny is taken to cover it.
    with pytest.raises(PolicyLockout):
        check_lockout({"Statement": [objects_only]}, "bucket", ADMIN, ACCOUNT)
    insecure = {
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": "*",
        "Condition": {"Bool": {"aws:SecureTransport": False}},
    }
    other_accounts = {
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": "*",
        "Condition": {"StringNotEquals": {"aws:PrincipalAccount": [ACCOUNT]}},
    }
    service_only = {
        "Effect": "Deny",
        "Principal": {"Service": "ec2.amazonaws.com"},
        "Action": "s3:*",
    }
    not_principal = {"Effect": "Deny", "NotPrincipal": {"AWS": [ADMIN, ROOT]}, "Action": "s3:*"}
    check_lockout(
        {"Statement": [insecure, other_accounts, service_only, not_principal]},
        "bucket",
        ADMIN,
        ACCOUNT,
    )


def test_other_conditional_denies_are_treated_conservatively() -> None:
    ip_deny = {
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": "*",
        "Condition": {"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}},
    }
    with pytest.raises(PolicyLockout):
        check_lockout({"Statement": [ip_deny]}, "bucket", ADMIN, ACCOUNT)


def test_key_policy_without_admin_statement_is_refused() -> None:
    policy = key_policy_with_whitelist(default_key_policy(ACCOUNT), principals=(ALICE,))
    stripped = {**policy, "Statement": [s for s in policy["Statement"] if is_own_statement(s)]}
    with pytest.raises(PolicyLockout, match="kms:"):
        check_lockout(stripped, "key", ADMIN, ACCOUNT)
    with pytest.raises(PolicyLockout):
        check_lockout(None, "key", ADMIN, ACCOUNT)
    # Our own use statement does not allow PutKeyPolicy, even to a whitelisted actor.
    with pytest.raises(PolicyLockout):
        check_lockout(stripped, "key", ALICE, ACCOUNT)


@pytest.mark.parametrize("principal", [{"AWS": ACCOUNT}, {"AWS": [ROOT]}, "*", {"AWS": ADMIN}])
def test_key_admin_statement_shapes_that_pass(principal: Any) -> None:
    admin = {
        "Effect": "Allow",
        "Principal": principal,
        "Action": ["kms:Get*", "kms:Put*"],
        "Resource": "*",
    }
    check_lockout({"Statement": admin}, "key", ADMIN, ACCOUNT)


def test_key_policy_conditional_admin_or_explicit_deny_is_refused() -> None:
    conditional = {
        "Effect": "Allow",
        "Principal": {"AWS": ROOT},
        "Action": "kms:*",
        "Resource": "*",
        "Condition": {"StringEquals": {"aws:PrincipalTag/team": "ops"}},
    }
    with pytest.raises(PolicyLockout):
        check_lockout({"Statement": [conditional]}, "key", ADMIN, ACCOUNT)
    deny = {
        "Sid": "Freeze",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "kms:PutKeyPolicy",
        "Resource": "*",
    }
    with pytest.raises(PolicyLockout, match="Freeze"):
        check_lockout(
            {"Statement": [*default_key_policy(ACCOUNT)["Statement"], deny]}, "key", ADMIN, ACCOUNT
        )
    other_account_root = {
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{OTHER_ACCOUNT}:root"},
        "Action": "kms:*",
        "Resource": "*",
    }
    with pytest.raises(PolicyLockout):
        check_lockout({"Statement": [other_account_root]}, "key", ADMIN, ACCOUNT)


def test_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        check_lockout(None, "role", ADMIN, ACCOUNT)  # type: ignore[arg-type]


# ---- diff --------------------------------------------------------------------


def test_policy_diff_shows_the_added_principal() -> None:
    before = whitelist_bucket(None, principals=(ALICE,))
    after = whitelist_bucket(before, principals=(ALICE, BOB))
    lines = policy_diff(before, after)
    assert lines[0] == "--- current" and lines[1] == "+++ planned"
    added = [line for line in lines if line.startswith("+") and not line.startswith("+++")]
    assert any(BOB in line for line in added)
    # JSON commas move when an item is appended; nothing else may be taken away.
    removed = {
        line[1:].rstrip(",")
        for line in lines
        if line.startswith("-") and not line.startswith("---")
    }
    assert removed <= {line[1:].rstrip(",") for line in added}
    assert policy_diff(after, after) == []
    from_nothing = policy_diff(None, after)
    assert all(not line.startswith("-") or line.startswith("---") for line in from_nothing)


# ---- audit helpers -----------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*"},
        {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "s3:GetObject", "Resource": "*"},
        {"Effect": "Allow", "Principal": {"AWS": [ALICE, "*"]}, "Action": "s3:GetObject"},
        {"Effect": "Allow", "NotPrincipal": {"AWS": ALICE}, "Action": "s3:GetObject"},
        {
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Condition": {"StringNotEquals": {"aws:SourceAccount": ACCOUNT}},
        },
        {
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Condition": {"StringLike": {"aws:SourceArn": "arn:aws:*"}},
        },
        {
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Condition": {"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}},
        },
        {
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Condition": {"StringEqualsIfExists": {"aws:PrincipalOrgID": "o-abc123"}},
        },
    ],
)
def test_is_public_fires(statement: dict[str, Any]) -> None:
    assert is_public({"Statement": statement})
    assert is_public({"Statement": [statement]})


@pytest.mark.parametrize(
    "statement",
    [
        {"Effect": "Deny", "Principal": "*", "Action": "s3:*"},
        {"Effect": "Allow", "Principal": {"AWS": ALICE}, "Action": "s3:*"},
        {
            "Effect": "Allow",
            "Principal": {"Service": "cloudtrail.amazonaws.com"},
            "Action": "s3:PutObject",
        },
        {
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-abc123"}},
        },
        {
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": "s3:PutObject",
            "Condition": {
                "ArnLike": {"aws:SourceArn": f"arn:aws:cloudtrail:eu-west-1:{ACCOUNT}:trail/main"}
            },
        },
        {
            "Effect": "Allow",
            "Principal": "*",
            "Action": "kms:Decrypt",
            "Condition": {
                "StringEquals": {
                    "kms:CallerAccount": ACCOUNT,
                    "kms:ViaService": "s3.eu-west-1.amazonaws.com",
                }
            },
        },
        {
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Condition": {"IpAddress": {"aws:SourceIp": ["203.0.113.0/24"]}},
        },
        {
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Condition": {"ArnEquals": {"aws:PrincipalArn": [ALICE]}},
        },
    ],
)
def test_is_public_does_not_fire(statement: dict[str, Any]) -> None:
    assert not is_public({"Statement": [statement]})


def test_is_public_on_nothing() -> None:
    assert not is_public(None)
    assert not is_public({"Statement": []})


def test_foreign_accounts() -> None:
    document = {
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": [ALICE, f"arn:aws:iam::{OTHER_ACCOUNT}:root"]},
            },
            {"Effect": "Allow", "Principal": {"AWS": "111122223333"}},
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:sts::444455556666:assumed-role/x/y"}},
            {"Effect": "Allow", "Principal": "*"},
            {"Effect": "Allow", "Principal": {"AWS": "AROAJQABLZS4A3QDU576Q"}},
            {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}},
            {"Effect": "Deny", "Principal": {"AWS": "777788889999"}},
        ]
    }
    assert foreign_accounts(document, ACCOUNT) == {OTHER_ACCOUNT, "111122223333", "444455556666"}
    assert foreign_accounts(whitelist_bucket(None), ACCOUNT) == set()
    assert foreign_accounts(None, ACCOUNT) == set()


def test_has_unencrypted_upload_deny_cases() -> None:
    classic_null = {
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:PutObject",
        "Resource": f"{BUCKET_ARN}/*",
        "Condition": {"Null": {"s3:x-amz-server-side-encryption": "true"}},
    }
    assert has_unencrypted_upload_deny({"Statement": classic_null})
    wildcard_action = {**classic_null, "Action": "s3:Put*"}
    assert has_unencrypted_upload_deny({"Statement": [wildcard_action]})
    only_one_user = {**classic_null, "Principal": {"AWS": ALICE}}
    assert not has_unencrypted_upload_deny({"Statement": [only_one_user]})
    other_condition = {**classic_null, "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
    assert not has_unencrypted_upload_deny({"Statement": [other_condition]})
    as_allow = {**classic_null, "Effect": "Allow"}
    assert not has_unencrypted_upload_deny({"Statement": [as_allow]})
    assert not has_unencrypted_upload_deny(None)


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ({"Effect": "Allow", "Action": "*", "Resource": "*"}, True),
        ({"Effect": "Allow", "Action": ["*"], "Resource": ["*"]}, True),
        ({"Effect": "Allow", "Action": "*:*", "Resource": "*"}, True),
        (
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject", "*"],
                "Resource": ["arn:aws:s3:::x", "*"],
            },
            True,
        ),
        ({"Effect": "Deny", "Action": "*", "Resource": "*"}, False),
        ({"Effect": "Allow", "Action": "s3:*", "Resource": "*"}, False),
        ({"Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::x"}, False),
        ({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}, False),
    ],
)
def test_admin_like(statement: dict[str, Any], expected: bool) -> None:
    assert admin_like({"Version": "2012-10-17", "Statement": statement}) is expected
    assert admin_like(json.dumps({"Statement": [statement]})) is expected


# ---- properties --------------------------------------------------------------

_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
_accounts = st.sampled_from([ACCOUNT, OTHER_ACCOUNT])
_arns = st.builds(
    lambda account, kind, name: f"arn:aws:iam::{account}:{kind}/{name}",
    _accounts,
    st.sampled_from(["user", "role"]),
    _names,
)


def _one_or_many(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A bare value or a list of them, as policies allow."""
    return st.one_of(values, st.lists(values, min_size=1, max_size=3))


_principals = st.one_of(
    st.just("*"),
    st.fixed_dictionaries({"AWS": _one_or_many(st.one_of(_arns, st.just("*"), _accounts))}),
    st.fixed_dictionaries(
        {
            "Service": _one_or_many(
                st.sampled_from(["ec2.amazonaws.com", "logging.s3.amazonaws.com"])
            )
        }
    ),
    st.fixed_dictionaries(
        {
            "CanonicalUser": st.just(
                "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"
            )
        }
    ),
)
_foreign_sids = _names.filter(lambda sid: not sid.startswith("KeyHygiene"))
_foreign_statements = st.builds(
    lambda sid, effect, principal, action, resource: {
        **({"Sid": sid} if sid is not None else {}),
        "Effect": effect,
        "Principal": principal,
        "Action": action,
        "Resource": resource,
    },
    st.one_of(st.none(), _foreign_sids, st.just("keyhygiene-lowercase")),
    st.sampled_from(["Allow", "Deny"]),
    _principals,
    _one_or_many(st.sampled_from(["s3:GetObject", "s3:*", "kms:Decrypt", "*"])),
    _one_or_many(st.sampled_from(["*", BUCKET_ARN, f"{BUCKET_ARN}/*"])),
)
_own_statements = st.builds(
    lambda sid, principal: {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": principal,
        "Action": "s3:*",
    },
    st.sampled_from([SID_BUCKET_ALLOW, SID_KEY_ALLOW_USE, "KeyHygieneStale"]),
    st.fixed_dictionaries({"AWS": _one_or_many(_arns)}),
)
_documents = st.one_of(
    st.none(),
    st.builds(
        lambda s: {"Version": "2012-10-17", "Statement": s},
        st.one_of(_foreign_statements, _own_statements),
    ),
    st.builds(
        lambda s: {"Version": "2012-10-17", "Statement": s},
        st.lists(st.one_of(_foreign_statements, _own_statements), max_size=6),
    ),
)
_whitelists = st.lists(_arns, max_size=6)
_fast = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_fast
@given(document=_documents, principals=_whitelists)
def test_bucket_whitelist_properties(
    document: dict[str, Any] | None, principals: list[str]
) -> None:
    before = copy.deepcopy(document)
    policy = whitelist_bucket(document, principals=principals)
    assert document == before
    assert foreign(policy) == foreign(document)
    assert whitelisted_principals(policy) == set(principals)
    assert whitelist_bucket(policy, principals=list(reversed(principals))) == policy
    if not any(s.get("Effect") == "Deny" for s in foreign(policy)):
        check_lockout(policy, "bucket", ADMIN, ACCOUNT, resource_arn=BUCKET_ARN)
    json.dumps(policy)


@_fast
@given(document=_documents, principals=_whitelists)
def test_key_whitelist_properties(document: dict[str, Any] | None, principals: list[str]) -> None:
    before = copy.deepcopy(document)
    policy = key_policy_with_whitelist(document, principals=principals)
    assert document == before
    assert foreign(policy) == foreign(document)
    assert whitelisted_principals(policy) == set(principals)
    assert key_policy_with_whitelist(policy, principals=sorted(principals)) == policy
    own = [s.get("Sid") for s in statements(policy) if is_own_statement(s)]
    assert own == ([SID_KEY_ALLOW_USE] if principals else []) + [SID_KEY_DENY_OTHERS_USE]


@_fast
@given(document=_documents, principals=st.lists(_arns, min_size=1, max_size=6), data=st.data())
def test_remove_principal_equals_recomputing(
    document: dict[str, Any] | None, principals: list[str], data: st.DataObject
) -> None:
    gone = data.draw(st.sampled_from(principals))
    policy = whitelist_bucket(document, principals=principals)
    revoked = remove_principal(policy, gone)
    assert foreign(revoked) == foreign(document)
    assert revoked == whitelist_bucket(document, principals=[p for p in principals if p != gone])
