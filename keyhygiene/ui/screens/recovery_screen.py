"""Runs that were cut short: finish them, roll them back, or leave them.

Only the choices that are safe for the run's kind are shown (keyhygiene/workflows/registry.py
says which and why): a revoke is neither finished nor rolled back from here,
a sweep is never rolled back.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from keyhygiene.core.errors import KeyHygieneError
from keyhygiene.plans import ClientProvider
from keyhygiene.workflows.registry import (
    InterruptedRun,
    RecoveryResult,
    abandon,
    describe_unexpected,
    finish,
    roll_back,
)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class RecoveryScreen(ModalScreen[bool]):
    """One interrupted run at a time; dismisses with True when something changed."""

    DEFAULT_CSS = """
    RecoveryScreen { align: center middle; }
    RecoveryScreen > Vertical {
        width: 90%; height: auto; max-height: 90%; background: $surface;
        border: thick $warning; padding: 1 2;
    }
    RecoveryScreen #recovery-result { height: auto; max-height: 16; margin-top: 1; }
    RecoveryScreen #recovery-buttons { height: auto; align-horizontal: right; margin-top: 1; }
    RecoveryScreen Button { margin-left: 2; }
    """
    BINDINGS = [Binding("escape", "later", "Later")]

    def __init__(
        self,
        runs: list[InterruptedRun],
        clients: ClientProvider,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__()
        self.runs = list(runs)
        self.clients = clients
        self.clock = clock
        self.changed = False
        self.busy = False

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("[b]A keyhygiene run was interrupted[/b]")
            yield Static("", id="recovery-summary", markup=False)
            with VerticalScroll(id="recovery-result"):
                yield Static("", id="recovery-report", markup=False)
            with Horizontal(id="recovery-buttons"):
                yield Button("Finish it", variant="primary", id="finish")
                yield Button("Roll it back", variant="warning", id="rollback")
                yield Button("Forget it", id="forget")
                yield Button("Later", id="later")

    def on_mount(self) -> None:
        self._show_current()

    def _show_current(self) -> None:
        run = self.runs[0]
        text = f"{run.summary}\n\n{run.advice}"
        if len(self.runs) > 1:
            text += f"\n\n({len(self.runs) - 1} more after this one)"
        self.query_one("#recovery-summary", Static).update(text)
        self.query_one("#recovery-report", Static).update("")
        self._enable_buttons()

    def _enable_buttons(self) -> None:
        """Show only what is safe for the current run; all enabled unless busy."""
        run = self.runs[0]
        offered = {"finish": run.can_finish, "rollback": run.can_roll_back}
        for button in self.query(Button):
            button.display = offered.get(button.id or "", True)
            button.disabled = self.busy
        focus = next(
            (b for b in self.query(Button) if b.display and b.id in ("finish", "rollback")),
            self.query_one("#forget", Button),
        )
        focus.focus()

    @on(Button.Pressed, "#finish")
    def _finish(self) -> None:
        if self.runs and self.runs[0].can_finish:
            self._run("finish")

    @on(Button.Pressed, "#rollback")
    def _rollback(self) -> None:
        if self.runs and self.runs[0].can_roll_back:
            self._run("rollback")

    @on(Button.Pressed, "#forget")
    def _forget(self) -> None:
        if self.busy:
            return
        abandon(self.runs[0])
        self._next()

    @on(Button.Pressed, "#later")
    def action_later(self) -> None:
        if not self.busy:
            self.dismiss(self.changed)

    def _run(self, what: str) -> None:
        if self.busy:
            return
        self.busy = True
        self._enable_buttons()
        self.query_one("#recovery-report", Static).update("Working …")
        self._apply(what)

    @work(thread=True, exclusive=True, exit_on_error=False)
    def _apply(self, what: str) -> None:
        run = self.runs[0]
        try:
            if what == "finish":
                now = self.clock() if self.clock else self._app_now()
                result = finish(run, self.clients, now=now)
            else:
                result = roll_back(run, self.clients)
        except KeyHygieneError as exc:
            result = RecoveryResult(False, str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug must not leave the screen stuck busy
            result = RecoveryResult(
                False,
                f"Unexpected error ({describe_unexpected(exc)}). The run is left as it was "
                "found, or in part: look at it again at the next start.",
            )
        self.app.call_from_thread(self._done, result)

    def _app_now(self) -> datetime:
        # The App's injectable clock when it has one (tests), else the real one.
        now = getattr(self.app, "now", None)
        return now() if callable(now) else _utc_now()

    def _done(self, result: RecoveryResult) -> None:
        self.busy = False
        self.changed = True
        self.query_one("#recovery-report", Static).update(result.text)
        self._enable_buttons()
        if result.ok:
            headline = result.text.strip().splitlines()[0] if result.text.strip() else "Done."
            self.notify(headline, title="Interrupted run")
            self._next()

    def _next(self) -> None:
        self.runs.pop(0)
        if self.runs:
            self._show_current()
        else:
            self.dismiss(True)
