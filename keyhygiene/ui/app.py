"""The keyhygiene App: parses nothing, holds the connection options, pushes the main screen."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from keyhygiene.audit.findings import Finding
from keyhygiene.core.errors import ConnectionProblem
from keyhygiene.core.model import Snapshot
from keyhygiene.core.options import ConnectionOptions
from keyhygiene.demo.server import DemoProcess

if TYPE_CHECKING:
    from keyhygiene.aws.accounts import LoadedAccount
    from keyhygiene.aws.connection import Connection
    from keyhygiene.core.accounts import AccountSpec
    from keyhygiene.steps.mfa_device import NewMfaDevice

Progress = Callable[[str], None]


class KeyHygieneApp(App[int]):
    CSS_PATH = Path(__file__).with_name("app.tcss")
    # Below 110 columns the details pane goes under the tree instead of beside it.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    TITLE = "keyhygiene"
    BINDINGS = [
        Binding(
            "ctrl+r",
            "revoke",
            "Revoke!",
            tooltip="Emergency: cut a lost or stolen computer out of the account",
            priority=True,  # one key away from anywhere, even from inside a form
        ),
        Binding(
            "question_mark", "toggle_help", "Keys", tooltip="Show or hide the keys of this screen"
        ),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(
        self,
        options: ConnectionOptions,
        *,
        demo: bool = False,
        clock: Callable[[], datetime] | None = None,
        accounts: list[AccountSpec] | None = None,
    ) -> None:
        super().__init__()
        self.options = options
        self.accounts = accounts if accounts and len(accounts) > 1 else None
        self.demo = demo
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self._demo_process: DemoProcess | None = None
        self.sub_title = (
            "DEMO account (local moto server, sandbox files)"
            if demo
            else ", ".join(spec.name for spec in self.accounts)
            if self.accounts
            else options.profile_name
        )

    def on_mount(self) -> None:
        from keyhygiene.aws import connection
        from keyhygiene.local import credentials_file
        from keyhygiene.ui.screens.main_screen import MainScreen

        # An edit of the credentials file waiting on another keyhygiene's lock
        # says so in a notification (edits run in worker threads).
        credentials_file.tuning.lock_wait_notice = self._notify_wait
        connection.mfa_wait_notice = self._notify_wait
        if self.demo:
            self._demo_process = DemoProcess()
            self._demo_process.start()
        self.push_screen(MainScreen())

    def _notify_wait(self, text: str) -> None:
        try:
            self.call_from_thread(self.notify, text, severity="warning")
        except RuntimeError:  # called on the app's own thread
            self.notify(text, severity="warning")

    def ask_mfa_device_codes(self, device: NewMfaDevice) -> tuple[str, str]:
        """Show a new MFA device and get its two codes; called by a plan's worker thread."""
        from keyhygiene.ui.screens.mfa_device_screen import MfaDeviceScreen

        answered = threading.Event()
        answer: list[tuple[str, str] | None] = [None]

        def done(codes: tuple[str, str] | None) -> None:
            answer[0] = codes
            answered.set()

        try:
            self.call_from_thread(self.push_screen, MfaDeviceScreen(device, demo=self.demo), done)
        except RuntimeError:
            return "", ""  # the step then fails and the device is deleted
        while not answered.wait(0.5):
            if not self.is_running:
                break
        return answer[0] or ("", "")

    def ask_mfa_code(self, profile: str, serial: str) -> str:
        """The MFA code, asked in a dialog; called by a Connection from a worker thread."""
        from keyhygiene.ui.screens.mfa_screen import MfaScreen

        answered = threading.Event()
        answer: list[str | None] = [None]

        def done(code: str | None) -> None:
            answer[0] = code
            answered.set()

        try:
            self.call_from_thread(self.push_screen, MfaScreen(profile, serial), done)
        except RuntimeError:
            # On the app's own thread (waiting would block the loop that shows
            # the dialog), or the app is gone.
            raise ConnectionProblem(
                f"The profile {profile} requires MFA (mfa_serial {serial}) and it cannot be "
                "asked now."
            ) from None
        while not answered.wait(0.5):
            if not self.is_running:
                break
        if not answer[0]:
            raise ConnectionProblem(f"No MFA code was given for the profile {profile}.")
        return answer[0]

    def now(self) -> datetime:
        """The time ages and countdowns are measured from (fixed in snapshot tests)."""
        return self._clock()

    def wait_for_demo(self, progress: Progress) -> None:
        """Called from a worker: block until the demo server is seeded."""
        if self._demo_process is None or self._demo_process.info is not None:
            return
        from keyhygiene.demo.server import enter_demo_environment

        progress("Starting the demo account (a local moto server)")
        info = self._demo_process.wait_ready()
        enter_demo_environment(info)
        self.options = ConnectionOptions(
            profile=info.profile, region=info.region, endpoint_url=info.endpoint_url
        )

    def load_account(self, *, on_progress: Progress) -> tuple[Snapshot, Connection]:
        # Imported here, in the loading worker: boto3 takes ~0.2 s to import,
        # which the first frame does not wait for.
        from keyhygiene.aws.connection import set_mfa_code_provider
        from keyhygiene.aws.inventory import load_account
        from keyhygiene.steps.mfa_device import set_mfa_device_prompt

        set_mfa_code_provider(self.ask_mfa_code)
        set_mfa_device_prompt(self.ask_mfa_device_codes)
        return load_account(self.options, on_progress=on_progress)

    def load_accounts(self, *, on_progress: Progress) -> list[LoadedAccount]:
        """Every account at once (keyhygiene.aws.accounts); progress names the account."""
        from keyhygiene.aws.accounts import load_accounts
        from keyhygiene.aws.connection import set_mfa_code_provider
        from keyhygiene.steps.mfa_device import set_mfa_device_prompt

        set_mfa_code_provider(self.ask_mfa_code)
        set_mfa_device_prompt(self.ask_mfa_device_codes)
        return load_accounts(
            self.accounts or [], on_progress=lambda name, what: on_progress(f"{name}: {what}")
        )

    def audit_accounts(self, loaded: list[LoadedAccount]) -> list[Finding]:
        """Each account's findings (marked with its name) and the cross-account ones."""
        from keyhygiene.audit.across_accounts import run_accounts_audit

        return run_accounts_audit([item.view for item in loaded], now=self.now())

    def audit(self, snapshot: Snapshot) -> list[Finding]:
        """The account's findings and this computer's (called from a worker)."""
        from keyhygiene.audit.local_checks import run_local_audit
        from keyhygiene.audit.runner import run_audit

        findings = run_audit(snapshot, now=self.now())
        # The demo's computer is its sandbox: never audit the real home's files for it.
        home = Path(os.environ["AWS_SHARED_CREDENTIALS_FILE"]).parent if self.demo else None
        findings += run_local_audit(snapshot, profile=self.options.profile, home=home)
        return findings

    def action_toggle_help(self) -> None:
        from textual.widgets import HelpPanel

        if self.screen.query(HelpPanel):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    def action_revoke(self) -> None:
        """The emergency revoke screen, from anywhere, on the loaded account."""
        from keyhygiene.ui.screens.main_screen import MainScreen
        from keyhygiene.ui.screens.revoke_screen import RevokeScreen

        main = next((s for s in self.screen_stack if isinstance(s, MainScreen)), None)
        if main is None or main.snapshot is None or main.connection is None:
            self.notify("The account is still loading; try again in a moment.", severity="warning")
            return
        if isinstance(self.screen, RevokeScreen):
            return
        self.push_screen(RevokeScreen(main.snapshot, main.connection), main._refresh_if_applied)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand(
            "Emergency revoke of a lost or stolen computer",
            "Deactivate its keys, deny everything, then undo its groups and whitelists",
            self.action_revoke,
        )
        if hasattr(screen, "action_refresh_account"):
            yield SystemCommand(
                "Refresh the account", "Load the account again", screen.action_refresh_account
            )
        if hasattr(screen, "action_rotate_key"):
            yield SystemCommand(
                "Rotate this computer's key",
                "New key straight into ~/.aws/credentials, verified, old key removed",
                screen.action_rotate_key,
            )
        if hasattr(screen, "action_schedule"):
            yield SystemCommand(
                "Schedule this computer's key rotation",
                "A daily per-user timer (systemd, launchd, Task Scheduler, cron) rotates it when due",
                screen.action_schedule,
            )
        if hasattr(screen, "action_enroll"):
            yield SystemCommand(
                "Register this computer",
                "One-time enrollment: user, groups, whitelists, key in ~/.aws/credentials",
                screen.action_enroll,
            )
        if hasattr(screen, "action_membership"):
            for action, name, help_text in (
                ("add", "Add to group", "Add the selected computer to a group, for good"),
                ("remove", "Remove from group", "Take the selected computer out of a group"),
                ("lend", "Lend to group…", "Add a computer to a group for a limited time"),
            ):
                yield SystemCommand(
                    name, help_text, lambda action=action: screen.action_membership(action)
                )
        if hasattr(screen, "action_add_application"):
            yield SystemCommand(
                "Add an application",
                "One group, EC2 role, KMS key and buckets, whitelisted and encrypted",
                screen.action_add_application,
            )
        if hasattr(screen, "action_findings"):
            yield SystemCommand(
                "Audit findings", "Every departure from the practice", screen.action_findings
            )
        if hasattr(screen, "action_filter"):
            yield SystemCommand("Filter the tree", "Show only matching nodes", screen.action_filter)

    def _fatal_error(self) -> None:
        """Textual's crash report prints every frame's local variables, and a
        frame may hold a secret access key: print the traceback without them.
        (Overrides a private Textual 8.2 method; a test pins that it exists.)"""
        import rich
        from rich.segment import Segments
        from rich.traceback import Traceback

        self.bell()
        traceback = Traceback(show_locals=False, width=None, suppress=[rich])
        self._exit_renderables.append(
            Segments(self.console.render(traceback, self.console.options))
        )
        self._close_messages_no_wait()

    def on_unmount(self) -> None:
        connection = sys.modules.get("keyhygiene.aws.connection")
        if connection is not None:
            connection.set_mfa_code_provider(None)
        enrolling = sys.modules.get("keyhygiene.steps.mfa_device")
        if enrolling is not None:
            enrolling.set_mfa_device_prompt(None)
        if self._demo_process is not None:
            self._demo_process.stop()


def make_app(
    options: ConnectionOptions,
    *,
    demo: bool = False,
    accounts: list[AccountSpec] | None = None,
) -> KeyHygieneApp:
    """The one app factory, used by the command line and the tests."""
    return KeyHygieneApp(options, demo=demo, accounts=accounts)
