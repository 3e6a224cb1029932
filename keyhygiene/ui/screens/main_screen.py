"""The account tree screen: the tree on the left, details on the right."""

from __future__ import annotations

import gc
from dataclasses import replace
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Static, Tree

from keyhygiene.audit.findings import Finding, sort_findings, summary_line
from keyhygiene.core.errors import KeyHygieneError
from keyhygiene.core.model import Snapshot
from keyhygiene.ui.host import Host
from keyhygiene.ui.messages import (
    AccountsLoaded,
    LoadFailed,
    LoadProgress,
    SnapshotLoaded,
    UserKeysLoaded,
)
from keyhygiene.ui.screens.findings_screen import FindingsScreen
from keyhygiene.ui.widgets.account_tree import AccountTree
from keyhygiene.ui.widgets.details_pane import DetailsPane
from keyhygiene.views.details import Details, describe
from keyhygiene.views.outline import (
    OutlineNode,
    annotate,
    build_outline,
    filter_outline,
    finding_node_kinds,
)

if TYPE_CHECKING:  # boto3 and botocore load with the account, after the first frame
    from textual.widgets.tree import TreeNode

    from keyhygiene.aws.accounts import LoadedAccount
    from keyhygiene.aws.connection import Connection
    from keyhygiene.plans import ApplyReport


