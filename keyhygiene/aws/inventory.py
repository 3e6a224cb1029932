"""Load one snapshot of the account in a handful of calls.

IAM comes from `GetAccountAuthorizationDetails` (users with groups, tags and
policies; groups; roles; local policies) and the credential report (keys:
status, age, last use), so a user costs no call of its own. Buckets and KMS
keys need a few calls each; they run in a bounded thread pool (boto3 clients
are thread-safe) with adaptive retries for throttling. Key ids are read per
user only when someone looks at that user (`load_user_keys`).

What cannot be read (a missing permission, a throttled call) becomes a
`LoadProblem` and the rest still loads.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import unquote

import botocore.exceptions as bexc
from botocore.parsers import ResponseParserError

from keyhygiene.aws.connection import (
    Connection,
    ConnectionOptions,
    Identity,
    call,
    connect_pair,
    paginate,
    quietly,
    translate_errors,
)
from keyhygiene.core.arns import bucket_arn, partition_of
from keyhygiene.core.errors import KeyHygieneError
from keyhygiene.core.formatting import key_tail, parse_utc
from keyhygiene.core.model import (
    AccessKey,
    Bucket,
    Encryption,
    Group,
    InlinePolicy,
    KmsKey,
    LoadProblem,
    PolicyAttachment,
    Role,
    RootSummary,
    Snapshot,
    User,
)

MAX_WORKERS = 8
# GetAccountAuthorizationDetails' MaxItems: 1 to 1,000, default 100
# (https://docs.aws.amazon.com/IAM/latest/APIReference/API_GetAccountAuthorizationDetails.html).
GAAD_PAGE_SIZE = 1000
# AWS makes a new credential report when the last is older than four hours.
REPORT_MAX_AGE = timedelta(hours=4, minutes=5)
ProgressCallback = Callable[[str], None]

_PUBLIC_GRANTEES = (
    "http://acs.amazonaws.com/groups/global/AllUsers",
    "http://acs.amazonaws.com/groups/global/AuthenticatedUsers",
)


@dataclass(frozen=True)
class _Iam:
    users: tuple[User, ...]
    groups: tuple[Group, ...]
    roles: tuple[Role, ...]
    managed_policies: Mapping[str, Mapping[str, Any]]


def load_snapshot(
    conn: Connection,
    *,
    this_user: str | None = None,
    on_progress: ProgressCallback | None = None,
    max_workers: int = MAX_WORKERS,
) -> Snapshot:
    """Read the account. Raises only when the identity itself cannot be read."""
    progress = on_progress or (lambda _what: None)
    progress("Asking AWS who we are")
    identity = conn.whoami()
    problems: list[LoadProblem] = []

    def guarded(what: str, func: Callable[[], Any], default: Any) -> Any:
        with _collect(problems, what):
            return func()
        return default

    with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="inventory") as pool:
        alias_f = pool.submit(guarded, "account alias", lambda: _account_alias(conn), None)
        root_f = pool.submit(
            guarded, "account summary", lambda: _root_summary(conn), RootSummary(None, None)
        )
        report_f = pool.submit(
            guarded, "credential report", lambda: _credential_report(conn), (None, {})
        )
        progress("Reading IAM users, groups and roles")
        iam_f = pool.submit(guarded, "IAM users, groups and roles", lambda: _iam(conn), None)
        bucket_names = guarded("S3 bucket list", lambda: _bucket_names(conn), [])
        key_ids = guarded("KMS key list", lambda: _customer_keys(conn), {})
        progress(f"Reading {len(bucket_names)} buckets and {len(key_ids)} KMS keys")
        # aws-cn and aws-us-gov buckets have ARNs of their own partition.
        partition = partition_of(identity.arn)
        bucket_fs = [pool.submit(_bucket, conn, name, problems, partition) for name in bucket_names]
        key_fs = [
            pool.submit(_kms_key, conn, key_id, arn, aliases, problems)
            for key_id, (arn, aliases) in key_ids.items()
        ]
        iam: _Iam | None = iam_f.result()
        generated, report = report_f.result()
        buckets = tuple(_results(bucket_fs))
        kms_keys = tuple(_results(key_fs))

    users = tuple(_with_report(user, report) for user in iam.users) if iam else ()
    return Snapshot(
        account_id=identity.account_id,
        caller_arn=identity.arn,
        loaded_at=datetime.now(timezone.utc),
        account_alias=alias_f.result(),
        root=root_f.result(),
        users=users,
        groups=iam.groups if iam else (),
        roles=iam.roles if iam else (),
        buckets=tuple(sorted(buckets, key=lambda b: b.name)),
        kms_keys=tuple(sorted(kms_keys, key=lambda k: k.label)),
        managed_policies=iam.managed_policies if iam else {},
        credential_report_generated=generated,
        problems=tuple(problems),
        this_user=this_user,
    )


def load_user_keys(conn: Connection, user: User) -> User:
    """The user's keys read directly: ids, status and last use, fresh.

    Called when a user's node opens and after keyhygiene changed its keys, so
    that what the person just did is what the tree shows (the credential
    report can be four hours old).
    """
    iam = conn.client("iam")
    doing = f"listing the access keys of {user.name}"
    metadata = paginate(
        iam, "list_access_keys", "AccessKeyMetadata", doing, "iam", UserName=user.name
    )
    keys = []
    for slot, item in enumerate(sorted(metadata, key=lambda m: m["CreateDate"]), start=1):
        used = call(
            iam,
            "get_access_key_last_used",
            f"reading when key {key_tail(item['AccessKeyId'])} was last used",
            "iam",
            AccessKeyId=item["AccessKeyId"],
        ).get("AccessKeyLastUsed", {})
        keys.append(
            AccessKey(
                user=user.name,
                status=item["Status"],
                created=item["CreateDate"],
                last_used=used.get("LastUsedDate"),
                last_used_service=_known(used.get("ServiceName")),
                id=item["AccessKeyId"],
                slot=slot,
            )
        )
    return replace(user, access_keys=tuple(keys), keys_exact=True)


# ---- IAM ------------------------------------------------------------------


def _account_alias(conn: Connection) -> str | None:
    aliases = paginate(
        conn.client("iam"), "list_account_aliases", "AccountAliases", "reading the alias", "iam"
    )
    return aliases[0] if aliases else None


def _root_summary(conn: Connection) -> RootSummary:
    summary = call(conn.client("iam"), "get_account_summary", "reading the account summary", "iam")[
        "SummaryMap"
    ]
    return RootSummary(
        mfa_enabled=bool(summary.get("AccountMFAEnabled", 0)),
        access_keys_present=bool(summary.get("AccountAccessKeysPresent", 0)),
    )


def _iam(conn: Connection) -> _Iam:
    pages: dict[str, list[Any]] = {
        "UserDetailList": [],
        "GroupDetailList": [],
        "RoleDetailList": [],
        "Policies": [],
    }
    with translate_errors("reading IAM users, groups and roles", service="iam"):
        paginator = conn.client("iam").get_paginator("get_account_authorization_details")
        # 1,000 items a page, the most IAM allows (the default is 100): 5,000
        # users are then about 5 requests, not 50.
        pages_of = paginator.paginate(
            Filter=["User", "Group", "Role", "LocalManagedPolicy"],
            PaginationConfig={"PageSize": GAAD_PAGE_SIZE},
        )
        for page in pages_of:
            for key, items in pages.items():
                items.extend(page.get(key, []))
    users = tuple(sorted((_user(u) for u in pages["UserDetailList"]), key=lambda u: u.name))
    members: dict[str, list[str]] = {}
    for user in users:
        for group in user.groups:
            members.setdefault(group, []).append(user.name)
    groups = tuple(
        sorted(
            (
                Group(
                    name=g["GroupName"],
                    arn=g["Arn"],
                    members=tuple(members.get(g["GroupName"], ())),
                    attached_policies=_attached(g),
                    inline_policies=_inline(g.get("GroupPolicyList", [])),
                )
                for g in pages["GroupDetailList"]
            ),
            key=lambda g: g.name,
        )
    )
    roles = tuple(
        sorted(
            (
                Role(
                    name=r["RoleName"],
                    arn=r["Arn"],
                    trust_policy=_document(r.get("AssumeRolePolicyDocument")),
                    attached_policies=_attached(r),
                    inline_policies=_inline(r.get("RolePolicyList", [])),
                    tags=_tags(r.get("Tags")),
                    instance_profiles=tuple(
                        p["InstanceProfileName"] for p in r.get("InstanceProfileList", [])
                    ),
                    path=r.get("Path", "/"),
                )
                for r in pages["RoleDetailList"]
            ),
            key=lambda r: r.name,
        )
    )
    return _Iam(users, groups, roles, _managed_documents(pages["Policies"]))


def _user(detail: Mapping[str, Any]) -> User:
    return User(
        name=detail["UserName"],
        arn=detail["Arn"],
        user_id=detail.get("UserId", ""),
        created=detail.get("CreateDate"),
        tags=_tags(detail.get("Tags")),
        groups=tuple(detail.get("GroupList", [])),
        attached_policies=_attached(detail),
        inline_policies=_inline(detail.get("UserPolicyList", [])),
    )


def _attached(detail: Mapping[str, Any]) -> tuple[PolicyAttachment, ...]:
    return tuple(
        PolicyAttachment(name=p["PolicyName"], arn=p["PolicyArn"])
        for p in detail.get("AttachedManagedPolicies", [])
    )


def _inline(items: Iterable[Mapping[str, Any]]) -> tuple[InlinePolicy, ...]:
    return tuple(
        InlinePolicy(name=p["PolicyName"], document=_document(p.get("PolicyDocument")))
        for p in items
    )


def _managed_documents(policies: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    documents: dict[str, Mapping[str, Any]] = {}
    for policy in policies:
        for version in policy.get("PolicyVersionList", []):
            if version.get("IsDefaultVersion"):
                documents[policy["Arn"]] = _document(version.get("Document"))
    return documents


def _document(raw: Any) -> Mapping[str, Any]:
    """IAM returns policy documents URL-encoded in XML; boto3 decodes most, not all."""
    if isinstance(raw, Mapping):
        return raw
    if not raw:
        return {}
    text = unquote(raw) if isinstance(raw, str) and raw.startswith("%7B") else raw
    try:
        parsed = json.loads(text)
    except (TypeError, ValueError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _tags(raw: Iterable[Mapping[str, str]] | None) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in raw or ()}


# ---- credential report ------------------------------------------------------


@dataclass(frozen=True)
class _ReportEntry:
    """One user's row of the credential report."""

    keys: tuple[AccessKey, ...]
    password_enabled: bool
    mfa_active: bool


