"""The TUI asks an MFA profile's code in a dialog, once, from the loading worker."""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import SimpleNamespace

import boto3
import pytest
from moto import mock_aws
from textual.pilot import Pilot
from textual.widgets import Input

from keyhygiene.aws import inventory
from keyhygiene.aws.connection import ConnectionOptions, forget_mfa_sessions, set_mfa_code_provider
from keyhygiene.local import credentials_file
from keyhygiene.ui.app import make_app
from keyhygiene.ui.screens.main_screen import MainScreen
from keyhygiene.ui.screens.mfa_screen import MfaScreen

SERIAL = "arn:aws:iam::123456789012:mfa/admin"
# moto answers GetCallerIdentity for a GetSessionToken key with its default user.
MOTO_SESSION_ARN = "arn:aws:sts::123456789012:user/moto"


@pytest.fixture
def mfa_profile(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(
        inventory, "time", SimpleNamespace(monotonic=time.monotonic, sleep=lambda _s: None)
    )
    forget_mfa_sessions()
    with mock_aws():
        iam = boto3.client("iam", region_name="us-east-1")
        iam.create_user(UserName="admin")
        key = iam.create_access_key(UserName="admin")["AccessKey"]
        credentials_file.set_access_key(
            credentials_file.credentials_path(), "admin", key["AccessKeyId"], key["SecretAccessKey"]
        )
        credentials_file.set_config_values(
            credentials_file.config_path(), "admin", {"mfa_serial": SERIAL}
        )
        yield
    forget_mfa_sessions()
    set_mfa_code_provider(None)


async def wait_for(pilot: Pilot, condition: object, timeout: float = 20) -> None:
    waited = 0.0
    while not condition() and waited < timeout:  # type: ignore[operator]
        await pilot.pause(0.1)
        waited += 0.1


async def test_the_code_is_asked_in_a_dialog_and_the_account_loads(mfa_profile: None) -> None:
    app = make_app(ConnectionOptions(profile="admin"))
    async with app.run_test(size=(120, 40)) as pilot:
        # Wait until the dialog is on screen and composed (pushed from a worker thread).
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, MfaScreen) and bool(app.screen.query("#mfa-code")),
        )
        await pilot.pause()  # let the dialog focus its field
        assert isinstance(app.screen, MfaScreen)
        code = app.screen.query_one("#mfa-code", Input)
        assert code.password
        await pilot.press(*"123456", "enter")
        main = next(s for s in app.screen_stack if isinstance(s, MainScreen))
        await wait_for(pilot, lambda: main.snapshot is not None)
        assert main.snapshot is not None and main.snapshot.caller_arn == MOTO_SESSION_ARN
        assert not isinstance(app.screen, MfaScreen)


async def test_cancelling_the_dialog_reports_the_problem(mfa_profile: None) -> None:
    app = make_app(ConnectionOptions(profile="admin"))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, MfaScreen) and bool(app.screen.query("#mfa-code")),
        )
        await pilot.press("escape")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause(0.2)
        main = next(s for s in app.screen_stack if isinstance(s, MainScreen))
        assert main.snapshot is None
