"""Load just what a revoke needs, fast: the user, the actor, the buckets and keys
that name the user."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timezone
from functools import partial
from typing import Any

from keyhygiene.aws.connection import (
    Connection,
    all_items,
    call_unless_missing,
    error_code,
    paginate,
    translate_errors,
)
from keyhygiene.aws.errors import BotoCoreError, ClientError
from keyhygiene.aws.sessions import MAX_POOL
from keyhygiene.core import arns
from keyhygiene.core.arns import bucket_arn, partition_of
from keyhygiene.core.errors import KeyHygieneError
from keyhygiene.core.formatting import key_tail
from keyhygiene.core.model import (
    AccessKey,
    Bucket,
    Group,
    InlinePolicy,
    KmsKey,
    LoadProblem,
    PolicyAttachment,
    Role,
    Snapshot,
    User,
)
from keyhygiene.core.policy_documents import (
    caller_principal_arn,
)
from keyhygiene.workflows.revoke.helpers import _document
from keyhygiene.workflows.revoke.model import AccountReader, T, UserExtras
from keyhygiene.workflows.revoke.plan import unknown_user


def load_for_revoke(
    conn: AccountReader, user_name: str, *, this_user: str | None = None
) -> tuple[Snapshot, UserExtras]:
    """Just what `plan_revoke` needs, read in parallel: the user (keys read
    directly, with last use), its groups and policies, its console password and
    MFA devices, and every bucket and customer KMS key policy.

    Raises BadInput, having changed nothing, when the user does not exist. What
    else cannot be read becomes a `LoadProblem`, which the plan turns into a
    warning (or a step that finds out when it runs).
    """
    with ThreadPoolExecutor(max_workers=MAX_POOL, thread_name_prefix="revoke-load") as pool:
        loader = _Loader(conn, user_name.strip(), pool)
        identity_f = pool.submit(conn.whoami)
        detail_f = pool.submit(_get_user, conn, loader.name)
        parts = loader.user_parts()
        buckets_f: Future[list[str]] = loader.read(
            "the S3 bucket list", "s3", partial(_bucket_names, conn), []
        )
        kms_f: Future[dict[str, tuple[str, tuple[str, ...]]]] = loader.read(
            "the KMS key list", "kms", partial(_customer_keys, conn), {}
        )
        detail = detail_f.result()  # raises BadInput for an unknown user
        identity = identity_f.result()
        role_f = pool.submit(_actor_role, loader.iam, identity.arn)
        policies = loader.resource_policies(buckets_f.result(), kms_f.result())
        user = loader.user(detail, parts)
        buckets, kms_keys = loader.resources(policies, kms_f.result(), identity.arn)
        mfa = parts["mfa"].result()
        extras = UserExtras(
            login_profile=parts["login"].result(),
            mfa_serials=None if mfa is None else tuple(d["SerialNumber"] for d in mfa),
        )
        groups = tuple(
            Group(name=g["GroupName"], arn=g["Arn"], members=(user.name,))
            for g in parts["groups"].result() or ()
        )
    user = replace(
        user, password_enabled=bool(extras.login_profile), mfa_active=bool(extras.mfa_serials)
    )
    snapshot = Snapshot(
        account_id=identity.account_id,
        caller_arn=identity.arn,
        loaded_at=datetime.now(timezone.utc),
        users=(user,),
        groups=groups,
        buckets=buckets,
        kms_keys=kms_keys,
        roles=role_f.result(),
        problems=tuple(loader.problems),
        this_user=this_user,
    )
    return snapshot, extras


def _actor_role(iam: Any, caller_arn: str) -> tuple[Role, ...]:
    """The role behind an assumed-role caller (SSO admin, --admin-profile role), so
    that bucket exception lists and the lock-out check name its real ARN (path
    included); () for any other caller.

    A role that cannot be read is left out: each bucket step it would have
    needed then says why it was left unchanged, and the rest of the revoke goes on.
    """
    principal = caller_principal_arn(caller_arn)
    if principal == caller_arn:
        return ()
    try:
        role = iam.get_role(RoleName=arns.name_of(principal))["Role"]
    except (ClientError, BotoCoreError):
        return ()
    return (
        Role(
            name=role["RoleName"],
            arn=role["Arn"],
            path=role.get("Path", "/"),
            tags={t["Key"]: t["Value"] for t in role.get("Tags", [])},
        ),
    )


class _Loader:
    """The reads of `load_for_revoke`, each in the pool; a failed read becomes a LoadProblem."""

    def __init__(self, conn: AccountReader, name: str, pool: ThreadPoolExecutor) -> None:
        self.conn = conn
        self.iam = conn.client("iam")
        self.name = name
        self.pool = pool
        self.problems: list[LoadProblem] = []

    def read(self, what: str, service: str, func: Callable[[], T], default: T) -> Future[T]:
        return self.pool.submit(self._guarded, what, service, func, default)

    def _guarded(self, what: str, service: str, func: Callable[[], T], default: T) -> T:
        try:
            with translate_errors(f"reading {what}", service=service):
                return func()
        except KeyHygieneError as exc:
            self.problems.append(LoadProblem(what, exc.message))
            return default

    def _listing(self, what: str, operation: str, key: str, default: Any) -> Future[Any]:
        return self.read(
            f"{what} of {self.name}",
            "iam",
            lambda: all_items(self.iam, operation, key, UserName=self.name),
            default,
        )

    def user_parts(self) -> dict[str, Future[Any]]:
        """None for what could not be read where the plan must then find out itself."""
        return {
            "tags": self._listing("the tags", "list_user_tags", "Tags", None),
            "groups": self._listing("the groups", "list_groups_for_user", "Groups", None),
            "attached": self._listing(
                "the managed policies", "list_attached_user_policies", "AttachedPolicies", []
            ),
            "inline": self._listing("the inline policies", "list_user_policies", "PolicyNames", []),
            "keys": self._listing("the access keys", "list_access_keys", "AccessKeyMetadata", None),
            "mfa": self._listing("the MFA devices", "list_mfa_devices", "MFADevices", None),
            "login": self.read(
                f"the console password of {self.name}",
                "iam",
                lambda: _has_login(self.iam, self.name),
                None,
            ),
        }

    def resource_policies(
        self, buckets: Iterable[str], keys: Mapping[str, tuple[str, tuple[str, ...]]]
    ) -> dict[tuple[str, str], Future[Any]]:
        """("s3", bucket) or ("kms", key id) -> the policy text (None: none or unreadable)."""
        futures: dict[tuple[str, str], Future[Any]] = {}
        for bucket in buckets:
            futures["s3", bucket] = self.read(
                f"S3 bucket {bucket}: policy",
                "s3",
                partial(_bucket_policy, self.conn, bucket),
                None,
            )
        for key_id, (_, aliases) in keys.items():
            futures["kms", key_id] = self.read(
                f"KMS key {aliases[0] if aliases else key_id}: policy",
                "kms",
                partial(_key_policy, self.conn, key_id),
                None,
            )
        return futures

    def resources(
        self,
        policies: Mapping[tuple[str, str], Future[Any]],
        keys: Mapping[str, tuple[str, tuple[str, ...]]],
        caller_arn: str,
    ) -> tuple[tuple[Bucket, ...], tuple[KmsKey, ...]]:
        partition = partition_of(caller_arn)
        buckets: list[Bucket] = []
        kms_keys: list[KmsKey] = []
        for (service, name), future in policies.items():
            text = future.result()
            policy = _document(text) if text else None
            if text and not policy:
                what = f"S3 bucket {name}" if service == "s3" else f"KMS key {name}"
                self.problems.append(LoadProblem(f"{what}: policy", "it is not a JSON object"))
            if service == "s3":
                buckets.append(Bucket(name, bucket_arn(name, partition), policy=policy))
            else:
                arn, aliases = keys[name]
                kms_keys.append(KmsKey(name, arn, aliases=aliases, policy=policy))
        return tuple(buckets), tuple(sorted(kms_keys, key=lambda k: k.label))

    def _inline_document(self, user: str, policy: str) -> Any:
        return self.iam.get_user_policy(UserName=user, PolicyName=policy)["PolicyDocument"]

    def _last_use(self, key_id: str) -> Mapping[str, Any]:
        return self.iam.get_access_key_last_used(AccessKeyId=key_id).get("AccessKeyLastUsed", {})

    def user(self, detail: Mapping[str, Any], parts: Mapping[str, Future[Any]]) -> User:
        """The user, with its inline policy documents and each key's last use read too."""
        name = detail["UserName"]
        inline: dict[str, Future[Any]] = {
            policy: self.read(
                f"inline policy {policy} of {name}",
                "iam",
                partial(self._inline_document, name, policy),
                {},
            )
            for policy in parts["inline"].result()
        }
        key_items = parts["keys"].result()
        last_used: dict[str, Future[Mapping[str, Any]]] = {
            item["AccessKeyId"]: self.read(
                f"the last use of key {key_tail(item['AccessKeyId'])}",
                "iam",
                partial(self._last_use, item["AccessKeyId"]),
                {},
            )
            for item in key_items or ()
        }
        tags = parts["tags"].result()
        return User(
            name=name,
            arn=detail["Arn"],
            user_id=detail.get("UserId", ""),
            created=detail.get("CreateDate"),
            tags={t["Key"]: t["Value"] for t in (detail.get("Tags", []) if tags is None else tags)},
            groups=tuple(g["GroupName"] for g in parts["groups"].result() or ()),
            attached_policies=tuple(
                PolicyAttachment(name=p["PolicyName"], arn=p["PolicyArn"])
                for p in parts["attached"].result()
            ),
            inline_policies=tuple(
                InlinePolicy(name=policy, document=_document(future.result()))
                for policy, future in inline.items()
            ),
            access_keys=_access_keys(name, key_items or (), last_used),
            keys_exact=key_items is not None,
        )


