"""What the details pane says about a node: facts and policy documents.

Pure functions of the snapshot, so the TUI only renders them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from tui.account_outline import OutlineNode, age_text, grant_countdown, principal_name
from tui.model import Snapshot, User
from tui.policy_documents import whitelisted_principals


@dataclass(frozen=True)
class Details:
    title: str
    facts: tuple[tuple[str, str], ...] = ()
    documents: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    hints: tuple[str, ...] = field(default_factory=tuple)


def describe(snapshot: Snapshot, node: OutlineNode, now: datetime | None = None) -> Details:
    now = now or datetime.now(timezone.utc)
    kind, ref = node.kind, node.ref or ""
    if kind in ("device", "user", "member", "principal") and snapshot.user(ref.rsplit("/", 1)[-1]):
        return _user(snapshot, snapshot.user(ref.rsplit("/", 1)[-1]), now)  # type: ignore[arg-type]
    if kind == "key":
        user_name, _, key_ref = ref.partition("/")
        user = snapshot.user(user_name)
        key = next(
            (k for k in (user.access_keys if user else ()) if str(k.id or k.slot) == key_ref), None
        )
        if user and key:
            facts = [
                ("user", user.name),
                ("key id", key.id or f"slot {key.slot} (open the device to read its id)"),
                ("status", key.status),
                ("created", _when(key.created, now)),
                ("last used", _when(key.last_used, now)),
                ("last service", key.last_used_service or "-"),
            ]
            hints = (
                "The secret of a key is never shown: it lives only in its computer's credentials file.",
            )
            if user.name == snapshot.this_user:
                hints += ("This is this computer's key: press k to rotate it (or run `keyhygiene rotate`).",)
            return Details(f"Access key {key.id_tail}", tuple(facts), (), hints)
    if kind == "group" and snapshot.group(ref):
        group = snapshot.group(ref)
        assert group is not None
        facts = [
            ("ARN", group.arn),
            ("members", ", ".join(group.members) or "none"),
            ("attached policies", ", ".join(p.name for p in group.attached_policies) or "none"),
            (
                "roles tagged for it",
                ", ".join(r.name for r in snapshot.roles_for_group(group.name)) or "none",
            ),
            (
                "buckets tagged for it",
                ", ".join(b.name for b in snapshot.buckets_for_group(group.name)) or "none",
            ),
            (
                "KMS keys tagged for it",
                ", ".join(k.label for k in snapshot.kms_keys_for_group(group.name)) or "none",
            ),
        ]
        docs = tuple((f"inline policy {p.name}", p.document) for p in group.inline_policies)
        docs += _managed_docs(snapshot, group.attached_policies)
        return Details(f"Group {group.name}", tuple(facts), docs)
    if kind == "role" and snapshot.role(ref):
        role = snapshot.role(ref)
        assert role is not None
        facts = [
            ("ARN", role.arn),
            ("for groups", ", ".join(role.for_groups) or "none"),
            ("instance profiles", ", ".join(role.instance_profiles) or "none"),
            ("attached policies", ", ".join(p.name for p in role.attached_policies) or "none"),
        ]
        docs = (("trust policy", role.trust_policy),)
        docs += tuple((f"inline policy {p.name}", p.document) for p in role.inline_policies)
        return Details(f"Role {role.name}", tuple(facts), docs)
    if kind == "bucket" and snapshot.bucket(ref):
        bucket = snapshot.bucket(ref)
        assert bucket is not None
        encryption = bucket.encryption
        facts = [
            ("ARN", bucket.arn),
            ("for groups", ", ".join(bucket.for_groups) or "none"),
            (
                "default encryption",
                "none"
                if encryption is None
                else f"{encryption.algorithm} {encryption.kms_key_id or ''}".strip(),
            ),
            (
                "public access block",
                "all four on"
                if bucket.public_access_fully_blocked
                else str(dict(bucket.public_access_block or {}) or "none"),
            ),
            ("public ACL", "yes" if bucket.acl_public else "no"),
            ("whitelisted", _names(whitelisted_principals(bucket.policy or {}))),
        ]
        facts += _drift(snapshot, bucket.for_groups, whitelisted_principals(bucket.policy or {}))
        docs = (("bucket policy", bucket.policy),) if bucket.policy else ()
        return Details(f"Bucket {bucket.name}", tuple(facts), docs)
    if kind == "kms-key" and snapshot.kms_key(ref):
        key = snapshot.kms_key(ref)
        assert key is not None
        facts = [
            ("ARN", key.arn),
            ("aliases", ", ".join(key.aliases) or "none"),
            ("for groups", ", ".join(key.for_groups) or "none"),
            ("key users", _names(whitelisted_principals(key.policy or {}))),
        ]
        facts += _drift(snapshot, key.for_groups, whitelisted_principals(key.policy or {}))
        docs = (("key policy", key.policy),) if key.policy else ()
        return Details(f"KMS key {key.label}", tuple(facts), docs)
    if kind == "root":
        root = snapshot.root
        facts = (
            ("MFA", {True: "on", False: "OFF", None: "unknown"}[root.mfa_enabled]),
            (
                "root access keys",
                {True: "PRESENT", False: "none", None: "unknown"}[root.access_keys_present],
            ),
        )
        return Details(
            "Root account",
            facts,
            (),
            ("The practice: delete the root access keys and turn MFA on.",),
        )
    if kind == "account":
        facts = [
            ("account id", snapshot.account_id),
            ("alias", snapshot.account_alias or "none"),
            ("loaded as", snapshot.caller_arn),
            ("this computer", snapshot.this_user or "not an IAM user of this account"),
            (
                "users / groups / roles",
                f"{len(snapshot.users)} / {len(snapshot.groups)} / {len(snapshot.roles)}",
            ),
            ("buckets / KMS keys", f"{len(snapshot.buckets)} / {len(snapshot.kms_keys)}"),
            (
                "credential report",
                _when(
                    snapshot.credential_report_generated,
                    now,
                    suffix=" ago (AWS remakes it at most every 4 h)",
                )
                if snapshot.credential_report_generated
                else "age unknown; key details are read directly when a computer is opened",
            ),
        ]
        hints = tuple(f"Could not read {p.what}: {p.message}" for p in snapshot.problems)
        return Details("Account", tuple(facts), (), hints)
    return Details(node.label, (("summary", node.note),) if node.note else ())


def _user(snapshot: Snapshot, user: User, now: datetime) -> Details:
    facts = [
        ("ARN", user.arn),
        ("person / device", f"{user.person or '-'} / {user.device or '-'}"),
        ("host name", user.hostname or "-"),
        ("enrolled", user.tags.get("keyhygiene:enrolled", "-")),
        ("groups", ", ".join(user.groups) or "none"),
        ("access keys", ", ".join(f"{k.id_tail} {k.status}" for k in user.access_keys) or "none"),
        ("console password", "yes" if user.password_enabled else "no"),
        ("attached policies", ", ".join(p.name for p in user.attached_policies) or "none"),
    ]
    for group, expiry in sorted(user.grants().items()):
        facts.append((f"lent to {group} until", f"{expiry} ({grant_countdown(expiry, now)})"))
    if user.revoked:
        facts.append(("revoked", user.tags.get("keyhygiene:revoked", "")))
    other_tags = {k: v for k, v in user.tags.items() if not k.startswith("keyhygiene:")}
    if other_tags:
        facts.append(("other tags", ", ".join(f"{k}={v}" for k, v in sorted(other_tags.items()))))
    reach = sorted(
        {b.name for g in user.groups for b in snapshot.buckets_for_group(g)}
        | {k.label for g in user.groups for k in snapshot.kms_keys_for_group(g)}
    )
    facts.append(("reaches (through its groups)", ", ".join(reach) or "nothing tagged"))
    docs = tuple((f"inline policy {p.name}", p.document) for p in user.inline_policies)
    docs += _managed_docs(snapshot, user.attached_policies)
    hints = ()
    if user.name == snapshot.this_user:
        hints = ("This computer. Its key lives in this computer's credentials file.",)
    if not user.keys_exact and user.access_keys:
        hints += ("Key ids load when the node is opened.",)
    title = f"Device {user.name}" if user.is_device else f"User {user.name}"
    return Details(title, tuple(facts), docs, hints)


def _names(arns: Any) -> str:
    return ", ".join(principal_name(arn) for arn in sorted(arns)) or "none"


def _drift(snapshot: Snapshot, groups: tuple[str, ...], listed: Any) -> list[tuple[str, str]]:
    """Whitelist drift for a resource tagged for `groups`: who is missing, who is extra."""
    if not groups:
        return []
    expected = set(snapshot.whitelist_principals(groups))
    missing, extra = expected - set(listed), set(listed) - expected
    if not missing and not extra:
        return [("whitelist", "matches the groups' members and roles")]
    facts = []
    if missing:
        facts.append(("MISSING from whitelist", _names(missing)))
    if extra:
        facts.append(("listed but not a member", _names(extra)))
    return facts


def _managed_docs(
    snapshot: Snapshot, attachments: Any
) -> tuple[tuple[str, Mapping[str, Any]], ...]:
    return tuple(
        (f"managed policy {p.name}", snapshot.managed_policies[p.arn])
        for p in attachments
        if p.arn in snapshot.managed_policies
    )


def _when(when: datetime | None, now: datetime, suffix: str = " ago") -> str:
    if when is None:
        return "never"
    return f"{when:%Y-%m-%d %H:%M} UTC, {age_text(when, now)}{suffix}"
