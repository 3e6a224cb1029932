"""Several accounts in one view: what each is, how it loaded, and a person's
computers matched across them. Pure: no AWS call, no file, no Textual.

The practice itself spans accounts ("the computer at work may access your
personal account, but the computer at home will not access your work
account"), so a computer is one thing across accounts: the users tagged with
the same person and device (or, untagged, named `person-device`) in every
account keyhygiene was given.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from keyhygiene.core.model import TAG_DEVICE, TAG_PERSON, Snapshot, User
from keyhygiene.core.options import ConnectionOptions

# The role AWS Organizations creates in every account it creates
# (https://docs.aws.amazon.com/organizations/latest/userguide/orgs_manage_accounts_access.html).
DEFAULT_ORGANIZATION_ROLE = "OrganizationAccountAccessRole"
ACCOUNT_ID = re.compile(r"^\d{12}$")
_ACCOUNT_NAME = re.compile(r"^[^\s\[\]]{1,128}$")


@dataclass(frozen=True)
class AccountSpec:
    """One account to load: a name people use for it and how to reach it.

    `options.profile` is this computer's profile in that account (None for a
    member account reached only through its role); `options.admin_profile`
    reads and changes it; `options.role_arn`, when set, is assumed with the
    admin profile (an Organizations member account). `devices`, when given,
    is the practice for this account: the only computers that may have a user
    in it (the audit flags the others).
    """

    name: str
    options: ConnectionOptions
    account_id: str | None = None
    devices: tuple[str, ...] | None = None
    source: str = "command line"  # "config file", "organization", ...

    def __post_init__(self) -> None:
        if not _ACCOUNT_NAME.match(self.name):
            raise ValueError(
                f"{self.name!r} is not a usable account name (no spaces or brackets, at most 128 characters)"
            )
        if self.account_id is not None and not ACCOUNT_ID.match(self.account_id):
            raise ValueError(f"{self.account_id!r} is not a 12-digit AWS account id")


def organization_role_arn(account_id: str, role_name: str, partition: str = "aws") -> str:
    return f"arn:{partition}:iam::{account_id}:role/{role_name}"


@dataclass(frozen=True)
class AccountView:
    """How one account loaded: its snapshot, or the message of its failure."""

    spec: AccountSpec
    snapshot: Snapshot | None = None
    error: str | None = None

    @property
    def account_id(self) -> str | None:
        return self.snapshot.account_id if self.snapshot else self.spec.account_id

    @property
    def label(self) -> str:
        """`work (210987654321)`, or the name alone when the id is not known."""
        account = self.account_id
        return (
            f"{self.spec.name} ({account})"
            if account and account != self.spec.name
            else (self.spec.name)
        )


@dataclass(frozen=True)
class Presence:
    """A computer's user in one account."""

    account: str  # the account's name
    account_id: str
    user: User


@dataclass(frozen=True)
class Computer:
    """One computer of one person, with its user in each account that has one."""

    person: str
    device: str
    hostname: str | None
    presences: tuple[Presence, ...] = field(default_factory=tuple)

    @property
    def accounts(self) -> tuple[str, ...]:
        return tuple(p.account for p in self.presences)


def device_key(user: User) -> tuple[str, str] | None:
    """(person, device) from the user's keyhygiene tags; None for a user
    without them. A name alone is not enough: `keyhygiene-admin` or
    `ci-runner` fit `person-device` too, and would be matched as computers."""
    person, device = user.tags.get(TAG_PERSON), user.tags.get(TAG_DEVICE)
    if person and device:
        return (person.lower(), device.lower())
    return None


def match_computers(views: Iterable[AccountView]) -> list[Computer]:
    """Every computer with a user in at least one loaded account, sorted by
    person and device. Users with the same (person, device) are one computer;
    a user that fits neither tags nor naming is not a computer.

    Two users of one person tagged with the same host name but different
    device names are still two computers: the host name is shown, and a
    renamed device keeps its tags, so the tags are what identifies it.
    """
    found: dict[tuple[str, str], list[Presence]] = {}
    hostnames: dict[tuple[str, str], str | None] = {}
    for view in views:
        if view.snapshot is None:
            continue
        for user in view.snapshot.users:
            key = device_key(user)
            if key is None:
                continue
            found.setdefault(key, []).append(
                Presence(view.spec.name, view.snapshot.account_id, user)
            )
            hostnames[key] = hostnames.get(key) or user.hostname
    return [
        Computer(person, device, hostnames[(person, device)], tuple(found[(person, device)]))
        for person, device in sorted(found)
    ]


def account_names(views: Iterable[AccountView]) -> Mapping[str, str]:
    """Account id -> the name keyhygiene knows it by, for the accounts that loaded."""
    return {v.account_id: v.spec.name for v in views if v.account_id}


def choose_account(specs: Sequence[AccountSpec], wanted: str) -> AccountSpec | None:
    """The spec named `wanted`, by its name or its account id."""
    return next((s for s in specs if wanted in (s.name, s.account_id)), None)
