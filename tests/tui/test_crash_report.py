"""A crash report must not print local variables: a frame may hold a secret."""

from __future__ import annotations

import io

from rich.console import Console
from textual.app import App

from keyhygiene.aws.connection import ConnectionOptions
from keyhygiene.ui.app import KeyHygieneApp, make_app

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def test_textual_still_has_the_hook_we_override() -> None:
    assert hasattr(App, "_fatal_error")
    assert KeyHygieneApp._fatal_error is not App._fatal_error


def test_crash_report_has_no_locals() -> None:
    app = make_app(ConnectionOptions())
    app.console = Console(file=io.StringIO(), width=100)
    app._close_messages_no_wait = lambda: None  # type: ignore[method-assign]

    def fails_holding_a_secret(secret_access_key: str) -> None:
        raise RuntimeError("boom")

    try:
        fails_holding_a_secret(SECRET)
    except RuntimeError:
        app._fatal_error()
    rendered = "".join(
        segment.text for renderable in app._exit_renderables for segment in renderable.segments
    )
    assert "RuntimeError" in rendered and "boom" in rendered
    assert SECRET not in rendered
