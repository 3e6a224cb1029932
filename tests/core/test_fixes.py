"""Findings whose fix is a workflow open that workflow's plan (or the rotate wizard)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from sample_account import ACCOUNT, NOW, sample_snapshot

from keyhygiene.audit.fixes import fix_for
from keyhygiene.audit.runner import run_audit
from keyhygiene.core.policy_documents import remove_principal, whitelisted_principals


def test_whitelist_drift_opens_the_application_sync_plan() -> None:
    snapshot = sample_snapshot()
    bucket = snapshot.bucket("christopher-photos")
    assert bucket is not None
    home = f"arn:aws:iam::{ACCOUNT}:user/christopher-home"
    drifted = replace(bucket, policy=remove_principal(bucket.policy, home))
    snapshot = replace(snapshot, buckets=(drifted, *snapshot.buckets[1:]))
    finding = next(f for f in run_audit(snapshot, now=NOW) if f.id == "whitelist.missing")
    fix = fix_for(snapshot, finding, NOW)
    assert fix is not None and fix.kind == "plan" and fix.plan is not None
    step = next(s for s in fix.plan.steps if "christopher-photos" in s.description)
    assert home in whitelisted_principals(step.after)


def test_an_old_key_of_this_computer_opens_the_rotate_wizard() -> None:
    snapshot = sample_snapshot()
    laptop = snapshot.user("christopher-laptop")
    assert laptop is not None
    old = replace(laptop.access_keys[0], created=NOW - timedelta(days=200))
    snapshot = snapshot.with_user(replace(laptop, access_keys=(old,)))
    finding = next(
        f
        for f in run_audit(snapshot, now=NOW)
        if f.id == "user.key-too-old" and f.resource == "christopher-laptop"
    )
    fix = fix_for(snapshot, finding, NOW)
    assert fix is not None and fix.kind == "rotate"


def test_another_computers_old_key_has_no_automatic_fix() -> None:
    snapshot = sample_snapshot()
    finding = next(
        f
        for f in run_audit(snapshot, now=NOW)
        if f.id == "user.key-too-old" and f.resource == "christopher-home"
    )
    assert fix_for(snapshot, finding, NOW) is None
