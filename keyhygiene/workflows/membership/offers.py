"""What the forms offer: which users and groups each membership action can take."""

from __future__ import annotations

from dataclasses import dataclass

from keyhygiene.core.model import (
    Group,
    Snapshot,
    User,
)
from keyhygiene.workflows.membership.checks import _grant_value, _in_group, _is_actor
from keyhygiene.workflows.membership.model import MEMBERSHIP_ACTIONS, MembershipAction


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
