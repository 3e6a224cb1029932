"""The account as an outline: what the tree shows, computed without Textual.

Account → Root, People → person → devices → keys, Groups → members,
Applications → group/role/key/buckets, Roles, Buckets → whitelist, KMS keys →
key users, Unassigned. The TUI's tree and `keyhygiene inventory` both render
this outline, so they always agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from keyhygiene.audit.findings import (
    DEFAULT_ROTATION_AGE_DAYS,
    Finding,
    findings_by_resource,
    worst,
)
from keyhygiene.core.arns import account_of, name_of, resource_type
from keyhygiene.core.formatting import remaining_text
from keyhygiene.core.model import AccessKey, Application, Bucket, Snapshot, User
from keyhygiene.core.policy_documents import is_public, whitelisted_principals


@dataclass(frozen=True)
class OutlineNode:
    label: str
    kind: str  # account, root, section, person, device, user, key, group, member, ...
    ref: str | None = None  # the name or id of what the node stands for
    children: tuple[OutlineNode, ...] = ()
    note: str = ""  # a short dim remark after the label
    warn: bool = False  # stands out (expired grant, public bucket...)
    search: str = ""  # more text the filter matches (a device's host name)
    findings: int = 0  # audit findings on this very resource
    worst: str | None = None  # their worst severity

    def find(self, kind: str, ref: str) -> OutlineNode | None:
        if self.kind == kind and self.ref == ref:
            return self
        for child in self.children:
            found = child.find(kind, ref)
            if found:
                return found
        return None


def age_text(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "never"
    seconds = (now - when).total_seconds()
    if seconds < 3600:
        return f"{max(int(seconds // 60), 0)} min"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} d"


def key_label(key: AccessKey, now: datetime) -> tuple[str, str]:
    used = "never used" if key.last_used is None else f"used {age_text(key.last_used, now)} ago"
    return (
        f"{key.id_tail} {key.status}",
        f"{age_text(key.created, now)} old, {used}",
    )


def user_note(user: User, snapshot: Snapshot, now: datetime) -> str:
    parts = []
    if user.name == snapshot.this_user:
        parts.append("this computer")
    if user.revoked:
        parts.append("REVOKED")
    active = len(user.active_keys)
    parts.append(f"{active} active key" + ("" if active == 1 else "s"))
    age = user.key_age(now, DEFAULT_ROTATION_AGE_DAYS)
    if age is not None:
        parts.append(age.text())
    for group, expiry in sorted(user.grants().items()):
        parts.append(f"lent to {group}: {grant_countdown(expiry, now)}")
    if not user.groups:
        parts.append("in no group")
    return ", ".join(parts)


def _overdue(user: User, now: datetime) -> int:
    age = user.key_age(now, DEFAULT_ROTATION_AGE_DAYS)
    return age.overdue if age is not None else 0


def grant_countdown(expiry: str, now: datetime) -> str:
    """`1 h 59 min left` or `EXPIRED 3 min ago`: a loan's countdown in the tree."""
    text = remaining_text(expiry, now)
    return text.replace("expired", "EXPIRED", 1)


def build_outline(snapshot: Snapshot, now: datetime | None = None) -> OutlineNode:
    now = now or datetime.now(timezone.utc)
    account = snapshot.account_alias or snapshot.account_id
    return OutlineNode(
        label=f"Account {account}",
        kind="account",
        ref=snapshot.account_id,
        children=(
            _root(snapshot),
            _people(snapshot, now),
            _groups(snapshot, now),
            _applications(snapshot),
            _roles(snapshot),
            _buckets(snapshot),
            _kms_keys(snapshot),
            _unassigned(snapshot, now),
        ),
    )


def _root(snapshot: Snapshot) -> OutlineNode:
    root = snapshot.root
    mfa = {True: "MFA on", False: "MFA OFF", None: "MFA unknown"}[root.mfa_enabled]
    keys = {True: "HAS ACCESS KEYS", False: "no access keys", None: "keys unknown"}[
        root.access_keys_present
    ]
    return OutlineNode(
        label="Root",
        kind="root",
        ref="root",
        note=f"{mfa}, {keys}",
        warn=root.mfa_enabled is False or bool(root.access_keys_present),
    )


