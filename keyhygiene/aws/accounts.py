"""Load several accounts at once, and list an organization's member accounts.

Each account loads in its own thread of a bounded pool (each load runs its
own pool for buckets and keys, so the total stays bounded: accounts ×
inventory workers). A failure in one account (a refused role, an expired
sign-in, a throttled API) becomes that account's error and never stops the
others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from keyhygiene.aws.connection import Connection, paginate
from keyhygiene.aws.inventory import load_account
from keyhygiene.core.accounts import (
    DEFAULT_ORGANIZATION_ROLE,
    AccountSpec,
    AccountView,
    organization_role_arn,
)
from keyhygiene.core.arns import partition_of
from keyhygiene.core.errors import KeyHygieneError
from keyhygiene.core.model import Snapshot
from keyhygiene.core.options import ConnectionOptions

log = logging.getLogger(__name__)

# Accounts loaded at once. Each load has its own inventory pool of 8, so 4
# accounts keep at most 32 requests in flight: under IAM's and S3's
# per-account rates, and the process's sockets stay few.
MAX_ACCOUNTS_AT_ONCE = 4
AccountProgress = Callable[[str, str], None]  # (account name, what)


@dataclass(frozen=True)
class LoadedAccount:
    """An account's view and, when it loaded, the admin connection that read it."""

    view: AccountView
    connection: Connection | None = None


def load_accounts(
    specs: Sequence[AccountSpec],
    *,
    on_progress: AccountProgress | None = None,
    max_accounts: int = MAX_ACCOUNTS_AT_ONCE,
    loader: Callable[..., tuple[Snapshot, Connection]] | None = None,
) -> list[LoadedAccount]:
    """Every account in `specs`, in their order, each loaded or with its error."""
    progress = on_progress or (lambda _name, _what: None)
    load = loader or load_account

    def one(spec: AccountSpec) -> LoadedAccount:
        try:
            snapshot, connection = load(
                spec.options, on_progress=lambda what: progress(spec.name, what)
            )
        except KeyHygieneError as exc:
            return LoadedAccount(AccountView(spec, error=exc.message))
        except Exception as exc:  # noqa: BLE001 - one account must not break the others
            log.debug("loading account %s failed", spec.name, exc_info=True)
            return LoadedAccount(
                AccountView(spec, error=f"Unexpected error while loading ({type(exc).__name__}).")
            )
        if spec.account_id and snapshot.account_id != spec.account_id:
            return LoadedAccount(
                AccountView(
                    spec,
                    error=f"The profile reads account {snapshot.account_id}, "
                    f"not {spec.account_id} as configured: check the accounts list.",
                )
            )
        progress(spec.name, "Loaded")
        return LoadedAccount(AccountView(spec, snapshot=snapshot), connection)

    if len(specs) == 1:
        return [one(specs[0])]
    with ThreadPoolExecutor(
        max_workers=max(1, min(max_accounts, len(specs))), thread_name_prefix="account"
    ) as pool:
        return list(pool.map(one, specs))


def organization_accounts(
    options: ConnectionOptions,
    *,
    role_name: str = DEFAULT_ORGANIZATION_ROLE,
    devices: tuple[str, ...] | None = None,
) -> list[AccountSpec]:
    """The organization's active accounts, as seen by a management or
    delegated-administrator profile (`options.admin_profile`, else
    `options.profile`).

    The account that lists them is read with that profile itself; every other
    one through `role_name`, assumed in it. `ListAccounts` is the documented
    call for both kinds of profile
    (https://docs.aws.amazon.com/organizations/latest/APIReference/API_ListAccounts.html).
    """
    admin = Connection(options.for_admin())
    identity = admin.whoami()
    partition = partition_of(identity.arn)
    accounts = paginate(
        admin.client("organizations"),
        "list_accounts",
        "Accounts",
        "listing the organization's accounts",
        "organizations",
    )
    specs: list[AccountSpec] = []
    for account in sorted(accounts, key=lambda a: (a["Id"] != identity.account_id, a["Name"])):
        # SUSPENDED accounts (closed, in their 90 days) cannot be signed in to.
        if account.get("Status", "ACTIVE") != "ACTIVE":
            continue
        account_id = account["Id"]
        own = account_id == identity.account_id
        specs.append(
            AccountSpec(
                name=_safe_name(account.get("Name") or account_id, account_id),
                options=options
                if own
                else replace(
                    options,
                    role_arn=organization_role_arn(account_id, role_name, partition),
                    computer_key=options.profile is not None,
                ),
                account_id=account_id,
                devices=devices,
                source="organization",
            )
        )
    return _unique_names(specs)


def _safe_name(name: str, account_id: str) -> str:
    cleaned = "".join(ch if ch.isalnum() or ch in "_.@+-" else "-" for ch in name).strip("-")
    return cleaned[:64] if cleaned and cleaned[0].isalnum() else account_id


def _unique_names(specs: list[AccountSpec]) -> list[AccountSpec]:
    """Two member accounts may share a name: the later ones get their id."""
    seen: set[str] = set()
    unique = []
    for spec in specs:
        if spec.name in seen and spec.account_id:
            spec = replace(spec, name=f"{spec.name}-{spec.account_id}")
        seen.add(spec.name)
        unique.append(spec)
    return unique
