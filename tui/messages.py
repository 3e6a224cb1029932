"""App-wide messages (widget messages live in their widget classes)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from tui.audit import Finding
from tui.connection import Connection
from tui.model import Snapshot, User


@dataclass
class SnapshotLoaded(Message):
    snapshot: Snapshot
    connection: Connection
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
