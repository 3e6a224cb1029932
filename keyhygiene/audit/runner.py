"""Run the audit: every rule over one snapshot, worst findings first.

The findings model (`keyhygiene.audit.findings`) knows no rule, and the rules
(`rules`, `policy_rules`) know the model; this runner is the one place that
knows both, so the three import in one direction.
"""

from __future__ import annotations

from datetime import datetime, timezone

from keyhygiene.audit.findings import AuditSettings, Finding, sort_findings
from keyhygiene.audit.rules import RULES
from keyhygiene.core.model import Snapshot


def run_audit(
    snapshot: Snapshot, *, now: datetime | None = None, settings: AuditSettings | None = None
) -> list[Finding]:
    """Every account finding in the snapshot, worst first.

    `now` defaults to when the snapshot was loaded: the audit judges what the
    inventory saw, at the time it saw it, and never reads the clock.
    """
    when = now or snapshot.loaded_at
    # Rules compare with AWS times, which are aware; a naive `now` is UTC.
    when = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    chosen = settings or AuditSettings()
    findings: list[Finding] = []
    for rule in RULES:
        findings.extend(rule(snapshot, when, chosen))
    return sort_findings(findings)
