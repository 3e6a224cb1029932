"""The "Schedule" dialog, driven with Pilot: installs and removes the daily check."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from textual.app import App
from textual.widgets import Input, Static

import keyhygiene.local.schedule as schedule_module
from keyhygiene.local.schedule import recorded
from keyhygiene.ui.screens.schedule_screen import ScheduleScreen


class Host(App[None]):
    def __init__(self, tools: Any) -> None:
        super().__init__()
        self.tools = tools

    def on_mount(self) -> None:
        self.push_screen(ScheduleScreen("work", 30, runner=self.tools))


async def test_the_dialog_installs_and_removes_a_schedule(
    isolated_aws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []

    def tools(argv: Sequence[str], given: str | None = None) -> tuple[int, str]:
        calls.append(list(argv))
        return 0, "running"  # `systemctl --user is-system-running` answers "running"

    monkeypatch.setattr(schedule_module.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(schedule_module.sys, "platform", "linux")
    app = Host(tools)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        assert isinstance(screen, ScheduleScreen)
        assert screen.query_one("#schedule-every", Input).value == "30d"
        screen.query_one("#schedule-every", Input).value = "14d"
        await pilot.click("#install")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        text = str(screen.query_one("#schedule-message", Static).render())
        assert "Installed (systemd)" in text and "rotated at 14 days" in text
        assert [item.schedule.every_days for item in recorded()] == [14]
        await pilot.click("#remove")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert recorded() == []
    assert ["systemctl", "--user", "enable", "--now", "keyhygiene-rotate-work.timer"] in calls


async def test_the_demo_shows_what_it_would_install_and_writes_nothing(isolated_aws: Path) -> None:
    class Demo(App[None]):
        def on_mount(self) -> None:
            self.push_screen(ScheduleScreen("christopher-laptop", 90, demo=True))

    app = Demo()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.click("#install")
        await pilot.pause()
        text = str(app.screen.query_one("#schedule-message", Static).render())
        assert "The demo installs no timer" in text and "--if-older-than 90d" in text
    assert recorded() == []
    assert not (isolated_aws / ".config" / "systemd").exists()
