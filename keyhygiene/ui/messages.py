"""App-wide messages (widget messages live in their widget classes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.message import Message

from keyhygiene.audit.findings import Finding
from keyhygiene.core.model import Snapshot, User
from keyhygiene.views.outline import OutlineNode

if TYPE_CHECKING:  # boto3 is imported only when the account loads
    from keyhygiene.aws.accounts import LoadedAccount
    from keyhygiene.aws.connection import Connection


@dataclass
class SnapshotLoaded(Message):
    snapshot: Snapshot
    connection: Connection
    findings: list[Finding]
    # Built in the loading worker: on 5,000 users it takes a good part of a
    # second, which the app's thread would spend not answering keys.
    outline: OutlineNode | None = None


@dataclass
class AccountsLoaded(Message):
    """Several accounts: each loaded or with its error, and all their findings."""

    accounts: list[LoadedAccount]
    findings: list[Finding]


@dataclass
class LoadFailed(Message):
    message: str


@dataclass
class LoadProgress(Message):
    what: str


@dataclass
class UserKeysLoaded(Message):
    user: User
