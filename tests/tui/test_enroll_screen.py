"""The "Register this computer" wizard, driven with Pilot against moto in-process."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from types import SimpleNamespace

import boto3
import pytest
from helpers import act_as_new_admin
from moto import mock_aws
from textual.app import App
from textual.pilot import Pilot
from textual.widgets import Input, SelectionList, Static

from keyhygiene.aws import inventory
from keyhygiene.aws.connection import Connection, ConnectionOptions
from keyhygiene.aws.inventory import load_snapshot
from keyhygiene.core.model import DEVICES_GROUP, TAG_GROUPS
from keyhygiene.core.policy_documents import whitelisted_principals
from keyhygiene.local import credentials_file
from keyhygiene.plans import ApplyReport
from keyhygiene.ui.screens.enroll_screen import EnrollScreen
from keyhygiene.ui.screens.plan_screen import PlanScreen

REGION = "us-east-1"
ALICE = "arn:aws:iam::123456789012:user/alice-laptop"


class Host(App[None]):
    def __init__(self, conn: Connection) -> None:
        super().__init__()
        self.conn = conn
        self.result: object = "unset"

    def on_mount(self) -> None:
        screen = EnrollScreen(load_snapshot(self.conn), self.conn, hostname="alices-mbp.local")
        self.push_screen(screen, lambda report: setattr(self, "result", report))


@pytest.fixture
def conn(monkeypatch: pytest.MonkeyPatch) -> Iterator[Connection]:
    # moto answers STARTED to the first credential report request: skip the wait.
    monkeypatch.setattr(
        inventory, "time", SimpleNamespace(monotonic=time.monotonic, sleep=lambda _s: None)
    )
    with mock_aws():
        iam = boto3.client("iam", region_name=REGION)
        act_as_new_admin(iam, monkeypatch)
        for group in ("photos", "music"):
            iam.create_group(GroupName=group)
        iam.create_user(UserName="bob-phone")
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket="photos-data")
        s3.put_bucket_tagging(
            Bucket="photos-data", Tagging={"TagSet": [{"Key": TAG_GROUPS, "Value": "photos"}]}
        )
        yield Connection(ConnectionOptions(region=REGION))


async def fill(pilot: Pilot, person: str, device: str | None = None) -> EnrollScreen:
    screen = pilot.app.screen
    assert isinstance(screen, EnrollScreen)
    screen.query_one("#enroll-person", Input).value = person
    if device is not None:
        screen.query_one("#enroll-device", Input).value = device
    await pilot.pause()
    return screen


async def settle(pilot: Pilot) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def message(screen: EnrollScreen) -> str:
    return str(screen.query_one("#enroll-message", Static).render())


async def test_the_wizard_registers_this_computer(conn: Connection) -> None:
    app = Host(conn)
    async with app.run_test(size=(120, 45)) as pilot:
        screen = await fill(pilot, "alice")
        # The device defaults to the host name's slug; the preview follows the form.
        assert screen.query_one("#enroll-device", Input).value == "alices-mbp"
        await fill(pilot, "alice", "laptop")
        assert "User alice-laptop, key in the profile alice-laptop" in str(
            screen.query_one("#enroll-preview", Static).render()
        )
        groups = screen.query_one("#enroll-groups", SelectionList)
        assert DEVICES_GROUP not in [groups.get_option_at_index(i).value for i in range(2)]
        groups.select("photos")
        await pilot.press("ctrl+s")
        await settle(pilot)
        plan_screen = app.screen
        assert isinstance(plan_screen, PlanScreen)
        assert plan_screen.plan.title == "Register this computer as alice-laptop"
        await pilot.press("a")
        await settle(pilot)
        assert plan_screen.report is not None and plan_screen.report.ok
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen
        assert "This computer is registered" in message(screen)
        secret = credentials_file.read_profile(credentials_file.credentials_path(), "alice-laptop")[
            "aws_secret_access_key"
        ]
        assert secret not in message(screen)
        await pilot.press("escape")
        await pilot.pause()
    assert isinstance(app.result, ApplyReport) and app.result.ok
    iam = boto3.client("iam", region_name=REGION)
    groups_of = iam.list_groups_for_user(UserName="alice-laptop")["Groups"]
    assert {g["GroupName"] for g in groups_of} == {"photos", DEVICES_GROUP}
    tags = {t["Key"]: t["Value"] for t in iam.get_user(UserName="alice-laptop")["User"]["Tags"]}
    assert tags["keyhygiene:hostname"] == "alices-mbp.local"
    policy = boto3.client("s3", region_name=REGION).get_bucket_policy(Bucket="photos-data")
    assert ALICE in whitelisted_principals(json.loads(policy["Policy"]))


async def test_bad_input_is_shown_and_nothing_planned(conn: Connection) -> None:
    app = Host(conn)
    async with app.run_test(size=(120, 45)) as pilot:
        screen = await fill(pilot, "alice-smith", "laptop")
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.screen is screen
        assert "no dash" in message(screen)
        await fill(pilot, "bob", "phone")
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.screen is screen and "bob-phone exists already" in message(screen)
        await pilot.press("escape")
        await pilot.pause()
    assert app.result is None
    assert [u["UserName"] for u in boto3.client("iam").list_users()["Users"]] == [
        "admin",
        "bob-phone",
    ]


async def test_cancelling_the_plan_returns_to_the_form(conn: Connection) -> None:
    app = Host(conn)
    async with app.run_test(size=(120, 45)) as pilot:
        screen = await fill(pilot, "alice", "laptop")
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, PlanScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen and screen.report is None
        assert not screen.query_one("#review").disabled


async def test_a_computer_already_registered_is_warned_about(conn: Connection) -> None:
    from dataclasses import replace as _replace

    boto3.client("iam", region_name=REGION).create_user(
        UserName="alice-laptop",
        Tags=[
            {"Key": "keyhygiene:person", "Value": "alice"},
            {"Key": "keyhygiene:device", "Value": "laptop"},
            {"Key": "keyhygiene:hostname", "Value": "alices-mbp.local"},
        ],
    )

    class Registered(App[None]):
        # Not a Host subclass: Textual would run Host.on_mount too.
        def __init__(self, conn: Connection) -> None:
            super().__init__()
            self.conn = conn

        def on_mount(self) -> None:
            snapshot = _replace(load_snapshot(self.conn), this_user="alice-laptop")
            self.push_screen(EnrollScreen(snapshot, self.conn, hostname="alices-mbp.local"))

    app = Registered(conn)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        warning = str(app.screen.query_one("#enroll-warning", Static).render())
        assert "already works as alice-laptop" in warning
        # The only person in the account is proposed.
        assert app.screen.query_one("#enroll-person", Input).value == "alice"


async def test_an_mfa_gated_computer_confirms_its_device_in_a_dialog(conn: Connection) -> None:
    from textual.widgets import Select

    from keyhygiene.core.mfa_devices import MFA_GROUP, totp
    from keyhygiene.steps.mfa_device import set_mfa_device_prompt
    from keyhygiene.ui.app import KeyHygieneApp
    from keyhygiene.ui.screens.mfa_device_screen import MfaDeviceScreen

    app = Host(conn)
    app.demo = False  # type: ignore[attr-defined]
    set_mfa_device_prompt(lambda device: KeyHygieneApp.ask_mfa_device_codes(app, device))  # type: ignore[arg-type]
    try:
        async with app.run_test(size=(120, 45)) as pilot:
            screen = await fill(pilot, "alice", "laptop")
            screen.query_one("#enroll-mfa", Select).value = "on"
            await pilot.press("ctrl+s")
            await settle(pilot)
            plan_screen = app.screen
            assert isinstance(plan_screen, PlanScreen)
            assert "mfa-device" in [step.id for step in plan_screen.plan.steps]
            await pilot.press("a")
            for _ in range(100):
                await pilot.pause(0.05)
                if isinstance(app.screen, MfaDeviceScreen):
                    break
            await pilot.pause()  # the dialog's widgets mount after it is pushed
            dialog = app.screen
            assert isinstance(dialog, MfaDeviceScreen)
            shown = "\n".join(str(w.render()) for w in dialog.query(Static))
            seed = dialog.device.seed.reveal()
            assert seed not in shown  # grouped by four, never in one piece
            assert seed[:4] in shown and "▀" in shown  # the secret and the QR code
            now = time.time()
            dialog.query_one("#mfa-1", Input).value = totp(seed, now)
            dialog.query_one("#mfa-2", Input).value = totp(seed, now + 30)
            await pilot.click("#ok")
            await settle(pilot)
            assert plan_screen.report is not None and plan_screen.report.ok
    finally:
        set_mfa_device_prompt(None)
    iam = boto3.client("iam", region_name=REGION)
    assert iam.list_mfa_devices(UserName="alice-laptop")["MFADevices"]
    groups_of = {
        g["GroupName"] for g in iam.list_groups_for_user(UserName="alice-laptop")["Groups"]
    }
    assert MFA_GROUP in groups_of


async def test_a_strict_computer_plans_its_key_into_the_keyring(
    conn: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The tests' memory keyring: allowed here, refused for real use.
    monkeypatch.setenv("KEYHYGIENE_INSECURE_KEYRING", "1")
    from textual.widgets import Select

    from keyhygiene.core.mfa_devices import STRICT_GROUP

    app = Host(conn)
    async with app.run_test(size=(120, 45)) as pilot:
        screen = await fill(pilot, "alice", "laptop")
        screen.query_one("#enroll-mfa", Select).value = "strict"
        await pilot.press("ctrl+s")
        await settle(pilot)
        plan_screen = app.screen
        assert isinstance(plan_screen, PlanScreen)
        ids = [step.id for step in plan_screen.plan.steps]
        assert f"join.{STRICT_GROUP}" in ids and "mfa-device" in ids
        assert "store-key" in ids and "write-credentials" not in ids
        assert any(w.startswith("Strict:") for w in plan_screen.plan.warnings)
