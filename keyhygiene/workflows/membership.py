"""Group membership: permanent, lent for a limited time that AWS itself enforces, and swept.

The practice keeps only the computers used often in a group; a rarely used one
(the phone, the vacation laptop) is added for a limited time. Every function
here turns a snapshot and a request into a `Plan` (no AWS call, no clock: the
caller passes `now`), and every plan also brings the whitelists of the buckets
and KMS keys tagged for the group in line with its members after the change
(`keyhygiene.steps.whitelists`).

A loan ("grant") of group G to user U adds four things: the membership, U's
entries in the whitelists of G's buckets and keys, the tag
`keyhygiene:grant:<G>` holding the expiry (ISO 8601, UTC; it is how keyhygiene
knows a membership is temporary), and the inline policy `keyhygiene-expiry`, a
Deny that AWS evaluates itself after the expiry (`DateGreaterThan
aws:CurrentTime`), so that the loan ends even if keyhygiene never runs again.
Lending again moves the expiry; ending early or the sweep (once the expiry is
past) removes all four. The sweep is safe to run twice and while another
keyhygiene runs: its first step re-reads the tags and stops if a loan changed
since the snapshot, and its removals accept what another sweep already did.
It runs forward only: undoing a sweep would give expired loans back, so a
failure is reported and the next sweep finishes the job (see `plan_sweep`).

What the expiry policy denies. A user may hold several loans and permanent
groups at once, and one inline policy must end each loan at its own time
without taking away what stays. IAM cannot say "deny what group G allows";
it can deny actions on resources. So for each loan we deny every action on
the resources the group gives access to: the buckets (and their objects) and
KMS keys tagged for it, and every resource its own IAM policies name. That
ends the loan soundly: whatever G allowed, it allowed on those resources.
Two cases need care, and both fail closed (deny more, never less):
- a group whose policies allow something on every resource ("*", a
  NotResource, or an attached policy whose document we cannot read, such as an
  AWS managed one) cannot be ended by a resource list: the user is denied
  every action after that loan's expiry, until the sweep removes the loan;
- a resource reached by two loans is denied at the earlier expiry, and one
  also reached by a permanent group is denied anyway: the user loses that
  resource from the expiry until the next sweep (the TUI sweeps at every
  start, cron with `keyhygiene sweep --yes`). The plan warns about both.
Lending to the identity that runs keyhygiene is refused: its own expiry
policy could deny it the rights it needs to sweep (the lock-out rule).

What the expiry policy guards. Before the expiry a borrower has all its
group's rights, IAM ones included: it could delete its own `keyhygiene-expiry`,
untag its loan, rename itself or join groups for good. So the same policy also
carries an unconditional Deny of exactly that (`guard_statements`) for as long
as the user holds any loan; the sweep, run by an admin, removes it with the
last loan. What no policy on the borrower can stop is the users, keys and
rights it could create for others, which no expiry covers: a group whose
policies allow such IAM writes (`IAM_WRITE_RIGHTS`, decided on AWS's rules by
`keyhygiene.core.policy_eval`, see `loan_risks`), or one of whose policies cannot be read,
is not lent unless forced, and a forced loan says so in the plan. A group that
may assume roles is lent with a warning: a role session outlives the loan.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from keyhygiene.aws.connection import all_items, call_unless_missing
from keyhygiene.core.access import group_policies, identity_policies, managed_document
from keyhygiene.core.aws_limits import (
    MAX_GROUPS_PER_USER,
    MAX_TAG_KEY,
    MAX_TAGS_PER_RESOURCE,
    TAG_TEXT,
    USER_INLINE_POLICIES_LIMIT,
)
from keyhygiene.core.errors import BadInput, KeyHygieneError

# describe_duration and remaining_text live in keyhygiene.core.formatting: the tree needs
# them without importing the AWS side.
from keyhygiene.core.formatting import describe_duration, parse_utc, utc_z
from keyhygiene.core.model import (
    EXPIRY_POLICY_NAME,
    TAG_GRANT_PREFIX,
    Group,
    Role,
    Snapshot,
    User,
)
from keyhygiene.core.policy_documents import POLICY_VERSION, caller_principal_arn
from keyhygiene.core.policy_eval import PolicySource, Principal, Request, evaluate, may_cover_action
from keyhygiene.plans.engine import (
    ApplyContext,
    ApplyReport,
    Call,
    ClientProvider,
    Plan,
    PlanEvent,
    Step,
    apply_plan,
    local_action,
)
from keyhygiene.steps.whitelists import check_whole_account

DEFAULT_MAX_DURATION = timedelta(days=30)
EXPIRY_SID_PREFIX = "KeyHygieneExpiry"
SWEEP_KIND = "sweep"  # the plan kind of a sweep: forward only, never resumed nor rolled back
SWEEP_SUBJECT = "sweep"  # every sweep finishes any interrupted one: they share the intent

MembershipAction = Literal["add", "remove", "lend"]
MEMBERSHIP_ACTIONS: tuple[MembershipAction, ...] = ("add", "remove", "lend")

_DURATION_PART = re.compile(r"(\d+)\s*([a-z]+)")
_UNITS: dict[str, timedelta] = {
    "m": timedelta(minutes=1),
    "min": timedelta(minutes=1),
    "mins": timedelta(minutes=1),
    "minute": timedelta(minutes=1),
    "minutes": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "hour": timedelta(hours=1),
    "hours": timedelta(hours=1),
    "d": timedelta(days=1),
    "day": timedelta(days=1),
    "days": timedelta(days=1),
    "w": timedelta(weeks=1),
    "week": timedelta(weeks=1),
    "weeks": timedelta(weeks=1),
}


# --------------------------------------------------------------------------- time


def parse_duration(text: str, *, maximum: timedelta = DEFAULT_MAX_DURATION) -> timedelta:
    """`30m`, `2h`, `3d`, `1w`, `1d12h` -> a timedelta in (0, maximum].

    Raises BadInput for anything else: empty, unparseable, zero, negative, too long.
    """
    cleaned = text.strip().lower()
    if not cleaned:
        raise BadInput("No duration given.", hint=_DURATION_HINT)
    if cleaned.startswith("-"):
        raise BadInput(f"The duration {text.strip()!r} is negative.", hint=_DURATION_HINT)
    position = 0
    total = timedelta()
    for match in _DURATION_PART.finditer(cleaned):
        if cleaned[position : match.start()].strip():
            break
        unit = _UNITS.get(match.group(2))
        if unit is None:
            raise BadInput(
                f"The duration {text.strip()!r} has an unknown unit {match.group(2)!r}.",
                hint=_DURATION_HINT,
            )
        total += int(match.group(1)) * unit
        position = match.end()
    if position == 0 or cleaned[position:].strip():
        raise BadInput(f"The duration {text.strip()!r} is not understood.", hint=_DURATION_HINT)
    if total <= timedelta():
        raise BadInput(f"The duration {text.strip()!r} is zero.", hint=_DURATION_HINT)
    if total > maximum:
        raise BadInput(
            f"The duration {text.strip()!r} ({describe_duration(total)}) is longer than the "
            f"longest loan allowed, {describe_duration(maximum)}.",
            hint="Lend for less and extend the loan later, or add the computer to the group "
            "permanently.",
        )
    return total


_DURATION_HINT = "Give a number and a unit: 30m, 2h, 3d or 1w (combinations like 1d12h work too)."


def utc(moment: datetime) -> datetime:
    """`moment` in UTC; a naive datetime is refused, as it has no defined instant."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("A time without a time zone cannot be compared with an expiry.")
    return moment.astimezone(timezone.utc)


def format_expiry(moment: datetime) -> str:
    """The tag's and the policy's form: `2026-11-28T21:00:00Z` (UTC, whole seconds)."""
    return utc_z(moment)


def parse_expiry(text: str | None) -> datetime | None:
    """An expiry tag's value as a UTC datetime; None when it is not a readable ISO 8601 time.

    A time without a zone is taken as UTC: keyhygiene always writes UTC.
    """
    moment = parse_utc(text)
    return moment.astimezone(timezone.utc) if moment is not None else None


