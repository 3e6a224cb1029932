"""The documents emergency revoke writes, judged on AWS's rules (keyhygiene.core.policy_eval).

moto evaluates no bucket or key policy, and its IAM enforcement knows no
conditions: whether a revoked computer can still do anything is answered here
from the documents alone. The plan comes from `plan_revoke` on an offline
snapshot; the account *after* it is the snapshot with the plan's documents put
in (the deny policy on the user, each bucket and key policy's `after`), the
user still in a group that allows everything: as if the group removal had not
happened yet (it comes later in the plan, and may fail).

Who the requests come from:

- the revoked user, with its keys: `Principal.user`. A session made from the
  user's keys (sts:GetSessionToken, the MFA session of the CLI) acts as the user
  itself, with the user's policies: AWS evaluates the deny policy for it too, so
  it is the same principal here, and the same answer.
- a session of a role the user could assume, made before the revoke:
  `Principal.role_session`. That session acts as the role, whose policies are
  the role's: no user policy reaches it. Revoke does nothing about it today (it
  does not read which roles trust the user, and does not revoke their sessions);
  its report only advises revoking them by hand. The deny policy does stop the
  user from assuming the role again (sts:AssumeRole is refused).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import pytest

from keyhygiene.core.access import explain, identity_policies, principal_of
from keyhygiene.core.model import (
    REVOKED_POLICY_NAME,
    TAG_DEVICE,
    TAG_PERSON,
    AccessKey,
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
    statements,
    whitelisted_principals,
)
from keyhygiene.core.policy_eval import (
    ALLOW,
    EXPLICIT_DENY,
    IMPLICIT_DENY,
    PolicySource,
    Principal,
    Request,
    evaluate,
)
from keyhygiene.plans import Plan
from keyhygiene.workflows.revoke import STEP_DENY, plan_revoke

ACCOUNT = "123456789012"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
TARGET = "stolen-phone"
TARGET_ARN = f"arn:aws:iam::{ACCOUNT}:user/{TARGET}"
OTHER_ARN = f"arn:aws:iam::{ACCOUNT}:user/alice-laptop"
ADMIN_ARN = f"arn:aws:iam::{ACCOUNT}:user/admin"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/photos-app"
KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
NOW = datetime(2026, 11, 28, 14, 3, 7, tzinfo=timezone.utc)
# AWSDenyAll as the AWS Managed Policy Reference shows it
# (https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSDenyAll.html).
AWS_DENY_ALL = {
    "Version": "2012-10-17",
    "Statement": [{"Sid": "DenyAll", "Effect": "Deny", "Action": ["*"], "Resource": "*"}],
}
EVERYTHING = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}
# 1,998 characters of inline policy: no room left for keyhygiene-revoked (110).
FILLER = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": [f"arn:aws:s3:::filler-{i:03d}/*" for i in range(68)],
        }
    ],
}


def _bucket(name: str, principals: list[str]) -> Bucket:
    policy = bucket_policy_with_whitelist(
        None, bucket=name, principals=principals, keep_admin_arns=[ROOT, ADMIN_ARN]
    )
    return Bucket(name, f"arn:aws:s3:::{name}", policy=policy)


def _snapshot(*, full_inline: bool = False) -> Snapshot:
    inline = (InlinePolicy("filler", FILLER),) if full_inline else ()
    target = User(
        name=TARGET,
        arn=TARGET_ARN,
        tags={TAG_PERSON: "stolen", TAG_DEVICE: "phone"},
        groups=("power",),
        inline_policies=inline,
        access_keys=(AccessKey(TARGET, "Active", NOW, id="AKIAIOSFODNN7EXAMPLE", slot=1),),
        keys_exact=True,
    )
    admin = User(name="admin", arn=ADMIN_ARN, inline_policies=(InlinePolicy("all", EVERYTHING),))
    other = User(name="alice-laptop", arn=OTHER_ARN)
    # Group policies as powerful as they come: nothing the user's own policies miss.
    power = Group(
        "power",
        f"arn:aws:iam::{ACCOUNT}:group/power",
        members=(TARGET,),
        inline_policies=(InlinePolicy("everything", EVERYTHING),),
    )
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": TARGET_ARN}, "Action": "sts:AssumeRole"}
        ],
    }
    role = Role(
        "photos-app",
        ROLE_ARN,
        trust_policy=trust,
        inline_policies=(
            InlinePolicy(
                "read",
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": ["s3:GetObject", "kms:Decrypt"],
                            "Resource": "*",
                        }
                    ],
                },
            ),
        ),
    )
    key_policy = key_policy_with_whitelist(
        default_key_policy(ACCOUNT), principals=[TARGET_ARN, OTHER_ARN, ROLE_ARN]
    )
    only_target = Bucket(
        "only-target",
        "arn:aws:s3:::only-target",
        policy={
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "KeyHygieneAllowObjects",
                    "Effect": "Allow",
                    "Principal": {"AWS": TARGET_ARN},
                    "Action": "s3:GetObject",
                    "Resource": "arn:aws:s3:::only-target/*",
                }
            ],
        },
    )
    return Snapshot(
        account_id=ACCOUNT,
        caller_arn=ADMIN_ARN,
        loaded_at=NOW,
        users=(target, admin, other),
        groups=(power,),
        roles=(role,),
        buckets=(
            _bucket("photos-data", [TARGET_ARN, OTHER_ARN, ROLE_ARN]),
            _bucket("loose-share", [TARGET_ARN]),
            only_target,
        ),
        kms_keys=(
            KmsKey(
                "1234abcd-12ab-34cd-56ef-1234567890ab",
                KEY_ARN,
                ("alias/photos",),
                policy=key_policy,
            ),
        ),
    )


def _plan(snapshot: Snapshot) -> Plan:
    return plan_revoke(snapshot, TARGET, actor_arn=ADMIN_ARN, now=NOW)


def _after(snapshot: Snapshot, plan: Plan) -> Snapshot:
    """The account once the plan's deny and policy steps went through, its group kept."""
    deny = plan.step(STEP_DENY)
    user = snapshot.user(TARGET)
    assert user is not None
    if deny.call.params["Order"][0] == "inline":
        user = replace(
            user,
            inline_policies=(
                *user.inline_policies,
                InlinePolicy(REVOKED_POLICY_NAME, deny.after or {}),
            ),
        )
    else:
        arn = deny.call.params["PolicyArn"]
        user = replace(
            user,
            attached_policies=(*user.attached_policies, PolicyAttachment("AWSDenyAll", arn)),
        )
    written: dict[str, Any] = {}
    for step in plan.steps:
        target = step.call.params.get("Bucket") or step.call.params.get("KeyId")
        if step.id.startswith(("bucket-policy-", "key-policy-")):
            written[target] = step.after
    buckets = tuple(
        replace(b, policy=written[b.name]) if b.name in written else b for b in snapshot.buckets
    )
    keys = tuple(
        replace(k, policy=written[k.key_id]) if k.key_id in written else k
        for k in snapshot.kms_keys
    )
    users = tuple(user if u.name == TARGET else u for u in snapshot.users)
    return replace(snapshot, users=users, buckets=buckets, kms_keys=keys)


