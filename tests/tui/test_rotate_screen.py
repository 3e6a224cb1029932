"""RotateScreen: the plan, a live list of steps, the proof; two keys; an interrupted run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from moto import mock_aws
from textual.app import App
from textual.pilot import Pilot
from textual.widgets import Button, Checkbox, Static

from keyhygiene.aws.connection import ConnectionOptions
from keyhygiene.aws.held_key_clients import HeldKeyClients
from keyhygiene.aws.sessions import shared_loader
from keyhygiene.local import credentials_file, vault
from keyhygiene.ui.screens.rotate_screen import RotateScreen
from keyhygiene.ui.widgets.plan_view import PlanView
from keyhygiene.workflows import rotation
from keyhygiene.workflows.rotation import KeyLocation, RotationOutcome

USER = "christopher-laptop"
PROFILE = "laptop"
ARN = f"arn:aws:iam::123456789012:user/{USER}"


class SimulatedCrash(BaseException):
    pass


class Host(App[None]):
    def __init__(self, options: ConnectionOptions | None = None) -> None:
        super().__init__()
        self.result: object = "unset"
        self.options = options or ConnectionOptions(profile=PROFILE, region="us-east-1")

    def on_mount(self) -> None:
        screen = RotateScreen(
            self.options,
            verify_timeout=5,
            verify_interval=0,
            sleep=lambda seconds: None,
        )
        self.push_screen(screen, lambda outcome: setattr(self, "result", outcome))


@pytest.fixture
def iam(isolated_aws: Path) -> Iterator[Any]:
    vault.reset_memory_backend()
    rotation.forget_backups()
    with mock_aws():
        session = botocore.session.get_session()
        session.register_component("data_loader", shared_loader())
        client = session.create_client("iam", region_name="us-east-1")
        client.create_user(UserName=USER)
        key = client.create_access_key(UserName=USER)["AccessKey"]
        credentials = isolated_aws / ".aws" / "credentials"
        credentials.write_text(
            f"[{PROFILE}]\naws_access_key_id = {key['AccessKeyId']}\n"
            f"aws_secret_access_key = {key['SecretAccessKey']}\n"
        )
        os.chmod(credentials, 0o600)
        client.old_secret = key["SecretAccessKey"]
        yield client


def keys(iam: Any) -> dict[str, str]:
    listed = iam.list_access_keys(UserName=USER)["AccessKeyMetadata"]
    return {key["AccessKeyId"]: key["Status"] for key in listed}


def held() -> tuple[str, str]:
    values = credentials_file.read_profile(credentials_file.credentials_path(), PROFILE)
    return values.get("aws_access_key_id", ""), values.get("aws_secret_access_key", "")


async def settle(pilot: Pilot) -> None:
    for _ in range(3):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


def text_of(screen: RotateScreen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


async def rotate_and_close(pilot: Pilot, app: Host) -> RotationOutcome:
    screen = app.screen
    assert isinstance(screen, RotateScreen)
    await pilot.press("a")
    await settle(pilot)
    view = screen.query_one(PlanView)
    assert set(view.statuses.values()) == {"done"}, view.statuses
    result = text_of(screen, "#rotate-result")
    key_id, _ = held()
    assert f"New key: …{key_id[-4:]}" in result
    assert f"Who am I, asked with the new key: {ARN}" in result
    assert str(screen.query_one("#close", Button).label) == "Close"
    await pilot.press("escape")
    await pilot.pause()
    assert isinstance(app.result, RotationOutcome) and app.result.ok
    return app.result


async def test_rotate_shows_the_plan_runs_it_and_proves_the_new_key(iam: Any) -> None:
    app = Host()
    async with app.run_test(size=(140, 50)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, RotateScreen)
        assert ARN in text_of(screen, "#rotate-intro")
        view = screen.query_one(PlanView)
        assert len(view.plan.steps) == 6
        assert "Create a new access key" in str(view.query_one("#plan-step-0").render())
        assert not screen.query_one("#apply", Button).disabled
        # Choosing the keyring makes a new plan at once (plans are pure).
        screen.query_one("#rotate-keyring", Checkbox).value = True
        await pilot.pause()
        assert screen.query_one(PlanView).plan.step("write").call.params["store"] == "keyring"
        screen.query_one("#rotate-keyring", Checkbox).value = False
        await pilot.pause()
        assert screen.query_one(PlanView).plan.step("write").call.params["store"] == "file"

        await rotate_and_close(pilot, app)
        shot = app.export_screenshot()
    key_id, secret = held()
    assert keys(iam) == {key_id: "Active"}
    for hidden in (secret, iam.old_secret):
        assert hidden not in shot


async def test_a_second_active_key_needs_the_box_ticked(iam: Any) -> None:
    other = iam.create_access_key(UserName=USER)["AccessKey"]["AccessKeyId"]
    app = Host()
    async with app.run_test(size=(140, 50)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, RotateScreen)
        box = screen.query_one("#rotate-delete-other", Checkbox)
        assert box.display
        assert f"second active access key, {other}" in text_of(screen, "#rotate-result")
        assert screen.query_one("#apply", Button).disabled
        box.value = True
        await pilot.pause()
        plan = screen.query_one(PlanView).plan
        assert plan.steps[0].id == "delete-other"
        await rotate_and_close(pilot, app)
    assert keys(iam) == {held()[0]: "Active"}


async def test_a_rotation_running_elsewhere_is_reported_and_can_be_retried(iam: Any) -> None:
    app = Host()
    async with app.run_test(size=(140, 50)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, RotateScreen)
        with rotation.rotation_lock(PROFILE):  # say, a scheduled `keyhygiene rotate`
            await pilot.press("a")
            await settle(pilot)
        result = text_of(screen, "#rotate-result")
        assert f"Another rotation of profile '{PROFILE}' is running" in result
        assert "Nothing was changed" in result
        assert not screen.query_one("#apply", Button).disabled
        assert keys(iam) == {held()[0]: "Active"}
        await rotate_and_close(pilot, app)


@pytest.mark.parametrize(
    ("where", "button"), [("create", "Roll it back"), ("deactivate", "Finish it")]
)
async def test_an_interrupted_rotation_is_offered_first(
    iam: Any, monkeypatch: pytest.MonkeyPatch, where: str, button: str
) -> None:
    def die() -> None:
        raise SimulatedCrash(where)

    monkeypatch.setattr(rotation.crash_hook, "_die", die)
    monkeypatch.setenv(rotation.CRASH_ENV, where)
    monkeypatch.setenv(rotation.TESTING_ENV, "1")  # the hook is inert without it
    clients = HeldKeyClients(
        ConnectionOptions(profile=PROFILE, region="us-east-1"), KeyLocation.for_profile(PROFILE)
    )
    plan = rotation.plan_rotation(
        rotation.inspect_rotation(clients),
        rotation.RotationRequest(profile=PROFILE, verify_interval=0),
    )
    with pytest.raises(SimulatedCrash):
        rotation.execute_rotation(plan, clients)
    monkeypatch.delenv(rotation.CRASH_ENV)
    monkeypatch.delenv(rotation.TESTING_ENV)
    rotation.forget_backups()

    app = Host()
    async with app.run_test(size=(140, 50)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, RotateScreen)
        assert "An earlier rotation was interrupted" in text_of(screen, "#rotate-intro")
        assert str(screen.query_one("#apply", Button).label) == button
        await pilot.press("a")
        await settle(pilot)
        if where == "create":
            # Rolled back: a fresh plan comes, and the rotation can go on.
            assert "Rolled back the interrupted rotation" in text_of(screen, "#rotate-result")
            assert str(screen.query_one("#apply", Button).label) == "Rotate"
            await rotate_and_close(pilot, app)
        else:
            assert "Finished the interrupted rotation" in text_of(screen, "#rotate-result")
            await pilot.press("escape")
            await pilot.pause()
            assert isinstance(app.result, RotationOutcome) and app.result.ok
    assert keys(iam) == {held()[0]: "Active"}
    assert rotation.pending_rotations() == []


async def test_an_mfa_gated_computer_rotates_with_one_code_asked_in_a_dialog(iam: Any) -> None:
    from textual.widgets import Input

    from keyhygiene.aws import connection
    from keyhygiene.ui.app import KeyHygieneApp
    from keyhygiene.ui.screens.mfa_screen import MfaScreen

    serial = f"arn:aws:iam::123456789012:mfa/{USER}"
    credentials_file.set_config_values(
        credentials_file.config_path(), PROFILE, {"region": "us-east-1", "mfa_serial": serial}
    )
    connection.forget_mfa_sessions()
    app = Host()
    asked: list[str] = []

    def provider(profile: str, wanted: str) -> str:
        asked.append(wanted)
        return KeyHygieneApp.ask_mfa_code(app, profile, wanted)  # type: ignore[arg-type]

    connection.set_mfa_code_provider(provider)
    try:
        async with app.run_test(size=(140, 50)) as pilot:
            for _ in range(100):
                await pilot.pause(0.05)
                if isinstance(app.screen, MfaScreen):
                    break
            await pilot.pause()  # the dialog's widgets mount after it is pushed
            dialog = app.screen
            assert isinstance(dialog, MfaScreen) and dialog.serial == serial
            dialog.query_one("#mfa-code", Input).value = "123456"
            await pilot.press("enter")
            await settle(pilot)
            await rotate_and_close(pilot, app)
    finally:
        connection.set_mfa_code_provider(None)
        connection.forget_mfa_sessions()
    assert asked == [serial]  # one code for the whole rotation
    key_id, _ = held()
    assert keys(iam) == {key_id: "Active"}


async def test_keys_in_the_environment_are_refused_before_any_call(
    iam: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No --profile and AWS_ACCESS_KEY_ID set: botocore signs with the shell's
    key, which a rotation of the profile would not replace."""
    monkeypatch.setenv("AWS_PROFILE", PROFILE)
    before = keys(iam)
    app = Host(ConnectionOptions(region="us-east-1"))
    async with app.run_test(size=(140, 50)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, RotateScreen)
        result = text_of(screen, "#rotate-result")
        assert "AWS_ACCESS_KEY_ID" in result and "--profile" in result
        assert screen.query_one("#apply", Button).disabled
    assert keys(iam) == before
