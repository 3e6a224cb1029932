"""What the screens need from the app they run in, as a protocol.

The app imports the screens it pushes; a screen that imported the app back
would close a loop. So a screen asks for this protocol instead: the
connection options the app was started with, its clock (the demo and the
tests set it), and the loaders its workers call.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:  # the protocol is checked by name at run time; no botocore at start
    from collections.abc import Callable

    from keyhygiene.audit.findings import Finding
    from keyhygiene.aws.accounts import LoadedAccount
    from keyhygiene.aws.connection import Connection, ConnectionOptions
    from keyhygiene.core.accounts import AccountSpec
    from keyhygiene.core.model import Snapshot


@runtime_checkable
class Host(Protocol):
    """The keyhygiene app, as the screens see it."""

    options: ConnectionOptions
    # Set when the app shows several accounts (keyhygiene.cli.accounts).
    accounts: list[AccountSpec] | None

    def now(self) -> datetime:
        """The app's clock, aware, in UTC."""
        ...

    def wait_for_demo(self, progress: Callable[[str], None]) -> None:
        """From a worker: block until the demo server is seeded (no-op otherwise)."""
        ...

    def load_account(self, *, on_progress: Callable[[str], None]) -> tuple[Snapshot, Connection]:
        """From a worker: load the account."""
        ...

    def audit(self, snapshot: Snapshot) -> list[Finding]:
        """From a worker: the account's findings and this computer's."""
        ...

    def load_accounts(self, *, on_progress: Callable[[str], None]) -> list[LoadedAccount]:
        """From a worker: load every account, in parallel."""
        ...

    def audit_accounts(self, loaded: list[LoadedAccount]) -> list[Finding]:
        """From a worker: every account's findings and the cross-account ones."""
        ...
