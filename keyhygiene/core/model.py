"""The account snapshot: frozen dataclasses, no AWS calls, no Textual.

A `Snapshot` is what one inventory load saw. Everything that reads the account
(the tree, the audit, the workflows that compute plans) reads a snapshot, so
that a plan is computed from one consistent picture and can be shown before
anything changes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import cached_property
from typing import Any

from keyhygiene.core.arns import partition_of
from keyhygiene.core.formatting import key_tail

TAG_PREFIX = "keyhygiene:"
TAG_PERSON = "keyhygiene:person"
TAG_DEVICE = "keyhygiene:device"
TAG_HOSTNAME = "keyhygiene:hostname"
TAG_ENROLLED = "keyhygiene:enrolled"
TAG_GROUPS = "keyhygiene:groups"
TAG_REVOKED = "keyhygiene:revoked"
TAG_GRANT_PREFIX = "keyhygiene:grant:"
# How often the computer's key is rotated, like "30d" (set at enrollment);
# without it the audit's rotation age applies.
TAG_ROTATE_EVERY = "keyhygiene:rotate-every"

EXPIRY_POLICY_NAME = "keyhygiene-expiry"
REVOKED_POLICY_NAME = "keyhygiene-revoked"
DEVICES_GROUP = "keyhygiene-devices"

# person-device: both parts IAM-safe, the device part may itself hold dashes.
_PERSON_DEVICE = re.compile(r"^(?P<person>[A-Za-z0-9_+=,.@]+)-(?P<device>[A-Za-z0-9_+=,.@-]+)$")


def split_person_device(user_name: str) -> tuple[str, str] | None:
    """`christopher-laptop` -> (`christopher`, `laptop`); None when it does not fit."""
    match = _PERSON_DEVICE.match(user_name)
    if not match:
        return None
    return match.group("person"), match.group("device")


def groups_from_tag(value: str | None) -> tuple[str, ...]:
    """The `keyhygiene:groups` tag holds group names separated by spaces."""
    if not value:
        return ()
    return tuple(dict.fromkeys(part for part in value.split() if part))


@dataclass(frozen=True)
class PolicyAttachment:
    """A managed policy attached to a user, group or role."""

    name: str
    arn: str


@dataclass(frozen=True)
class InlinePolicy:
    name: str
    document: Mapping[str, Any]


@dataclass(frozen=True)
class AccessKey:
    """One access key. Never holds a secret.

    The credential report knows a key only by its slot (1 or 2), so `id` is
    None until the user's keys were read directly (`ListAccessKeys`).
    """

    user: str
    status: str  # "Active" or "Inactive"
    created: datetime | None
    last_used: datetime | None = None
    last_used_service: str | None = None
    id: str | None = None
    slot: int | None = None

    @property
    def active(self) -> bool:
        return self.status == "Active"

    @property
    def id_tail(self) -> str:
        """The last four characters, which is how people tell keys apart."""
        if not self.id:
            return f"key {self.slot}" if self.slot else "key"
        return key_tail(self.id)


@dataclass(frozen=True)
class KeyAge:
    """A computer's key age in days and the age at which it is due."""

    days: int
    every: int

    @property
    def overdue(self) -> int:
        """Days past the schedule (0 when not due yet)."""
        return max(self.days - self.every, 0)

    @property
    def is_overdue(self) -> bool:
        return self.days > self.every

    def text(self) -> str:
        """Short, for the tree: `key OVERDUE 110 d` or `key 20/90 d`."""
        if self.is_overdue:
            return f"key OVERDUE {self.overdue} d"
        return f"key {self.days}/{self.every} d"


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when