def parse_now(text: str) -> datetime:
    """The injected clock of the command line (`--now`, `KEYHYGIENE_NOW`)."""
    moment = parse_expiry(text)
    if moment is None:
        raise BadInput(
            f"{text!r} is not an ISO 8601 time.", hint="For example 2026-11-28T21:00:00Z."
        )
    return moment


# --------------------------------------------------------------------------- grants


@dataclass(frozen=True)
class Grant:
    """A temporary membership as tagged on the user."""

    user: str
    group: str
    expiry_text: str  # the tag's value, as found

    @property
    def expiry(self) -> datetime | None:
        return parse_expiry(self.expiry_text)

    @property
    def tag_key(self) -> str:
        return TAG_GRANT_PREFIX + self.group

    def expired(self, now: datetime) -> bool:
        """Past its expiry; an unreadable expiry counts as expired (fail closed)."""
        moment = self.expiry
        return moment is None or moment <= utc(now)


def grants_of(snapshot: Snapshot) -> tuple[Grant, ...]:
    """Every temporary membership in the account, by user then group."""
    return tuple(
        Grant(user.name, group, expiry)
        for user in snapshot.users
        for group, expiry in sorted(user.grants().items())
    )


def expired_grants(snapshot: Snapshot, now: datetime) -> tuple[Grant, ...]:
    """The grants `sweep` would remove at `now`."""
    return tuple(grant for grant in grants_of(snapshot) if grant.expired(now))


# --------------------------------------------------------------------------- expiry policy


@dataclass(frozen=True)
class GroupReach:
    """What membership of a group gives access to, as IAM resource ARNs (patterns allowed)."""

    group: str
    resources: tuple[str, ...]
    everything: bool = False  # some right is not limited to a list of resources
    why_everything: str = ""
    labels: tuple[str, ...] = ()  # "bucket christopher-photos", for the plan's words


def group_reach(snapshot: Snapshot, group_name: str) -> GroupReach:
    """The resources a member of `group_name` reaches: tagged buckets (and their
    objects), tagged KMS keys, and every Resource its IAM policies allow on."""
    resources: dict[str, None] = {}
    labels: list[str] = []
    for bucket in snapshot.buckets_for_group(group_name):
        resources[bucket.arn] = None
        resources[bucket.arn + "/*"] = None
        labels.append(f"bucket {bucket.name}")
    for key in snapshot.kms_keys_for_group(group_name):
        resources[key.arn] = None
        labels.append(f"KMS key {key.label}")
    group = snapshot.group(group_name)
    reasons: list[str] = []
    named = 0
    for policy_name, document in _group_documents(snapshot, group) if group else ():
        if document is None:
            reasons.append(f"its attached policy {policy_name} could not be read")
            continue
        for statement in _allow_statements(document):
            if "NotResource" in statement:
                reasons.append(f"its policy {policy_name} allows with NotResource")
                continue
            for resource in _strings(statement.get("Resource")):
                if resource == "*":
                    reasons.append(f'its policy {policy_name} allows on every resource ("*")')
                elif resource not in resources:
                    resources[resource] = None
                    named += 1
    if named:
        labels.append(f"{named} resource{'s' if named != 1 else ''} its policies name")
    return GroupReach(
        group=group.name if group else group_name,
        resources=tuple(sorted(resources)),
        everything=bool(reasons),
        why_everything="; ".join(dict.fromkeys(reasons)),
        labels=tuple(labels),
    )


@dataclass(frozen=True)
class ExpiryPolicy:
    """The `keyhygiene-expiry` document for a user's loans, and what it means in words."""

    document: dict[str, Any] | None  # None: no loan left, the policy goes
    summary: str  # what it denies and why, for the plan step
    warnings: tuple[str, ...] = ()


def expiry_policy(
    snapshot: Snapshot,
    user: User,
    grants: Mapping[str, datetime],
    *,
    groups_after: Iterable[str] | None = None,
) -> ExpiryPolicy:
    """The expiry policy for `user` holding `grants` (group -> expiry), see the module docstring.

    `grants` are the loans the user holds once the plan is applied, and
    `groups_after` its groups then (default: its groups now); those of its
    groups that are not on loan are its permanent ones.
    """
    if not grants:
        return ExpiryPolicy(None, "no loan is left")
    loaned = {name.lower() for name in grants}
    after = user.groups if groups_after is None else tuple(groups_after)
    permanent = [g for g in after if g.lower() not in loaned]
    permanent_reach = {r for g in permanent for r in group_reach(snapshot, g).resources}
    deny_at: dict[str, datetime] = {}
    broad: list[tuple[datetime, str, str]] = []  # (expiry, group, why)
    warnings: list[str] = []
    parts: list[str] = []
    for group_name, expiry in sorted(grants.items()):
        reach = group_reach(snapshot, group_name)
        if reach.everything:
            broad.append((expiry, reach.group, reach.why_everything))
        for resource in reach.resources:
            # Reached by two loans: the earlier expiry wins (fail closed).
            deny_at[resource] = min(expiry, deny_at.get(resource, expiry))
        overlap = sorted(set(reach.resources) & permanent_reach)
        if overlap:
            warnings.append(
                f"{user.name}'s permanent groups also reach {len(overlap)} of the resources "
                f"of group {reach.group} ({', '.join(overlap[:3])}{', …' if len(overlap) > 3 else ''}): "
                f"from {format_expiry(expiry)} until keyhygiene sweeps the loan, "
                f"{user.name} is denied those too."
            )
        if not reach.everything and not reach.resources:
            warnings.append(
                f"Group {reach.group} gives access to nothing keyhygiene can name (no bucket or "
                "KMS key tagged for it, no resource in its policies): the expiry policy has "
                "nothing to deny for this loan; the sweep still ends it."
            )
        if not reach.everything:  # else the full deny below says it
            what = ", ".join(reach.labels) or "none tagged or named"
            parts.append(
                f"after {format_expiry(expiry)} every action on the resources of group "
                f"{reach.group} ({what})"
            )
    statements: list[dict[str, Any]] = []
    earliest_broad = min(broad) if broad else None
    if earliest_broad is not None:
        when, group_name, why = earliest_broad
        statements.append(_deny_statement(EXPIRY_SID_PREFIX + "All", ["*"], when))
        parts.append(
            f"after {format_expiry(when)} every action at all, because the rights of group "
            f"{group_name} cannot be tied to a list of resources ({why})"
        )
        warnings.append(
            f"After {format_expiry(when)}, {user.name} is denied every action, its permanent "
            f"rights included, until keyhygiene sweeps the loan of {group_name} ({why})."
        )
    by_time: dict[datetime, list[str]] = {}
    for resource, when in deny_at.items():
        if earliest_broad is None or when < earliest_broad[0]:
            by_time.setdefault(when, []).append(resource)
    for when in sorted(by_time):
        sid = EXPIRY_SID_PREFIX + format_expiry(when).replace("-", "").replace(":", "")
        statements.append(_deny_statement(sid, sorted(by_time[when]), when))
    timed = bool(statements)
    # As long as any loan lasts: without it a borrower whose group grants IAM
    # rights could delete this very policy, or move its tag, before the expiry.
    statements.extend(guard_statements(user))
    document = {"Version": POLICY_VERSION, "Statement": statements}
    guard = (
        f"and, unconditionally while {'a loan lasts' if len(grants) > 1 else 'the loan lasts'}, "
        f"{user.name} changing its own policies, tags, groups or name (so that it cannot undo "
        "its expiry)"
    )
    summary = (
        "AWS itself denies "
        + "; and ".join(parts)
        + f"; {guard}, so {'each loan ends' if len(grants) > 1 else 'the loan ends'} on time "
        "even if keyhygiene never runs again"
    )
    if not timed:
        summary = (
            "the loans give access to no resource keyhygiene can name, so nothing is denied "
            f"after the expiry; AWS itself denies {guard.removeprefix('and, ')}"
        )
    return ExpiryPolicy(document, summary, tuple(warnings))


