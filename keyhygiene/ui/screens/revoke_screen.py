"""Emergency revoke: find the lost computer, see what it reaches, type its name, watch it go.

A person here is stressed and in a hurry, so the screen asks for little: a
search by name, device or host name; what the computer can reach and when its
key was last used; its name typed once to confirm; then live progress, and a
report (when containment was requested, what failed and the permission it
needed, what to check next) that can be copied. Containment is shown as
requested, never as done: IAM applies changes everywhere after a delay.
Reading the account and applying the plan run in thread workers; the plan
comes from `keyhygiene.workflows.revoke`.
"""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, ContentSwitcher, Footer, Input, OptionList, Static
from textual.widgets.option_list import Option

from keyhygiene.aws.connection import Connection
from keyhygiene.core.errors import KeyHygieneError
from keyhygiene.core.model import Snapshot, User
from keyhygiene.plans import Plan, PlanEvent, apply_plan
from keyhygiene.plans.journal import Journal
from keyhygiene.ui.widgets.plan_view import PlanView
from keyhygiene.workflows.registry import describe_unexpected
from keyhygiene.workflows.revoke import (
    ContainmentTimer,
    RevokeReport,
    UserExtras,
    describe_reach,
    load_for_revoke,
    plan_revoke,
    revoke_report,
)


def matching_users(snapshot: Snapshot, text: str) -> list[User]:
    """Users whose name, device, host name or person holds `text`; exact hits first."""
    wanted = text.strip().lower()

    def fields(user: User) -> list[str]:
        return [f.lower() for f in (user.name, user.device, user.hostname, user.person) if f]

    here = (snapshot.this_user or "").lower()
    found = [u for u in snapshot.users if not wanted or any(wanted in f for f in fields(u))]
    # The lost computer is seldom the one in front of you: that one comes last.
    return sorted(
        found,
        key=lambda u: (
            wanted not in fields(u),
            not u.is_device,
            u.revoked,
            u.name.lower() == here,
            u.name.lower(),
        ),
    )


def user_label(user: User, snapshot: Snapshot) -> Text:
    label = Text(user.name, style="bold")
    where = " on ".join(filter(None, (user.device, user.hostname)))
    if where:
        label.append(f" · {where}", style="dim")
    active = len(user.active_keys)
    label.append(f" · {active} active key{'s' if active != 1 else ''}", style="dim")
    if snapshot.this_user and snapshot.this_user.lower() == user.name.lower():
        label.append(" · this computer", style="bold yellow")
    if user.revoked:
        label.append(" · revoked", style="bold red")
    return label