@dataclass(frozen=True)
class User:
    name: str
    arn: str
    user_id: str = ""
    created: datetime | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    groups: tuple[str, ...] = ()
    attached_policies: tuple[PolicyAttachment, ...] = ()
    inline_policies: tuple[InlinePolicy, ...] = ()
    access_keys: tuple[AccessKey, ...] = ()
    # True once access_keys came from ListAccessKeys (ids known), not only the report.
    keys_exact: bool = False
    password_enabled: bool = False
    mfa_active: bool = False

    @property
    def person(self) -> str | None:
        if TAG_PERSON in self.tags:
            return self.tags[TAG_PERSON]
        split = split_person_device(self.name)
        return split[0] if split and self.is_device else None

    @property
    def device(self) -> str | None:
        return self.tags.get(TAG_DEVICE)

    @property
    def rotate_every_days(self) -> int | None:
        """The computer's own rotation schedule in days (its tag), if it has one."""
        text = self.tags.get(TAG_ROTATE_EVERY, "").strip().lower().removesuffix("d")
        return int(text) if text.isdigit() and 0 < int(text) <= 3650 else None

    def key_age(self, now: datetime, default_days: int) -> KeyAge | None:
        """Its oldest active key's age against its schedule; None without a dated key."""
        dated = [key.created for key in self.active_keys if key.created is not None]
        if not dated:
            return None
        oldest = min(_utc(when) for when in dated)
        days = max((_utc(now) - oldest).days, 0)
        return KeyAge(days, self.rotate_every_days or default_days)

    @property
    def hostname(self) -> str | None:
        return self.tags.get(TAG_HOSTNAME)

    @property
    def is_device(self) -> bool:
        """A user that follows the model: named person-device and tagged so."""
        split = split_person_device(self.name)
        return (
            split is not None
            and self.tags.get(TAG_PERSON) == split[0]
            and self.tags.get(TAG_DEVICE) == split[1]
        )

    @property
    def revoked(self) -> bool:
        return TAG_REVOKED in self.tags

    @property
    def active_keys(self) -> tuple[AccessKey, ...]:
        return tuple(key for key in self.access_keys if key.active)

    def grants(self) -> dict[str, str]:
        """Temporary memberships: group -> expiry (ISO 8601 text as tagged)."""
        return {
            key[len(TAG_GRANT_PREFIX) :]: value
            for key, value in self.tags.items()
            if key.startswith(TAG_GRANT_PREFIX)
        }


@dataclass(frozen=True)
class Group:
    name: str
    arn: str
    members: tuple[str, ...] = ()
    attached_policies: tuple[PolicyAttachment, ...] = ()
    inline_policies: tuple[InlinePolicy, ...] = ()


