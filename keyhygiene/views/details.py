"""What the details pane says about a node: facts and policy documents.

Pure functions of the snapshot, one per kind of node, so the TUI only renders
them.

Who can reach a bucket or key, and what a computer can reach, come from the
policy evaluator (`keyhygiene.core.access`), not from the whitelists alone. The pane is
computed each time a node is selected, so a "who can" question evaluates only
the principals that could possibly be allowed (`keyhygiene.core.access.candidates`): on a
500-user account a bucket node costs a few milliseconds, not 500 evaluations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from keyhygiene.core.access import Reach, WhoCan, principal_reach, who_can, who_reads
from keyhygiene.core.model import PolicyAttachment, Snapshot, User
from keyhygiene.core.policy_documents import whitelisted_principals
from keyhygiene.views.outline import OutlineNode, age_text, grant_countdown, principal_name

Fact = tuple[str, str]
Document = tuple[str, Mapping[str, Any]]


@dataclass(frozen=True)
class Details:
    title: str
    facts: tuple[Fact, ...] = ()
    documents: tuple[Document, ...] = ()
    hints: tuple[str, ...] = ()


def describe(snapshot: Snapshot, node: OutlineNode, now: datetime | None = None) -> Details:
    now = now or datetime.now(timezone.utc)
    describer = _DESCRIBERS.get(node.kind)
    details = describer(snapshot, node.ref or "", now) if describer else None
    if details is not None:
        return details
    return Details(node.label, (("summary", node.note),) if node.note else ())


# ---- one function per kind of node ---------------------------------------------


def _user_node(snapshot: Snapshot, ref: str, now: datetime) -> Details | None:
    # Principal nodes carry an ARN; device, user and member nodes a user name.
    user = snapshot.user(ref.rsplit("/", 1)[-1])
    return _user(snapshot, user, now) if user else None


def _access_key(snapshot: Snapshot, ref: str, now: datetime) -> Details | None:
    user_name, _, key_ref = ref.partition("/")
    user = snapshot.user(user_name)
    key = next(
        (k for k in (user.access_keys if user else ()) if str(k.id or k.slot) == key_ref), None
    )
    if user is None or key is None:
        return None
    facts = (
        ("user", user.name),
        ("key id", key.id or f"slot {key.slot} (open the device to read its id)"),
        ("status", key.status),
        ("created", _when(key.created, now)),
        ("last used", _when(key.last_used, now)),
        ("last service", key.last_used_service or "-"),
    )
    hints: tuple[str, ...] = (
        "The secret of a key is never shown: it lives only in its computer's credentials file.",
    )
    if user.name == snapshot.this_user:
        hints += (
            "This is this computer's key: press k to rotate it (or run `keyhygiene rotate`).",
        )
    return Details(f"Access key {key.id_tail}", facts, (), hints)


def _group(snapshot: Snapshot, ref: str, now: datetime) -> Details | None:
    group = snapshot.group(ref)
    if group is None:
        return None
    facts = (
        ("ARN", group.arn),
        ("members", ", ".join(group.members) or "none"),
        ("attached policies", _joined(p.name for p in group.attached_policies)),
        ("roles tagged for it", _joined(r.name for r in snapshot.roles_for_group(group.name))),
        ("buckets tagged for it", _joined(b.name for b in snapshot.buckets_for_group(group.name))),
        (
            "KMS keys tagged for it",
            _joined(k.label for k in snapshot.kms_keys_for_group(group.name)),
        ),
    )
    documents = tuple((f"inline policy {p.name}", p.document) for p in group.inline_policies)
    documents += _managed_docs(snapshot, group.attached_policies)
    return Details(f"Group {group.name}", facts, documents)


def _role(snapshot: Snapshot, ref: str, now: datetime) -> Details | None:
    role = snapshot.role(ref)
    if role is None:
        return None
    facts = (
        ("ARN", role.arn),
        ("for groups", _joined(role.for_groups)),
        ("instance profiles", _joined(role.instance_profiles)),
        ("attached policies", _joined(p.name for p in role.attached_policies)),
    )
    documents: tuple[Document, ...] = (("trust policy", role.trust_policy),)
    documents += tuple((f"inline policy {p.name}", p.document) for p in role.inline_policies)
    return Details(f"Role {role.name}", facts, documents)


def _bucket(snapshot: Snapshot, ref: str, now: datetime) -> Details | None:
    bucket = snapshot.bucket(ref)
    if bucket is None:
        return None
    encryption = bucket.encryption
    if encryption is None:
        default = "none"
    else:
        default = f"{encryption.algorithm} {encryption.kms_key_id or ''}".strip()
    if bucket.public_access_fully_blocked:
        block = "all four on"
    else:
        block = str(dict(bucket.public_access_block or {}) or "none")
    listed = whitelisted_principals(bucket.policy or {})
    facts: tuple[Fact, ...] = (
        ("ARN", bucket.arn),
        ("for groups", _joined(bucket.for_groups)),
        ("default encryption", default),
        ("public access block", block),
        ("public ACL", "yes" if bucket.acl_public else "no"),
        ("whitelisted", _names(listed)),
        *_drift(snapshot, bucket.for_groups, listed),
        (
            "data reachable by",
            _who_line(who_reads(snapshot, bucket, now, budget=WHO_BUDGET, with_root=True)),
        ),
        ("configuration by", _who_line(_who_can(snapshot, "s3:PutBucketPolicy", bucket.arn, now))),
    )
    documents: tuple[Document, ...] = (("bucket policy", bucket.policy),) if bucket.policy else ()
    return Details(f"Bucket {bucket.name}", facts, documents, (_EVALUATED,))


def _kms_key(snapshot: Snapshot, ref: str, now: datetime) -> Details | None:
    key = snapshot.kms_key(ref)
    if key is None:
        return None
    listed = whitelisted_principals(key.policy or {})
    facts: tuple[Fact, ...] = (
        ("ARN", key.arn),
        ("aliases", _joined(key.aliases)),
        ("for groups", _joined(key.for_groups)),
        ("key users", _names(listed)),
        *_drift(snapshot, key.for_groups, listed),
    )
    if key.policy is None:
        facts += (("decrypt allowed to", "cannot tell: the key policy was not read"),)
    else:
        who = _who_can(snapshot, "kms:Decrypt", key.arn, now)
        facts += (
            ("decrypt allowed to", _who_line(who)),
            ("usable through IAM by", _listed(who.through_iam) or "nobody"),
        )
    documents: tuple[Document, ...] = (("key policy", key.policy),) if key.policy else ()
    return Details(f"KMS key {key.label}", facts, documents, (_EVALUATED,))


def _root(snapshot: Snapshot, ref: str, now: datetime) -> Details:
    root = snapshot.root
    facts = (
        ("MFA", {True: "on", False: "OFF", None: "unknown"}[root.mfa_enabled]),
        (
            "root access keys",
            {True: "PRESENT", False: "none", None: "unknown"}[root.access_keys_present],
        ),
    )
    return Details(
        "Root account", facts, (), ("The practice: delete the root access keys and turn MFA on.",)
    )


def _account(snapshot: Snapshot, ref: str, now: datetime) -> Details:
    if snapshot.credential_report_generated:
        report = _when(
            snapshot.credential_report_generated,
            now,
            suffix=" ago (AWS remakes it at most every 4 h)",
        )
    else:
        report = "age unknown; key details are read directly when a computer is opened"
    facts = (
        ("account id", snapshot.account_id),
        ("alias", snapshot.account_alias or "none"),
        ("loaded as", snapshot.caller_arn),
        ("this computer", snapshot.this_user or "not an IAM user of this account"),
        (
            "users / groups / roles",
            f"{len(snapshot.users)} / {len(snapshot.groups)} / {len(snapshot.roles)}",
        ),
        ("buckets / KMS keys", f"{len(snapshot.buckets)} / {len(snapshot.kms_keys)}"),
        ("credential report", report),
    )
    hints = tuple(f"Could not read {p.what}: {p.message}" for p in snapshot.problems)
    return Details("Account", facts, (), hints)


_DESCRIBERS: dict[str, Callable[[Snapshot, str, datetime], Details | None]] = {
    "device": _user_node,
    "user": _user_node,
    "member": _user_node,
    "principal": _user_node,
    "key": _access_key,
    "group": _group,
    "role": _role,
    "bucket": _bucket,
    "kms-key": _kms_key,
    "root": _root,
    "account": _account,
}


def _user(snapshot: Snapshot, user: User, now: datetime) -> Details:
    facts: list[Fact] = [
        ("ARN", user.arn),
        ("person / device", f"{user.person or '-'} / {user.device or '-'}"),
        ("host name", user.hostname or "-"),
        ("enrolled", user.tags.get("keyhygiene:enrolled", "-")),
        ("groups", _joined(user.groups)),
        ("access keys", _joined(f"{k.id_tail} {k.status}" for k in user.access_keys)),
        ("console password", "yes" if user.password_enabled else "no"),
        ("attached policies", _joined(p.name for p in user.attached_policies)),
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
    facts += _can_facts(snapshot, user, now)
    documents = tuple((f"inline policy {p.name}", p.document) for p in user.inline_policies)
    documents += _managed_docs(snapshot, user.attached_policies)
    hints: tuple[str, ...] = ()
    if user.name == snapshot.this_user:
        hints += ("This computer. Its key lives in this computer's credentials file.",)
    if not user.keys_exact and user.access_keys:
        hints += ("Key ids load when the node is opened.",)
    hints += (_EVALUATED,)
    title = f"Device {user.name}" if user.is_device else f"User {user.name}"
    return Details(title, tuple(facts), documents, hints)


# ---- what the evaluator says -------------------------------------------------------

# A "who can" line names this many principals, then says how many more.
WHO_LIMIT = 20
# At most this many users and roles are evaluated for one "who can" line (about
# 0.1 ms each): only those some policy might allow are, but on an account whose
# groups all allow s3:* that could be every user.
WHO_BUDGET = 150
_EVALUATED = (
    "Who can what is worked out offline from the policies by AWS's documented rules (SCPs, "
    "permission boundaries, KMS grants and ACLs not modelled); "
    "`keyhygiene explain WHO ACTION RESOURCE` says why."
)


def _can_facts(snapshot: Snapshot, user: User, now: datetime) -> list[Fact]:
    """One line per bucket or key the user can (or might) use."""
    reach = principal_reach(snapshot, user.arn, now)
    if not reach:
        return [("can", "use none of the account's buckets and KMS keys")]
    return [("can" if i == 0 else "", _reach_line(r)) for i, r in enumerate(reach)]


def _reach_line(reach: Reach) -> str:
    where = reach.resource if reach.kind == "bucket" else f"with {reach.resource}"
    if not reach.abilities:
        return f"cannot tell: {_words(reach.unknown, 'or')} {where}"
    line = f"{_words(reach.abilities, 'and')} {where}"
    if reach.unknown:
        line += f" (cannot tell: {_words(reach.unknown, 'or')})"
    return line


def _words(items: Sequence[str], last: str) -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {last} {items[-1]}"


def _who_can(snapshot: Snapshot, action: str, resource: str, now: datetime) -> WhoCan:
    """Who may: the users and roles (`keyhygiene.core.access.who_can`, at most WHO_BUDGET
    evaluated), and the root user."""
    return who_can(snapshot, action, resource, now, budget=WHO_BUDGET, with_root=True)


def _who_line(who: WhoCan) -> str:
    if who.anyone:
        return "anyone, anonymous callers included"
    text = _listed(who.allowed)
    if who.unknown:
        text = (
            f"{text}; cannot tell: {_listed(who.unknown)}"
            if text
            else (f"cannot tell: {_listed(who.unknown)}")
        )
    text = text or "nobody"
    if who.unchecked:
        text += (
            f"; {who.unchecked} other users and roles not checked (keyhygiene explain answers one)"
        )
    return text


def _listed(names: Sequence[str]) -> str:
    shown = ", ".join(names[:WHO_LIMIT])
    if len(names) > WHO_LIMIT:
        shown += f" and {len(names) - WHO_LIMIT} more"
    return shown


# ---- helpers ----------------------------------------------------------------------


def _joined(names: Iterable[str]) -> str:
    return ", ".join(names) or "none"


def _names(arns: Iterable[str]) -> str:
    return ", ".join(principal_name(arn) for arn in sorted(arns)) or "none"


def _drift(snapshot: Snapshot, groups: tuple[str, ...], listed: Iterable[str]) -> list[Fact]:
    """Whitelist drift for a resource tagged for `groups`: who is missing, who is extra."""
    if not groups:
        return []
    expected, present = set(snapshot.whitelist_principals(groups)), set(listed)
    missing, extra = expected - present, present - expected
    if not missing and not extra:
        return [("whitelist", "matches the groups' members and roles")]
    facts = []
    if missing:
        facts.append(("MISSING from whitelist", _names(missing)))
    if extra:
        facts.append(("listed but not a member", _names(extra)))
    return facts


def _managed_docs(
    snapshot: Snapshot, attachments: Iterable[PolicyAttachment]
) -> tuple[Document, ...]:
    return tuple(
        (f"managed policy {p.name}", snapshot.managed_policies[p.arn])
        for p in attachments
        if p.arn in snapshot.managed_policies
    )


def _when(when: datetime | None, now: datetime, suffix: str = " ago") -> str:
    if when is None:
        return "never"
    return f"{when:%Y-%m-%d %H:%M} UTC, {age_text(when, now)}{suffix}"