def _credential_report(conn: Connection) -> tuple[datetime | None, dict[str, _ReportEntry]]:
    """Keys by user name from the credential report, and when AWS made it.

    AWS regenerates the report at most every four hours, so it may be stale;
    the tree shows its age and reads keys directly when a user is opened.
    """
    iam = conn.client("iam")
    doing = "reading the credential report"
    deadline = time.monotonic() + 30
    pause = 0.05  # AWS takes seconds to make a report, moto one round trip: start short
    with translate_errors(doing, service="iam"):
        while True:
            state = iam.generate_credential_report().get("State")
            if state == "COMPLETE" or time.monotonic() > deadline:
                break
            time.sleep(pause)
            pause = min(pause * 2, 2.0)
        answer = iam.get_credential_report()
    content = answer["Content"]
    text = content.decode("utf-8") if isinstance(content, bytes) else str(content)
    entries: dict[str, _ReportEntry] = {}
    for row in csv.DictReader(io.StringIO(text)):
        name = row.get("user", "")
        if name == "<root_account>":
            continue
        keys = []
        for slot in (1, 2):
            rotated = _report_time(row.get(f"access_key_{slot}_last_rotated"))
            if rotated is None:
                continue
            keys.append(
                AccessKey(
                    user=name,
                    status="Active"
                    if row.get(f"access_key_{slot}_active") == "true"
                    else "Inactive",
                    created=rotated,
                    last_used=_report_time(row.get(f"access_key_{slot}_last_used_date")),
                    last_used_service=_known(row.get(f"access_key_{slot}_last_used_service")),
                    slot=slot,
                )
            )
        entries[name] = _ReportEntry(
            keys=tuple(keys),
            password_enabled=row.get("password_enabled") == "true",
            mfa_active=row.get("mfa_active") == "true",
        )
    return _plausible_report_time(answer.get("GeneratedTime")), entries