def _access_keys(
    user: str, items: Iterable[Mapping[str, Any]], last_used: Mapping[str, Future[Any]]
) -> tuple[AccessKey, ...]:
    keys = []
    for slot, item in enumerate(sorted(items, key=lambda i: i["CreateDate"]), 1):
        used = last_used[item["AccessKeyId"]].result()
        service = used.get("ServiceName")
        keys.append(
            AccessKey(
                user=user,
                status=item["Status"],
                created=item["CreateDate"],
                last_used=used.get("LastUsedDate"),
                last_used_service=None if service in (None, "", "N/A") else service,
                id=item["AccessKeyId"],
                slot=slot,
            )
        )
    return tuple(keys)


def _get_user(conn: AccountReader, name: str) -> Mapping[str, Any]:
    iam = conn.client("iam")
    try:
        return iam.get_user(UserName=name)["User"]
    except ClientError as exc:
        if error_code(exc) != "NoSuchEntity":
            with translate_errors(f"reading IAM user {name}", service="iam"):
                raise
        names: list[str] = []
        # Without the list there are no suggestions; the error stays clear.
        with contextlib.suppress(ClientError, BotoCoreError):
            names = [u["UserName"] for u in all_items(iam, "list_users", "Users")]
        raise unknown_user(name, names) from None