# The guard of `keyhygiene-expiry`: what a borrower may never do to itself while
# it holds a loan, whatever its groups allow (an explicit Deny beats any Allow).
# On its own ARN: its inline and attached policies (this one included), its
# permissions boundary, its tags (the grant tags tell the sweep what to end) and
# its name and path (renamed, it would no longer match this Resource).
GUARD_SID = EXPIRY_SID_PREFIX + "Guard"
GUARD_GROUPS_SID = EXPIRY_SID_PREFIX + "GuardGroups"
GUARDED_SELF_ACTIONS: tuple[str, ...] = (
    "iam:DeleteUserPolicy",
    "iam:PutUserPolicy",
    "iam:AttachUserPolicy",
    "iam:DetachUserPolicy",
    "iam:PutUserPermissionsBoundary",
    "iam:DeleteUserPermissionsBoundary",
    "iam:TagUser",
    "iam:UntagUser",
    "iam:UpdateUser",
)
# iam:AddUserToGroup is authorized on the *group* (the Service Authorization
# Reference lists only the group resource, and no condition key names the user
# being added), so it can only be denied on "*": the borrower cannot add itself,
# nor anyone else, to any group for good while it holds a loan.
# iam:RemoveUserFromGroup is left allowed, on purpose: it is authorized on the
# group too, so it could only be denied on "*" (which would also stop a borrower
# lent an admin group from taking a lost computer out of a group), and leaving a
# group escapes nothing of the loan: it only takes rights away, and the tag and
# this policy stay for the sweep (which accepts a membership already gone).
GUARDED_GROUP_ACTION = "iam:AddUserToGroup"


def guard_statements(user: User) -> list[dict[str, Any]]:
    """The unconditional Deny statements of `keyhygiene-expiry` (see above)."""
    return [
        {
            "Sid": GUARD_SID,
            "Effect": "Deny",
            "Action": list(GUARDED_SELF_ACTIONS),
            "Resource": user.arn,
        },
        {
            "Sid": GUARD_GROUPS_SID,
            "Effect": "Deny",
            "Action": GUARDED_GROUP_ACTION,
            "Resource": "*",
        },
    ]


def _deny_statement(sid: str, resources: list[str], when: datetime) -> dict[str, Any]:
    return {
        "Sid": sid,
        "Effect": "Deny",
        "Action": "*",
        "Resource": resources[0] if resources == ["*"] else resources,
        "Condition": {"DateGreaterThan": {"aws:CurrentTime": format_expiry(when)}},
    }


def inline_policies_size(documents: Iterable[Mapping[str, Any]]) -> int:
    """Characters IAM counts against a user's inline policy limit (conservatively)."""
    return sum(len(json.dumps(doc, separators=(",", ":"), ensure_ascii=False)) for doc in documents)


def ensure_inline_policies_fit(user: User, document: Mapping[str, Any] | None) -> None:
    others = [p.document for p in user.inline_policies if p.name != EXPIRY_POLICY_NAME]
    size = inline_policies_size([*others, *([document] if document else [])])
    if size > USER_INLINE_POLICIES_LIMIT:
        raise BadInput(
            f"{user.name}'s inline policies would total {size:,} characters with the new "
            f"{EXPIRY_POLICY_NAME}; IAM accepts at most {USER_INLINE_POLICIES_LIMIT:,} a user. "
            "Nothing was changed.",
            hint="End some of its other loans first, tag fewer buckets for the group, or "
            "remove inline policies the user no longer needs.",
        )


def _group_documents(
    snapshot: Snapshot, group: Group
) -> list[tuple[str, Mapping[str, Any] | None]]:
    documents: list[tuple[str, Mapping[str, Any] | None]] = [
        (policy.name, policy.document) for policy in group.inline_policies
    ]
    for attached in group.attached_policies:
        # The AWS managed policies keyhygiene knows count too (AdministratorAccess...).
        documents.append((attached.name, managed_document(snapshot, attached)))
    return documents


def _allow_statements(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    raw = document.get("Statement", [])
    items = raw if isinstance(raw, list) else [raw]
    return [s for s in items if isinstance(s, Mapping) and s.get("Effect") == "Allow"]


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (list, tuple)):
        return tuple(item for item in value if isinstance(item, str))
    return ()


# --------------------------------------------------------------------------- what a loan gives away

# IAM writes that make something no expiry covers: another user, an access key
# or password for one, a right given to another identity (a user, a group, a
# role, a managed policy), a role that anyone can take. A borrower allowed one
# of them could, before its expiry, give itself access that outlives the loan.
# On itself they escape nothing: a new key of its own is still under its expiry
# policy, and the guard covers its own policies, tags and name.
IAM_WRITE_RIGHTS: tuple[tuple[str, str], ...] = (
    ("iam:CreateUser", "user"),
    ("iam:CreateAccessKey", "user"),
    ("iam:CreateLoginProfile", "user"),
    ("iam:UpdateLoginProfile", "user"),
    ("iam:PutUserPolicy", "user"),
    ("iam:AttachUserPolicy", "user"),
    ("iam:DeleteUserPolicy", "user"),  # another borrower's keyhygiene-expiry
    ("iam:AddUserToGroup", "group"),
    ("iam:PutGroupPolicy", "group"),
    ("iam:AttachGroupPolicy", "group"),
    ("iam:CreateRole", "role"),
    ("iam:UpdateAssumeRolePolicy", "role"),
    ("iam:PutRolePolicy", "role"),
    ("iam:AttachRolePolicy", "role"),
    ("iam:CreatePolicyVersion", "policy"),
    ("iam:SetDefaultPolicyVersion", "policy"),
    # Undoing another computer's containment: revoke's AWSDenyAll, its key.
    ("iam:DetachUserPolicy", "user"),
    ("iam:UpdateAccessKey", "user"),
    # A service running as a role the borrower passes (a Lambda function as the
    # application's role) keeps that role's access after the loan.
    ("iam:PassRole", "role"),
)
# The name of the identity that does not exist: a right on it is a right on
# users (groups, roles, policies) the group's policies do not name one by one.
STAND_IN_NAME = "keyhygiene-stand-in"


class LoanRefused(BadInput):
    """A loan refused because the group grants IAM rights (or may: a policy
    could not be read); `plan_grant(..., force=True)` lends it anyway."""

    def __init__(self, message: str, *, hint: str | None = None, group: str = "") -> None:
        super().__init__(message, hint=hint)
        self.group = group


@dataclass(frozen=True)
class LoanRisks:
    """What lending `group` would let its borrower do that the expiry cannot take back.

    Each entry is a phrase naming the policy: "its inline policy ops allows
    iam:CreateUser on any user".
    """

    group: str
    iam_rights: tuple[str, ...] = ()
    unreadable: tuple[str, ...] = ()  # policies whose document is not known
    roles: tuple[str, ...] = ()  # what sts:AssumeRole is allowed on: "any role", "role ops"

    @property
    def refused(self) -> bool:
        """Fail closed: a policy that could not be read may grant IAM rights too."""
        return bool(self.iam_rights or self.unreadable)


def loan_risks(snapshot: Snapshot, user: User, group: Group, *, now: datetime) -> LoanRisks:
    """The IAM rights and roles `group` gives `user`, decided on AWS's rules
    (`keyhygiene.core.policy_eval`) from the group's own policies only.

    Fail closed, so that a right reachable by some request is found: every
    Allow counts whatever its Condition (MFA, source IP ... hold for some
    request), a Deny only when it has none. Each right is asked on a stand-in
    identity (what "*" or a wildcard reaches) and on every existing one of its
    kind, the borrower itself left out (rights on itself are what the guard is
    for). A policy whose document is not known (an AWS managed policy
    `keyhygiene.core.access` does not know) is reported as unreadable.
    """
    principal = Principal.user(user.arn, tags=user.tags, user_id=user.user_id)
    own = f"group {group.name} "
    readable: list[PolicySource] = []
    unreadable: list[str] = []
    for source in group_policies(snapshot, group):
        label = source.label.removeprefix(own)
        if source.document is None:
            unreadable.append(f"its {label} could not be read")
        else:
            readable.append(PolicySource(label, _as_it_could_allow(source.document)))

    # sts:AssumeRole is judged by the role's trust policy too: this one hands it
    # to IAM, so that the question is what the group's own policies allow.
    delegating_trust = PolicySource(
        "a trust policy naming the account",
        {
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {
                        "AWS": f"arn:{snapshot.partition}:iam::{snapshot.account_id}:root"
                    },
                    "Action": "sts:AssumeRole",
                }
            ]
        },
    )

    def may_assume(resource: str) -> bool:
        request = Request(
            principal,
            "sts:AssumeRole",
            resource,
            now=utc(now),
            resource_account=snapshot.account_id,
        )
        return evaluate(request, readable, delegating_trust).outcome in ("allow", "unknown")

    rights = _iam_rights(snapshot, user, principal, readable, now) if readable else []
    roles: list[str] = []
    if readable:
        for target in _iam_targets(snapshot, user, "role"):
            if may_assume(target[0]):
                roles.append(target[1])
                if target[1] == "any role":
                    break
        # A role the borrower may assume lends it that role's rights too: one
        # that holds IAM writes could mint a key no expiry covers.
        for role in snapshot.roles:
            if role.service_linked or not may_assume(role.arn):
                continue
            if not _trusts(snapshot, role, principal, now):
                continue
            for right in _role_iam_rights(snapshot, user, role, now):
                rights.append(f"it may assume role {role.name}, whose {right.removeprefix('its ')}")
    return LoanRisks(group.name, tuple(rights), tuple(unreadable), tuple(roles))