def _plausible_report_time(generated: datetime | None) -> datetime | None:
    """AWS regenerates a report older than four hours when asked to, so a
    report older than that right after GenerateCredentialReport is a date the
    endpoint made up (moto answers 2015-02-02): show the age as unknown."""
    if generated is None:
        return None
    if generated.tzinfo is None:
        generated = generated.replace(tzinfo=timezone.utc)
    if datetime.now(timezone.utc) - generated > REPORT_MAX_AGE:
        return None
    return generated


def _with_report(user: User, report: Mapping[str, _ReportEntry]) -> User:
    entry = report.get(user.name)
    if entry is None:
        return user
    return replace(
        user,
        access_keys=entry.keys,
        password_enabled=entry.password_enabled,
        mfa_active=entry.mfa_active,
    )


def _report_time(value: str | None) -> datetime | None:
    if not value or value in ("N/A", "not_supported", "no_information"):
        return None
    return parse_utc(value)


def _known(value: str | None) -> str | None:
    return None if value in (None, "", "N/A", "not_supported") else value


# ---- S3 ---------------------------------------------------------------------


def _bucket_names(conn: Connection) -> list[str]:
    answer = call(conn.client("s3"), "list_buckets", "listing the S3 buckets", "s3")
    return sorted(b["Name"] for b in answer.get("Buckets", []))