def _has_login(iam: Any, name: str) -> bool:
    return call_unless_missing(iam.get_login_profile, UserName=name)


def _bucket_names(conn: AccountReader) -> list[str]:
    answer = conn.client("s3").list_buckets()
    return sorted(b["Name"] for b in answer.get("Buckets", []))


def _bucket_policy(conn: AccountReader, bucket: str) -> str | None:
    try:
        return conn.client("s3").get_bucket_policy(Bucket=bucket)["Policy"]
    except ClientError as exc:
        if error_code(exc) == "NoSuchBucketPolicy":
            return None
        raise


def _customer_keys(conn: AccountReader) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Key id -> (ARN, aliases); AWS managed keys (alias/aws/...) are AWS's to keep."""
    kms = conn.client("kms")
    aliases: dict[str, list[str]] = {}
    for alias in paginate(kms, "list_aliases", "Aliases", "listing the KMS aliases", "kms"):
        if alias.get("TargetKeyId"):
            aliases.setdefault(alias["TargetKeyId"], []).append(alias["AliasName"])
    result = {}
    for key in paginate(kms, "list_keys", "Keys", "listing the KMS keys", "kms"):
        names = tuple(sorted(aliases.get(key["KeyId"], ())))
        if names and all(n.startswith("alias/aws/") for n in names):
            continue
        result[key["KeyId"]] = (key["KeyArn"], names)
    return result


def _key_policy(conn: AccountReader, key_id: str) -> str:
    return conn.client("kms").get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]


def this_user_name(own: Connection) -> str | None:
    """This computer's IAM user name; None when its profile cannot say (no profile here)."""
    try:
        return own.whoami().user_name
    except KeyHygieneError:
        return None
