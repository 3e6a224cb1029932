"""Wizard "Add an application": name, buckets, first members, then the plan.

The person names the application, types new bucket names and ticks existing
buckets to adopt, ticks the computers that join its group, and asks for the
plan. The few read-only checks the plan needs (is a bucket name free?) run in
a thread worker; the plan then opens in `PlanScreen` for review and apply.
This screen holds no AWS logic: keyhygiene.workflows.application does.
"""

from __future__ import annotations

import re

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, SelectionList, Static
from textual.worker import Worker, WorkerState

from keyhygiene.core.errors import KeyHygieneError
from keyhygiene.core.model import Snapshot
from keyhygiene.plans import ApplyReport, ClientProvider, Plan
from keyhygiene.ui.screens.plan_screen import PlanScreen
from keyhygiene.workflows.application import (
    plan_create_application,
    preflight_application,
    validate_application_name,
    validate_new_bucket_name,
)


def split_names(text: str) -> list[str]:
    """Bucket names typed separated by spaces or commas, in order, without repeats."""
    return list(dict.fromkeys(part for part in re.split(r"[\s,]+", text) if part))


class ApplicationScreen(ModalScreen[ApplyReport | None]):
    """Dismisses with the apply report once a plan ran, or None when cancelled."""

    DEFAULT_CSS = """
    ApplicationScreen { align: center middle; }
    ApplicationScreen > Vertical {
        width: 90%; height: 90%; background: $surface; border: thick $primary; padding: 0 1;
    }
    ApplicationScreen VerticalScroll { height: 1fr; }
    ApplicationScreen Label { margin: 1 0 0 0; color: $text-muted; }
    ApplicationScreen SelectionList { height: auto; max-height: 10; }
    ApplicationScreen #app-message { height: auto; margin: 1 0 0 0; color: $text-muted; }
    ApplicationScreen #app-message.error { color: $error; }
    ApplicationScreen #app-buttons { height: auto; align-horizontal: right; }
    ApplicationScreen Button { margin-left: 2; }
    """
    BINDINGS = [
        Binding("ctrl+s", "review", "Review plan", tooltip="Compute the plan and review it"),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(
        self, snapshot: Snapshot, clients: ClientProvider, *, region: str | None = None
    ) -> None:
        super().__init__()
        self.snapshot = snapshot
        self.clients = clients
        # A Connection knows its region; new buckets go there.
        self.bucket_region = region or getattr(clients, "region", None)
        self.busy = False

    def compose(self) -> ComposeResult:
        devices = [u for u in self.snapshot.users if u.is_device and not u.revoked]
        with Vertical():
            yield Static(
                "[b]Add an application[/b]  one group, one EC2 role, one KMS key and its "
                "buckets, whitelisted and encrypted"
            )
            with VerticalScroll():
                yield Label("Name (the group, the role, and the key alias/NAME)")
                yield Input(placeholder="photos", id="app-name")
                yield Label("New buckets (names separated by spaces or commas)")
                yield Input(placeholder="photos-data photos-backup", id="app-new-buckets")
                yield Label(f"Existing buckets to adopt ({len(self.snapshot.buckets)})")
                yield SelectionList[str](
                    *((self._bucket_label(b.name), b.name) for b in self.snapshot.buckets),
                    id="app-buckets",
                )
                yield Label(f"First members: computers that join the group ({len(devices)})")
                yield SelectionList[str](
                    *((self._device_label(u.name), u.name) for u in devices),
                    id="app-members",
                )
            # Messages quote names and brackets: never read them as markup.
            yield Static("", id="app-message", markup=False)
            with Horizontal(id="app-buttons"):
                yield Button("Review plan", variant="primary", id="review")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#app-name", Input).focus()

    # ---- labels

    def _bucket_label(self, name: str) -> str:
        bucket = self.snapshot.bucket(name)
        groups = bucket.for_groups if bucket else ()
        return f"{name}  (application {', '.join(groups)})" if groups else name

    def _device_label(self, name: str) -> str:
        user = self.snapshot.user(name)
        host = user.hostname if user else None
        return f"{name}  ({host})" if host else name

    # ---- actions

    @on(Input.Submitted)
    @on(Button.Pressed, "#review")
    def action_review(self) -> None:
        if self.busy:
            return
        name = self.query_one("#app-name", Input).value
        new = split_names(self.query_one("#app-new-buckets", Input).value)
        existing = self.query_one("#app-buckets", SelectionList).selected
        members = self.query_one("#app-members", SelectionList).selected
        # The checks that need no AWS call answer at once.
        try:
            name = validate_application_name(name)
            for bucket in new:
                if self.snapshot.bucket(bucket) is None:
                    validate_new_bucket_name(bucket)
        except KeyHygieneError as exc:
            self._show_error(str(exc))
            return
        self._set_busy(True, "Checking the bucket names and computing the plan …")
        self._compute(name, [*existing, *new], list(members))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        if not self.busy:
            self.dismiss(None)

    @work(thread=True, exclusive=True, exit_on_error=False, group="application-plan")
    def _compute(self, name: str, buckets: list[str], members: list[str]) -> None:
        try:
            preflight = preflight_application(self.clients, self.snapshot, name, buckets)
            plan = plan_create_application(
                self.snapshot,
                name,
                buckets,
                members,
                preflight=preflight,
                region=self.bucket_region,
            )
        except KeyHygieneError as exc:
            self.app.call_from_thread(self._show_error, str(exc))
            return
        self.app.call_from_thread(self._review, plan)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "application-plan" and event.state == WorkerState.ERROR:
            self._show_error(f"Could not compute the plan: {event.worker.error}")

    def _review(self, plan: Plan) -> None:
        self._set_busy(False, "")
        self.app.push_screen(PlanScreen(plan, self.clients), self._reviewed)

    def _reviewed(self, report: ApplyReport | None) -> None:
        # Cancelled without applying: stay, so the person can change the request.
        if report is not None:
            self.dismiss(report)

    def _show_error(self, message: str) -> None:
        self._set_busy(False, message, error=True)

    def _set_busy(self, busy: bool, message: str, *, error: bool = False) -> None:
        self.busy = busy
        self.query_one("#review", Button).disabled = busy
        shown = self.query_one("#app-message", Static)
        shown.update(message)
        shown.set_class(error, "error")