def _bucket(
    conn: Connection, name: str, problems: list[LoadProblem], partition: str = "aws"
) -> Bucket:
    s3 = conn.client("s3")
    arn = bucket_arn(name, partition)

    def read(part: str, func: Callable[[], Any], missing: tuple[str, ...]) -> Any:
        with _collect(problems, f"S3 bucket {name}: {part}"):
            return quietly(func, missing_codes=missing)
        return None

    policy = read(
        "policy", lambda: s3.get_bucket_policy(Bucket=name)["Policy"], ("NoSuchBucketPolicy",)
    )
    encryption = read(
        "default encryption",
        lambda: s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"],
        ("ServerSideEncryptionConfigurationNotFoundError",),
    )
    block = read(
        "public access block",
        lambda: s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"],
        ("NoSuchPublicAccessBlockConfiguration",),
    )
    tags = read("tags", lambda: s3.get_bucket_tagging(Bucket=name)["TagSet"], ("NoSuchTagSet",))
    grants = read("ACL", lambda: s3.get_bucket_acl(Bucket=name)["Grants"], ())
    if policy and not _document(policy):
        problems.append(
            LoadProblem(
                f"S3 bucket {name}: policy",
                "The bucket policy is not a JSON object; keyhygiene will not edit it.",
            )
        )
    return Bucket(
        name=name,
        arn=arn,
        tags=_tags(tags),
        policy=_document(policy) if policy else None,
        encryption=_encryption(encryption),
        public_access_block=dict(block) if block else None,
        acl_public=any(g.get("Grantee", {}).get("URI") in _PUBLIC_GRANTEES for g in grants or ()),
    )


def _encryption(config: Mapping[str, Any] | None) -> Encryption | None:
    for rule in (config or {}).get("Rules", []):
        default = rule.get("ApplyServerSideEncryptionByDefault")
        if default:
            return Encryption(
                algorithm=default.get("SSEAlgorithm", ""),
                kms_key_id=default.get("KMSMasterKeyID"),
            )
    return None


