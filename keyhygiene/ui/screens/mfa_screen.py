"""Ask the 6-digit MFA code of a profile whose config has `mfa_serial`."""

from __future__ import annotations

import re

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.validation import Regex
from textual.widgets import Button, Input, Static

_CODE = re.compile(r"^\d{6}$")


class MfaScreen(ModalScreen[str | None]):
    """Dismisses with the code, or None when the person cancels."""

    DEFAULT_CSS = """
    MfaScreen { align: center middle; }
    MfaScreen > Vertical {
        width: 64; height: auto; background: $surface; border: thick $primary; padding: 1 2;
    }
    MfaScreen #mfa-code { width: 16; margin-top: 1; }
    MfaScreen #mfa-buttons { height: auto; align-horizontal: right; margin-top: 1; }
    MfaScreen Button { margin-left: 2; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    AUTO_FOCUS = "#mfa-code"

    def __init__(self, profile: str, serial: str) -> None:
        super().__init__()
        self.profile = profile
        self.serial = serial

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(
                f"The profile {self.profile} requires MFA.\n"
                f"Type the 6 digits your device {self.serial} shows now.",
                markup=False,
            )
            yield Input(
                placeholder="123456",
                password=True,
                max_length=6,
                restrict=r"\d*",
                validators=[Regex(_CODE.pattern, failure_description="6 digits")],
                id="mfa-code",
            )
            with Horizontal(id="mfa-buttons"):
                yield Button("OK", variant="primary", id="ok")
                yield Button("Cancel", id="cancel")

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    def _submit(self) -> None:
        code = self.query_one("#mfa-code", Input).value.strip()
        if _CODE.match(code):
            self.dismiss(code)
        else:
            self.notify("An MFA code is 6 digits.", severity="warning")

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