class RevokeScreen(ModalScreen[RevokeReport | None]):
    """Dismisses with the RevokeReport once a revoke ran, else None."""

    DEFAULT_CSS = """
    RevokeScreen { align: center middle; }
    RevokeScreen > #revoke-panel {
        width: 96%; height: 96%; background: $surface; border: thick $error; padding: 0 1;
    }
    RevokeScreen #revoke-heading { color: $error; text-style: bold; }
    RevokeScreen #revoke-switcher { height: 1fr; }
    RevokeScreen #revoke-find, RevokeScreen #revoke-review { height: 1fr; }
    RevokeScreen #revoke-matches { height: 1fr; }
    RevokeScreen #revoke-reach { height: auto; max-height: 12; border: round $primary-background; }
    RevokeScreen #revoke-plan { height: 1fr; }
    RevokeScreen #revoke-confirm-row { height: auto; }
    RevokeScreen #revoke-confirm { width: 1fr; }
    RevokeScreen #revoke-report { height: auto; max-height: 60%; overflow-y: auto; }
    RevokeScreen #revoke-done-row { height: auto; align-horizontal: right; }
    RevokeScreen Button { margin-left: 1; }
    RevokeScreen #revoke-status { height: 1; color: $text-muted; }
    """
    BINDINGS = [
        Binding("escape", "back", "Back", tooltip="Back to the search, or close"),
        Binding("c", "copy_report", "Copy report", tooltip="Copy the report to the clipboard"),
    ]

    def __init__(
        self, snapshot: Snapshot, connection: Connection, *, user_name: str | None = None
    ) -> None:
        super().__init__()
        self.snapshot = snapshot
        self.connection = connection
        self.initial = user_name
        self.user: User | None = None
        self.plan: Plan | None = None
        self.target: Snapshot | None = None  # what the plan was computed from
        self.view: PlanView | None = None
        self.choosing = ""  # the user asked for last; a slower earlier load is ignored
        self.running = False
        self.result: RevokeReport | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="revoke-panel"):
            yield Static(
                "Emergency revoke: cut a lost or stolen computer out of the account",
                id="revoke-heading",
            )
            with ContentSwitcher(initial="revoke-find", id="revoke-switcher"):
                with Vertical(id="revoke-find"):
                    yield Input(
                        placeholder="Name, device or host name of the lost computer",
                        id="revoke-search",
                    )
                    yield OptionList(id="revoke-matches")
                with Vertical(id="revoke-review"):
                    yield Static("", id="revoke-reach")
                    yield Vertical(id="revoke-plan")
                    with Horizontal(id="revoke-confirm-row"):
                        yield Input(id="revoke-confirm", disabled=True)
                        yield Button("Revoke now", variant="error", id="revoke-go", disabled=True)
                    yield Static("", id="revoke-report")
                    with Horizontal(id="revoke-done-row"):
                        yield Button("Copy report", id="revoke-copy", disabled=True)
                        yield Button("Close", id="revoke-close")
            yield Static("", id="revoke-status")
            yield Footer()

    def on_mount(self) -> None:
        self._show_matches("")
        if self.initial:
            self.choose(self.initial)
        else:
            self.query_one("#revoke-search", Input).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "copy_report":
            return self.result is not None
        return True

    # ---- finding the computer ----------------------------------------------------
    @on(Input.Changed, "#revoke-search")
    def _search(self, event: Input.Changed) -> None:
        self._show_matches(event.value)

    def _show_matches(self, text: str) -> None:
        matches = self.query_one("#revoke-matches", OptionList)
        users = matching_users(self.snapshot, text)
        matches.set_options(Option(user_label(u, self.snapshot), id=u.name) for u in users)
        if users:
            matches.highlighted = 0
        self.set_status(f"{len(users)} computer(s) match" if text else "Type to search")

    @on(Input.Submitted, "#revoke-search")
    def _take_highlighted(self) -> None:
        option = self.query_one("#revoke-matches", OptionList).highlighted_option
        if option is not None and option.id:
            self.choose(option.id)

    @on(OptionList.OptionSelected, "#revoke-matches")
    def _take_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            self.choose(event.option.id)

    def choose(self, user_name: str) -> None:
        """Read what `user_name` reaches now and plan its revoke (in a worker)."""
        self.user = None
        self.plan = None
        self.view = None
        self.choosing = user_name
        self.query_one("#revoke-switcher", ContentSwitcher).current = "revoke-review"
        self.query_one("#revoke-reach", Static).update(f"Reading what {user_name} can reach …")
        self.query_one("#revoke-plan", Vertical).remove_children()
        self.query_one("#revoke-report", Static).update("")
        confirm = self.query_one("#revoke-confirm", Input)
        confirm.value = ""
        confirm.disabled = True
        self.set_status("Reading the account …")
        self._load(user_name)

    @work(thread=True, exclusive=True, group="revoke-load", exit_on_error=False)
    def _load(self, user_name: str) -> None:
        try:
            target, extras = load_for_revoke(
                self.connection, user_name, this_user=self.snapshot.this_user
            )
            plan = plan_revoke(target, user_name, extras=extras)
        except KeyHygieneError as exc:
            self.app.call_from_thread(self._load_failed, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - a bug must not leave the screen waiting
            self.app.call_from_thread(
                self._load_failed, f"Unexpected error ({describe_unexpected(exc)})."
            )
            return
        self.app.call_from_thread(self._show_plan, target, extras, plan)

    def _load_failed(self, message: str) -> None:
        self.query_one("#revoke-reach", Static).update(Text(message, style="bold red"))
        self.set_status("Press Esc to search again.")
        self.notify(message, severity="error")

    def _show_plan(self, target: Snapshot, extras: UserExtras, plan: Plan) -> None:
        user = target.users[0]
        if user.name.lower() != self.choosing.strip().lower():
            return  # the person has chosen another computer since
        self.user, self.plan, self.target = user, plan, target
        self.query_one("#revoke-reach", Static).update(
            "\n".join(describe_reach(target, user, extras))
        )
        self.view = PlanView(plan, id="revoke-plan-view")
        self.query_one("#revoke-plan", Vertical).mount(self.view)
        confirm = self.query_one("#revoke-confirm", Input)
        if not plan.steps:
            self.set_status(f"Nothing left to do: IAM shows every revoke step for {user.name}.")
            return
        confirm.placeholder = f"Type {user.name} to revoke it"
        confirm.disabled = False
        confirm.focus()
        self.set_status(f"Type {user.name} and press Enter to revoke it. Esc: back.")

    # ---- confirming and applying ---------------------------------------------------
    @on(Input.Changed, "#revoke-confirm")
    def _confirm_changed(self, event: Input.Changed) -> None:
        self.query_one("#revoke-go", Button).disabled = not self._confirmed()

    def _confirmed(self) -> bool:
        typed = self.query_one("#revoke-confirm", Input).value.strip()
        return self.user is not None and typed == self.user.name

    @on(Input.Submitted, "#revoke-confirm")
    @on(Button.Pressed, "#revoke-go")
    def revoke_now(self) -> None:
        if self.running or self.result is not None or self.plan is None:
            return
        if not self._confirmed():
            self.notify("Type the computer's name exactly to confirm.", severity="warning")
            return
        self.running = True
        self.query_one("#revoke-confirm", Input).disabled = True
        self.query_one("#revoke-go", Button).disabled = True
        self.query_one("#revoke-close", Button).disabled = True
        self.set_status("Revoking …")
        self._apply(self.plan)

    @work(thread=True, exclusive=True, group="revoke-apply", exit_on_error=False)
    def _apply(self, plan: Plan) -> None:
        timer = ContainmentTimer(plan)
        view = self.view
        assert view is not None

        def relay(event: PlanEvent) -> None:
            timer(event)
            self.app.call_from_thread(view.mark, event)

        try:
            report = apply_plan(
                plan,
                self.connection,
                journal=Journal.create(plan),
                on_event=relay,
                stop_on_failure=False,
            )
        except KeyHygieneError as exc:
            self.app.call_from_thread(self._apply_failed, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - a bug must not leave the screen stuck running
            self.app.call_from_thread(
                self._apply_failed,
                f"Unexpected error ({describe_unexpected(exc)}). Some steps may have run: "
                "revoke again, it does only what is missing.",
            )
            return
        assert self.user is not None
        summary = revoke_report(report, self.user, timer=timer, snapshot=self.target)
        self.app.call_from_thread(self._finished, summary)

    def _apply_failed(self, message: str) -> None:
        self.running = False
        self.query_one("#revoke-close", Button).disabled = False
        self.query_one("#revoke-report", Static).update(Text(message, style="bold red"))
        self.notify(message, severity="error")

    def _finished(self, summary: RevokeReport) -> None:
        self.running = False
        self.result = summary
        # The plan's marks and the report matter now, not what came before.
        self.query_one("#revoke-reach", Static).display = False
        self.query_one("#revoke-confirm-row", Horizontal).display = False
        report = self.query_one("#revoke-report", Static)
        report.update(summary.render_text())
        report.styles.color = (
            "green" if summary.ok else ("yellow" if summary.containment_requested else "red")
        )
        self.query_one("#revoke-copy", Button).disabled = False
        close = self.query_one("#revoke-close", Button)
        close.disabled = False
        close.focus()
        self.refresh_bindings()
        total = len(summary.report.plan.steps)
        accepted = len(summary.report.done)
        self.set_status(
            f"AWS accepted {accepted} of {total} steps; it may take a few minutes to apply "
            "them everywhere. c: copy the report. Esc: close."
        )
        if summary.ok:
            self.notify(summary.headline())
        else:
            self.notify(summary.headline(), severity="error", timeout=15)

    # ---- after -----------------------------------------------------------------------
    @on(Button.Pressed, "#revoke-copy")
    def action_copy_report(self) -> None:
        if self.result is None:
            return
        self.app.copy_to_clipboard(self.result.render_text())
        self.notify("Report copied to the clipboard.")

    @on(Button.Pressed, "#revoke-close")
    def _close(self) -> None:
        if not self.running:
            self.dismiss(self.result)

    def action_back(self) -> None:
        if self.running:
            self.notify("The revoke is running; wait for its report.", severity="warning")
            return
        switcher = self.query_one("#revoke-switcher", ContentSwitcher)
        if switcher.current == "revoke-review" and self.result is None:
            switcher.current = "revoke-find"
            self.query_one("#revoke-search", Input).focus()
            self.set_status("Type to search")
            return
        self.dismiss(self.result)

    def set_status(self, text: str) -> None:
        self.query_one("#revoke-status", Static).update(text)