def device_node(user: User, snapshot: Snapshot, now: datetime, kind: str = "device") -> OutlineNode:
    keys = tuple(
        OutlineNode(
            label=key_label(key, now)[0],
            kind="key",
            ref=f"{user.name}/{key.id or key.slot}",
            note=key_label(key, now)[1],
        )
        for key in user.access_keys
    )
    label = user.name if kind == "user" else (user.device or user.name)
    return OutlineNode(
        label=label,
        kind=kind,
        ref=user.name,
        children=keys,
        note=user_note(user, snapshot, now),
        search=user.hostname or "",
        warn=user.revoked
        or len(user.active_keys) > 1
        or _overdue(user, now) > 0
        or any(grant_countdown(e, now).startswith("EXPIRED") for e in user.grants().values()),
    )


def _people(snapshot: Snapshot, now: datetime) -> OutlineNode:
    people = tuple(
        OutlineNode(
            label=person,
            kind="person",
            ref=person,
            # Overdue computers first, the most overdue at the top.
            children=tuple(
                device_node(user, snapshot, now)
                for user in sorted(users, key=lambda u: -_overdue(u, now))
            ),
            note=f"{len(users)} computer" + ("" if len(users) == 1 else "s"),
        )
        for person, users in snapshot.people().items()
    )
    return OutlineNode("People", "section", "people", people, note=str(len(people)))


def _groups(snapshot: Snapshot, now: datetime) -> OutlineNode:
    groups = []
    for group in snapshot.groups:
        members = []
        for name in group.members:
            user = snapshot.user(name)
            expiry = user.grants().get(group.name) if user else None
            countdown = grant_countdown(expiry, now) if expiry else ""
            members.append(
                OutlineNode(
                    label=name,
                    kind="member",
                    ref=name,
                    note=f"lent: {countdown}" if countdown else "",
                    warn=countdown.startswith("EXPIRED"),
                )
            )
        groups.append(
            OutlineNode(
                group.name,
                "group",
                group.name,
                tuple(members),
                note=f"{len(members)} member" + ("" if len(members) == 1 else "s"),
            )
        )
    return OutlineNode("Groups", "section", "groups", tuple(groups), note=str(len(groups)))


def application_health(snapshot: Snapshot, app: Application) -> str:
    missing = []
    if app.group is None:
        missing.append("group")
    if not app.roles:
        missing.append("role")
    if not app.kms_keys:
        missing.append("KMS key")
    if not app.buckets:
        missing.append("bucket")
    expected = set(snapshot.whitelist_principals([app.name]))
    drifted = [
        b.name for b in app.buckets if set(whitelisted_principals(b.policy or {})) != expected
    ]
    drifted += [
        k.label for k in app.kms_keys if set(whitelisted_principals(k.policy or {})) != expected
    ]
    problems = []
    if missing:
        problems.append("missing " + ", ".join(missing))
    if drifted:
        problems.append("whitelist drift in " + ", ".join(drifted))
    return "; ".join(problems) or "healthy"


def _applications(snapshot: Snapshot) -> OutlineNode:
    apps = []
    for app in snapshot.applications():
        parts = []
        if app.group:
            parts.append(OutlineNode(f"group {app.group.name}", "group", app.group.name))
        parts += [OutlineNode(f"role {r.name}", "role", r.name) for r in app.roles]
        parts += [OutlineNode(f"key {k.label}", "kms-key", k.key_id) for k in app.kms_keys]
        parts += [OutlineNode(f"bucket {b.name}", "bucket", b.name) for b in app.buckets]
        health = application_health(snapshot, app)
        apps.append(
            OutlineNode(
                app.name,
                "application",
                app.name,
                tuple(parts),
                note=health,
                warn=health != "healthy",
            )
        )
    return OutlineNode("Applications", "section", "applications", tuple(apps), note=str(len(apps)))


def _roles(snapshot: Snapshot) -> OutlineNode:
    roles = tuple(
        OutlineNode(
            role.name,
            "role",
            role.name,
            note=("for " + ", ".join(role.for_groups)) if role.for_groups else "",
        )
        for role in snapshot.roles
        if not role.service_linked
    )
    return OutlineNode("Roles", "section", "roles", roles, note=str(len(roles)))


def principal_name(arn: str) -> str:
    """`arn:aws:iam::1:user/alice-laptop` -> `alice-laptop`; a role reads `role photos`."""
    kind = resource_type(arn)
    if kind == "role":
        return "role " + name_of(arn)
    if kind == "user":
        return name_of(arn)
    if kind == "root":
        return "account " + account_of(arn) + " (root)"
    return arn


def _principal_nodes(arns: frozenset[str] | set[str]) -> tuple[OutlineNode, ...]:
    return tuple(
        OutlineNode(principal_name(arn), "principal", arn, note=arn) for arn in sorted(arns)
    )


