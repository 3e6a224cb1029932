"""Add to group, remove from group, lend to group: pick, then review the plan.

Opened from a device node (the computer is known, the person picks a group)
or from a group node (the group is known, the person picks a computer). For a
loan the person picks a duration (or types one) and sees when it would end.
The plan is computed by keyhygiene.workflows.membership (pure, no AWS call) and opens in
`PlanScreen` for review and apply. This screen holds no AWS logic.

A loan of a group that grants IAM rights is refused by the core (`LoanRefused`):
the refusal shows, and a checkbox appears to lend it anyway (the `--force` of
the command line); changing the computer or the group clears it again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from keyhygiene.core.errors import KeyHygieneError
from keyhygiene.core.formatting import describe_duration
from keyhygiene.core.model import Snapshot, User
from keyhygiene.plans import ApplyReport, ClientProvider, Plan
from keyhygiene.ui.screens.plan_screen import PlanScreen
from keyhygiene.workflows.membership import (
    DEFAULT_MAX_DURATION,
    Candidates,
    LoanRefused,
    MembershipAction,
    candidates,
    format_expiry,
    loan_of,
    parse_duration,
    plan_add_member,
    plan_grant,
    plan_remove_member,
)

DURATION_CHOICES: tuple[tuple[str, str], ...] = (
    ("30 minutes", "30m"),
    ("2 hours", "2h"),
    ("8 hours", "8h"),
    ("1 day", "1d"),
    ("3 days", "3d"),
    ("7 days", "7d"),
)
DEFAULT_DURATION = "2h"

_TITLES: dict[str, str] = {
    "add": "Add to group",
    "remove": "Remove from group",
    "lend": "Lend to group",
}
_EXPLANATIONS: dict[str, str] = {
    "add": "The computer joins the group for good; the group's buckets and KMS keys whitelist it.",
    "remove": "The computer leaves the group and its whitelists; a loan ends with all it added.",
    "lend": "The computer joins the group until the loan ends; after that AWS itself denies it "
    "the group's resources, even if keyhygiene never runs again.",
}


# The command line's --force (`plan_grant(..., force=True)`).
FORCE_LABEL = "Lend even if the group grants IAM rights"


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class MembershipScreen(ModalScreen[ApplyReport | None]):
    """Dismisses with the apply report once a plan ran, or None when cancelled."""

    DEFAULT_CSS = """
    MembershipScreen { align: center middle; }
    MembershipScreen > #ms-frame {
        width: 80; max-width: 95%; height: auto; max-height: 90%;
        background: $surface; border: thick $primary; padding: 0 1;
    }
    /* The fields take what the buttons leave: at most 65% of the screen, so
       that with the frame's border (2) and the buttons' row and margin (4)
       the dialog fits in its 90% on 24 rows (15 + 6 = 21). */
    MembershipScreen #ms-fields { height: auto; max-height: 65vh; }
    MembershipScreen Label { margin: 1 0 0 0; color: $text-muted; }
    MembershipScreen .explanation { color: $text-muted; }
    MembershipScreen .fixed { margin: 1 0 0 0; }
    MembershipScreen #ms-expiry { height: auto; color: $text-muted; }
    MembershipScreen #ms-expiry.error { color: $error; }
    MembershipScreen #ms-message { height: auto; margin: 1 0 0 0; color: $text-muted; }
    MembershipScreen #ms-message.error { color: $error; }
    MembershipScreen #ms-force { margin: 1 0 0 0; }
    MembershipScreen #ms-buttons { height: auto; align-horizontal: right; margin: 1 0 0 0; }
    MembershipScreen Button { margin-left: 2; }
    """
    BINDINGS = [
        Binding("ctrl+s", "review", "Review plan", tooltip="Compute the plan and review it"),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(
        self,
        snapshot: Snapshot,
        clients: ClientProvider,
        action: MembershipAction,
        *,
        user: str | None = None,
        group: str | None = None,
        clock: Callable[[], datetime] = _utc_now,
        max_duration: timedelta = DEFAULT_MAX_DURATION,
    ) -> None:
        super().__init__()
        if action not in _TITLES:  # the core says the same; here before any widget exists
            raise ValueError(f"Unknown membership action {action!r}.")
        self.snapshot = snapshot
        self.clients = clients
        self.action = action
        self.fixed_user = user
        self.fixed_group = group
        self.clock = clock
        self.max_duration = max_duration

    # ---- layout

    def compose(self) -> ComposeResult:
        # The fields scroll on a small terminal; the buttons below them stay in view.
        with Vertical(id="ms-frame"):
            with VerticalScroll(id="ms-fields"):
                yield Static(f"[b]{_TITLES[self.action]}[/b]")
                yield Static(_EXPLANATIONS[self.action], classes="explanation", markup=False)
                if self.fixed_user is not None:
                    yield Static(f"Computer: {self.fixed_user}", classes="fixed", markup=False)
                else:
                    yield Label("Computer")
                    yield self._picker(self.user_choices(), "Choose a computer", "ms-user")
                if self.fixed_group is not None:
                    yield Static(f"Group: {self.fixed_group}", classes="fixed", markup=False)
                else:
                    yield Label("Group")
                    yield self._picker(self.group_choices(), "Choose a group", "ms-group")
                if self.action == "lend":
                    yield Label(f"For how long (at most {describe_duration(self.max_duration)})")
                    yield Select(
                        DURATION_CHOICES,
                        allow_blank=False,
                        value=DEFAULT_DURATION,
                        id="ms-duration",
                    )
                    yield Input(
                        placeholder="or type a duration: 45m, 1d12h, 2w", id="ms-duration-text"
                    )
                    yield Static("", id="ms-expiry", markup=False)
                # Messages quote names: never read them as markup.
                yield Static("", id="ms-message", markup=False)
                if self.action == "lend":
                    # Shown once a loan is refused because the group grants IAM rights.
                    force = Checkbox(FORCE_LABEL, id="ms-force")
                    force.display = False
                    yield force
            with Horizontal(id="ms-buttons"):
                yield Button("Review plan", variant="primary", id="review")
                yield Button("Cancel", id="cancel")

    @staticmethod
    def _picker(choices: list[tuple[str, str]], prompt: str, widget_id: str) -> Select[str]:
        # One choice: picked already. None: the message below says why.
        value = choices[0][1] if len(choices) == 1 else Select.NULL
        return Select(choices, prompt=prompt, value=value, id=widget_id)

    def on_mount(self) -> None:
        if self.action == "lend":
            self._show_expiry()
        offered = self._candidates()
        if offered.why_none:
            self._show_message(offered.why_none, error=True)
        pickers = list(self.query("Select, Input"))
        (pickers[0] if pickers else self.query_one("#review", Button)).focus()

    # ---- what can be picked (the rules are the core's: keyhygiene.workflows.membership.candidates)

    def _candidates(self) -> Candidates:
        return candidates(self.snapshot, self.action, self.fixed_user, self.fixed_group)

    def user_choices(self) -> list[tuple[str, str]]:
        """(label, user name) of the computers this action can apply to, for the fixed group."""
        group = self.snapshot.group(self.fixed_group) if self.fixed_group else None
        return [
            (self._user_label(user, loan_of(user, group) if group else None), user.name)
            for user in self._candidates().users
        ]

    def group_choices(self) -> list[tuple[str, str]]:
        """(label, group name) of the groups this action can apply to, for the fixed user."""
        user = self.snapshot.user(self.fixed_user) if self.fixed_user else None
        choices = []
        for group in self._candidates().groups:
            loan = loan_of(user, group) if user else None
            label = f"{group.name}  (on loan until {loan})" if loan else group.name
            choices.append((label, group.name))
        return choices

    @staticmethod
    def _user_label(user: User, loan: str | None) -> str:
        label = f"{user.name}  ({user.hostname})" if user.hostname else user.name
        return label + (f"  (on loan until {loan})" if loan else "")

    # ---- duration

    def duration_text(self) -> str:
        typed = self.query_one("#ms-duration-text", Input).value.strip()
        if typed:
            return typed
        chosen = self.query_one("#ms-duration", Select).value
        return chosen if isinstance(chosen, str) else DEFAULT_DURATION

    @on(Select.Changed, "#ms-duration")
    @on(Input.Changed, "#ms-duration-text")
    def _show_expiry(self) -> None:
        shown = self.query_one("#ms-expiry", Static)
        try:
            duration = parse_duration(self.duration_text(), maximum=self.max_duration)
        except KeyHygieneError as exc:
            shown.update(exc.message)
            shown.set_class(True, "error")
            return
        until = format_expiry(self.clock().replace(microsecond=0) + duration)
        shown.update(
            f"Ends {until} (in {describe_duration(duration)}), even if keyhygiene never runs again"
        )
        shown.set_class(False, "error")

    # ---- actions

    def chosen(self, widget_id: str, fixed: str | None) -> str | None:
        if fixed is not None:
            return fixed
        value = self.query_one(f"#{widget_id}", Select).value
        return value if isinstance(value, str) else None

    @on(Input.Submitted)
    @on(Button.Pressed, "#review")
    def action_review(self) -> None:
        user = self.chosen("ms-user", self.fixed_user)
        group = self.chosen("ms-group", self.fixed_group)
        if user is None or group is None:
            self._show_message("Choose a computer and a group first.", error=True)
            return
        try:
            plan = self.compute_plan(user, group)
        except LoanRefused as exc:
            self._show_message(
                f"{exc.message}\nTick “{FORCE_LABEL}” below to lend it anyway (the plan "
                "then warns about it), or choose another group.",
                error=True,
            )
            self.query_one("#ms-force", Checkbox).display = True
            return
        except (KeyHygieneError, ValueError) as exc:
            self._show_message(str(exc), error=True)
            return
        self._show_message("")
        self.app.push_screen(PlanScreen(plan, self.clients), self._reviewed)

    def compute_plan(self, user: str, group: str) -> Plan:
        """Pure and quick (no AWS call), so it runs right here, not in a worker."""
        if self.action == "add":
            return plan_add_member(self.snapshot, user, group)
        if self.action == "remove":
            return plan_remove_member(self.snapshot, user, group)
        return plan_grant(
            self.snapshot,
            user,
            group,
            self.duration_text(),
            now=self.clock(),
            max_duration=self.max_duration,
            force=self.forced(),
        )

    def forced(self) -> bool:
        """Whether the person ticked the box that lends a group granting IAM rights."""
        boxes = self.query("#ms-force").results(Checkbox)
        return any(box.display and box.value for box in boxes)

    @on(Select.Changed, "#ms-user")
    @on(Select.Changed, "#ms-group")
    def _clear_force(self) -> None:
        # Ticked for one group, it must not lend another one by force.
        for box in self.query("#ms-force").results(Checkbox):
            box.value = False
            box.display = False

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)

    def _reviewed(self, report: ApplyReport | None) -> None:
        # Cancelled without applying: stay, so the person can change the request.
        if report is not None:
            self.dismiss(report)

    def _show_message(self, message: str, *, error: bool = False) -> None:
        shown = self.query_one("#ms-message", Static)
        shown.update(message)
        shown.set_class(error, "error")
