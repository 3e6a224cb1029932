"""Several accounts as one outline: each account a root, and the person's
computers matched across them.

    Accounts (2)
    ├── ◆ Account personal (111111111111)   … the single-account outline
    ├── ◆ Account work (222222222222)
    ├── ◆ Account client: could not load     (the error is the node's note)
    └── Computers across accounts
        └── ☺ christopher
            └── ▣ work   in personal, work
                ├── personal: christopher-work   1 active key, key 12/90 d
                └── work: christopher-work       ...
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timezone

from keyhygiene.audit.findings import Finding, worst
from keyhygiene.core.accounts import AccountView, Computer, match_computers
from keyhygiene.views.outline import (
    OutlineNode,
    age_text,
    annotate,
    build_outline,
    outline_text,
    user_note,
)

ACCOUNTS_KIND = "accounts"
ACROSS_REF = "across-accounts"


def account_outline(view: AccountView, now: datetime) -> OutlineNode:
    """One account's outline, named as keyhygiene knows it, or its error."""
    if view.snapshot is None:
        return OutlineNode(
            label=f"Account {view.label}: could not load",
            kind="account",
            ref=view.account_id or view.spec.name,
            note=view.error or "",
            warn=True,
        )
    outline = build_outline(view.snapshot, now)
    alias = view.snapshot.account_alias
    name = view.spec.name if alias in (None, view.spec.name) else f"{view.spec.name}, {alias}"
    return replace(outline, label=f"Account {name} ({view.snapshot.account_id})")


def accounts_outline(
    views: Sequence[AccountView],
    now: datetime | None = None,
    findings: Mapping[str, Iterable[Finding]] | None = None,
) -> OutlineNode:
    """The outline of every account (each annotated with its findings, by
    account name) and the computers they share."""
    now = now or datetime.now(timezone.utc)
    by_account = findings or {}
    roots = tuple(
        annotate(account_outline(view, now), by_account.get(view.spec.name, ())) for view in views
    )
    loaded = sum(1 for view in views if view.snapshot is not None)
    note = f"{loaded} of {len(views)} loaded"
    return OutlineNode(
        label=f"Accounts ({len(views)})",
        kind=ACCOUNTS_KIND,
        ref=ACCOUNTS_KIND,
        children=(*roots, computers_outline(views, now, by_account)),
        note=note,
        warn=loaded < len(views),
    )


def computers_outline(
    views: Sequence[AccountView],
    now: datetime,
    findings: Mapping[str, Iterable[Finding]] | None = None,
) -> OutlineNode:
    """People → computers → their user in each account, each with the
    findings on that user in that account (a computer where it should not be)."""
    on_user: dict[tuple[str, str], list[Finding]] = {}
    for account, found in (findings or {}).items():
        for finding in found:
            if finding.resource_kind == "user":
                on_user.setdefault((account, finding.resource), []).append(finding)
    computers = match_computers(views)
    snapshots = {view.spec.name: view.snapshot for view in views if view.snapshot}
    people: dict[str, list[Computer]] = {}
    for computer in computers:
        people.setdefault(computer.person, []).append(computer)
    nodes = []
    for person, owned in people.items():
        devices = []
        for computer in owned:
            presences = tuple(
                OutlineNode(
                    label=f"{presence.account}: {presence.user.name}",
                    kind="presence",
                    ref=f"{presence.account}/{presence.user.name}",
                    note=user_note(presence.user, snapshots[presence.account], now),
                    warn=presence.user.revoked,
                    findings=len(mine),
                    worst=worst(mine),
                )
                for presence in computer.presences
                for mine in [on_user.get((presence.account, presence.user.name), [])]
            )
            host = f", host {computer.hostname}" if computer.hostname else ""
            devices.append(
                OutlineNode(
                    label=computer.device,
                    kind="computer",
                    ref=f"{computer.person}-{computer.device}",
                    children=presences,
                    note="in " + ", ".join(computer.accounts) + host,
                    search=computer.hostname or "",
                )
            )
        nodes.append(
            OutlineNode(
                label=person,
                kind="person",
                ref=f"across/{person}",
                children=tuple(devices),
                note=f"{len(devices)} computer" + ("" if len(devices) == 1 else "s"),
            )
        )
    shared = sum(1 for c in computers if len(c.presences) > 1)
    return OutlineNode(
        "Computers across accounts",
        "section",
        ACROSS_REF,
        tuple(nodes),
        note=f"{len(computers)} computers, {shared} in more than one account",
    )


def accounts_text(views: Sequence[AccountView], now: datetime | None = None) -> str:
    """`keyhygiene inventory` over several accounts."""
    now = now or datetime.now(timezone.utc)
    lines = outline_text(accounts_outline(views, now))
    for view in views:
        generated = view.snapshot.credential_report_generated if view.snapshot else None
        if generated:
            lines.append(
                f"({view.spec.name}: key status and last use from the credential report made "
                f"{age_text(generated, now)} ago)"
            )
    return "\n".join(lines)
