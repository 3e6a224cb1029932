"""The audit of several accounts at once.

Each account gets the single-account audit, its findings marked with the
account's name. Across them:

- a grant to another account (bucket, key, role trust) names that account
  when it is one of the person's own, so "211111111111" reads "work";
- a computer with a user in an account whose practice (`devices` in the
  config file) does not list it: "the computer at home will not access your
  work account" (the practice's own example).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from keyhygiene.audit.findings import AuditSettings, Finding, sort_findings
from keyhygiene.audit.runner import run_audit
from keyhygiene.core.accounts import AccountView, account_names, device_key

FOREIGN_RULES = frozenset({"bucket.foreign-account", "kms.foreign-account", "role.foreign-trust"})
DEVICE_NOT_ALLOWED = "account.device-not-allowed"
_ACCOUNT_ID = re.compile(r"\b\d{12}\b")


def run_accounts_audit(
    views: Sequence[AccountView],
    *,
    now: datetime | None = None,
    settings: AuditSettings | None = None,
) -> list[Finding]:
    """Every loaded account's findings and the cross-account ones, worst first."""
    names = account_names(views)
    findings: list[Finding] = []
    for view in views:
        if view.snapshot is None:
            continue
        for finding in run_audit(view.snapshot, now=now, settings=settings):
            if finding.id in FOREIGN_RULES:
                finding = replace(finding, detail=_named(finding.detail, names))
            findings.append(replace(finding, account=view.spec.name))
        findings.extend(devices_not_allowed(view))
    return sort_findings(findings)


def _named(detail: str, names: Mapping[str, str]) -> str:
    """`allows account 211111111111.` -> `allows account 211111111111 (your account work).`"""

    def name(match: re.Match[str]) -> str:
        known = names.get(match.group(0))
        return f"{match.group(0)} (your account {known})" if known else match.group(0)

    return _ACCOUNT_ID.sub(name, detail)


def devices_not_allowed(view: AccountView) -> Iterable[Finding]:
    """Computers in an account its practice keeps them out of."""
    allowed = view.spec.devices
    if view.snapshot is None or allowed is None:
        return
    listed = {name.lower() for name in allowed}
    for user in view.snapshot.users:
        if device_key(user) is None or user.revoked or user.name.lower() in listed:
            continue
        yield Finding(
            id=DEVICE_NOT_ALLOWED,
            severity="high",
            title=f"Computer {user.name} has a user in account {view.spec.name}",
            resource=user.name,
            detail=f"The practice for account {view.spec.name} allows only "
            + (", ".join(allowed) if allowed else "no computer")
            + f"; {user.name} is not one of them.",
            resource_kind="user",
            fix=f"Revoke it there (`keyhygiene revoke {user.name} --account {view.spec.name}`), "
            "or add it to that account's devices in the keyhygiene config file if it belongs.",
            account=view.spec.name,
        )