def _trusts(snapshot: Snapshot, role: Role, principal: Principal, now: datetime) -> bool:
    """Whether the role's trust policy lets `principal` assume it (its IAM side
    being allowed): it names the principal, its account, or everyone."""
    request = Request(
        principal, "sts:AssumeRole", role.arn, now=utc(now), resource_account=snapshot.account_id
    )
    trust = PolicySource(f"the trust policy of role {role.name}", role.trust_policy)
    everything = PolicySource(
        "its IAM side", {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    )
    return evaluate(request, [everything], trust).outcome in ("allow", "unknown")


def _role_iam_rights(snapshot: Snapshot, user: User, role: Role, now: datetime) -> list[str]:
    session = Principal.role_session(role.arn, session="borrower", tags=role.tags)
    sources = [
        PolicySource(
            s.label.removeprefix(f"role {role.name} "),
            None if s.document is None else _as_it_could_allow(s.document),
        )
        for s in identity_policies(snapshot, session)
    ]
    return _iam_rights(snapshot, user, session, sources, now)


def _iam_rights(
    snapshot: Snapshot,
    user: User,
    principal: Principal,
    sources: Sequence[PolicySource],
    now: datetime,
) -> list[str]:
    """Each of `IAM_WRITE_RIGHTS` that `sources` give `principal` on some
    identity (the borrower itself left out), as "its <policy> allows <action>
    on <what>". An action no statement's Action could name is not asked, so a
    group with only S3 rights costs nothing on a 500-user account."""
    found: list[str] = []
    for action, kind in IAM_WRITE_RIGHTS:
        if not any(_could_name(source, action) for source in sources):
            continue
        for resource, words in _iam_targets(snapshot, user, kind):
            request = Request(
                principal, action, resource, now=utc(now), resource_account=snapshot.account_id
            )
            decision = evaluate(request, sources)
            if decision.allowed:
                source = decision.deciding[0].source if decision.deciding else "policies"
                found.append(f"its {source} allows {action} on {words}")
                break
            if decision.outcome == "unknown":
                found.append(f"its policies may allow {action} on {words} ({decision.reason})")
                break
    return found


def _could_name(source: PolicySource, action: str) -> bool:
    """Whether some Allow of the document may cover `action` (any resource); an
    unreadable document may."""
    if source.document is None:
        return True
    raw = source.document.get("Statement", [])
    items = raw if isinstance(raw, list) else [raw]
    return any(
        not isinstance(item, Mapping)
        or (item.get("Effect") == "Allow" and may_cover_action(item, action))
        for item in items
    )


def _iam_targets(snapshot: Snapshot, user: User, kind: str) -> list[tuple[str, str]]:
    """(ARN, words) of what an IAM right of `kind` may be asked on: the stand-in first."""
    stand_in = f"arn:{snapshot.partition}:iam::{snapshot.account_id}:{kind}/{STAND_IN_NAME}"
    targets = [(stand_in, f"any {kind}")]
    if kind == "user":
        targets += [(u.arn, f"user {u.name}") for u in snapshot.users if u.arn != user.arn]
    elif kind == "group":
        targets += [(g.arn, f"group {g.name}") for g in snapshot.groups]
    elif kind == "role":
        targets += [(r.arn, f"role {r.name}") for r in snapshot.roles if not r.service_linked]
    elif kind == "policy":
        targets += [
            (policy_arn, f"policy {policy_arn.rsplit('/', 1)[-1]}")
            for policy_arn in sorted(snapshot.managed_policies)
            if ":iam::aws:policy/" not in policy_arn  # AWS managed: no one can change them
        ]
    return targets


def _as_it_could_allow(document: Mapping[str, Any]) -> dict[str, Any]:
    """`document` as it is for the request most favourable to the caller: its
    Allows without their Condition, its Denies only when they have none."""
    raw = document.get("Statement", [])
    statements: list[Any] = []
    for statement in raw if isinstance(raw, list) else [raw]:
        if isinstance(statement, Mapping) and "Condition" in statement:
            if statement.get("Effect") == "Deny":
                continue
            if statement.get("Effect") == "Allow":
                statement = {k: v for k, v in statement.items() if k != "Condition"}
        statements.append(statement)
    return {**document, "Statement": statements}


def _risk_text(risks: LoanRisks) -> str:
    """The first IAM right found and how many more, or the policies not read."""
    if not risks.iam_rights:
        return "; ".join(risks.unreadable)
    more = len(risks.iam_rights) - 1
    return risks.iam_rights[0] + (
        f" (and {more} more IAM right{'s' if more != 1 else ''})" if more else ""
    )


def _check_loan_risks(user: User, group: Group, risks: LoanRisks, *, force: bool) -> None:
    if not risks.refused or force:
        return
    if risks.iam_rights:
        because = "it grants IAM rights"
        why = (
            "A borrower with IAM rights could, before the expiry, create users, access keys or "
            "rights that no expiry covers and that outlive the loan."
        )
    else:
        because = "one of its policies cannot be read"
        why = (
            "Its document is not known (an AWS managed policy keyhygiene does not know, or one "
            "the inventory could not read), so it may grant IAM rights a borrower could use to "
            "create users, access keys or rights that outlive the loan."
        )
    raise LoanRefused(
        f"Group {group.name} is not lent to {user.name}, because {because}: "
        f"{_risk_text(risks)}. {why} Nothing was changed.",
        hint=f"Lend a group without IAM rights, or add {user.name} to {group.name} "
        "permanently if it should have them. To lend it anyway, pass --force: "
        f"`keyhygiene grant {user.name} --group {group.name} --for DURATION --force`.",
        group=group.name,
    )


def _loan_risk_warnings(
    user: User, group: Group, risks: LoanRisks, expiry_text: str, *, forced: bool
) -> list[str]:
    warnings: list[str] = []
    if forced and risks.refused:
        because = "grants IAM rights" if risks.iam_rights else "has a policy that could not be read"
        warnings.append(
            f"Lent by force although group {group.name} {because}: {_risk_text(risks)}. "
            f"Until {expiry_text}, {user.name} could still create "
            "users, access keys or rights that no expiry covers and that outlive the loan. "
            "Its expiry policy only keeps it from undoing its own expiry (its policies, tags, "
            "groups and name)."
        )
    if risks.roles:
        on = ", ".join(risks.roles[:3]) + (" …" if len(risks.roles) > 3 else "")
        warnings.append(
            f"Group {group.name} allows sts:AssumeRole on {on}: a role session {user.name} "
            "starts during the loan outlives it, up to the role's maximum session duration "
            "(1 h by default, up to 12 h); neither the expiry policy nor the sweep ends it."
        )
    return warnings


# --------------------------------------------------------------------------- checks


IAM_READ = "IAM users, groups and roles"  # the inventory's name for that read


def _check_iam_read(snapshot: Snapshot) -> None:
    """A user or group missing from a snapshot that could not read IAM may well
    exist: say why it could not be read, not that it does not exist."""
    for problem in snapshot.problems:
        if problem.what == IAM_READ:
            raise BadInput(
                f"Could not read the {problem.what}: {problem.message}",
                hint="Nothing was changed; fix that and run the same command again.",
            )


def _find_user(snapshot: Snapshot, name: str) -> User:
    user = snapshot.user(name.strip())
    if user is None:
        _check_iam_read(snapshot)
        raise BadInput(f"There is no IAM user {name!r} in account {snapshot.account_id}.")
    return user


def _find_group(snapshot: Snapshot, name: str) -> Group:
    group = snapshot.group(name.strip())
    if group is None:
        _check_iam_read(snapshot)
        raise BadInput(
            f"There is no IAM group {name!r} in account {snapshot.account_id}.",
            hint="Create the group first (an application is named by its group).",
        )
    return group


def _in_group(user: User, group: Group) -> bool:
    return group.name.lower() in {g.lower() for g in user.groups}


def _grant_value(user: User, group: Group) -> str | None:
    """The grant tag's value for `group` (matched without regard to case), if any."""
    lowered = group.name.lower()
    for name, value in user.grants().items():
        if name.lower() == lowered:
            return value
    return None


def _check_not_revoked(user: User, doing: str) -> None:
    if user.revoked:
        raise BadInput(
            f"{user.name} is revoked: it cannot be {doing}. Nothing was changed.",
            hint="Enroll the computer again if it should have access.",
        )


def _check_group_room(user: User, group: Group) -> None:
    if not _in_group(user, group) and len(user.groups) >= MAX_GROUPS_PER_USER:
        raise BadInput(
            f"{user.name} is already in {len(user.groups)} groups, the most IAM allows "
            f"({MAX_GROUPS_PER_USER}). Nothing was changed.",
            hint="Remove it from a group it no longer needs first.",
        )


def _is_actor(snapshot: Snapshot, user: User) -> bool:
    return user.arn == caller_principal_arn(snapshot.caller_arn)


def _check_not_actor(snapshot: Snapshot, user: User) -> None:
    if _is_actor(snapshot, user):
        raise BadInput(
            f"{user.name} is the identity running keyhygiene: lending it a group would give "
            "it an expiry policy that could deny it the rights it needs to sweep. Nothing was "
            "changed.",
            hint="Add it to the group permanently, or run keyhygiene with another --admin-profile.",
        )


def _grant_tag_key(user: User, group: Group) -> str:
    key = TAG_GRANT_PREFIX + group.name
    if len(key) > MAX_TAG_KEY or not TAG_TEXT.match(key):
        raise BadInput(
            f"Group {group.name!r} cannot be lent: the tag key {key!r} would break IAM's tag "
            f"rules (at most {MAX_TAG_KEY} characters; letters, digits, spaces and _.:/=+-@).",
            hint="Add the computer to the group permanently instead.",
        )
    if key not in user.tags and len(user.tags) >= MAX_TAGS_PER_RESOURCE:
        raise BadInput(
            f"{user.name} already has {len(user.tags)} tags, the most IAM allows. Nothing was "
            "changed.",
            hint="Remove tags it no longer needs first.",
        )
    return key


def _readable_grants(user: User, *, without: str | None = None) -> dict[str, datetime]:
    """The user's loans with a readable expiry, but `without` (a group name)."""
    found: dict[str, datetime] = {}
    for group_name, value in user.grants().items():
        if without is not None and group_name.lower() == without.lower():
            continue
        moment = parse_expiry(value)
        if moment is not None:
            found[group_name] = moment
    return found


def _unreadable_grants_warning(user: User) -> list[str]:
    bad = sorted(g for g, v in user.grants().items() if parse_expiry(v) is None)
    if not bad:
        return []
    return [
        f"{user.name}'s loan of {', '.join(bad)} has an unreadable expiry tag; its expiry "
        "policy leaves it out and `keyhygiene sweep` will remove it."
    ]


# --------------------------------------------------------------------------- what to offer


@dataclass(frozen=True)
class Candidates:
    """The computers and groups a membership action can be asked for, as a picker offers them.

    Both lists are empty together (a user is offered for some group, a group for
    some user); `why_none` then says why, in a sentence.
    """

    users: tuple[User, ...]
    groups: tuple[Group, ...]
    why_none: str = ""


def loan_of(user: User, group: Group) -> str | None:
    """The expiry tagged for `user`'s loan of `group` (group names ignore case), if any."""
    return _grant_value(user, group)


def eligible(snapshot: Snapshot, action: MembershipAction, user: User, group: Group) -> bool:
    """Whether `action` makes sense for this user and group (the plan may still refuse it,
    saying why: ten groups already, a policy over its size limit ...).

    - remove: a member, or a loan (even half-applied: the tag without the membership);
    - add: not revoked, and not a permanent member already (a loan becomes permanent);
    - lend: the same, and not the identity running keyhygiene (see `plan_grant`).
    """
    loan = _grant_value(user, group)
    member = _in_group(user, group)
    if action == "remove":
        return member or loan is not None
    if user.revoked or (member and loan is None):
        return False
    return not (action == "lend" and _is_actor(snapshot, user))


def candidates(
    snapshot: Snapshot,
    action: MembershipAction,
    user: str | None = None,
    group: str | None = None,
) -> Candidates:
    """The users and groups to offer for `action`, given the user or the group already chosen.

    A user is offered when some group (the chosen one, or any) makes sense with
    it, and a group when some user (the chosen one, or any) does, by
    `eligible`. Names are matched without regard to case, as IAM does.
    """
    if action not in MEMBERSHIP_ACTIONS:
        raise ValueError(f"Unknown membership action {action!r}.")
    fixed_user = snapshot.user(user.strip()) if user else None
    fixed_group = snapshot.group(group.strip()) if group else None
    user_pool = (fixed_user,) if fixed_user else (() if user else snapshot.users)
    group_pool = (fixed_group,) if fixed_group else (() if group else snapshot.groups)
    users = tuple(u for u in user_pool if any(eligible(snapshot, action, u, g) for g in group_pool))
    groups = tuple(
        g for g in group_pool if any(eligible(snapshot, action, u, g) for u in user_pool)
    )
    if users:
        return Candidates(users, groups)
    return Candidates((), (), _why_none(snapshot, action, user, fixed_user, group, fixed_group))


def _why_none(
    snapshot: Snapshot,
    action: MembershipAction,
    user_name: str | None,
    user: User | None,
    group_name: str | None,
    group: Group | None,
) -> str:
    if user_name and user is None:
        return f"There is no IAM user {user_name.strip()!r}."
    if group_name and group is None:
        return f"There is no IAM group {group_name.strip()!r}."
    if not snapshot.users:
        return "There is no computer in the account."
    if not snapshot.groups:
        return "There is no group in the account."
    if user is None:
        if action == "remove":
            where = f"group {group.name}" if group else "any group"
            return f"No computer is in {where} or on loan of it."
        where = group.name if group else "every group"
        return f"Every computer is a permanent member of {where} already, or revoked."
    if action != "remove" and user.revoked:
        return f"{user.name} is revoked: it cannot join or borrow a group."
    if action == "lend" and _is_actor(snapshot, user):
        return (
            f"{user.name} is the identity running keyhygiene: it cannot be lent a group "
            "(its expiry policy could deny it the rights it needs to sweep)."
        )
    if action == "remove" and group is not None:
        return f"{user.name} is not in {group.name} and has no loan of it."
    if action == "remove":
        return f"{user.name} is in no group."
    where = group.name if group else "every group"
    return f"{user.name} is already a permanent member of {where}."


# --------------------------------------------------------------------------- plans


def plan_add_member(snapshot: Snapshot, user_name: str, group_name: str) -> Plan:
    """Make `user_name` a permanent member of `group_name` (a loan becomes permanent).

    Built from the account as it is, so that the same command run again after an
    interruption finishes the work: a membership already there with whitelists
    or an expiry policy not yet matching it gets only the missing steps."""
    check_whole_account(snapshot)
    user = _find_user(snapshot, user_name)
    group = _find_group(snapshot, group_name)
    _check_not_revoked(user, f"added to {group.name}")
    loan = _grant_value(user, group)
    member = _in_group(user, group)
    if not member:
        _check_group_room(user, group)
    steps: list[Step] = []
    if not member:
        steps.append(_add_to_group_step(user, group))
    steps.extend(_whitelist_steps(snapshot, {group.name: _members(group) | {user.name}}))
    warnings: list[str] = []
    if loan is not None:
        steps.append(
            _untag_step(
                "grant-untag",
                user,
                {TAG_GRANT_PREFIX + _tag_group(user, group): loan},
                why=f"the membership of {group.name} is no longer temporary",
            )
        )
    if loan is not None or member:
        # With the loan's tag gone (now, or by a run cut short after it), the
        # expiry policy must stop ending this membership.
        policy = expiry_policy(snapshot, user, _readable_grants(user, without=group.name))
        steps.extend(_expiry_policy_steps(user, policy))
        if steps:
            warnings.extend(policy.warnings)
    if loan is not None:
        title = f"Make {user.name}'s loan of {group.name} permanent"
    elif member and steps:
        title = f"Finish adding {user.name} to group {group.name}: it is a member already"
    elif member:
        title = f"{user.name} is already a permanent member of {group.name}"
    else:
        title = f"Add {user.name} to group {group.name}"
    return Plan(
        "group-add", title, tuple(steps), tuple(warnings), subject=_subject("add", user, group)
    )


def plan_remove_member(snapshot: Snapshot, user_name: str, group_name: str) -> Plan:
    """Take `user_name` out of `group_name`; a loan is ended with everything it added.

    Run again after an interruption, it finishes: a user already out of the
    group but still in its whitelists gets only the whitelist steps."""
    check_whole_account(snapshot)
    user = _find_user(snapshot, user_name)
    group = _find_group(snapshot, group_name)
    if _grant_value(user, group) is not None:
        return plan_end_grant(snapshot, user.name, group.name)
    member = _in_group(user, group)
    steps = [_remove_from_group_step(user, group)] if member else []
    steps.extend(_whitelist_steps(snapshot, {group.name: _members(group) - {user.name}}))
    if member:
        title = f"Remove {user.name} from group {group.name}"
    elif steps:
        title = (
            f"Finish removing {user.name} from group {group.name}: it is out of the group already"
        )
    else:
        title = f"{user.name} is not a member of {group.name}"
    return Plan("group-remove", title, tuple(steps), subject=_subject("remove", user, group))


def _subject(intent: str, user: User, group: Group) -> str:
    """What a membership plan is for, whatever plan the account's state made of it:
    `group remove` of a loan ends the loan, `grant` of a lent group moves its end."""
    return f"{intent} {user.name} {group.name}"


def plan_grant(
    snapshot: Snapshot,
    user_name: str,
    group_name: str,
    duration: timedelta | str,
    *,
    now: datetime,
    max_duration: timedelta = DEFAULT_MAX_DURATION,
    force: bool = False,
) -> Plan:
    """Lend `group_name` to `user_name` until `now + duration`, or move an existing loan's expiry.

    A group whose policies allow IAM writes (`IAM_WRITE_RIGHTS`, `*:*`
    included), or one of whose policies cannot be read, is refused
    (`LoanRefused`) unless `force`: before its expiry the borrower could create
    users and keys that no expiry covers. Forced, the plan warns about it.

    Order, for a run cut short: the tag and the expiry policy come first, so a
    half-applied loan still ends on time and `sweep` still finds it; then the
    membership and the whitelists.
    """
    check_whole_account(snapshot)
    if isinstance(duration, str):
        duration = parse_duration(duration, maximum=max_duration)
    elif duration <= timedelta() or duration > max_duration:
        raise BadInput(
            f"A loan lasts more than nothing and at most {describe_duration(max_duration)} "
            f"(asked: {describe_duration(duration) if duration > timedelta() else 'nothing'})."
        )
    user = _find_user(snapshot, user_name)
    group = _find_group(snapshot, group_name)
    _check_not_revoked(user, f"lent group {group.name}")
    current = _grant_value(user, group)
    if _in_group(user, group) and current is None:
        raise BadInput(
            f"{user.name} is a permanent member of {group.name}: there is nothing to lend.",
            hint=f"Remove it from {group.name} first if it should only have a loan.",
        )
    _check_group_room(user, group)
    _check_not_actor(snapshot, user)
    risks = loan_risks(snapshot, user, group, now=now)
    _check_loan_risks(user, group, risks, force=force)
    tag_key = (
        _grant_tag_key(user, group)
        if current is None
        else TAG_GRANT_PREFIX + _tag_group(user, group)
    )
    expiry = utc(now).replace(microsecond=0) + duration
    expiry_text = format_expiry(expiry)
    grants = _readable_grants(user, without=group.name)
    grants[group.name] = expiry
    policy = expiry_policy(snapshot, user, grants)
    ensure_inline_policies_fit(user, policy.document)

    steps: list[Step] = [_tag_step(user, tag_key, expiry_text, current)]
    steps.extend(_expiry_policy_steps(user, policy))
    if not _in_group(user, group):
        steps.append(_add_to_group_step(user, group))
    steps.extend(_whitelist_steps(snapshot, {group.name: _members(group) | {user.name}}))
    if current is None:
        title = f"Lend group {group.name} to {user.name} for {describe_duration(duration)}, until {expiry_text}"
        kind = "grant"
    else:
        title = (
            f"Move the end of {user.name}'s loan of {group.name} from {current} to {expiry_text}"
        )
        kind = "grant-extend"
    warnings = [
        *_loan_risk_warnings(user, group, risks, expiry_text, forced=force),
        *policy.warnings,
        *_unreadable_grants_warning(user),
    ]
    return Plan(kind, title, tuple(steps), tuple(warnings), subject=_subject("lend", user, group))


def plan_guard_loans(snapshot: Snapshot, user_name: str) -> Plan:
    """Rewrite `keyhygiene-expiry` from the user's loans as they stand (same
    groups, same expiries), now with the guard: the fix for a loan written
    before keyhygiene guarded them (audit `policy.expiry-unguarded`)."""
    check_whole_account(snapshot)
    user = _find_user(snapshot, user_name)
    grants = _readable_grants(user)
    if not grants:
        raise BadInput(f"{user.name} holds no loan with a readable expiry. Nothing was changed.")
    policy = expiry_policy(snapshot, user, grants)
    ensure_inline_policies_fit(user, policy.document)
    steps = _expiry_policy_steps(user, policy, step_id="guard-expiry-policy")
    if not steps:
        raise BadInput(f"{user.name}'s {EXPIRY_POLICY_NAME} is already guarded. Nothing to do.")
    return Plan(
        "grant-guard",
        f"Guard {user.name}'s loans (expiries unchanged)",
        tuple(steps),
        (*policy.warnings, *_unreadable_grants_warning(user)),
        subject=f"guard {user.name.lower()}",
    )


def plan_end_grant(
    snapshot: Snapshot, user_name: str, group_name: str, *, finishing: bool = False
) -> Plan:
    """End a loan now: membership, whitelist entries, tag and expiry policy statement.

    The membership goes first and the expiry policy last, so that until the
    very end something still takes the loan's rights away.

    `finishing`: an earlier end of this loan was cut short after its tag was
    removed. Then no loan is left to name, and the plan is what that run left
    undone (a whitelist entry, the expiry policy), possibly nothing.
    """
    check_whole_account(snapshot)
    user = _find_user(snapshot, user_name)
    group = _find_group(snapshot, group_name)
    current = _grant_value(user, group)
    if current is None:
        if _in_group(user, group):
            raise BadInput(
                f"{user.name} is a permanent member of {group.name}, not on loan.",
                hint=f"Use `keyhygiene group remove {user.name} {group.name}` to take it out.",
            )
        if not finishing:
            raise BadInput(f"{user.name} has no loan of {group.name}. Nothing was changed.")
    steps: list[Step] = []
    if _in_group(user, group):
        steps.append(_remove_from_group_step(user, group))
    steps.extend(_whitelist_steps(snapshot, {group.name: _members(group) - {user.name}}))
    if current is not None:
        tag_key = TAG_GRANT_PREFIX + _tag_group(user, group)
        steps.append(_untag_step("grant-untag", user, {tag_key: current}, why="the loan is over"))
    policy = expiry_policy(
        snapshot,
        user,
        _readable_grants(user, without=group.name),
        groups_after=[g for g in user.groups if g.lower() != group.name.lower()],
    )
    steps.extend(_expiry_policy_steps(user, policy))
    verb = "End" if current is not None else "Finish ending"
    return Plan(
        "grant-end",
        f"{verb} {user.name}'s loan of {group.name}" + (" now" if current is not None else ""),
        tuple(steps),
        tuple(policy.warnings),
        subject=_subject("remove", user, group),
    )


def plan_sweep(snapshot: Snapshot, *, now: datetime) -> Plan:
    """Remove every loan whose expiry is past at `now` (an empty plan when there is none).

    Forward only: nothing in a sweep is ever undone, because undoing it would
    give expired loans back. A failure is reported and the next sweep, which
    starts from the account as it is then, finishes the job. So every step
    accepts what is already done (by an earlier sweep, or another keyhygiene
    running at the same time), and the order keeps the account safe wherever
    a run stops:
    1. a check that the loans are still tagged as the snapshot saw them (a
       loan extended or ended meanwhile is not swept from stale data); its
       failure stops the sweep before anything changes;
    2. the memberships and the whitelist entries go (each may fail alone: it
       only takes access away);
    3. a gate: only when all of step 2 succeeded do
    4. the expiry policies and the tags go. Until then AWS keeps denying the
       expired loans, and the tags let the next sweep find them again.
    """
    check_whole_account(snapshot)
    expired = expired_grants(snapshot, now)
    if not expired:
        return Plan(SWEEP_KIND, "Sweep expired loans: none", (), subject=SWEEP_SUBJECT)
    by_user: dict[str, list[Grant]] = {}
    for grant in expired:
        by_user.setdefault(grant.user, []).append(grant)
    steps: list[Step] = [_check_grants_step(expired)]
    taking_away: list[Step] = []
    members_after: dict[str, set[str]] = {}
    warnings: list[str] = []
    for index, grant in enumerate(expired, 1):
        user = _find_user(snapshot, grant.user)
        group = snapshot.group(grant.group)
        if grant.expiry is None:
            warnings.append(
                f"{user.name}'s loan of {grant.group} has an unreadable expiry "
                f"({grant.expiry_text!r}): it is swept as if expired."
            )
        if group is None:
            continue
        if _in_group(user, group):
            taking_away.append(_sweep_remove_step(index, user, group, grant))
        # Even when the membership is gone already (an earlier sweep stopped
        # after removing it): the whitelists may still name the user.
        members_after.setdefault(group.name, _members(group)).discard(user.name)
    taking_away.extend(_whitelist_steps(snapshot, members_after))
    steps.extend(_forward_only(step) for step in taking_away)
    if taking_away:
        steps.append(_sweep_gate_step([step.id for step in taking_away]))
    for index, (user_name, grants) in enumerate(sorted(by_user.items()), 1):
        user = _find_user(snapshot, user_name)
        swept = {g.group.lower() for g in grants}
        remaining = {g: t for g, t in _readable_grants(user).items() if g.lower() not in swept}
        policy = expiry_policy(
            snapshot,
            user,
            remaining,
            groups_after=[g for g in user.groups if g.lower() not in swept],
        )
        policy_steps = [
            _forward_only(step)
            for step in _expiry_policy_steps(
                user, policy, step_id=f"sweep-expiry-{index}", tolerant=True
            )
        ]
        steps.extend(policy_steps)
        # The tag last: while it stays, the next sweep finds the loan again.
        steps.append(_sweep_untag_step(index, user, grants, [s.id for s in policy_steps]))
    count = len(expired)
    return Plan(
        SWEEP_KIND,
        f"Sweep {count} expired loan{'s' if count != 1 else ''}",
        tuple(steps),
        tuple(warnings),
        subject=SWEEP_SUBJECT,
    )


@dataclass(frozen=True)
class SweepOutcome:
    """What `apply_sweep` did, with the sentence the TUI shows in its notification."""

    plan: Plan
    grants: tuple[Grant, ...]  # the expired loans the plan removes
    report: ApplyReport | None = None  # None: nothing had expired, nothing ran

    @property
    def ok(self) -> bool:
        return self.report is None or self.report.ok

    @property
    def message(self) -> str:
        """ "" when nothing expired; else what was removed, or why not all of it was."""
        if self.report is None:
            return ""
        return sweep_summary(self.report, self.grants)


def sweep_summary(report: ApplyReport, grants: Sequence[Grant]) -> str:
    """One paragraph on a sweep's run, for the TUI's notification and the command line."""
    loans = ", ".join(f"{g.user} from {g.group}" for g in grants)
    count = len(grants)
    if report.ok:
        return f"Removed {count} expired loan{'s' if count != 1 else ''}: {loans}."
    failed = [r for r in report.results if r.status == "failed"]
    why = f": {failed[0].message.rstrip('.')}" if failed and failed[0].message else ""
    more = f" ({len(failed) - 1} more step(s) failed)" if len(failed) > 1 else ""
    if not report.done:
        return (
            f"Could not remove the expired loans ({loans}){why}{more}. Nothing was changed: "
            "the next sweep reads the account afresh."
        )
    return (
        f"Could not remove the expired loans ({loans}){why}{more}. Nothing is rolled back "
        "(that would give expired loans back): AWS keeps denying them, and the next sweep "
        "finishes the job."
    )


def close_sweep_journal(report: ApplyReport) -> None:
    """A sweep is never resumed nor rolled back: the next one starts afresh.

    So a sweep that did not finish leaves no open journal behind, and the next
    start does not offer to finish or undo it (the journal stays, as history,
    in journals/done/ with the state "abandoned").
    """
    journal = report.journal
    if journal is not None and journal.is_open:
        journal.abandon()


def apply_sweep(
    snapshot: Snapshot,
    clients: ClientProvider,
    *,
    now: datetime,
    on_event: Callable[[PlanEvent], None] | None = None,
) -> SweepOutcome:
    """Compute and apply the sweep with a journal, forward only (see `plan_sweep`).

    Blocking (AWS calls): the TUI runs it in a thread worker at start and
    shows `outcome.message` when it is not empty.
    """
    from keyhygiene.plans.journal import Journal, interrupted_runs_of

    plan = plan_sweep(snapshot, now=now)
    grants = expired_grants(snapshot, now)
    # A sweep killed midway left its journal running; this one, planned from
    # the account as it is now, does what it left (as the command line's does).
    earlier = interrupted_runs_of(plan)
    if not plan.steps:
        for run in earlier:
            run.abandon()
        return SweepOutcome(plan, grants)
    report = apply_plan(plan, clients, journal=Journal.create(plan), on_event=on_event)
    if report.ok and report.journal is not None:
        for run in earlier:
            run.close_as_finished_by(report.journal)
    close_sweep_journal(report)
    return SweepOutcome(plan, grants, report)


# --------------------------------------------------------------------------- steps


def _members(group: Group) -> set[str]:
    return set(group.members)


def _tag_group(user: User, group: Group) -> str:
    """The group name as written in the user's grant tag (its case may differ)."""
    lowered = group.name.lower()
    return next((g for g in user.grants() if g.lower() == lowered), group.name)


def _add_to_group_step(user: User, group: Group) -> Step:
    params = {"UserName": user.name, "GroupName": group.name}
    return Step(
        id="membership-add",
        description=f"Add {user.name} to group {group.name}",
        call=Call("iam", "add_user_to_group", params),
        undo=Call("iam", "remove_user_from_group", params),
    )


def _remove_from_group_step(user: User, group: Group) -> Step:
    params = {"UserName": user.name, "GroupName": group.name}
    return Step(
        id="membership-remove",
        description=f"Remove {user.name} from group {group.name}",
        call=Call("iam", "remove_user_from_group", params),
        undo=Call("iam", "add_user_to_group", params),
    )


def _tag_step(user: User, key: str, value: str, previous: str | None) -> Step:
    if previous is None:
        description = f"Tag {user.name} with {key} = {value}: the loan ends then"
        undo = Call("iam", "untag_user", {"UserName": user.name, "TagKeys": [key]})
    else:
        description = (
            f"Change {user.name}'s tag {key} from {previous} to {value}: the loan ends then"
        )
        undo = Call(
            "iam", "tag_user", {"UserName": user.name, "Tags": [{"Key": key, "Value": previous}]}
        )
    return Step(
        id="grant-tag",
        description=description,
        call=Call(
            "iam", "tag_user", {"UserName": user.name, "Tags": [{"Key": key, "Value": value}]}
        ),
        undo=undo,
    )


def _untag_step(step_id: str, user: User, tags: Mapping[str, str], *, why: str) -> Step:
    keys = sorted(tags)
    return Step(
        id=step_id,
        description=f"Remove tag{'s' if len(keys) != 1 else ''} {', '.join(keys)} from {user.name}: {why}",
        call=Call("iam", "untag_user", {"UserName": user.name, "TagKeys": keys}),
        undo=Call(
            "iam",
            "tag_user",
            {"UserName": user.name, "Tags": [{"Key": k, "Value": tags[k]} for k in keys]},
        ),
    )


def _current_expiry_document(user: User) -> dict[str, Any] | None:
    for policy in user.inline_policies:
        if policy.name == EXPIRY_POLICY_NAME:
            return json.loads(json.dumps(policy.document))
    return None


def _expiry_policy_steps(
    user: User,
    policy: ExpiryPolicy,
    *,
    step_id: str = "grant-expiry-policy",
    tolerant: bool = False,
) -> list[Step]:
    """Put, replace or delete `keyhygiene-expiry`; nothing when it is already right."""
    before = _current_expiry_document(user)
    after = policy.document
    if before == after:
        return []
    target = {"UserName": user.name, "PolicyName": EXPIRY_POLICY_NAME}
    restore = (
        Call("iam", "put_user_policy", {**target, "PolicyDocument": json.dumps(before)})
        if before is not None
        else Call("iam", "delete_user_policy", target)
    )
    if after is None:
        call = (
            Call("local", "membership.delete_user_policy", target)
            if tolerant
            else Call("iam", "delete_user_policy", target)
        )
        return [
            Step(
                id=step_id,
                description=f"Delete inline policy {EXPIRY_POLICY_NAME} from {user.name}: "
                "no loan is left for it to end",
                call=call,
                undo=restore,
                before=before,
            )
        ]
    verb = "Put" if before is None else "Replace"
    return [
        Step(
            id=step_id,
            description=f"{verb} inline policy {EXPIRY_POLICY_NAME} on {user.name}: {policy.summary}",
            call=Call("iam", "put_user_policy", {**target, "PolicyDocument": json.dumps(after)}),
            undo=restore,
            before=before,
            after=after,
        )
    ]


def _check_grants_step(grants: Sequence[Grant]) -> Step:
    entries = [{"UserName": g.user, "TagKey": g.tag_key, "Value": g.expiry_text} for g in grants]
    return Step(
        id="sweep-check",
        description="Check that the expired loans are still tagged as read (none was extended "
        "or ended meanwhile)",
        call=Call("local", "membership.check_grants", {"Grants": entries}),
    )


def _sweep_remove_step(index: int, user: User, group: Group, grant: Grant) -> Step:
    params = {"UserName": user.name, "GroupName": group.name}
    return Step(
        id=f"sweep-remove-{index}",
        description=f"Remove {user.name} from group {group.name}: its loan ended {grant.expiry_text}",
        call=Call("local", "membership.remove_user_from_group", params),
        keep=("Removed",),
    )


def _forward_only(step: Step) -> Step:
    """A sweep step: never undone, and its failure does not stop the others."""
    return replace(step, undo=None, must_succeed=False)


def _sweep_gate_step(step_ids: Sequence[str]) -> Step:
    return Step(
        id="sweep-gate",
        description="Go on only if every membership and whitelist entry above is gone: "
        "otherwise the expiry policies and tags stay, so that AWS keeps denying the expired "
        "loans and the next sweep finds them again",
        call=Call("local", "membership.require_done", {"Steps": list(step_ids)}),
    )


def _sweep_untag_step(
    index: int, user: User, grants: Sequence[Grant], after: Sequence[str]
) -> Step:
    names = ", ".join(g.group for g in grants)
    keys = sorted(g.tag_key for g in grants)
    return Step(
        id=f"sweep-untag-{index}",
        description=f"Remove tag{'s' if len(keys) != 1 else ''} {', '.join(keys)} from "
        f"{user.name}: its loan of {names} expired"
        + (" (only if its expiry policy step succeeded)" if after else ""),
        call=Call(
            "local",
            "membership.untag_user",
            {"UserName": user.name, "TagKeys": keys, "OnlyAfter": list(after)},
        ),
        must_succeed=False,
    )


def _whitelist_steps(snapshot: Snapshot, members_after: Mapping[str, set[str]]) -> list[Step]:
    """The bucket and key policy steps that make every whitelist of the groups
    in `members_after` equal to those members plus the groups' roles."""
    if not members_after:
        return []
    from keyhygiene.steps.whitelists import whitelist_steps

    return list(whitelist_steps(snapshot, members_after, snapshot.caller_arn))


# --------------------------------------------------------------------------- local actions
# Registered at import time so that a journal read at the next start can run them.


class GrantChanged(KeyHygieneError):
    """A loan the sweep was about to remove changed since the account was read."""


@local_action("membership.check_grants")
def _check_grants(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    iam = ctx.client("iam")
    changed: list[str] = []
    tags_by_user: dict[str, dict[str, str]] = {}
    for entry in params["Grants"]:
        user = entry["UserName"]
        if user not in tags_by_user:
            tags_by_user[user] = _user_tags(iam, user)
        now_value = tags_by_user[user].get(entry["TagKey"])
        if now_value != entry["Value"]:
            state = "gone" if now_value is None else f"now {now_value}"
            changed.append(f"{user} {entry['TagKey']} ({state})")
    if changed:
        raise GrantChanged(
            "Some loans changed since the account was read: " + "; ".join(changed) + ". "
            "Nothing was swept.",
            hint="Run the sweep again: it reads the account afresh.",
        )
    return {"Checked": len(params["Grants"])}


def _user_tags(iam: Any, user: str) -> dict[str, str]:
    return {
        tag["Key"]: tag["Value"] for tag in all_items(iam, "list_user_tags", "Tags", UserName=user)
    }


@local_action("membership.remove_user_from_group")
def _remove_user_from_group(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """remove_user_from_group that accepts "not a member" (another sweep was first)."""
    removed = call_unless_missing(
        ctx.client("iam").remove_user_from_group,
        UserName=params["UserName"],
        GroupName=params["GroupName"],
    )
    return {"Removed": removed}


@local_action("membership.restore_membership")
def _restore_membership(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """The undo of the tolerant removal in journals written before sweeps became
    forward only: add back only what that run removed. New plans never use it."""
    if params.get("Removed"):
        ctx.client("iam").add_user_to_group(
            UserName=params["UserName"], GroupName=params["GroupName"]
        )
    return {}


class StepsNotDone(KeyHygieneError):
    """A sweep step that must wait for earlier ones, some of which did not succeed."""


def _require_done_steps(ctx: ApplyContext, step_ids: Sequence[str], then: str) -> None:
    # Every step this run (or a journaled earlier run) did has a record.
    missing = [step_id for step_id in step_ids if step_id not in ctx.record]
    if missing:
        raise StepsNotDone(
            f"{len(missing)} earlier step(s) did not succeed ({', '.join(missing)}): {then}",
            hint="Fix the cause, then run the sweep again: it starts from the account as it is.",
        )


@local_action("membership.require_done")
def _require_done(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    _require_done_steps(
        ctx,
        params["Steps"],
        "the expiry policies and tags stay, so AWS keeps denying the expired loans.",
    )
    return {"Checked": len(params["Steps"])}


@local_action("membership.untag_user")
def _untag_user(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """untag_user once the steps it waits for are done; a user gone is no error."""
    _require_done_steps(
        ctx,
        params.get("OnlyAfter", ()),
        "the tag stays, so that the next sweep finds the loan again.",
    )
    untagged = call_unless_missing(
        ctx.client("iam").untag_user, UserName=params["UserName"], TagKeys=params["TagKeys"]
    )
    return {"Untagged": untagged}


@local_action("membership.delete_user_policy")
def _delete_user_policy(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """delete_user_policy that accepts "no such policy" (another sweep was first)."""
    deleted = call_unless_missing(
        ctx.client("iam").delete_user_policy,
        UserName=params["UserName"],
        PolicyName=params["PolicyName"],
    )
    return {"Deleted": deleted}
