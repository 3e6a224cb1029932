"""Wizard "Rotate this computer's key": the plan, a live list of steps, then the proof.

The screen asks AWS who this computer is (two calls, in a thread worker),
shows the rotation plan in a `PlanView`, and runs it, when the person presses
Rotate, in a thread worker whose progress marks the steps one by one. It ends
with the new key's id tail and a who-am-I answer made with the new key.

An interrupted rotation of the profile comes first: the screen says what
happened and offers to finish it or roll it back (`keyhygiene.workflows.rotation` decides which).

This screen holds no AWS logic (keyhygiene.workflows.rotation does) and never sees the
secret: it handles plans, ids and outcomes only.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Static
from textual.worker import Worker, WorkerState

from keyhygiene.aws.connection import ConnectionOptions
from keyhygiene.core.errors import KeyHygieneError
from keyhygiene.local.vault import keyring_status
from keyhygiene.plans import Plan, PlanEvent
from keyhygiene.ui.widgets.plan_view import PlanView
from keyhygiene.workflows.rotation import (
    DEFAULT_VERIFY_INTERVAL,
    DEFAULT_VERIFY_SUCCESSES,
    DEFAULT_VERIFY_TIMEOUT,
    HeldKeyClients,
    KeyLocation,
    PendingRotation,
    RotationBusy,
    RotationFacts,
    RotationOutcome,
    RotationRequest,
    Store,
    TwoActiveKeys,
    check_key_in_use,
    execute_rotation,
    finish_or_roll_back,
    inspect_rotation,
    key_tail,
    pending_rotation,
    plan_rotation,
)


class RotateScreen(ModalScreen[RotationOutcome | None]):
    """Dismisses with the `RotationOutcome` once something ran, or None when cancelled."""

    DEFAULT_CSS = """
    RotateScreen { align: center middle; }
    RotateScreen > Vertical {
        width: 90%; height: 90%; background: $surface; border: thick $primary; padding: 0 1;
    }
    RotateScreen #rotate-intro { height: auto; margin: 0 0 1 0; color: $text-muted; }
    RotateScreen #rotate-options { height: auto; }
    RotateScreen #rotate-options Checkbox { margin-right: 2; }
    RotateScreen #rotate-plan { height: 1fr; }
    RotateScreen #rotate-result { height: auto; max-height: 12; overflow-y: auto; margin: 1 0 0 0; }
    RotateScreen #rotate-result.error { color: $error; }
    RotateScreen #rotate-result.done { color: $success; }
    RotateScreen #rotate-buttons { height: auto; align-horizontal: right; }
    RotateScreen Button { margin-left: 2; }
    """
    BINDINGS = [
        Binding("a", "apply", "Rotate", tooltip="Carry out the plan shown"),
        Binding("escape", "close", "Cancel / close"),
    ]

    def __init__(
        self,
        options: ConnectionOptions,
        *,
        profile: str | None = None,
        store: Store | None = None,
        verify_timeout: float = DEFAULT_VERIFY_TIMEOUT,
        verify_successes: int = DEFAULT_VERIFY_SUCCESSES,
        verify_interval: float = DEFAULT_VERIFY_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__()
        self.options = options
        self.profile = profile or options.profile_name
        # A profile named here is used explicitly (botocore then ignores keys in
        # the environment); otherwise the environment's keys may be the ones in use.
        self.profile_explicit = profile is not None
        self.store = store
        self.verify = (verify_timeout, verify_successes, verify_interval)
        self.clock = clock
        self.sleep = sleep
        self.facts: RotationFacts | None = None
        self.clients: HeldKeyClients | None = None
        self.plan: Plan | None = None
        self.pending: PendingRotation | None = None
        self.outcome: RotationOutcome | None = None
        self.plan_view: PlanView | None = None
        self.notice = ""  # shown above a fresh plan (after a rollback)
        self.keyring_usable = False
        self.running = False

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(
                f"[b]Rotate this computer's access key[/b] — profile {escape(self.profile)}"
            )
            # Texts quote [profile] headers and ARNs: never read them as markup.
            yield Static("Asking AWS who this computer is …", id="rotate-intro", markup=False)
            with Horizontal(id="rotate-options"):
                yield Checkbox(
                    "Keep the secret in the OS keyring (credential_process)",
                    id="rotate-keyring",
                    disabled=True,
                )
                yield Checkbox("Delete the other active key", id="rotate-delete-other")
            yield Vertical(id="rotate-plan")
            yield Static("", id="rotate-result", markup=False)
            with Horizontal(id="rotate-buttons"):
                yield Button("Rotate", variant="warning", id="apply", disabled=True)
                yield Button("Cancel", id="close")

    def on_mount(self) -> None:
        self.query_one("#rotate-delete-other", Checkbox).display = False
        self._prepare()

    # ---- preparing: pending run, who am I, the plan

    @work(thread=True, exclusive=True, exit_on_error=False, group="rotate-prepare")
    def _prepare(self) -> None:
        try:
            pending = pending_rotation(self.profile)
            if pending is not None:
                self._wait_on_ui(self._show_pending, pending)
                return
            if not self.profile_explicit:
                check_key_in_use(self.options)
            clients = HeldKeyClients(self.options, KeyLocation.for_profile(self.profile))
            facts = inspect_rotation(clients)
        except KeyHygieneError as exc:
            self.app.call_from_thread(self._show_error, str(exc))
            return
        usable, note = keyring_status()
        self._wait_on_ui(self._show_facts, facts, clients, usable, note)

    def _wait_on_ui(self, callback: Callable[..., Awaitable[None] | None], *args: object) -> None:
        """From a worker thread: run `callback` on the UI thread, awaited, and wait for it.

        `App.call_from_thread` as it is; this signature only fixes its result type to
        None, which mypy cannot work out from an async method on its own.
        """
        self.app.call_from_thread(callback, *args)

    async def _show_facts(
        self, facts: RotationFacts, clients: HeldKeyClients, usable: bool, note: str
    ) -> None:
        self.facts, self.clients, self.keyring_usable = facts, clients, usable
        others = len(facts.other_keys)
        self._intro(
            f"This computer is {facts.user_arn}. Its key {facts.current_key_id} is in "
            f"{'the OS keyring' if facts.store == 'keyring' else facts.location.shown_credentials}"
            f"{f'; the user has {others} other key(s)' if others else ''}. "
            "The new key is written straight there and never shown."
            + ("" if usable else f"\n{note}")
        )
        keyring = self.query_one("#rotate-keyring", Checkbox)
        keyring.value = (self.store or facts.store) == "keyring"
        keyring.disabled = not usable and not keyring.value
        await self._replan()

    @on(Checkbox.Changed)
    async def _option_changed(self, event: Checkbox.Changed) -> None:
        if self.facts is not None and not self.running and self.outcome is None:
            await self._replan()

    def _request(self) -> RotationRequest:
        timeout, successes, interval = self.verify
        keyring = self.query_one("#rotate-keyring", Checkbox).value
        return RotationRequest(
            profile=self.profile,
            store="keyring" if keyring else "file",
            delete_other=self.query_one("#rotate-delete-other", Checkbox).value,
            verify_timeout=timeout,
            verify_successes=successes,
            verify_interval=interval,
        )

    async def _replan(self) -> None:
        """Plans are pure: made again on the UI thread whenever an option changes."""
        assert self.facts is not None
        try:
            plan = plan_rotation(self.facts, self._request())
        except TwoActiveKeys as exc:
            self.query_one("#rotate-delete-other", Checkbox).display = True
            await self._show_plan(None)
            self._result(str(exc), "error")
            return
        except KeyHygieneError as exc:
            await self._show_plan(None)
            self._result(str(exc), "error")
            return
        self._result(self.notice, None)
        await self._show_plan(plan)

    async def _show_plan(self, plan: Plan | None) -> None:
        self.plan = plan
        await self._show_view(plan)
        apply = self.query_one("#apply", Button)
        apply.label = "Rotate"
        apply.disabled = plan is None

    async def _show_view(self, plan: Plan | None) -> PlanView | None:
        """Replace the plan on screen (the old view is gone before the new one comes)."""
        holder = self.query_one("#rotate-plan", Vertical)
        await holder.remove_children()
        self.plan_view = PlanView(plan) if plan is not None else None
        if self.plan_view is not None:
            await holder.mount(self.plan_view)
        return self.plan_view

    async def _show_pending(self, pending: PendingRotation) -> None:
        self.pending = pending
        self._intro(f"An earlier rotation was interrupted. {pending.description}")
        self.query_one("#rotate-options").display = False
        view = await self._show_view(pending.journal.plan)
        assert view is not None
        self._mark_journal(view, pending)
        apply = self.query_one("#apply", Button)
        apply.label = "Finish it" if pending.action == "finish" else "Roll it back"
        apply.disabled = pending.action not in ("finish", "roll_back")

    def _mark_journal(self, view: PlanView, pending: PendingRotation) -> None:
        journal = pending.journal
        for index, step in enumerate(journal.plan.steps, 1):
            status = journal.status(step.id)
            kind = {"done": "step_done", "running": "step_failed", "failed": "step_failed"}
            if status in kind:
                note = "interrupted" if status == "running" else journal.message(step.id)
                view.mark(PlanEvent(kind[status], step.id, index, message=note))  # type: ignore[arg-type]

    # ---- running

    @on(Button.Pressed, "#apply")
    def action_apply(self) -> None:
        if self.running or self.outcome is not None:
            return
        if self.pending is None and self.plan is None:
            return
        self.running = True
        self.query_one("#apply", Button).disabled = True
        self.query_one("#close", Button).disabled = True
        for box in self.query(Checkbox):
            box.disabled = True
        self._result("Working … (the steps are marked as they run)", None)
        self._run()

    @work(thread=True, exclusive=True, exit_on_error=False, group="rotate-run")
    def _run(self) -> None:
        def relay(event: PlanEvent) -> None:
            self.app.call_from_thread(self._mark, event)

        try:
            if self.pending is not None:
                outcome = finish_or_roll_back(
                    self.pending, self.options, on_event=relay, clock=self.clock, sleep=self.sleep
                )
            else:
                assert self.plan is not None and self.clients is not None
                outcome = execute_rotation(
                    self.plan, self.clients, on_event=relay, clock=self.clock, sleep=self.sleep
                )
        except RotationBusy as exc:
            # Nothing was changed: the person may try again once the other run ends.
            self.app.call_from_thread(self._show_busy, str(exc))
            return
        except KeyHygieneError as exc:
            self.app.call_from_thread(self._show_error, str(exc))
            return
        self.app.call_from_thread(self._finished, outcome)

    def _mark(self, event: PlanEvent) -> None:
        if self.plan_view is not None:
            self.plan_view.mark(event)

    def _finished(self, outcome: RotationOutcome) -> None:
        self.running = False
        self.query_one("#close", Button).disabled = False
        if outcome.action == "roll_back" and outcome.ok:
            # The interrupted run is undone: now the rotation the person came for.
            self.pending = None
            self.query_one("#rotate-options").display = True
            self.notice = outcome.headline + "\nHere is a fresh plan."
            self._result(self.notice, None)
            self._prepare()
            return
        self.outcome = outcome
        lines = [outcome.headline]
        if outcome.ok and outcome.new_key_id:
            lines.append(f"New key: {key_tail(outcome.new_key_id)}")
            if outcome.proof_arn:
                lines.append(f"Who am I, asked with the new key: {outcome.proof_arn}")
        self._result("\n".join(lines), "done" if outcome.ok else "error")
        close = self.query_one("#close", Button)
        close.label = "Close"
        close.focus()
        self.notify(
            "Key rotated." if outcome.ok else "The rotation did not complete: see the report.",
            severity="information" if outcome.ok else "error",
        )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if (
            event.worker.group in ("rotate-prepare", "rotate-run")
            and event.state == WorkerState.ERROR
        ):
            self.running = False
            self._show_error(f"Unexpected failure: {type(event.worker.error).__name__}")

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        if not self.running:
            self.dismiss(self.outcome)

    # ---- text

    def _intro(self, text: str) -> None:
        self.query_one("#rotate-intro", Static).update(text)

    def _result(self, text: str, kind: str | None) -> None:
        result = self.query_one("#rotate-result", Static)
        result.update(text)
        result.set_class(kind == "error", "error")
        result.set_class(kind == "done", "done")

    def _show_busy(self, text: str) -> None:
        self.running = False
        self.query_one("#close", Button).disabled = False
        self.query_one("#apply", Button).disabled = False
        keyring = self.query_one("#rotate-keyring", Checkbox)
        keyring.disabled = not self.keyring_usable and not keyring.value
        self.query_one("#rotate-delete-other", Checkbox).disabled = False
        self._result(text, "error")

    def _show_error(self, text: str) -> None:
        self.running = False
        self.query_one("#close", Button).disabled = False
        self._intro("")
        self._result(text, "error")