VARIANTS = [
    pytest.param(False, REVOKED_POLICY_NAME, id="inline-keyhygiene-revoked"),
    pytest.param(True, "AWSDenyAll", id="fallback-AWSDenyAll"),
]


def test_the_plan_writes_the_documented_deny() -> None:
    inline = _plan(_snapshot()).step(STEP_DENY)
    assert inline.call.params["Order"][0] == "inline"
    (statement,) = statements(inline.after)
    assert (statement["Effect"], statement["Action"], statement["Resource"]) == ("Deny", "*", "*")
    assert "Condition" not in statement  # unconditional: nothing can make it not apply

    fallback = _plan(_snapshot(full_inline=True)).step(STEP_DENY)
    assert fallback.call.params["Order"][0] == "managed"
    assert fallback.call.params["PolicyArn"] == "arn:aws:iam::aws:policy/AWSDenyAll"
    # What the plan shows and what access.py evaluates for the ARN both say what
    # AWS documents (["*"] and "*" are the same Action element).
    for document in (fallback.after, _managed_document_of_fallback()):
        (statement,) = statements(document)
        assert statement["Effect"] == "Deny" and statement["Resource"] == "*"
        assert statement["Action"] in ("*", ["*"])
        assert "Condition" not in statement
    assert statements(AWS_DENY_ALL)[0]["Action"] == ["*"]