def _bucket_note(bucket: Bucket) -> str:
    if bucket.encryption is None:
        encryption = "NOT ENCRYPTED by default"
    elif bucket.encryption.is_kms:
        encryption = "SSE-KMS"
    else:
        encryption = bucket.encryption.algorithm
    parts = [encryption]
    if bucket.acl_public or is_public(bucket.policy or {}):
        parts.insert(0, "PUBLIC")
    if not bucket.public_access_fully_blocked:
        parts.append("public access not blocked")
    if bucket.for_groups:
        parts.append("for " + ", ".join(bucket.for_groups))
    return ", ".join(parts)


def _buckets(snapshot: Snapshot) -> OutlineNode:
    buckets = tuple(
        OutlineNode(
            bucket.name,
            "bucket",
            bucket.name,
            _principal_nodes(whitelisted_principals(bucket.policy or {})),
            note=_bucket_note(bucket),
            warn=bucket.encryption is None
            or not bucket.public_access_fully_blocked
            or bucket.acl_public
            or is_public(bucket.policy or {}),
        )
        for bucket in snapshot.buckets
    )
    return OutlineNode("Buckets", "section", "buckets", buckets, note=str(len(buckets)))


def _kms_keys(snapshot: Snapshot) -> OutlineNode:
    keys = tuple(
        OutlineNode(
            key.label,
            "kms-key",
            key.key_id,
            _principal_nodes(whitelisted_principals(key.policy or {})),
            note=("for " + ", ".join(key.for_groups)) if key.for_groups else key.key_id,
        )
        for key in snapshot.kms_keys
    )
    return OutlineNode("KMS keys", "section", "kms-keys", keys, note=str(len(keys)))


def _unassigned(snapshot: Snapshot, now: datetime) -> OutlineNode:
    users = tuple(device_node(u, snapshot, now, kind="user") for u in snapshot.unassigned_users())
    return OutlineNode(
        "Unassigned users",
        "section",
        "unassigned",
        users,
        note=f"{len(users)} not following person-device",
    )


def outline_text(node: OutlineNode, depth: int = 0) -> list[str]:
    note = f"  ({node.note})" if node.note else ""
    flag = "! " if node.warn else ""
    lines = [f"{'  ' * depth}{flag}{node.label}{note}"]
    for child in node.children:
        lines.extend(outline_text(child, depth + 1))
    return lines


def filter_outline(node: OutlineNode, text: str) -> OutlineNode | None:
    """The outline reduced to nodes whose label, ref or note holds `text`
    (case-insensitive), with their ancestors; a matching node keeps its subtree."""
    needle = text.strip().lower()
    if not needle:
        return node
    haystack = " ".join((node.label, node.ref or "", node.note, node.search)).lower()
    if needle in haystack and node.kind != "account":
        return node
    children = tuple(
        kept for child in node.children if (kept := filter_outline(child, needle)) is not None
    )
    if children or node.kind == "account":
        return replace(node, children=children)
    return None


# Which tree nodes stand for the resource a finding names.
_FINDING_NODE_KINDS = {
    "user": ("device", "user"),
    "group": ("group",),
    "bucket": ("bucket",),
    "kms-key": ("kms-key",),
    "role": ("role",),
    "root": ("root",),
    "local": ("account",),
}


def finding_node_kinds(resource_kind: str) -> tuple[str, ...]:
    return _FINDING_NODE_KINDS.get(resource_kind, ())


def annotate(node: OutlineNode, findings: Iterable[Finding]) -> OutlineNode:
    """The outline with each node's finding count and worst severity (tree badges)."""
    by_node: dict[tuple[str, str], list[Finding]] = {}
    for (resource_kind, resource), found in findings_by_resource(findings).items():
        for kind in finding_node_kinds(resource_kind):
            # This computer's findings badge the account node.
            by_node.setdefault((kind, "" if resource_kind == "local" else resource), []).extend(
                found
            )
    return _annotate(node, by_node)


def _annotate(node: OutlineNode, by_node: Mapping[tuple[str, str], list[Finding]]) -> OutlineNode:
    key = (node.kind, "" if node.kind == "account" else node.ref or "")
    mine = by_node.get(key, [])
    children = tuple(_annotate(child, by_node) for child in node.children)
    if not mine and children == node.children:
        return node
    return replace(
        node,
        children=children,
        findings=len(mine),
        worst=worst(mine),
    )
