"""A new MFA device, shown once: its QR code and secret, and the two codes that confirm it."""

from __future__ import annotations

import re

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from keyhygiene.core.mfa_devices import grouped_seed, otpauth_uri, qr_lines, totp
from keyhygiene.steps.mfa_device import NewMfaDevice

_CODE = re.compile(r"^\d{6}$")


class MfaDeviceScreen(ModalScreen[tuple[str, str] | None]):
    """Dismisses with two consecutive codes, or None when the person cancels
    (the enrollment then rolls back and the device is deleted)."""

    DEFAULT_CSS = """
    MfaDeviceScreen { align: center middle; }
    MfaDeviceScreen > Vertical {
        width: 80; height: 90%; background: $surface; border: thick $primary; padding: 0 1;
    }
    MfaDeviceScreen VerticalScroll { height: 1fr; }
    MfaDeviceScreen #mfa-qr { width: auto; background: black; color: white; }
    MfaDeviceScreen Input { width: 20; }
    MfaDeviceScreen #mfa-buttons { height: auto; align-horizontal: right; }
    MfaDeviceScreen Button { margin-left: 2; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    AUTO_FOCUS = "#mfa-1"

    def __init__(self, device: NewMfaDevice, *, demo: bool = False) -> None:
        super().__init__()
        self.device = device
        self.demo = demo

    def compose(self) -> ComposeResult:
        device = self.device
        with Vertical():
            yield Static(
                f"[b]The MFA device of {device.user_name}[/b]: scan the QR code with your "
                "authenticator app. It is shown once, here only."
            )
            with VerticalScroll():
                yield Static(
                    "\n".join(
                        qr_lines(
                            otpauth_uri(device.seed.reveal(), device.user_name, device.account_id)
                        )
                    ),
                    id="mfa-qr",
                    markup=False,
                )
                yield Static(
                    f"Or type the secret into the app: {grouped_seed(device.seed.reveal())}",
                    markup=False,
                )
                if self.demo:
                    # moto's device: no app can hold it, so the demo shows its codes.
                    yield Static(
                        f"Demo: the codes are {totp(device.seed.reveal())} now and "
                        f"{totp(device.seed.reveal(), _next_window())} next.",
                        markup=False,
                    )
                yield Static("The code your app shows now, then the next one (about 30 s later):")
                with Horizontal():
                    yield Input(placeholder="123456", max_length=6, restrict=r"\d*", id="mfa-1")
                    yield Input(placeholder="654321", max_length=6, restrict=r"\d*", id="mfa-2")
            with Horizontal(id="mfa-buttons"):
                yield Button("Confirm", variant="primary", id="ok")
                yield Button("Cancel", id="cancel")

    @on(Input.Submitted, "#mfa-1")
    def _next(self) -> None:
        self.query_one("#mfa-2", Input).focus()

    @on(Input.Submitted, "#mfa-2")
    @on(Button.Pressed, "#ok")
    def _submit(self) -> None:
        first = self.query_one("#mfa-1", Input).value.strip()
        second = self.query_one("#mfa-2", Input).value.strip()
        if not (_CODE.match(first) and _CODE.match(second)) or first == second:
            self.notify(
                "Two different 6-digit codes: the one now and the next.", severity="warning"
            )
            return
        self.dismiss((first, second))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


def _next_window() -> float:
    import time

    return time.time() + 30
