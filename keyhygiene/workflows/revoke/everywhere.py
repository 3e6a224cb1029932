"""Revoke one computer in every account it has a user in, at once.

A stolen laptop carries one key per account it reaches. Each account gets its
own revoke plan (containment first: keys deactivated, deny-everything
attached), computed from that account as it is now; the plans then run side
by side, so containment is requested in every account within the time of the
slowest one, not the sum. One account's failure never stops another's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from keyhygiene.aws.connection import Identity
from keyhygiene.core.errors import BadInput, KeyHygieneError
from keyhygiene.core.model import Snapshot, User
from keyhygiene.plans import ApplyReport, ClientProvider, Plan, PlanEvent
from keyhygiene.plans.reviewed import apply_reviewed
from keyhygiene.workflows.revoke.loading import load_for_revoke
from keyhygiene.workflows.revoke.model import AccountReader
from keyhygiene.workflows.revoke.plan import find_user, plan_revoke
from keyhygiene.workflows.revoke.report import ContainmentTimer, RevokeReport, revoke_report

MAX_ACCOUNTS_AT_ONCE = 8


@dataclass(frozen=True)
class RevokeTarget:
    """The computer's user in one account, and the connection that changes it."""

    account: str
    connection: AccountReader
    user_name: str
    # This computer's identity, when it has one (its key may be in another account).
    this_computer: Identity | None = None


@dataclass(frozen=True)
class AccountRevoke:
    account: str
    connection: AccountReader
    snapshot: Snapshot
    user: User
    plan: Plan


@dataclass(frozen=True)
class RevokePlans:
    """One plan per account that has the user; where it is absent or unreadable."""

    revokes: tuple[AccountRevoke, ...]
    absent: tuple[str, ...] = ()
    unreadable: tuple[tuple[str, str], ...] = ()

    @property
    def steps(self) -> int:
        return sum(len(r.plan.steps) for r in self.revokes)


def plan_revoke_everywhere(
    targets: Sequence[RevokeTarget], *, delete_keys: bool = False, delete_user: bool = False
) -> RevokePlans:
    """Read each account (in parallel) and plan its revoke."""

    def one(target: RevokeTarget) -> AccountRevoke | str | tuple[str, str]:
        try:
            snapshot, extras = load_for_revoke(target.connection, target.user_name)
        except BadInput:
            return target.account  # no such user there: nothing to cut
        except KeyHygieneError as exc:
            return (target.account, exc.message)
        # Who signs decides a self-revoke's order: this computer's user, else the admin.
        mine = target.this_computer
        if mine is not None and mine.account_id == snapshot.account_id:
            here = mine.user_name
        else:
            here = Identity(snapshot.account_id, snapshot.caller_arn).user_name
        snapshot = replace(snapshot, this_user=here)
        plan = plan_revoke(
            snapshot,
            target.user_name,
            delete_keys=delete_keys,
            delete_user=delete_user,
            extras=extras,
        )
        plan = replace(plan, title=f"{plan.title} in account {target.account}")
        return AccountRevoke(
            target.account,
            target.connection,
            snapshot,
            find_user(snapshot, target.user_name),
            plan,
        )

    with ThreadPoolExecutor(
        max_workers=max(1, min(MAX_ACCOUNTS_AT_ONCE, len(targets))), thread_name_prefix="revoke"
    ) as pool:
        outcomes = list(pool.map(one, targets))
    return RevokePlans(
        revokes=tuple(o for o in outcomes if isinstance(o, AccountRevoke)),
        absent=tuple(o for o in outcomes if isinstance(o, str)),
        unreadable=tuple(o for o in outcomes if isinstance(o, tuple)),
    )


@dataclass(frozen=True)
class AccountOutcome:
    account: str
    report: ApplyReport | None
    revoke: RevokeReport | None
    error: str | None = None

    @property
    def contained(self) -> bool:
        return self.revoke is not None and self.revoke.containment_requested


def apply_revoke_everywhere(
    plans: RevokePlans,
    *,
    on_event: Callable[[str, PlanEvent], None] | None = None,
) -> list[AccountOutcome]:
    """Run every account's plan side by side; each one's steps in its order
    (containment first), none rolled back, none stopping another."""
    notify = on_event or (lambda _account, _event: None)

    def one(revoke: AccountRevoke) -> AccountOutcome:
        timer = ContainmentTimer(revoke.plan)

        def event(item: PlanEvent) -> None:
            timer(item)
            notify(revoke.account, item)

        clients: ClientProvider = revoke.connection
        try:
            outcome = apply_reviewed(
                revoke.plan,
                clients,
                roll_back_on_failure=False,
                stop_on_failure=False,
                on_event=event,
            )
        except KeyHygieneError as exc:
            return AccountOutcome(revoke.account, None, None, exc.message)
        report = outcome.report
        return AccountOutcome(
            revoke.account,
            report,
            revoke_report(report, revoke.user, timer=timer, snapshot=revoke.snapshot),
        )

    if not plans.revokes:
        return []
    with ThreadPoolExecutor(
        max_workers=max(1, min(MAX_ACCOUNTS_AT_ONCE, len(plans.revokes))),
        thread_name_prefix="revoke-apply",
    ) as pool:
        return list(pool.map(one, plans.revokes))
