"""Snapshot tests of the screens people look at (fixed account, fixed clock).

Update a snapshot only after looking at it: `pytest --snapshot-update`, then
open snapshot_report.html or the .svg files under __snapshots__.
"""

from __future__ import annotations

from typing import Any

from sample_account import NOW, sample_snapshot
from textual.app import App
from textual.pilot import Pilot
from textual.widgets import Input

from keyhygiene.audit.runner import run_audit
from keyhygiene.aws.connection import ConnectionOptions
from keyhygiene.ui.app import KeyHygieneApp
from keyhygiene.ui.widgets.account_tree import AccountTree


class FixedApp(KeyHygieneApp):
    """The real app, with the account load replaced by the fixed snapshot."""

    def __init__(self) -> None:
        super().__init__(ConnectionOptions(profile="christopher-laptop"), clock=lambda: NOW)

    def load_account(self, *, on_progress: Any) -> Any:
        return sample_snapshot(), None

    def audit(self, snapshot: Any) -> Any:
        # The account's rules only: this machine's files and environment vary.
        return run_audit(snapshot, now=NOW)


async def _loaded(pilot: Pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def test_main_screen(snap_compare: Any) -> None:
    async def open_people(pilot: Pilot) -> None:
        await _loaded(pilot)
        tree = pilot.app.screen.query_one(AccountTree)
        tree.select_ref("device", "christopher-laptop")
        await pilot.pause()
        tree.select_ref("bucket", "christopher-photos")
        await pilot.pause()

    assert snap_compare(FixedApp(), terminal_size=(120, 40), run_before=open_people)


def test_filter(snap_compare: Any) -> None:
    async def filter_vacation(pilot: Pilot) -> None:
        await _loaded(pilot)
        await pilot.press("slash", *"vacation", "enter")
        await pilot.pause()

    assert snap_compare(FixedApp(), terminal_size=(120, 40), run_before=filter_vacation)


def test_findings_screen(snap_compare: Any) -> None:
    async def open_findings(pilot: Pilot) -> None:
        await _loaded(pilot)
        await pilot.press("f")
        await pilot.pause()

    assert snap_compare(FixedApp(), terminal_size=(120, 40), run_before=open_findings)


class Host(App[None]):
    """A bare app showing one modal screen over nothing."""

    def __init__(self, screen: Any) -> None:
        super().__init__()
        self.modal = screen

    def on_mount(self) -> None:
        self.push_screen(self.modal)


def test_plan_screen_lend(snap_compare: Any) -> None:
    """The review people read before anything changes: steps, calls, undo, policy diffs."""
    from keyhygiene.ui.screens.plan_screen import PlanScreen
    from keyhygiene.workflows.membership import plan_grant

    plan = plan_grant(sample_snapshot(), "christopher-phone", "photos", "2h", now=NOW)
    assert snap_compare(Host(PlanScreen(plan, clients=None)), terminal_size=(120, 40))  # type: ignore[arg-type]


def test_revoke_screen_search(snap_compare: Any) -> None:
    from keyhygiene.ui.screens.revoke_screen import RevokeScreen

    async def search(pilot: Pilot) -> None:
        await pilot.pause()
        # A blinking cursor would make the picture depend on timing.
        for field in pilot.app.screen.query(Input):
            field.cursor_blink = False
        await pilot.press(*"phone")
        await pilot.pause()

    screen = RevokeScreen(sample_snapshot(), connection=None)  # type: ignore[arg-type]
    assert snap_compare(Host(screen), terminal_size=(120, 40), run_before=search)


def _people_open(pilot: Pilot) -> Any:
    async def run() -> None:
        await _loaded(pilot)
        tree = pilot.app.screen.query_one(AccountTree)
        tree.select_ref("device", "christopher-laptop")
        await pilot.pause()

    return run()


def test_main_screen_80x24(snap_compare: Any) -> None:
    """A small terminal: the details pane goes under the tree, full width."""
    assert snap_compare(FixedApp(), terminal_size=(80, 24), run_before=_people_open)


def test_main_screen_160x50(snap_compare: Any) -> None:
    assert snap_compare(FixedApp(), terminal_size=(160, 50), run_before=_people_open)


def test_lend_form_80x24(snap_compare: Any) -> None:
    """The fields scroll; the buttons stay on the screen."""
    from keyhygiene.ui.screens.membership_screen import MembershipScreen

    screen = MembershipScreen(sample_snapshot(), None, "lend", user="christopher-phone")  # type: ignore[arg-type]
    assert snap_compare(Host(screen), terminal_size=(80, 24))


def test_enroll_form_80x24(snap_compare: Any) -> None:
    from keyhygiene.ui.screens.enroll_screen import EnrollScreen

    async def no_blink(pilot: Pilot) -> None:
        await pilot.pause()
        for field in pilot.app.screen.query(Input):
            field.cursor_blink = False
        await pilot.pause()

    # A fixed host name: the picture must not depend on the machine.
    screen = EnrollScreen(sample_snapshot(), None, hostname="studio")  # type: ignore[arg-type]
    assert snap_compare(Host(screen), terminal_size=(80, 24), run_before=no_blink)