def _managed_document_of_fallback() -> Any:
    snapshot = _snapshot(full_inline=True)
    after = _after(snapshot, _plan(snapshot))
    principal = principal_of(after, TARGET)
    (source,) = [s for s in identity_policies(after, principal) if "AWSDenyAll" in s.label]
    assert source.document is not None  # known to access.py, not "not read"
    return source.document


def _user_requests() -> list[tuple[str, str]]:
    return [
        ("s3:GetObject", "arn:aws:s3:::photos-data/holiday.jpg"),
        ("s3:PutObject", "arn:aws:s3:::photos-data/holiday.jpg"),
        ("kms:Decrypt", KEY_ARN),
        ("iam:CreateAccessKey", TARGET_ARN),  # a fresh key for itself
        ("iam:UpdateAccessKey", TARGET_ARN),  # re-activate its key
        ("iam:DeleteUserPolicy", TARGET_ARN),  # drop keyhygiene-revoked
        ("iam:DetachUserPolicy", TARGET_ARN),  # drop AWSDenyAll
        ("iam:UntagUser", TARGET_ARN),  # drop keyhygiene:revoked
        ("sts:GetSessionToken", "*"),
        ("sts:AssumeRole", ROLE_ARN),  # no new role session either
        ("iam:CreateUser", f"arn:aws:iam::{ACCOUNT}:user/backdoor"),
    ]


@pytest.mark.parametrize(("full_inline", "deny_name"), VARIANTS)
@pytest.mark.parametrize(("action", "resource"), _user_requests())
def test_the_revoked_user_can_do_nothing(
    full_inline: bool, deny_name: str, action: str, resource: str
) -> None:
    snapshot = _snapshot(full_inline=full_inline)
    after = _after(snapshot, _plan(snapshot))
    # Before the revoke, its group let it do this.
    assert explain(snapshot, TARGET, action, resource, now=NOW).outcome == ALLOW
    decision = explain(after, TARGET, action, resource, now=NOW)
    assert decision.outcome == EXPLICIT_DENY, decision.summary()
    assert any(deny_name in ref.source for ref in decision.deciding), decision.summary()
    # With MFA, over a session from its keys, with any tag: the Deny has no condition.
    context = {"aws:MultiFactorAuthPresent": "true", "aws:PrincipalTag/keyhygiene:admin": "true"}
    again = explain(after, TARGET, action, resource, context=context, now=NOW)
    assert again.outcome == EXPLICIT_DENY
    if full_inline:
        # The same with AWSDenyAll's document as AWS publishes it, not access.py's copy.
        request = Request(Principal.user(TARGET_ARN), action, resource, resource_account=ACCOUNT)
        published = [
            PolicySource("AWSDenyAll as published", AWS_DENY_ALL),
            PolicySource("group power", EVERYTHING),
        ]
        assert evaluate(request, published).outcome == EXPLICIT_DENY


@pytest.mark.parametrize(("full_inline", "deny_name"), VARIANTS)
def test_a_role_session_made_before_is_not_reached(full_inline: bool, deny_name: str) -> None:
    """Known gap (see the module docstring): the role's session keeps the role's rights."""
    snapshot = _snapshot(full_inline=full_inline)
    after = _after(snapshot, _plan(snapshot))
    session = Principal.role_session(ROLE_ARN, session=TARGET)
    # None of the user's documents is among the session's.
    labels = [source.label for source in identity_policies(after, session)]
    assert labels and not any(deny_name in label or TARGET in label for label in labels)
    # Revoke leaves the role in the whitelists: its session still reads.
    assert explain(
        after, session, "s3:GetObject", "arn:aws:s3:::photos-data/a.jpg", now=NOW
    ).allowed
    assert explain(after, session, "kms:Decrypt", KEY_ARN, now=NOW).allowed
    # What the user could do only through a new session is refused.
    assert explain(after, TARGET, "sts:AssumeRole", ROLE_ARN, now=NOW).outcome == EXPLICIT_DENY


