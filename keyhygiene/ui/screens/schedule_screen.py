"""Rotate this computer's key on a schedule: install, replace or remove the daily check."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from keyhygiene.core.errors import KeyHygieneError
from keyhygiene.local.schedule import (
    Runner,
    Schedule,
    carried_environment,
    detect_platform,
    install,
    parse_every,
    recorded,
    remove,
    rotate_argv,
    run_tool,
    systemd_units,
)


class ScheduleScreen(ModalScreen[bool | None]):
    """Dismisses with True when a schedule was installed or removed."""

    DEFAULT_CSS = """
    ScheduleScreen { align: center middle; }
    ScheduleScreen > Vertical {
        width: 84; height: auto; max-height: 90%; background: $surface;
        border: thick $primary; padding: 0 1;
    }
    ScheduleScreen Label { margin: 1 0 0 0; color: $text-muted; }
    ScheduleScreen #schedule-every { width: 16; }
    ScheduleScreen #schedule-message { height: auto; margin: 1 0 0 0; }
    ScheduleScreen #schedule-message.error { color: $error; }
    ScheduleScreen #schedule-buttons { height: auto; align-horizontal: right; margin-top: 1; }
    ScheduleScreen Button { margin-left: 2; }
    """
    BINDINGS = [Binding("escape", "cancel", "Close")]

    def __init__(
        self, profile: str, every_days: int, *, runner: Runner = run_tool, demo: bool = False
    ) -> None:
        super().__init__()
        self.profile = profile
        self.every_days = every_days
        self.runner = runner  # the platform's tools (systemctl, launchctl, ...)
        # The demo's profile lives in a sandbox that ends with the demo: a real
        # timer for it would fail every day. The demo shows what it would write.
        self.demo = demo
        self.changed = False

    def compose(self) -> ComposeResult:
        current = recorded(self.profile)
        status = (
            f"Now: every {current[0].schedule.every_days} days, checked daily by "
            f"{current[0].schedule.platform}"
            + ("" if current[0].active else " (written, not enabled)")
            if current
            else "Now: no schedule."
        )
        with Vertical():
            yield Static(
                f"[b]Rotate the key of profile {self.profile} on a schedule[/b]\n"
                "A per-user timer checks once a day (and after a missed day, at the next start) "
                "and rotates the key headless once it is this old. A run that cannot finish "
                "(an MFA code is needed) leaves a notice shown here at the next start."
            )
            yield Static(status, id="schedule-status", markup=False)
            yield Label("Rotate every (days)")
            yield Input(f"{self.every_days}d", id="schedule-every")
            yield Static("", id="schedule-message", markup=False)
            with Horizontal(id="schedule-buttons"):
                yield Button("Install", variant="primary", id="install")
                yield Button("Remove", id="remove", disabled=not current)
                yield Button("Close", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#schedule-every", Input).focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#install")
    def _install(self) -> None:
        try:
            days = parse_every(self.query_one("#schedule-every", Input).value)
        except KeyHygieneError as exc:
            self._say(str(exc), error=True)
            return
        if self.demo:
            self._preview(days)
            return
        self._run(days, removing=False)

    def _preview(self, days: int) -> None:
        unit = systemd_units(
            Schedule(self.profile, days, rotate_argv(self.profile, days), "systemd")
        )
        service = next(text for name, text in unit.items() if name.endswith(".service"))
        command = next(line for line in service.splitlines() if line.startswith("ExecStart="))
        self._say(
            "The demo installs no timer (its profile ends with the demo). On your computer "
            f"this installs a daily check that runs:\n{command.removeprefix('ExecStart=')}"
        )

    @on(Button.Pressed, "#remove")
    def _remove(self) -> None:
        self._run(0, removing=True)

    @work(thread=True, exclusive=True, exit_on_error=False)
    def _run(self, days: int, *, removing: bool) -> None:
        try:
            if removing:
                gone = remove(self.profile, runner=self.runner)
                text = "The schedule is removed." if gone else "There was no schedule."
                error = False
            else:
                platform = detect_platform(self.runner)
                if platform is None:
                    raise KeyHygieneError(
                        "This computer has no timer keyhygiene knows (systemd user manager, "
                        "launchd, Task Scheduler or crontab)."
                    )
                schedule = Schedule(
                    self.profile,
                    days,
                    rotate_argv(self.profile, days),
                    platform,
                    environment=carried_environment(),
                )
                done = install(schedule, runner=self.runner)
                text = (
                    f"Installed ({platform}): checked daily, rotated at {days} days. "
                    f"Output: {done.log_hint}"
                )
                if not done.active:
                    text += "\n" + done.message
                error = not done.active
        except (KeyHygieneError, OSError) as exc:
            self.app.call_from_thread(self._say, str(exc), True)
            return
        self.changed = True
        self.app.call_from_thread(self._say, text, error, not removing)

    def _say(self, text: str, error: bool = False, installed: bool | None = None) -> None:
        message = self.query_one("#schedule-message", Static)
        message.update(text)
        message.set_class(error, "error")
        if installed is not None:
            self.query_one("#remove", Button).disabled = not installed

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(self.changed or None)