class MainScreen(Screen[None]):
    BINDINGS = [
        Binding("slash", "filter", "Filter", tooltip="Show only nodes whose name holds a text"),
        Binding("r", "refresh_account", "Refresh", tooltip="Load the account again"),
        Binding("f", "findings", "Findings", tooltip="Every departure from the practice"),
        Binding("k", "rotate_key", "Rotate key", tooltip="Rotate this computer's access key"),
        Binding("e", "enroll", "Enroll", tooltip="Register this computer (one-time)"),
        Binding(
            "S",
            "schedule",
            "Schedule",
            show=False,
            tooltip="Rotate this computer's key on a schedule (a daily per-user timer)",
        ),
        Binding("plus", "membership('add')", "Add to group", show=False),
        Binding("minus", "membership('remove')", "Remove from group", show=False),
        Binding(
            "l", "membership('lend')", "Lend", tooltip="Lend a computer to a group for a while"
        ),
        Binding(
            "A",
            "add_application",
            "New app",
            tooltip="Group, EC2 role, KMS key and buckets, whitelisted and encrypted",
        ),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.snapshot: Snapshot | None = None
        self.connection: Connection | None = None
        self.outline: OutlineNode | None = None
        self.findings: list[Finding] = []
        self._swept = False
        # Several accounts: each loaded one, and which the cursor is in (its
        # snapshot and connection are then `snapshot` and `connection`).
        self.accounts: list[LoadedAccount] = []
        self.current_account: str | None = None

    @property
    def keyhygiene_app(self) -> Host:
        """The app, typed as what a screen needs of it (its options and clock)."""
        app = self.app
        assert isinstance(app, Host)
        return app

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(
            placeholder="Filter: part of a name, host name or note (Esc clears)",
            id="filter",
            # Hidden, it must not take the focus: while the tree is loading
            # Textual moves the focus on, and keys ("?") would be typed into it.
            disabled=True,
        )
        with Horizontal(id="panes"):
            yield AccountTree(id="tree")
            yield DetailsPane(id="details")
        yield Static("", id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(AccountTree).focus()
        self.action_refresh_account()

    # ---- loading -------------------------------------------------------------
    def action_refresh_account(self) -> None:
        tree = self.query_one(AccountTree)
        tree.loading = self.snapshot is None
        self.set_status("Loading the account…")
        self.load_account()

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def load_account(self) -> None:
        app = self.keyhygiene_app

        def progress(what: str) -> None:
            self.post_message(LoadProgress(what))

        try:
            app.wait_for_demo(progress)
            _settle_heap()
            if app.accounts:
                loaded = app.load_accounts(on_progress=progress)
                progress("Auditing")
                findings_of_all = app.audit_accounts(loaded)
                _settle_heap()
                self.post_message(AccountsLoaded(loaded, findings_of_all))
                return
            snapshot, connection = app.load_account(on_progress=progress)
            progress("Auditing")
            findings = app.audit(snapshot)
        except KeyHygieneError as exc:
            self.post_message(LoadFailed(str(exc)))
            return
        except Exception as exc:  # noqa: BLE001 - never leave the spinner up forever
            self.post_message(
                LoadFailed(f"Unexpected error while loading the account ({type(exc).__name__}).")
            )
            return
        findings = sort_findings(findings)
        outline = annotate(build_outline(snapshot, app.now()), findings)
        _settle_heap()
        self.post_message(SnapshotLoaded(snapshot, connection, findings, outline))

    def on_load_progress(self, message: LoadProgress) -> None:
        self.set_status(message.what + "…")

    def on_snapshot_loaded(self, message: SnapshotLoaded) -> None:
        self.snapshot = message.snapshot
        self.connection = message.connection
        self.findings = sort_findings(message.findings)
        tree = self.query_one(AccountTree)
        tree.loading = False
        if message.outline is not None:
            self.outline = message.outline
            self._show_outline()
        else:
            self._rebuild()
        if not self.query_one("#filter", Input).display:
            tree.focus()
        status = (
            f"Loaded {len(message.snapshot.users)} users at {self.keyhygiene_app.now():%H:%M:%S} UTC. "
            f"{summary_line(self.findings).rstrip('.')}. Press f to list them."
        )
        if message.snapshot.problems:
            count = len(message.snapshot.problems)
            status += f" {count} part(s) could not be read: see the Account node."
            self.notify(
                "Some parts of the account could not be read; the Account node lists them.",
                severity="warning",
            )
        self.set_status(status)
        self._show_details(tree.cursor_node.data if tree.cursor_node else None)
        if not self._swept and message.connection is not None:
            self._swept = True
            self.sweep_expired_grants()
            self.startup_checks()

    def on_accounts_loaded(self, message: AccountsLoaded) -> None:
        self.accounts = message.accounts
        self.findings = sort_findings(message.findings)
        first = next((a for a in self.accounts if a.view.snapshot is not None), None)
        if self.current_account is None or not self._use_account(self.current_account):
            self._use_account(first.view.spec.name if first else None)
        tree = self.query_one(AccountTree)
        tree.loading = False
        self._rebuild()
        if not self.query_one("#filter", Input).display:
            tree.focus()
        users = sum(len(a.view.snapshot.users) for a in self.accounts if a.view.snapshot)
        failed = [a.view.spec.name for a in self.accounts if a.view.error]
        status = (
            f"Loaded {len(self.accounts) - len(failed)} of {len(self.accounts)} accounts "
            f"({users} users) at {self.keyhygiene_app.now():%H:%M:%S} UTC. "
            f"{summary_line(self.findings).rstrip('.')}. Press f to list them."
        )
        if failed:
            status += f" Could not load: {', '.join(failed)} (see its node)."
            self.notify(
                f"Could not load {', '.join(failed)}; the other accounts are shown.",
                severity="warning",
            )
        self.set_status(status)
        self._show_details(tree.cursor_node.data if tree.cursor_node else None)

    def _use_account(self, name: str | None) -> bool:
        """Make the named account the one the wizards and details work on."""
        chosen = next(
            (a for a in self.accounts if a.view.spec.name == name and a.view.snapshot), None
        )
        if chosen is None:
            return False
        self.current_account = name
        self.snapshot = chosen.view.snapshot
        self.connection = chosen.connection
        return True

    def _account_of(self, node: TreeNode[OutlineNode] | None) -> str | None:
        """The name of the account a tree node is in (several accounts only)."""
        while node is not None and node.parent is not None and node.parent.parent is not None:
            node = node.parent
        if node is None or node.data is None or node.data.kind != "account":
            return None
        ref = node.data.ref
        return next(
            (
                a.view.spec.name
                for a in self.accounts
                if ref in (a.view.account_id, a.view.spec.name)
            ),
            None,
        )

    @work(thread=True, group="startup", exit_on_error=False)
    def startup_checks(self) -> None:
        """Interrupted runs first (finish or roll back), then an old key of this computer."""
        from keyhygiene.local import notices
        from keyhygiene.workflows.registry import everything_interrupted

        for notice in notices.pending():
            # A scheduled rotation that could not run must not fail silently.
            self.app.call_from_thread(
                self.notify,
                notice.line(),
                title="Scheduled rotation",
                severity="warning",
                timeout=30,
            )
        try:
            interrupted = everything_interrupted(now=self.keyhygiene_app.now())
        except KeyHygieneError as exc:
            self.app.call_from_thread(
                self.notify, f"Could not read the journals of earlier runs: {exc}", severity="error"
            )
            return
        self.app.call_from_thread(
            self._offer_recovery, bool(interrupted.rotations), interrupted.runs
        )

    def _offer_recovery(self, rotation_pending: bool, runs: list) -> None:  # type: ignore[type-arg]
        from keyhygiene.ui.screens.recovery_screen import RecoveryScreen
        from keyhygiene.ui.screens.rotate_screen import RotateScreen

        if rotation_pending:
            # The rotate screen shows the interrupted rotation and offers to finish or undo it.
            self.app.push_screen(
                RotateScreen(self.keyhygiene_app.options), self._refresh_if_applied
            )
        elif runs and self.connection is not None:
            self.app.push_screen(RecoveryScreen(runs, self.connection), self._refresh_if_applied)
        else:
            self._offer_rotation_if_old()

    def _offer_rotation_if_old(self) -> None:
        from keyhygiene.audit.findings import DEFAULT_ROTATION_AGE_DAYS
        from keyhygiene.ui.screens.confirm_screen import ConfirmScreen

        user = self.snapshot.user(self.snapshot.this_user or "") if self.snapshot else None
        now = self.keyhygiene_app.now()
        age = user.key_age(now, DEFAULT_ROTATION_AGE_DAYS) if user else None
        if age is None or age.days < age.every:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.action_rotate_key()

        self.app.push_screen(
            ConfirmScreen(
                f"This computer's access key is {age.days} days old (its schedule: rotate every "
                f"{age.every} days). Rotate it now? The new key goes straight into "
                "the credentials file and is verified before the old one is removed.",
                yes="Rotate now",
            ),
            answered,
        )

    @work(thread=True, group="sweep", exit_on_error=False)
    def sweep_expired_grants(self) -> None:
        """Remove expired loans at start (AWS already denies them; this tidies up)."""
        from keyhygiene.workflows.membership import apply_sweep

        if self.snapshot is None or self.connection is None:
            return
        try:
            outcome = apply_sweep(self.snapshot, self.connection, now=self.keyhygiene_app.now())
        except Exception as exc:  # noqa: BLE001 - a failed tidy-up must not break the screen
            text = str(exc) if isinstance(exc, KeyHygieneError) else type(exc).__name__
            self.app.call_from_thread(
                self.notify, f"Sweep of expired loans failed: {text}", severity="error"
            )
            return
        if outcome.message:
            self.app.call_from_thread(
                self.notify,
                outcome.message,
                title="Expired loans",
                severity="information" if outcome.ok else "error",
                timeout=10,
            )
        if outcome.report is not None:
            self.app.call_from_thread(self.action_refresh_account)

    def on_load_failed(self, message: LoadFailed) -> None:
        self.query_one(AccountTree).loading = False
        self.set_status("Could not load the account. Press r to retry.")
        self.query_one(DetailsPane).show_message(message.message, style="bold red")
        self.notify(
            message.message, title="Could not load the account", severity="error", timeout=10
        )

    def set_status(self, text: str) -> None:
        self.query_one("#status", Static).update(text)

    # ---- tree ----------------------------------------------------------------
    @on(Tree.NodeHighlighted)
    def _highlighted(self, event: Tree.NodeHighlighted[OutlineNode]) -> None:
        if self.accounts:
            account = self._account_of(event.node)
            if account is not None:
                self._use_account(account)
        self._show_details(event.node.data)

    def _show_details(self, node: OutlineNode | None) -> None:
        if self.snapshot is None or self.outline is None:
            return
        node = node or self.outline
        if self.accounts and node.kind == "account" and node.label.endswith(": could not load"):
            # A failed account has no snapshot: its node says why.
            self.query_one(DetailsPane).show_message(f"{node.label}. {node.note}", style="red")
            return
        details = describe(self.snapshot, node, self.keyhygiene_app.now())
        mine = self.findings_for(node)
        if mine:
            lines = tuple(
                f"⚑ {f.severity}: {f.title}. {f.detail}" + (f" Fix: {f.fix}" if f.fix else "")
                for f in mine
            )
            details = Details(
                details.title, details.facts, details.documents, details.hints + lines
            )
        self.query_one(DetailsPane).show(details)

    def findings_for(self, node: OutlineNode) -> list[Finding]:
        ref = "" if node.kind == "account" else node.ref or ""
        return [
            f
            for f in self.findings
            if (not self.accounts or f.account in (None, self.current_account))
            and node.kind in finding_node_kinds(f.resource_kind)
            and (f.resource_kind == "local" or f.resource == ref)
        ]

    @on(Tree.NodeExpanded)
    def _expanded(self, event: Tree.NodeExpanded[OutlineNode]) -> None:
        data = event.node.data
        if self.snapshot is None or data is None or data.kind not in ("device", "user"):
            return
        user = self.snapshot.user(data.ref or "")
        if user is not None and not user.keys_exact:
            self.load_user_keys(user.name)

    @work(thread=True, group="keys", exit_on_error=False)
    def load_user_keys(self, name: str) -> None:
        from keyhygiene.aws.inventory import load_user_keys

        if self.snapshot is None or self.connection is None:
            return
        user = self.snapshot.user(name)
        if user is None:
            return
        try:
            self.post_message(UserKeysLoaded(load_user_keys(self.connection, user)))
        except KeyHygieneError as exc:
            self.post_message(LoadProgress(f"Could not read the keys of {name}: {exc.message}"))

    def on_user_keys_loaded(self, message: UserKeysLoaded) -> None:
        if self.snapshot is None:
            return
        self.snapshot = self.snapshot.with_user(message.user)
        if self.accounts:
            self.accounts = [
                replace(a, view=replace(a.view, snapshot=self.snapshot))
                if a.view.spec.name == self.current_account
                else a
                for a in self.accounts
            ]
        self._rebuild()
        cursor = self.query_one(AccountTree).cursor_node
        self._show_details(cursor.data if cursor else None)

    def _rebuild(self) -> None:
        """Recompute the outline (with its finding badges) and show it."""
        if self.accounts:
            from keyhygiene.views.accounts_outline import accounts_outline

            by_account: dict[str, list[Finding]] = {}
            for finding in self.findings:
                by_account.setdefault(finding.account or "", []).append(finding)
            self.outline = accounts_outline(
                [a.view for a in self.accounts], self.keyhygiene_app.now(), by_account
            )
            self._show_outline()
            return
        if self.snapshot is None:
            return
        outline = build_outline(self.snapshot, self.keyhygiene_app.now())
        self.outline = annotate(outline, self.findings)
        self._show_outline()

    # ---- wizards --------------------------------------------------------------
    def _ready(self) -> bool:
        if self.snapshot is None or self.connection is None:
            self.notify("The account is still loading.")
            return False
        return True

    def _refresh_if_applied(self, report: object) -> None:
        """After a wizard: reload, so that what was just done is what the tree shows."""
        if report is not None:
            self.action_refresh_account()

    def action_rotate_key(self) -> None:
        from keyhygiene.ui.screens.rotate_screen import RotateScreen

        self.app.push_screen(RotateScreen(self.keyhygiene_app.options), self._refresh_if_applied)

    def action_schedule(self) -> None:
        from keyhygiene.audit.findings import DEFAULT_ROTATION_AGE_DAYS
        from keyhygiene.ui.screens.schedule_screen import ScheduleScreen

        user = self.snapshot.user(self.snapshot.this_user or "") if self.snapshot else None
        every = (user.rotate_every_days if user else None) or DEFAULT_ROTATION_AGE_DAYS
        profile = self.keyhygiene_app.options.profile_name
        demo = bool(getattr(self.app, "demo", False))
        self.app.push_screen(ScheduleScreen(profile, every, demo=demo))

    def action_enroll(self) -> None:
        if not self._ready():
            return
        from keyhygiene.ui.screens.enroll_screen import EnrollScreen

        assert self.snapshot is not None and self.connection is not None
        self.app.push_screen(EnrollScreen(self.snapshot, self.connection), self._refresh_if_applied)

    def action_membership(self, action: str) -> None:
        """Add to / remove from / lend to a group, from the device, group or member under the cursor."""
        if not self._ready():
            return
        from keyhygiene.ui.screens.membership_screen import MembershipScreen
        from keyhygiene.workflows.membership import MEMBERSHIP_ACTIONS

        chosen = next((a for a in MEMBERSHIP_ACTIONS if a == action), None)
        if chosen is None:
            return

        assert self.snapshot is not None and self.connection is not None
        user, group = self._cursor_user_and_group()
        self.app.push_screen(
            MembershipScreen(
                self.snapshot,
                self.connection,
                chosen,
                user=user,
                group=group,
                clock=self.keyhygiene_app.now,
            ),
            self._refresh_if_applied,
        )

    def _cursor_user_and_group(self) -> tuple[str | None, str | None]:
        node = self.query_one(AccountTree).cursor_node
        data = node.data if node else None
        if data is None:
            return None, None
        if data.kind in ("device", "user"):
            return data.ref, None
        if data.kind == "group":
            return None, data.ref
        if data.kind == "member" and node is not None and node.parent and node.parent.data:
            return data.ref, node.parent.data.ref
        return None, None

    def action_add_application(self) -> None:
        if not self._ready():
            return
        from keyhygiene.ui.screens.application_screen import ApplicationScreen

        assert self.snapshot is not None and self.connection is not None
        self.app.push_screen(
            ApplicationScreen(self.snapshot, self.connection), self._refresh_if_applied
        )

    # ---- findings ------------------------------------------------------------
    def action_findings(self) -> None:
        if self.snapshot is None:
            self.notify("The account is still loading.")
            return
        self.app.push_screen(FindingsScreen(self.findings), self._finding_chosen)

    def _finding_chosen(self, finding: Finding | None) -> None:
        if finding is None:
            return
        tree = self.query_one(AccountTree)
        resource = "" if finding.resource_kind == "local" else finding.resource
        within = None
        if self.accounts and finding.account:
            # The finding's own account: the same name may be in several.
            self._use_account(finding.account)
            within = self.snapshot.account_id if self.snapshot else None
        for kind in finding_node_kinds(finding.resource_kind):
            if kind == "account":
                ref = within or (self.outline.ref if self.outline else None)
            else:
                ref = resource
            if tree.select_ref(kind, ref, within=within):
                break
        tree.focus()
        self._offer_fix(finding)

    def _offer_fix(self, finding: Finding) -> None:
        """Open the fix when keyhygiene can carry it out; else say what to do."""
        from keyhygiene.audit.fixes import fix_for
        from keyhygiene.ui.screens.plan_screen import PlanScreen

        fix = None
        if self.snapshot is not None and self.connection is not None:
            try:
                fix = fix_for(self.snapshot, finding, self.keyhygiene_app.now())
            except KeyHygieneError as exc:
                self.notify(str(exc), title="The fix cannot be planned", severity="error")
                return
        if fix is None:
            self.notify(
                f"{finding.title}." + (f" Fix: {finding.fix}" if finding.fix else ""),
                title=f"{finding.severity}: {finding.resource}",
                timeout=8,
            )
        elif fix.kind == "rotate":
            self.action_rotate_key()
        elif fix.plan is not None and self.connection is not None:
            from keyhygiene.workflows.membership import SWEEP_KIND, close_sweep_journal

            plan = fix.plan

            def done(report: ApplyReport | None) -> None:
                # A sweep is forward only: never left open to resume or roll back.
                if report is not None and plan.kind == SWEEP_KIND:
                    close_sweep_journal(report)
                self._refresh_if_applied(report)

            self.app.push_screen(
                PlanScreen(
                    plan,
                    self.connection,
                    title=fix.label,
                    # Forward-only plans (no step has an undo) have nothing to roll back.
                    roll_back_on_failure=any(step.undo for step in plan.steps),
                ),
                done,
            )

    # ---- filter --------------------------------------------------------------
    def action_filter(self) -> None:
        field = self.query_one("#filter", Input)
        field.disabled = False
        field.display = True
        field.focus()

    def action_clear_filter(self) -> None:
        field = self.query_one("#filter", Input)
        if field.display:
            field.value = ""
            field.display = False
            field.disabled = True
            self._show_outline()
            self.query_one(AccountTree).focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self._show_outline()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        self.query_one(AccountTree).focus()

    def _show_outline(self) -> None:
        if self.outline is None:
            return
        field = self.query_one("#filter", Input)
        text = field.value if field.display else ""
        shown = filter_outline(self.outline, text) if text else self.outline
        tree = self.query_one(AccountTree)
        if shown is None or (text and not shown.children):
            tree.show_outline(OutlineNode(f"Nothing matches {text!r}", "account"))
            return
        tree.show_outline(shown, expand_all=bool(text))


def _settle_heap() -> None:
    """Move what exists now (Textual, botocore's models, a loaded snapshot:
    all kept for the app's life) out of the garbage collector's way.

    A full collection scans every tracked object, and a 5,000-user load
    allocates enough to trigger several; on the loading thread each one
    holds the GIL, and the app's thread stops answering keys for as long
    (measured on a large heap: 29-104 ms per collection, a 406 ms stall). Frozen
    objects are skipped by collections and still freed by reference
    counting when dropped (https://docs.python.org/3/library/gc.html#gc.freeze).
    """
    gc.freeze()
