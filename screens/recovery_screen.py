"""Runs that were cut short: finish them, roll them back, or leave them."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from tui.errors import KeyHygieneError
from tui.plans import ClientProvider
from tui.recovery import InterruptedRun, abandon, finish, roll_back


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

    def __init__(self, runs: list[InterruptedRun], clients: ClientProvider) -> None:
        super().__init__()
        self.runs = list(runs)
        self.clients = clients
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
        self.query_one("#finish", Button).disabled = not run.can_finish
        self.query_one("#recovery-report", Static).update("")

    @on(Button.Pressed, "#finish")
    def _finish(self) -> None:
        self._run("finish")

    @on(Button.Pressed, "#rollback")
    def _rollback(self) -> None:
        self._run("rollback")

    @on(Button.Pressed, "#forget")
    def _forget(self) -> None:
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
        for button in self.query(Button):
            button.disabled = True
        self.query_one("#recovery-report", Static).update("Working …")
        self._apply(what)

    @work(thread=True, exclusive=True, exit_on_error=False)
    def _apply(self, what: str) -> None:
        run = self.runs[0]
        try:
            report = (finish if what == "finish" else roll_back)(run, self.clients)
            text, ok = report.render_text(), report.ok
        except KeyHygieneError as exc:
            text, ok = str(exc), False
        self.app.call_from_thread(self._done, text, ok)

    def _done(self, text: str, ok: bool) -> None:
        self.busy = False
        self.changed = True
        self.query_one("#recovery-report", Static).update(text)
        for button in self.query(Button):
            button.disabled = False
        if ok:
            self.notify("Done.")
            self._next()
        else:
            self.query_one("#finish", Button).disabled = not self.runs[0].can_finish

    def _next(self) -> None:
        self.runs.pop(0)
        if self.runs:
            self._show_current()
        else:
            self.dismiss(True)
