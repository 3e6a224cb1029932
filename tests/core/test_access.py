"""keyhygiene.core.access on in-memory snapshots built with keyhygiene's own document builders,
and the details pane lines that come from it."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import pytest
from sample_account import sample_snapshot

import keyhygiene.views.details as account_details
from keyhygiene.core.access import (
    admin_principal_arns,
    explain,
    principal_of,
    principal_reach,
    resource_arn_of,
    upload_context,
    who_can,
)
from keyhygiene.core.model import (
    TAG_GROUPS,
    Bucket,
    Encryption,
    Group,
    InlinePolicy,
    KmsKey,
    PolicyAttachment,
    Role,
    Snapshot,
    User,
)
from keyhygiene.core.policy_documents import (
    SID_BUCKET_ALLOW,
    SID_BUCKET_DENY_AWS_MANAGED_KEY,
    SID_BUCKET_DENY_CONFIGURATION,
    SID_BUCKET_DENY_OTHER_KEY,
    SID_BUCKET_DENY_OTHERS,
    SID_BUCKET_DENY_SSE_C,
    SID_BUCKET_DENY_WRONG_ENCRYPTION,
    SID_KEY_ALLOW_USE,
    SID_KEY_DENY_OTHERS_USE,
    bucket_policy_with_whitelist,
    default_key_policy,
    key_policy_with_whitelist,
)
from keyhygiene.core.policy_eval import Principal
from keyhygiene.views.details import describe
from keyhygiene.views.outline import OutlineNode

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)
ACCOUNT = "123456789012"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{KEY_ID}"
LEGACY_KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/legacy-0000"
ADMIN_ACCESS = PolicyAttachment(
    "AdministratorAccess", "arn:aws:iam::aws:policy/AdministratorAccess"
)


def arn(kind: str, name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:{kind}/{name}"


ALICE = arn("user", "alice-laptop")
DAVE = arn("user", "dave-laptop")
ACTOR = arn("user", "admin")
ROLE = arn("role", "photos")

S3_ON_PHOTOS = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "s3:*",
            "Resource": ["arn:aws:s3:::photos-data", "arn:aws:s3:::photos-data/*"],
        }
    ],
}


def account() -> Snapshot:
    """Application photos as keyhygiene writes it: alice-laptop and role photos
    whitelisted, dave-laptop in the group but not (yet) on the whitelists,
    three admins with AdministratorAccess: `admin` runs keyhygiene, carol is
    tagged keyhygiene:admin, bob is neither. Plus a legacy key with AWS's
    default policy and one statement of its own naming alice."""
    users = (
        User("admin", ACTOR, attached_policies=(ADMIN_ACCESS,)),
        User("alice-laptop", ALICE, user_id="AIDAALICE", groups=("photos",)),
        User("bob-admin", arn("user", "bob-admin"), attached_policies=(ADMIN_ACCESS,)),
        User(
            "carol-admin",
            arn("user", "carol-admin"),
            tags={"keyhygiene:admin": "true"},
            attached_policies=(ADMIN_ACCESS,),
        ),
        User("dave-laptop", DAVE, groups=("photos",)),
    )
    group = Group(
        "photos",
        arn("group", "photos"),
        ("alice-laptop", "dave-laptop"),
        inline_policies=(InlinePolicy("photos-s3", S3_ON_PHOTOS),),
    )
    role = Role("photos", ROLE, tags={TAG_GROUPS: "photos"})
    whitelist = [ALICE, ROLE]
    key = KmsKey(
        KEY_ID,
        KEY_ARN,
        ("alias/photos",),
        {TAG_GROUPS: "photos"},
        key_policy_with_whitelist(default_key_policy(ACCOUNT), principals=whitelist),
    )
    legacy_policy = default_key_policy(ACCOUNT)
    legacy_policy["Statement"].append(
        {
            "Sid": "AliceDecrypts",
            "Effect": "Allow",
            "Principal": {"AWS": ALICE},
            "Action": "kms:Decrypt",
            "Resource": "*",
        }
    )
    legacy = KmsKey("legacy-0000", LEGACY_KEY_ARN, ("alias/legacy",), {}, legacy_policy)
    snapshot = Snapshot(
        ACCOUNT,
        ACTOR,
        NOW,
        users=users,
        groups=(group,),
        roles=(role,),
        kms_keys=(key, legacy),
    )
    bucket = Bucket(
        "photos-data",
        "arn:aws:s3:::photos-data",
        {TAG_GROUPS: "photos"},
        bucket_policy_with_whitelist(
            None,
            bucket="photos-data",
            principals=whitelist,
            key_arn=KEY_ARN,
            keep_admin_arns=admin_principal_arns(snapshot, ACTOR),
        ),
        Encryption("aws:kms", KEY_ARN),
    )
    return replace(snapshot, buckets=(bucket,))


def sids(decision: Any) -> set[str | None]:
    return {ref.sid for ref in decision.deciding}


# ---- principal_of ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "kind", "principal_arn"),
    [
        ("alice-laptop", "user", ALICE),
        (ALICE, "user", ALICE),
        ("role/photos", "role", ROLE),
        ("photos", "role", ROLE),
        (ROLE, "role", ROLE),
        (f"arn:aws:sts::{ACCOUNT}:assumed-role/photos/i-0abc", "role", ROLE),
        ("root", "root", f"arn:aws:iam::{ACCOUNT}:root"),
        (f"arn:aws:iam::{ACCOUNT}:root", "root", f"arn:aws:iam::{ACCOUNT}:root"),
        ("cloudtrail.amazonaws.com", "service", "cloudtrail.amazonaws.com"),
    ],
)
def test_principal_of_each_kind(who: str, kind: str, principal_arn: str) -> None:
    principal = principal_of(account(), who)
    assert (principal.kind, principal.arn) == (kind, principal_arn)
    if kind == "user":
        assert principal.user_id == "AIDAALICE"
    if kind == "role":
        assert principal.session_arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/photos/keyhygiene"
        assert principal.tags == {TAG_GROUPS: "photos"}
    if kind in ("user", "role", "root"):
        assert principal.account_id == ACCOUNT


@pytest.mark.parametrize("who", ["nobody", arn("user", "nobody"), "role/nobody"])
def test_principal_of_an_unknown_name_is_a_lookup_error(who: str) -> None:
    with pytest.raises(LookupError, match="is no user, role, service or root"):
        principal_of(account(), who)


def test_resource_names_people_type() -> None:
    snapshot = account()
    assert resource_arn_of(snapshot, "photos-data") == "arn:aws:s3:::photos-data"
    assert resource_arn_of(snapshot, "photos-data/a.jpg") == "arn:aws:s3:::photos-data/a.jpg"
    assert resource_arn_of(snapshot, "alias/photos") == KEY_ARN
    assert resource_arn_of(snapshot, KEY_ID) == KEY_ARN
    assert resource_arn_of(snapshot, f"arn:aws:kms:us-east-1:{ACCOUNT}:alias/photos") == KEY_ARN


def test_a_bucket_named_like_its_applications_key_is_the_bucket() -> None:
    snapshot = account()
    photos = Bucket("photos", "arn:aws:s3:::photos")
    snapshot = replace(snapshot, buckets=(*snapshot.buckets, photos))
    assert resource_arn_of(snapshot, "photos") == "arn:aws:s3:::photos"
    assert resource_arn_of(snapshot, "photos/a.jpg") == "arn:aws:s3:::photos/a.jpg"
    assert resource_arn_of(snapshot, "alias/photos") == KEY_ARN


# ---- explain on keyhygiene's documents -------------------------------------------------


def test_a_whitelisted_computers_plain_upload_is_allowed() -> None:
    decision = explain(
        account(),
        "alice-laptop",
        "s3:PutObject",
        "photos-data/2026/cat.jpg",
        context=upload_context("plain"),
        now=NOW,
    )
    assert decision.outcome == "allow", decision.reason
    sources = {ref.source for ref in decision.deciding}
    assert "group photos inline policy photos-s3" in sources
    assert SID_BUCKET_ALLOW in sids(decision)


def test_multipart_parts_carry_no_sse_keys_and_are_allowed() -> None:
    # UploadPart is authorized as s3:PutObject without any SSE header; the
    # CreateMultipartUpload that starts it carries the upload's headers.
    snapshot = account()
    part = explain(snapshot, "alice-laptop", "s3:PutObject", "photos-data/big.iso", now=NOW)
    assert part.outcome == "allow", part.reason
    start = explain(
        snapshot,
        "alice-laptop",
        "s3:PutObject",
        "photos-data/big.iso",
        context=upload_context("kms-key", KEY_ARN),
        now=NOW,
    )
    assert start.outcome == "allow", start.reason
    abort = explain(snapshot, "alice-laptop", "s3:AbortMultipartUpload", "photos-data/big.iso")
    assert abort.allowed


@pytest.mark.parametrize(
    ("kind", "sid"),
    [
        ("aes256", SID_BUCKET_DENY_WRONG_ENCRYPTION),
        ("sse-c", SID_BUCKET_DENY_SSE_C),
        ("kms-no-key", SID_BUCKET_DENY_AWS_MANAGED_KEY),
        ("other-key", SID_BUCKET_DENY_OTHER_KEY),
    ],
)
def test_uploads_asking_for_another_encryption_are_denied(kind: Any, sid: str) -> None:
    decision = explain(
        account(),
        "alice-laptop",
        "s3:PutObject",
        "photos-data/a.jpg",
        context=upload_context(kind, KEY_ARN),
        now=NOW,
    )
    assert decision.outcome == "explicit-deny"
    assert sid in sids(decision)
    assert SID_BUCKET_DENY_OTHERS not in sids(decision)


def test_a_group_member_not_on_the_whitelist_is_denied_by_the_bucket() -> None:
    # The group policy allows s3:* on the bucket; the bucket policy's Deny is the last whitelist.
    decision = explain(account(), "dave-laptop", "s3:GetObject", "photos-data/a.jpg", now=NOW)
    assert decision.outcome == "explicit-deny"
    assert sids(decision) == {SID_BUCKET_DENY_OTHERS}


@pytest.mark.parametrize(
    ("who", "outcome"),
    [
        ("admin", "allow"),  # the identity running keyhygiene: kept out of the deny
        ("carol-admin", "allow"),  # tagged keyhygiene:admin = true
        ("bob-admin", "explicit-deny"),  # AdministratorAccess alone is not enough
        ("alice-laptop", "explicit-deny"),  # whitelisted for data, not configuration
        ("root", "allow"),
    ],
)
def test_only_keyhygienes_admins_change_the_bucket_policy(who: str, outcome: str) -> None:
    decision = explain(account(), who, "s3:PutBucketPolicy", "photos-data", now=NOW)
    assert decision.outcome == outcome, decision.reason
    if outcome == "explicit-deny":
        assert sids(decision) == {SID_BUCKET_DENY_CONFIGURATION}


def test_an_admin_not_on_the_keys_whitelist_cannot_decrypt() -> None:
    snapshot = account()
    for who in ("bob-admin", "admin", "carol-admin"):
        decision = explain(snapshot, who, "kms:Decrypt", "alias/photos", now=NOW)
        assert decision.outcome == "explicit-deny", who
        assert sids(decision) == {SID_KEY_DENY_OTHERS_USE}
    # ... while it still administers the key through IAM (the default statement).
    describe_key = explain(snapshot, "bob-admin", "kms:PutKeyPolicy", "alias/photos", now=NOW)
    assert describe_key.allowed
    assert "Enable IAM User Permissions" in sids(describe_key)
    alice = explain(snapshot, "alice-laptop", "kms:Decrypt", "alias/photos", now=NOW)
    assert alice.allowed and sids(alice) == {SID_KEY_ALLOW_USE}


def test_an_unread_managed_policy_makes_the_answer_unknown() -> None:
    snapshot = account()
    mystery = PolicyAttachment("Mystery", f"arn:aws:iam::{ACCOUNT}:policy/Mystery")
    dave = replace(snapshot.users[4], attached_policies=(mystery,))
    decision = explain(snapshot.with_user(dave), "dave-laptop", "kms:Decrypt", "alias/legacy")
    assert decision.outcome == "unknown"
    assert any("Mystery was not read" in why for why in decision.unknowns)


# ---- reach ---------------------------------------------------------------------------


def reach(snapshot: Snapshot, who: str) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    return {r.resource: (r.abilities, r.unknown) for r in principal_reach(snapshot, who, NOW)}


def test_reach() -> None:
    snapshot = account()
    assert reach(snapshot, "alice-laptop") == {
        "photos-data": (("read", "write", "list"), ()),
        "alias/legacy": (("decrypt",), ()),
        "alias/photos": (("decrypt", "encrypt"), ()),
    }
    # AdministratorAccess, but neither whitelist: the photos bucket and key are closed to it.
    assert reach(snapshot, "bob-admin") == {"alias/legacy": (("decrypt", "encrypt"), ())}
    assert reach(snapshot, "dave-laptop") == {}


def test_reading_a_bucket_takes_its_key_too() -> None:
    # An admin exempt from the bucket's deny, but not on the key's whitelist:
    # S3 decrypts as the caller, so it reads and writes nothing.
    snapshot = account()
    bucket = snapshot.bucket("photos-data")
    assert bucket is not None and bucket.encryption is not None
    assert "read" not in dict(reach(snapshot, "admin")).get("photos-data", ((), ()))[0]
    plain = replace(snapshot, buckets=(replace(bucket, encryption=None),))
    assert "read" in reach(plain, "admin")["photos-data"][0]


def test_who_can() -> None:
    snapshot = account()
    who = who_can(snapshot, "s3:GetObject", "arn:aws:s3:::photos-data/a", NOW)
    assert (who.allowed, who.unknown) == (
        ("admin", "alice-laptop", "carol-admin", "role photos"),
        (),
    )
    key = who_can(snapshot, "kms:Decrypt", KEY_ARN, NOW)
    assert (key.allowed, key.unknown) == (("alice-laptop", "role photos"), ())


# ---- the details pane ----------------------------------------------------------------


def facts(snapshot: Snapshot, kind: str, ref: str) -> list[tuple[str, str]]:
    return list(describe(snapshot, OutlineNode(ref, kind, ref), NOW).facts)


def fact(snapshot: Snapshot, kind: str, ref: str, name: str) -> str:
    return dict(facts(snapshot, kind, ref))[name]


def test_a_computer_says_what_it_can_do() -> None:
    found = facts(account(), "device", "alice-laptop")
    start = found.index(("can", "read, write and list photos-data"))
    assert found[start + 1 :] == [
        ("", "decrypt with alias/legacy"),
        ("", "decrypt and encrypt with alias/photos"),
    ]
    assert ("can", "use none of the account's buckets and KMS keys") in facts(
        account(), "device", "dave-laptop"
    )


def test_a_computer_whose_policies_cannot_be_read_says_cannot_tell() -> None:
    snapshot = account()
    mystery = PolicyAttachment("Mystery", f"arn:aws:iam::{ACCOUNT}:policy/Mystery")
    alice = replace(snapshot.users[1], attached_policies=(mystery,))
    # A policy not read may deny as well as allow: nothing is sure any more.
    found = facts(snapshot.with_user(alice), "device", "alice-laptop")
    assert found[-3:] == [
        ("can", "cannot tell: read, write or list photos-data"),
        ("", "cannot tell: decrypt or encrypt with alias/legacy"),
        ("", "cannot tell: decrypt or encrypt with alias/photos"),
    ]


def test_a_bucket_says_who_reaches_its_data_and_its_configuration() -> None:
    snapshot = account()
    # The admins may get the objects, but S3 decrypts as the caller and the
    # application's key denies them: they read nothing.
    assert fact(snapshot, "bucket", "photos-data", "data reachable by") == (
        "alice-laptop, role photos"
    )
    assert fact(snapshot, "bucket", "photos-data", "configuration by") == "admin, carol-admin, root"


def test_a_public_bucket_is_reachable_by_anyone() -> None:
    snapshot = sample_snapshot()
    assert (
        fact(snapshot, "bucket", "christopher-public-share", "data reachable by")
        == "anyone, anonymous callers included"
    )


def test_a_key_says_who_decrypts_and_who_only_through_iam() -> None:
    snapshot = account()
    assert fact(snapshot, "kms-key", "alias/photos", "decrypt allowed to") == (
        "alice-laptop, role photos"
    )
    assert fact(snapshot, "kms-key", "alias/photos", "usable through IAM by") == "nobody"
    # The default policy hands the key to IAM: every AdministratorAccess holder
    # may decrypt, though only alice is named.
    assert fact(snapshot, "kms-key", "alias/legacy", "decrypt allowed to") == (
        "admin, alice-laptop, bob-admin, carol-admin, root"
    )
    assert fact(snapshot, "kms-key", "alias/legacy", "usable through IAM by") == (
        "admin, bob-admin, carol-admin"
    )


def test_a_key_whose_policy_was_not_read_cannot_tell() -> None:
    snapshot = account()
    unread = replace(snapshot.kms_keys[1], policy=None)
    snapshot = replace(snapshot, kms_keys=(snapshot.kms_keys[0], unread))
    assert fact(snapshot, "kms-key", "alias/legacy", "decrypt allowed to") == (
        "cannot tell: the key policy was not read"
    )


@pytest.mark.parametrize(
    ("action", "resource"),
    [
        ("s3:GetObject", "arn:aws:s3:::photos-data/a"),
        ("s3:PutObject", "arn:aws:s3:::photos-data/a"),
        ("s3:PutBucketPolicy", "arn:aws:s3:::photos-data"),
        ("s3:ListBucket", "arn:aws:s3:::photos-data"),
        ("kms:Decrypt", KEY_ARN),
        ("kms:Decrypt", LEGACY_KEY_ARN),
        ("kms:PutKeyPolicy", KEY_ARN),
        ("s3:GetObject", "arn:aws:s3:::christopher-photos/a"),
        ("s3:GetObject", "arn:aws:s3:::christopher-public-share/a"),
    ],
)
def test_the_panes_shortcut_finds_everyone_who_can(action: str, resource: str) -> None:
    """Leaving out principals no policy could allow changes no answer."""
    sample = sample_snapshot()
    mystery = PolicyAttachment("Mystery", f"arn:aws:iam::{ACCOUNT}:policy/Mystery")
    base = account()
    odd = replace(base.users[4], attached_policies=(mystery,))  # unknown for everything
    snapshot = replace(
        base.with_user(odd),
        buckets=(*base.buckets, *sample.buckets),
        users=(*base.with_user(odd).users, *sample.users),
        groups=(*base.groups, *(g for g in sample.groups if g.name != "photos")),
    )
    who = who_can(snapshot, action, resource, NOW, with_root=True)
    # Asking everyone, one by one, gives the same answers.
    everyone = [(u.name, u.arn) for u in snapshot.users]
    everyone += [(f"role {r.name}", r.arn) for r in snapshot.roles if not r.service_linked]
    everyone += [("root", "root")]
    decisions = {name: explain(snapshot, arn, action, resource, now=NOW) for name, arn in everyone}
    if who.anyone:  # public: not listed one by one
        assert explain(snapshot, Principal.anonymous(), action, resource, now=NOW).allowed
        return
    assert list(who.allowed) == [n for n, d in decisions.items() if d.allowed]
    assert list(who.unknown) == [n for n, d in decisions.items() if d.outcome == "unknown"]


def test_long_listings_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    snapshot = account()
    monkeypatch.setattr(account_details, "WHO_LIMIT", 2)
    assert (
        fact(snapshot, "bucket", "photos-data", "configuration by")
        == "admin, carol-admin and 1 more"
    )
    monkeypatch.setattr(account_details, "WHO_BUDGET", 2)
    # Those the bucket policy names are evaluated first; the others are counted.
    assert fact(snapshot, "bucket", "photos-data", "configuration by").endswith(
        "other users and roles not checked (keyhygiene explain answers one)"
    )
