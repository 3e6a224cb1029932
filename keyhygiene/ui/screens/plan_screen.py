"""Review a plan, apply it with live progress, read the report.

Every wizard ends here: the plan is shown in full (exact calls, policy diffs),
nothing changes until the person presses Apply, and the run is journaled so an
interruption can be finished or rolled back at the next start.
"""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from keyhygiene.core.errors import KeyHygieneError
from keyhygiene.plans import (
    ApplyReport,
    ClientProvider,
    Plan,
    PlanEvent,
)
from keyhygiene.plans.reviewed import apply_reviewed
from keyhygiene.ui.widgets.plan_view import PlanView


class PlanScreen(ModalScreen[ApplyReport | None]):
    DEFAULT_CSS = """
    PlanScreen { align: center middle; }
    PlanScreen > Vertical {
        width: 90%; height: 90%; background: $surface; border: thick $primary; padding: 0 1;
    }
    PlanScreen #plan-result { height: auto; max-height: 12; overflow-y: auto; margin: 1 0 0 0; }
    PlanScreen #plan-buttons { height: auto; align-horizontal: right; }
    PlanScreen Button { margin-left: 2; }
    """
    BINDINGS = [
        Binding("a", "apply", "Apply", tooltip="Carry out the plan"),
        Binding("escape", "close", "Cancel / close"),
    ]

    def __init__(
        self,
        plan: Plan,
        clients: ClientProvider,
        *,
        title: str | None = None,
        roll_back_on_failure: bool = True,
        stop_on_failure: bool = True,
    ) -> None:
        super().__init__()
        self.plan = plan
        self.clients = clients
        self.heading = title or plan.title
        self.roll_back_on_failure = roll_back_on_failure
        self.stop_on_failure = stop_on_failure
        self.report: ApplyReport | None = None
        self.running = False

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(
                f"[b]{self.heading}[/b]  review every step; nothing changes until you apply"
            )
            yield PlanView(self.plan, id="plan-view")
            yield Static("", id="plan-result")
            with Horizontal(id="plan-buttons"):
                yield Button("Apply", variant="warning", id="apply", disabled=not self.plan.steps)
                yield Button("Cancel", id="close")

    @on(Button.Pressed, "#apply")
    def action_apply(self) -> None:
        if self.running or self.report is not None or not self.plan.steps:
            return
        self.running = True
        self.query_one("#apply", Button).disabled = True
        self.query_one("#close", Button).disabled = True
        self.query_one("#plan-result", Static).update("Applying …")
        self._apply()

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        if not self.running:
            self.dismiss(self.report)

    @work(thread=True, exclusive=True, exit_on_error=False)
    def _apply(self) -> None:
        def relay(event: PlanEvent) -> None:
            self.app.call_from_thread(lambda: self.query_one(PlanView).mark(event))

        try:
            # Runs of the same command cut short earlier: this plan, built from
            # the account as it is now, finishes them (as on the command line).
            outcome = apply_reviewed(
                self.plan,
                self.clients,
                roll_back_on_failure=self.roll_back_on_failure,
                stop_on_failure=self.stop_on_failure,
                on_event=relay,
            )
        except Exception as exc:  # noqa: BLE001 - the screen must never stay stuck
            # KeyHygieneError messages are written for people; anything else is
            # named by its type (its text could quote values).
            text = str(exc) if isinstance(exc, KeyHygieneError) else type(exc).__name__
            self.app.call_from_thread(self._crashed, text)
            return
        self.app.call_from_thread(self._finished, outcome.report, outcome.undone)

    def _crashed(self, text: str) -> None:
        self.running = False
        result = self.query_one("#plan-result", Static)
        result.update(
            f"The plan stopped: {text}. Its journal is kept; keyhygiene offers to finish "
            "or roll it back at the next start."
        )
        result.styles.color = "red"
        close = self.query_one("#close", Button)
        close.label = "Close"
        close.disabled = False
        close.focus()

    def _finished(self, report: ApplyReport, undone: ApplyReport | None) -> None:
        self.running = False
        self.report = report
        text = report.render_text()
        if undone is not None:
            text += "\n\nRolled back:\n" + undone.render_text()
        result = self.query_one("#plan-result", Static)
        result.update(text)
        result.styles.color = "green" if report.ok else "red"
        # The plan ran: applying it again is not offered.
        self.query_one("#apply", Button).display = False
        close = self.query_one("#close", Button)
        close.label = "Close"
        close.disabled = False
        close.focus()
        self.notify(
            "Done." if report.ok else "Some steps failed: see the report.",
            severity="information" if report.ok else "error",
        )
