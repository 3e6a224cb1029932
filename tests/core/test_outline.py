"""The outline the tree and `keyhygiene inventory` show: placement, loans, badges."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from sample_account import NOW, sample_snapshot

from keyhygiene.audit.runner import run_audit
from keyhygiene.views.outline import annotate, build_outline, filter_outline


def _with_loan(expiry_offset: timedelta):  # type: ignore[no-untyped-def]
    snapshot = sample_snapshot()
    phone = snapshot.user("christopher-phone")
    assert phone is not None
    expiry = (NOW + expiry_offset).strftime("%Y-%m-%dT%H:%M:%SZ")
    lent = replace(
        phone,
        groups=("photos",),
        tags={**phone.tags, "keyhygiene:grant:photos": expiry},
    )
    return snapshot.with_user(lent)


def test_a_loan_shows_its_countdown() -> None:
    outline = build_outline(_with_loan(timedelta(hours=1, minutes=59)), NOW)
    phone = outline.find("device", "christopher-phone")
    assert phone is not None and "lent to photos: 1 h 59 min left" in phone.note
    assert not phone.warn


def test_an_expired_loan_stands_out() -> None:
    outline = build_outline(_with_loan(-timedelta(minutes=3)), NOW)
    phone = outline.find("device", "christopher-phone")
    assert phone is not None and "EXPIRED 3 min ago" in phone.note and phone.warn


def test_people_devices_and_unassigned() -> None:
    outline = build_outline(sample_snapshot(), NOW)
    person = outline.find("person", "christopher")
    assert person is not None and len(person.children) == 5
    laptop = outline.find("device", "christopher-laptop")
    assert laptop is not None and laptop.note.startswith("this computer")
    unassigned = outline.find("section", "unassigned")
    assert unassigned is not None and [c.ref for c in unassigned.children] == ["shared-cli"]


def test_badges_carry_count_and_worst_severity() -> None:
    snapshot = sample_snapshot()
    outline = annotate(build_outline(snapshot, NOW), run_audit(snapshot, now=NOW))
    work = outline.find("device", "christopher-work")
    assert work is not None and work.findings >= 1 and work.worst == "high"
    root = outline.find("root", "root")
    assert root is not None and root.worst == "critical"
    photos = outline.find("bucket", "christopher-photos")
    assert photos is not None and photos.findings == 0


def test_filter_keeps_ancestors_and_matching_subtrees() -> None:
    outline = build_outline(sample_snapshot(), NOW)
    shown = filter_outline(outline, "chris-travel")
    assert shown is not None
    assert shown.find("device", "christopher-vacation") is not None  # by host name
    shown = filter_outline(outline, "vacation")
    assert shown is not None and shown.find("device", "christopher-vacation") is not None
    assert shown.find("device", "christopher-work") is None