# --------------------------------------------------------------------------- the whitelists


def _resource_steps(plan: Plan) -> list[tuple[str, str, Any]]:
    """(resource ARN, data action, after) of every bucket and key policy step."""
    found = []
    for step in plan.steps:
        if step.id.startswith("bucket-policy-"):
            name = step.call.params["Bucket"]
            found.append((f"arn:aws:s3:::{name}", "s3:GetObject", step.after))
        elif step.id.startswith("key-policy-"):
            found.append((KEY_ARN, "kms:Decrypt", step.after))
    return found


def test_every_policy_that_named_the_user_is_rewritten() -> None:
    plan = _plan(_snapshot())
    written = {arn for arn, _, _ in _resource_steps(plan)}
    assert written == {
        "arn:aws:s3:::photos-data",
        "arn:aws:s3:::loose-share",
        "arn:aws:s3:::only-target",
        KEY_ARN,
    }


@pytest.mark.parametrize("full_inline", [False, True], ids=["inline", "fallback"])
def test_the_rewritten_policies_let_the_user_in_nowhere(full_inline: bool) -> None:
    snapshot = _snapshot(full_inline=full_inline)
    plan = _plan(snapshot)
    after = _after(snapshot, plan)
    user = Principal.user(TARGET_ARN)
    for resource, action, document in _resource_steps(plan):
        target = f"{resource}/holiday.jpg" if action.startswith("s3:") else resource
        # In no whitelist, in no exception list: nowhere in keyhygiene's statements.
        assert TARGET_ARN not in whitelisted_principals(document)
        assert all(TARGET_ARN not in str(s) for s in statements(document))
        source = PolicySource(f"after of {resource}", document) if document else None
        # The resource policy alone (no identity policy: its group and deny gone).
        alone = evaluate(Request(user, action, target, resource_account=ACCOUNT), (), source)
        assert alone.outcome in (EXPLICIT_DENY, IMPLICIT_DENY), (resource, alone.summary())
        # Its group still allowing everything, the deny policy not there yet: the
        # whitelist's own Deny keeps it out wherever one is left.
        group = [PolicySource("group power", EVERYTHING)]
        grouped = evaluate(Request(user, action, target, resource_account=ACCOUNT), group, source)
        if document is not None:
            assert grouped.outcome == EXPLICIT_DENY, (resource, grouped.summary())
        else:
            # The policy held only the user and was deleted: only the deny policy
            # and the group removal keep it out (an IAM Allow * reaches any bucket).
            assert grouped.outcome == ALLOW
        # As the plan leaves it before the group removal: denied by everything.
        assert explain(after, TARGET, action, target, now=NOW).outcome == EXPLICIT_DENY


@pytest.mark.parametrize("full_inline", [False, True], ids=["inline", "fallback"])
def test_the_admin_running_revoke_keeps_control(full_inline: bool) -> None:
    snapshot = _snapshot(full_inline=full_inline)
    plan = _plan(snapshot)
    after = _after(snapshot, plan)
    admin = Principal.user(ADMIN_ARN)
    admin_policies = [PolicySource("user admin inline policy all", EVERYTHING)]
    for resource, action, document in _resource_steps(plan):
        manage = "s3:PutBucketPolicy" if action.startswith("s3:") else "kms:PutKeyPolicy"
        source = PolicySource(f"after of {resource}", document) if document else None
        request = Request(admin, manage, resource, resource_account=ACCOUNT)
        decision = evaluate(request, admin_policies, source)
        assert decision.outcome == ALLOW, (resource, decision.summary())
        assert explain(after, "admin", manage, resource, now=NOW).outcome == ALLOW
    # The other computer keeps its data.
    assert explain(
        after, OTHER_ARN, "s3:GetObject", "arn:aws:s3:::photos-data/a.jpg", now=NOW
    ).allowed
