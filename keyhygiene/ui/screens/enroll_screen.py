"""Wizard "Register this computer": who, which device, which groups, then the plan.

The person types their name, keeps or changes the device name (a slug of the
host name), ticks the groups this computer joins and, if they like, names the
profile. The plan (user, groups, whitelists, key into ~/.aws/credentials) is
computed in a thread worker and opens in `PlanScreen` for review and apply;
the wizard then shows how to use the new profile. This screen holds no AWS
logic (keyhygiene.workflows.enrollment does) and never sees the secret key.
"""

from __future__ import annotations

import socket

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, SelectionList, Static
from textual.worker import Worker, WorkerState

from keyhygiene.core.errors import KeyHygieneError
from keyhygiene.core.model import DEVICES_GROUP, Snapshot
from keyhygiene.plans import ApplyReport, ClientProvider, Plan
from keyhygiene.ui.screens.plan_screen import PlanScreen
from keyhygiene.workflows.enrollment import (
    EnrollmentRequest,
    device_slug,
    plan_enrollment,
    registered_sentence,
    user_name_for,
    with_local_files,
)


class EnrollScreen(ModalScreen[ApplyReport | None]):
    """Dismisses with the apply report once a plan ran, or None when cancelled."""

    DEFAULT_CSS = """
    EnrollScreen { align: center middle; }
    EnrollScreen > Vertical {
        width: 90%; height: 90%; background: $surface; border: thick $primary; padding: 0 1;
    }
    EnrollScreen VerticalScroll { height: 1fr; }
    EnrollScreen Label { margin: 1 0 0 0; color: $text-muted; }
    EnrollScreen SelectionList { height: auto; max-height: 12; }
    EnrollScreen #enroll-preview { height: auto; margin: 1 0 0 0; }
    EnrollScreen #enroll-warning { height: auto; color: $warning; margin: 1 0 0 0; }
    EnrollScreen #enroll-message { height: auto; margin: 1 0 0 0; color: $text-muted; }
    EnrollScreen #enroll-message.error { color: $error; }
    EnrollScreen #enroll-message.done { color: $success; }
    EnrollScreen #enroll-buttons { height: auto; align-horizontal: right; }
    EnrollScreen Button { margin-left: 2; }
    """
    BINDINGS = [
        Binding("ctrl+s", "review", "Review plan", tooltip="Compute the plan and review it"),
        Binding("escape", "cancel", "Cancel / close"),
    ]

    def __init__(
        self,
        snapshot: Snapshot,
        clients: ClientProvider,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        hostname: str | None = None,
    ) -> None:
        super().__init__()
        self.snapshot = snapshot
        self.clients = clients
        # A Connection knows its region and endpoint; the new profile gets the same.
        self.profile_region = region or getattr(clients, "region", None)
        self.endpoint_url = endpoint_url or getattr(clients, "endpoint_url", None)
        self.hostname = hostname or socket.gethostname()
        self.busy = False
        self.report: ApplyReport | None = None

    def compose(self) -> ComposeResult:
        groups = [g for g in self.snapshot.groups if g.name != DEVICES_GROUP]
        with Vertical():
            yield Static(
                "[b]Register this computer[/b]  its own user and access key, its groups, "
                "and the bucket and key policies that must list it"
            )
            warning = self._already_registered()
            if warning:
                yield Static(warning, id="enroll-warning", markup=False)
            with VerticalScroll():
                yield Label("Person (whose computer this is)")
                people = list(self.snapshot.people())
                yield Input(
                    people[0] if len(people) == 1 else "",
                    placeholder="your first name, e.g. alice",
                    id="enroll-person",
                )
                yield Label(f"Device (this computer is {self.hostname})", markup=False)
                yield Input(device_slug(self.hostname), id="enroll-device")
                yield Label(f"Groups this computer joins ({len(groups)})")
                yield SelectionList[str](
                    *((self._group_label(g.name), g.name) for g in groups), id="enroll-groups"
                )
                yield Label("Profile name in ~/.aws/credentials (empty: the user name)")
                yield Input(id="enroll-profile")
                yield Label("MFA: without a code, this computer's key can make no lasting change")
                yield Select[str](
                    (
                        ("Automatic: on when a chosen group may allow IAM writes", "auto"),
                        ("On: a virtual MFA device of its own (QR code shown once)", "on"),
                        (
                            "Strict: nothing at all without an MFA session (key in keyring)",
                            "strict",
                        ),
                        ("Off", "off"),
                    ),
                    value="auto",
                    allow_blank=False,
                    id="enroll-mfa",
                )
                yield Static("", id="enroll-preview", markup=False)
            # Messages quote names and brackets: never read them as markup.
            yield Static("", id="enroll-message", markup=False)
            with Horizontal(id="enroll-buttons"):
                yield Button("Review plan", variant="primary", id="review")
                yield Button("Cancel", id="cancel")

    def _already_registered(self) -> str:
        """One user per computer: say so when this computer already has one."""
        same_host = [
            u.name for u in self.snapshot.users if u.hostname == self.hostname and not u.revoked
        ]
        this = self.snapshot.this_user
        if this and self.snapshot.user(this) and self.snapshot.user(this).is_device:  # type: ignore[union-attr]
            return (
                f"This computer already works as {this}. Registering it again makes a second "
                "user for one computer; to renew its key, rotate it instead (k)."
            )
        if same_host:
            return (
                f"{', '.join(same_host)} is already registered for host {self.hostname}. "
                "Registering again makes a second user for one computer."
            )
        return ""

    def on_mount(self) -> None:
        self.query_one("#enroll-person", Input).focus()
        self._update_preview()

    def _group_label(self, name: str) -> str:
        buckets = len(self.snapshot.buckets_for_group(name))
        keys = len(self.snapshot.kms_keys_for_group(name))
        if not buckets and not keys:
            return name
        return f"{name}  ({buckets} bucket(s), {keys} KMS key(s) whitelist it)"

    # ---- the form

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        self._update_preview()

    def _update_preview(self) -> None:
        person = self.query_one("#enroll-person", Input).value.strip() or "PERSON"
        device = self.query_one("#enroll-device", Input).value.strip() or "DEVICE"
        user = user_name_for(person, device)
        profile = self.query_one("#enroll-profile", Input).value.strip() or user
        self.query_one("#enroll-preview", Static).update(
            f"User {user}, key in the profile {profile}, region {self.profile_region or 'us-east-1'}"
        )

    def _request(self) -> EnrollmentRequest:
        return EnrollmentRequest(
            person=self.query_one("#enroll-person", Input).value,
            device=self.query_one("#enroll-device", Input).value or None,
            groups=tuple(self.query_one("#enroll-groups", SelectionList).selected),
            profile_name=self.query_one("#enroll-profile", Input).value or None,
            region=self.profile_region,
            hostname=self.hostname,
            endpoint_url=self.endpoint_url,
            mfa=str(self.query_one("#enroll-mfa", Select).value),
        )

    # ---- actions

    @on(Input.Submitted)
    @on(Button.Pressed, "#review")
    def action_review(self) -> None:
        if self.busy or self.report is not None:
            return
        self._set_busy(True, "Computing the plan …")
        self._compute(self._request())

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        if not self.busy:
            self.dismiss(self.report)

    @work(thread=True, exclusive=True, exit_on_error=False, group="enroll-plan")
    def _compute(self, request: EnrollmentRequest) -> None:
        try:
            # Reads this computer's AWS files (refusing ones botocore cannot parse)
            # before anything is planned, so a bad file stops it with nothing changed.
            plan = plan_enrollment(self.snapshot, with_local_files(request))
        except KeyHygieneError as exc:
            self.app.call_from_thread(self._show_error, str(exc))
            return
        self.app.call_from_thread(self._review, plan)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "enroll-plan" and event.state == WorkerState.ERROR:
            self._show_error(f"Could not compute the plan: {event.worker.error}")

    def _review(self, plan: Plan) -> None:
        self._set_busy(False, "")
        self.app.push_screen(PlanScreen(plan, self.clients), lambda r: self._reviewed(plan, r))

    def _reviewed(self, plan: Plan, report: ApplyReport | None) -> None:
        # Cancelled without applying: stay, so the person can change the request.
        if report is None:
            return
        self.report = report
        self.query_one("#review", Button).disabled = True
        self.query_one("#cancel", Button).label = "Close"
        self.query_one("#cancel", Button).focus()
        message = self.query_one("#enroll-message", Static)
        if report.ok:
            message.update(registered_sentence(plan) or "This computer is registered.")
            message.set_class(True, "done")
            message.set_class(False, "error")
        else:
            message.update(
                "The enrollment did not complete; what was done has been rolled back where "
                "possible. The plan's report says which step failed and why."
            )
            message.set_class(True, "error")

    def _show_error(self, message: str) -> None:
        self._set_busy(False, message, error=True)

    def _set_busy(self, busy: bool, message: str, *, error: bool = False) -> None:
        self.busy = busy
        self.query_one("#review", Button).disabled = busy
        shown = self.query_one("#enroll-message", Static)
        shown.update(message)
        shown.set_class(error, "error")