@dataclass(frozen=True)
class Role:
    name: str
    arn: str
    trust_policy: Mapping[str, Any] = field(default_factory=dict)
    attached_policies: tuple[PolicyAttachment, ...] = ()
    inline_policies: tuple[InlinePolicy, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    instance_profiles: tuple[str, ...] = ()
    path: str = "/"

    @property
    def for_groups(self) -> tuple[str, ...]:
        return groups_from_tag(self.tags.get(TAG_GROUPS))

    @property
    def service_linked(self) -> bool:
        return self.path.startswith("/aws-service-role/")


@dataclass(frozen=True)
class Encryption:
    """A bucket's default encryption."""

    algorithm: str  # "aws:kms", "aws:kms:dsse" or "AES256"
    kms_key_id: str | None = None

    @property
    def is_kms(self) -> bool:
        return self.algorithm.startswith("aws:kms")


@dataclass(frozen=True)
class Bucket:
    name: str
    arn: str
    tags: Mapping[str, str] = field(default_factory=dict)
    policy: Mapping[str, Any] | None = None
    encryption: Encryption | None = None
    # BlockPublicAcls, IgnorePublicAcls, BlockPublicPolicy, RestrictPublicBuckets; None: no block set.
    public_access_block: Mapping[str, bool] | None = None
    acl_public: bool = False
    region: str | None = None

    @property
    def for_groups(self) -> tuple[str, ...]:
        return groups_from_tag(self.tags.get(TAG_GROUPS))

    @property
    def public_access_fully_blocked(self) -> bool:
        block = self.public_access_block or {}
        return all(
            block.get(name, False)
            for name in (
                "BlockPublicAcls",
                "IgnorePublicAcls",
                "BlockPublicPolicy",
                "RestrictPublicBuckets",
            )
        )


@dataclass(frozen=True)
class KmsKey:
    key_id: str
    arn: str
    aliases: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    policy: Mapping[str, Any] | None = None
    description: str = ""

    @property
    def for_groups(self) -> tuple[str, ...]:
        return groups_from_tag(self.tags.get(TAG_GROUPS))

    @property
    def label(self) -> str:
        return self.aliases[0] if self.aliases else self.key_id


@dataclass(frozen=True)
class RootSummary:
    mfa_enabled: bool | None
    access_keys_present: bool | None


@dataclass(frozen=True)
class LoadProblem:
    """Something the inventory could not read; the rest still shows."""

    what: str  # e.g. "S3 bucket photos-data: policy"
    message: str  # the clear message, already free of secrets


@dataclass(frozen=True)
class Application:
    """An application is named by its group; its parts carry `keyhygiene:groups`."""

    name: str
    group: Group | None
    roles: tuple[Role, ...]
    kms_keys: tuple[KmsKey, ...]
    buckets: tuple[Bucket, ...]


@dataclass(frozen=True)
class Snapshot:
    account_id: str
    caller_arn: str
    loaded_at: datetime
    account_alias: str | None = None
    root: RootSummary = RootSummary(None, None)
    users: tuple[User, ...] = ()
    groups: tuple[Group, ...] = ()
    roles: tuple[Role, ...] = ()
    buckets: tuple[Bucket, ...] = ()
    kms_keys: tuple[KmsKey, ...] = ()
    # Customer managed policy documents by ARN (default version), for the audit.
    managed_policies: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    credential_report_generated: datetime | None = None
    problems: tuple[LoadProblem, ...] = ()
    # The user this computer's profile authenticates as, when it is an IAM user.
    this_user: str | None = None

    @property
    def partition(self) -> str:
        """The AWS partition (aws, aws-cn, aws-us-gov) of the identity that read
        the account: where the ARNs of users and roles not created yet will live."""
        return partition_of(self.caller_arn)

    # ---- look-ups -------------------------------------------------------
    def user(self, name: str) -> User | None:
        return self._users_by_name.get(name.lower())

    @cached_property
    def _users_by_name(self) -> Mapping[str, User]:
        """IAM user names are unique case-insensitively. Built once per
        snapshot (a frozen one never changes): the tree and the audit look
        users up by name thousands of times on a large account."""
        index: dict[str, User] = {}
        for user in self.users:
            index.setdefault(user.name.lower(), user)
        return index

    def group(self, name: str) -> Group | None:
        lowered = name.lower()
        return next((g for g in self.groups if g.name.lower() == lowered), None)

    def role(self, name: str) -> Role | None:
        lowered = name.lower()
        return next((r for r in self.roles if r.name.lower() == lowered), None)

    def bucket(self, name: str) -> Bucket | None:
        return next((b for b in self.buckets if b.name == name), None)

    def kms_key(self, key_id_or_alias: str) -> KmsKey | None:
        wanted = key_id_or_alias
        if not wanted.startswith("alias/") and "/" not in wanted and ":" not in wanted:
            alias = "alias/" + wanted
        else:
            alias = wanted
        for key in self.kms_keys:
            if wanted in (key.key_id, key.arn) or alias in key.aliases:
                return key
        return None

    def people(self) -> dict[str, tuple[User, ...]]:
        """person -> their device users, for users that follow the model."""
        result: dict[str, list[User]] = {}
        for user in self.users:
            if user.is_device and user.person:
                result.setdefault(user.person, []).append(user)
        return {person: tuple(users) for person, users in sorted(result.items())}

    def unassigned_users(self) -> tuple[User, ...]:
        return tuple(user for user in self.users if not user.is_device)

    def roles_for_group(self, group: str) -> tuple[Role, ...]:
        return tuple(r for r in self.roles if group in r.for_groups)

    def buckets_for_group(self, group: str) -> tuple[Bucket, ...]:
        return tuple(b for b in self.buckets if group in b.for_groups)

    def kms_keys_for_group(self, group: str) -> tuple[KmsKey, ...]:
        return tuple(k for k in self.kms_keys if group in k.for_groups)

    def applications(self) -> tuple[Application, ...]:
        """Every group that some role, key or bucket is tagged for."""
        names: dict[str, None] = {}
        tagged: list[Role | KmsKey | Bucket] = [*self.roles, *self.kms_keys, *self.buckets]
        for resource in tagged:
            for group in resource.for_groups:
                names[group] = None
        return tuple(
            Application(
                name=name,
                group=self.group(name),
                roles=self.roles_for_group(name),
                kms_keys=self.kms_keys_for_group(name),
                buckets=self.buckets_for_group(name),
            )
            for name in sorted(names)
        )

    def whitelist_principals(self, groups: Iterable[str]) -> tuple[str, ...]:
        """ARNs that must be whitelisted for a resource tagged for `groups`:
        every member of each group plus every role tagged for it. Sorted, unique."""
        arns: set[str] = set()
        for name in groups:
            group = self.group(name)
            if group:
                for member in group.members:
                    user = self.user(member)
                    if user:
                        arns.add(user.arn)
            arns.update(role.arn for role in self.roles_for_group(name))
        return tuple(sorted(arns))

    def with_user(self, user: User) -> Snapshot:
        """A copy with one user replaced (after its keys were read directly)."""
        users = tuple(user if u.name == user.name else u for u in self.users)
        return replace(self, users=users)
