"""The checks every membership plan makes on the snapshot before it plans anything."""

from __future__ import annotations

from datetime import datetime

from keyhygiene.core.aws_limits import (
    MAX_GROUPS_PER_USER,
    MAX_TAG_KEY,
    MAX_TAGS_PER_RESOURCE,
    TAG_TEXT,
)
from keyhygiene.core.errors import BadInput
from keyhygiene.core.model import (
    TAG_GRANT_PREFIX,
    Group,
    Snapshot,
    User,
)
from keyhygiene.core.policy_documents import caller_principal_arn
from keyhygiene.workflows.membership.durations import parse_expiry

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