# ---- KMS --------------------------------------------------------------------


def _customer_keys(conn: Connection) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Key id -> (ARN, aliases), leaving out AWS managed keys (alias/aws/...):
    their policies belong to AWS, and skipping them saves calls."""
    kms = conn.client("kms")
    keys = paginate(kms, "list_keys", "Keys", "listing the KMS keys", "kms")
    aliases: dict[str, list[str]] = {}
    for alias in paginate(kms, "list_aliases", "Aliases", "listing the KMS aliases", "kms"):
        if alias.get("TargetKeyId"):
            aliases.setdefault(alias["TargetKeyId"], []).append(alias["AliasName"])
    result = {}
    for key in keys:
        names = tuple(sorted(aliases.get(key["KeyId"], ())))
        if names and all(name.startswith("alias/aws/") for name in names):
            continue
        result[key["KeyId"]] = (key["KeyArn"], names)
    return result


def _kms_key(
    conn: Connection,
    key_id: str,
    arn: str,
    aliases: tuple[str, ...],
    problems: list[LoadProblem],
) -> KmsKey:
    kms = conn.client("kms")
    label = aliases[0] if aliases else key_id
    policy = None
    tags: list[Mapping[str, str]] = []
    with _collect(problems, f"KMS key {label}: policy"):
        policy = kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]
    with _collect(problems, f"KMS key {label}: tags"):
        tags = [
            {"Key": t["TagKey"], "Value": t["TagValue"]}
            for t in kms.list_resource_tags(KeyId=key_id).get("Tags", [])
        ]
    return KmsKey(
        key_id=key_id,
        arn=arn,
        aliases=aliases,
        tags=_tags(tags),
        policy=_document(policy) if policy else None,
    )


# ---- helpers ------------------------------------------------------------------


class _collect:
    """Context manager: a failed read becomes a LoadProblem instead of an exception."""

    def __init__(self, problems: list[LoadProblem], what: str) -> None:
        self.problems = problems
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None:
            return False
        if isinstance(exc, KeyHygieneError):
            self.problems.append(LoadProblem(self.what, exc.message))
            return True
        if isinstance(exc, (bexc.ClientError, bexc.BotoCoreError, ResponseParserError)):
            try:
                with translate_errors(f"reading {self.what}", service=_service_of(self.what)):
                    raise exc
            except KeyHygieneError as translated:
                self.problems.append(LoadProblem(self.what, translated.message))
            return True
        return False


def _service_of(what: str) -> str:
    if what.startswith("S3"):
        return "s3"
    if what.startswith("KMS"):
        return "kms"
    return "iam"


def _results(futures: Iterable[Future[Any]]) -> list[Any]:
    return [future.result() for future in futures]


def load_account(
    options: ConnectionOptions, *, on_progress: ProgressCallback | None = None
) -> tuple[Snapshot, Connection]:
    """Load the account with the admin identity; mark this computer's user.

    Returns the snapshot and the admin connection (for lazy per-user reads).
    """
    own, admin = connect_pair(options)
    this_user: str | None = None
    own_account: str | None = None
    extra: list[LoadProblem] = []
    if own is not admin and options.computer_key:
        try:
            own_identity = own.whoami()
            this_user, own_account = own_identity.user_name, own_identity.account_id
        except KeyHygieneError as exc:
            extra.append(
                LoadProblem(f"this computer's profile {options.profile_name}", exc.message)
            )
    snapshot = load_snapshot(admin, this_user=this_user, on_progress=on_progress)
    if own_account is not None and own_account != snapshot.account_id:
        # This computer's key belongs to another of the accounts: here it is no user.
        snapshot = replace(snapshot, this_user=None)
    if own is admin:
        snapshot = replace(
            snapshot, this_user=Identity(snapshot.account_id, snapshot.caller_arn).user_name
        )
    if extra:
        snapshot = replace(snapshot, problems=(*extra, *snapshot.problems))
    return snapshot, admin
