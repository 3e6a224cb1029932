"""The findings screen: rows, sorting, and choosing a finding."""

from __future__ import annotations

from textual.app import App
from textual.widgets import DataTable, Static

from keyhygiene.audit.findings import Finding
from keyhygiene.ui.screens.findings_screen import FindingsScreen

FINDINGS = [
    Finding(
        "user.key-too-old",
        "medium",
        "Key 1 of christopher-home is 200 days old",
        "christopher-home",
        "Created 200 days ago.",
        "user",
        "Run `keyhygiene rotate`.",
    ),
    Finding(
        "bucket.public",
        "critical",
        "Bucket christopher-public-share is public",
        "christopher-public-share",
        "Its policy grants access to everyone.",
        "bucket",
        None,
    ),
    Finding(
        "user.several-active-keys",
        "high",
        "christopher-work has 2 active access keys",
        "christopher-work",
        "Active keys: key 1, key 2.",
        "user",
        "Run `keyhygiene rotate`.",
    ),
    Finding(
        "user.missing-device-tags",
        "low",
        "alice-phone lacks device tags",
        "alice-phone",
        "keyhygiene:hostname missing.",
        "user",
        None,
    ),
]
UNSET = object()


class FindingsApp(App[None]):
    """Pushes the screen and keeps what it was dismissed with."""

    def __init__(self, findings: list[Finding]) -> None:
        super().__init__()
        self.findings = findings
        self.chosen: object = UNSET

    def on_mount(self) -> None:
        self.push_screen(FindingsScreen(self.findings), self.remember)

    def remember(self, finding: Finding | None) -> None:
        self.chosen = finding


def resources(screen: FindingsScreen) -> list[str]:
    table = screen.query_one(DataTable)
    return [str(table.get_row_at(index)[1]) for index in range(table.row_count)]


async def test_rows_start_worst_first() -> None:
    app = FindingsApp(FINDINGS)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, FindingsScreen)
        assert screen.query_one(DataTable).row_count == 4
        assert [f.severity for f in screen.ordered()] == ["critical", "high", "medium", "low"]
        assert resources(screen)[0] == "christopher-public-share"
        summary = str(screen.query_one("#findings-summary", Static).render())
        assert "4 findings" in summary


async def test_sort_by_resource_then_back_to_severity_and_reverse() -> None:
    app = FindingsApp(FINDINGS)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, FindingsScreen)
        await pilot.press("r")
        assert resources(screen) == sorted(f.resource for f in FINDINGS)
        await pilot.press("r")
        assert resources(screen) == sorted((f.resource for f in FINDINGS), reverse=True)
        await pilot.press("s")
        assert [f.severity for f in screen.ordered()] == ["critical", "high", "medium", "low"]
        await pilot.press("s")
        assert [f.severity for f in screen.ordered()] == ["low", "medium", "high", "critical"]


async def test_sorting_keeps_the_cursor_on_its_finding() -> None:
    app = FindingsApp(FINDINGS)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, FindingsScreen)
        await pilot.press("down")  # the high finding on christopher-work
        await pilot.press("r")
        highlighted = screen.highlighted()
        assert highlighted is not None and highlighted.resource == "christopher-work"


async def test_enter_returns_the_highlighted_finding() -> None:
    app = FindingsApp(FINDINGS)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        await pilot.press("down", "down")
        detail = str(app.screen.query_one("#finding-detail", Static).render())
        assert "200 days" in detail and "keyhygiene rotate" in detail
        await pilot.press("enter")
        await pilot.pause()
        assert app.chosen == FINDINGS[0]
        assert not isinstance(app.screen, FindingsScreen)


async def test_escape_closes_with_none() -> None:
    app = FindingsApp(FINDINGS)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert app.chosen is None


async def test_no_findings_says_so_and_enter_does_nothing() -> None:
    app = FindingsApp([])
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, FindingsScreen)
        assert "No findings" in str(screen.query_one("#finding-detail", Static).render())
        await pilot.press("enter")
        await pilot.pause()
        assert app.chosen is UNSET and app.screen is screen
