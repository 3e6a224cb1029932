"""Whitelist steps from memberships: pure, on hand-built snapshots."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest

from tui.errors import BadInput
from tui.model import (
    TAG_GROUPS,
    Bucket,
    Encryption,
    Group,
    KmsKey,
    LoadProblem,
    Role,
    Snapshot,
    User,
)
from tui.plans import Plan
from tui.policy_documents import (
    PolicyLockout,
    PolicyTooLarge,
    bucket_policy_with_whitelist,
    default_key_policy,
    key_policy_with_whitelist,
    whitelisted_principals,
)
from tui.whitelist_plans import (
    members_after_change,
    principals_after,
    user_arn,
    whitelist_steps,
)

ACCOUNT = "123456789012"
ADMIN = f"arn:aws:iam::{ACCOUNT}:user/admin"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
PHOTOS = {TAG_GROUPS: "photos"}


def arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:user/{name}"


FOREIGN_BUCKET = {
    "Sid": "PartnerRead",
    "Effect": "Allow",
    "Principal": {"AWS": "arn:aws:iam::210987654321:root"},
    "Action": "s3:GetObject",
    "Resource": "arn:aws:s3:::photos-data/shared/*",
}
FOREIGN_KEY = {
    "Sid": "AuditorDescribe",
    "Effect": "Allow",
    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/auditor"},
    "Action": "kms:DescribeKey",
    "Resource": "*",
}


def foreign_bucket_policy() -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [FOREIGN_BUCKET]}


def foreign_key_policy() -> dict[str, Any]:
    policy = default_key_policy(ACCOUNT)
    policy["Statement"].append(FOREIGN_KEY)
    return policy


def snapshot(
    *,
    bucket_policy: dict[str, Any] | None = None,
    key_policy: dict[str, Any] | None = None,
    members: tuple[str, ...] = ("bob-phone",),
    extra_buckets: tuple[Bucket, ...] = (),
    problems: tuple[LoadProblem, ...] = (),
    roles: tuple[Role, ...] = (),
) -> Snapshot:
    users = tuple(
        User(name=name, arn=arn(name), groups=("photos",))
        for name in sorted({*members, "carol-desk"})
    )
    return Snapshot(
        account_id=ACCOUNT,
        caller_arn=ADMIN,
        loaded_at=datetime(2025, 1, 1, tzinfo=timezone.utc),
        users=users,
        groups=(
            Group("photos", f"arn:aws:iam::{ACCOUNT}:group/photos", members=members),
            Group("music", f"arn:aws:iam::{ACCOUNT}:group/music", members=("carol-desk",)),
        ),
        roles=roles,
        buckets=(
            Bucket(
                "photos-data",
                "arn:aws:s3:::photos-data",
                tags=PHOTOS,
                policy=bucket_policy,
                encryption=Encryption("aws:kms", KEY_ARN),
            ),
            Bucket("unrelated", "arn:aws:s3:::unrelated", policy=None),
            *extra_buckets,
        ),
        kms_keys=(
            KmsKey(
                "1234abcd-12ab-34cd-56ef-1234567890ab",
                KEY_ARN,
                aliases=("alias/photos",),
                tags=PHOTOS,
                policy=key_policy if key_policy is not None else foreign_key_policy(),
            ),
        ),
        problems=problems,
    )


def joining(snap: Snapshot, user: str = "alice-laptop") -> dict[str, set[str]]:
    return members_after_change(snap, user, joins=["photos"])


def test_new_member_is_whitelisted_in_bucket_and_key_with_foreign_statements_kept() -> None:
    snap = snapshot(bucket_policy=foreign_bucket_policy())
    steps = whitelist_steps(snap, joining(snap))
    assert [s.id for s in steps] == [
        "bucket-policy.photos-data",
        "key-policy.1234abcd-12ab-34cd-56ef-1234567890ab",
    ]
    bucket, key = steps
    assert whitelisted_principals(bucket.after) == {arn("alice-laptop"), arn("bob-phone")}
    assert FOREIGN_BUCKET in bucket.after["Statement"]
    assert whitelisted_principals(key.after) == {arn("alice-laptop"), arn("bob-phone")}
    assert FOREIGN_KEY in key.after["Statement"]
    assert bucket.description == (
        "Whitelist alice-laptop, bob-phone in the policy of bucket photos-data (adds "
        "KeyHygieneDenyOtherKey, KeyHygieneDenyOthers, KeyHygieneDenyUnencrypted)"
    )
    assert key.description.startswith("Whitelist alice-laptop, bob-phone in the policy of KMS key")
    # The exact call carries the document shown as "after"; undo puts "before" back.
    assert json.loads(bucket.call.params["Policy"]) == bucket.after
    assert bucket.undo is not None and bucket.undo.operation == "put_bucket_policy"
    assert json.loads(bucket.undo.params["Policy"]) == foreign_bucket_policy()
    assert key.call.params["PolicyName"] == "default"
    assert json.loads(key.undo.params["Policy"]) == foreign_key_policy()  # type: ignore[union-attr]


def test_bucket_without_policy_is_undone_by_deleting_it() -> None:
    snap = snapshot(bucket_policy=None)
    step = whitelist_steps(snap, joining(snap))[0]
    assert step.before is None
    assert step.undo is not None
    assert (step.undo.operation, dict(step.undo.params)) == (
        "delete_bucket_policy",
        {"Bucket": "photos-data"},
    )
    sids = [s["Sid"] for s in step.after["Statement"]]  # type: ignore[index]
    assert sids[:3] == ["KeyHygieneAllow", "KeyHygieneDenyOthers", "KeyHygieneDenyUnencrypted"]
    # The bucket's default encryption key becomes the one uploads must use.
    assert "KeyHygieneDenyOtherKey" in sids
    deny_others = step.after["Statement"][1]  # type: ignore[index]
    excepted = deny_others["Condition"]["ArnNotLike"]["aws:PrincipalArn"]
    assert ROOT in excepted and ADMIN in excepted  # the admins keep control


def test_unchanged_resources_produce_no_step_and_untagged_ones_are_ignored() -> None:
    members = ("alice-laptop", "bob-phone")
    current_bucket = bucket_policy_with_whitelist(
        foreign_bucket_policy(),
        bucket="photos-data",
        principals=[arn(m) for m in members],
        key_arn=KEY_ARN,
        keep_admin_arns=[ROOT, ADMIN],
    )
    current_key = key_policy_with_whitelist(
        foreign_key_policy(), principals=[arn(m) for m in members]
    )
    snap = snapshot(bucket_policy=current_bucket, key_policy=current_key, members=members)
    assert whitelist_steps(snap, joining(snap)) == []
    # A group no resource is tagged for: nothing either.
    assert whitelist_steps(snap, {"music": {"carol-desk", "alice-laptop"}}) == []


def test_leaving_removes_the_principal_and_the_empty_allow() -> None:
    snap = snapshot(bucket_policy=foreign_bucket_policy())
    current_bucket = whitelist_steps(snap, joining(snap))[0].after
    current_key = key_policy_with_whitelist(
        foreign_key_policy(), principals=[arn("alice-laptop"), arn("bob-phone")]
    )
    snap = snapshot(
        bucket_policy=dict(current_bucket or {}), key_policy=current_key, members=("bob-phone",)
    )
    steps = whitelist_steps(snap, members_after_change(snap, "bob-phone", leaves=["photos"]))
    bucket = steps[0]
    assert whitelisted_principals(bucket.after) == set()
    assert (
        bucket.description == "Remove alice-laptop, bob-phone from the policy of bucket photos-data"
    )
    assert FOREIGN_BUCKET in bucket.after["Statement"]  # type: ignore[index]
    key = steps[1]
    assert [s.get("Sid") for s in key.after["Statement"]] == [  # type: ignore[index]
        "Enable IAM User Permissions",
        "AuditorDescribe",
    ]


def test_roles_and_other_groups_of_a_resource_are_whitelisted_too() -> None:
    role = Role("photos", f"arn:aws:iam::{ACCOUNT}:role/photos", tags=PHOTOS)
    shared = Bucket(
        "shared-data",
        "arn:aws:s3:::shared-data",
        tags={TAG_GROUPS: "photos music"},
        policy=None,
    )
    snap = snapshot(extra_buckets=(shared,), roles=(role,))
    steps = {s.id: s for s in whitelist_steps(snap, joining(snap))}
    assert whitelisted_principals(steps["bucket-policy.shared-data"].after) == {
        arn("alice-laptop"),
        arn("bob-phone"),
        arn("carol-desk"),  # a member of music, unchanged
        role.arn,
    }
    assert "role photos" in steps["bucket-policy.photos-data"].description


def test_existing_keyhygiene_settings_are_kept() -> None:
    other_key = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/ffffffff-12ab-34cd-56ef-1234567890ab"
    old_admin = arn("old-admin")
    current = bucket_policy_with_whitelist(
        None,
        bucket="photos-data",
        principals=[arn("bob-phone")],
        key_arn=other_key,
        keep_admin_arns=[ROOT, old_admin],
        require_encryption_header=False,
    )
    snap = snapshot(bucket_policy=current)
    after = whitelist_steps(snap, joining(snap))[0].after
    assert after == bucket_policy_with_whitelist(
        None,
        bucket="photos-data",
        principals=[arn("alice-laptop"), arn("bob-phone")],
        key_arn=other_key,
        keep_admin_arns=[ROOT, old_admin, ADMIN],
        require_encryption_header=False,
    )


def test_drift_is_repaired_and_said() -> None:
    # The policy forgot bob-phone; a new member's plan puts him back and says so.
    current = bucket_policy_with_whitelist(
        None, bucket="photos-data", principals=[], key_arn=KEY_ARN, keep_admin_arns=[ROOT, ADMIN]
    )
    snap = snapshot(bucket_policy=current)
    step = whitelist_steps(snap, joining(snap))[0]
    assert step.description == (
        "Whitelist alice-laptop, bob-phone in the policy of bucket photos-data"
    )


def test_a_policy_that_is_not_json_is_refused() -> None:
    # The inventory turns a document it cannot parse into an empty mapping.
    snap = snapshot(bucket_policy={})
    with pytest.raises(BadInput, match="not a valid JSON policy document"):
        whitelist_steps(snap, joining(snap))


def test_a_policy_that_could_not_be_read_is_refused_naming_the_permission() -> None:
    problem = LoadProblem(
        "KMS key alias/photos: policy",
        "Access denied while reading KMS key alias/photos: policy: the identity in use "
        "lacks kms:GetKeyPolicy.",
    )
    snap = snapshot(problems=(problem,))
    with pytest.raises(BadInput, match="kms:GetKeyPolicy"):
        whitelist_steps(snap, joining(snap))


def test_key_policy_lockout_is_refused() -> None:
    # Only a foreign role may administer the key: the admin would lose it.
    key_policy = {"Version": "2012-10-17", "Statement": [dict(FOREIGN_KEY, Action="kms:*")]}
    snap = snapshot(key_policy=key_policy)
    with pytest.raises(PolicyLockout, match="kms:GetKeyPolicy"):
        whitelist_steps(snap, joining(snap))


def test_bucket_policy_lockout_is_refused() -> None:
    freeze = {
        "Sid": "NoPolicyChanges",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:PutBucketPolicy",
        "Resource": "arn:aws:s3:::photos-data",
    }
    snap = snapshot(bucket_policy={"Version": "2012-10-17", "Statement": [freeze]})
    with pytest.raises(PolicyLockout, match="NoPolicyChanges"):
        whitelist_steps(snap, joining(snap))


def test_oversized_policy_is_refused() -> None:
    big = dict(
        FOREIGN_BUCKET,
        Sid="Big",
        Resource=[f"arn:aws:s3:::photos-data/{i:05}/*" for i in range(600)],
    )
    snap = snapshot(bucket_policy={"Version": "2012-10-17", "Statement": [big]})
    with pytest.raises(PolicyTooLarge, match="bucket photos-data"):
        whitelist_steps(snap, joining(snap))


def test_steps_make_a_valid_plan_that_survives_json() -> None:
    snap = snapshot(bucket_policy=foreign_bucket_policy())
    plan = Plan("test", "whitelist", tuple(whitelist_steps(snap, joining(snap))))
    assert Plan.from_json(json.loads(json.dumps(plan.to_json()))) == plan
    assert "the policy shown after the change below" in plan.render_text()


def test_members_after_change_and_arns() -> None:
    snap = snapshot()
    assert members_after_change(snap, "alice-laptop", joins=["PHOTOS"]) == {
        "photos": {"alice-laptop", "bob-phone"}
    }
    assert members_after_change(snap, "BOB-PHONE", leaves=["photos"]) == {"photos": set()}
    assert members_after_change(snap, "x", joins=["new-group"]) == {"new-group": {"x"}}
    assert user_arn(snap, "bob-phone") == arn("bob-phone")
    assert user_arn(snap, "alice-laptop") == arn("alice-laptop")  # not created yet
    assert principals_after(snap, ["photos"], {}) == (arn("bob-phone"),)
