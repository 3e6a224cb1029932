"""What a loan gives away beyond the group (roles it can assume, IAM rights that
outlive it), and the refusal."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from keyhygiene.core.access import group_policies, identity_policies
from keyhygiene.core.errors import BadInput
from keyhygiene.core.model import (
    Group,
    Role,
    Snapshot,
    User,
)
from keyhygiene.core.policy_eval import PolicySource, Principal, Request, evaluate, may_cover_action
from keyhygiene.workflows.membership.durations import utc

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
