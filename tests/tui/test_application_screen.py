"""The "Add an application" wizard, driven with Pilot against moto in-process."""

from __future__ import annotations

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
from keyhygiene.core.model import TAG_DEVICE, TAG_GROUPS, TAG_HOSTNAME, TAG_PERSON
from keyhygiene.plans import ApplyReport
from keyhygiene.ui.screens.application_screen import ApplicationScreen, split_names
from keyhygiene.ui.screens.plan_screen import PlanScreen

REGION = "us-east-1"


class Host(App[None]):
    def __init__(self, conn: Connection) -> None:
        super().__init__()
        self.conn = conn
        self.result: object = "unset"

    def on_mount(self) -> None:
        screen = ApplicationScreen(load_snapshot(self.conn), self.conn)
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
        for device in ("laptop", "phone"):
            iam.create_user(
                UserName=f"alice-{device}",
                Tags=[
                    {"Key": TAG_PERSON, "Value": "alice"},
                    {"Key": TAG_DEVICE, "Value": device},
                    {"Key": TAG_HOSTNAME, "Value": f"alice-{device}-host"},
                ],
            )
        boto3.client("s3", region_name=REGION).create_bucket(Bucket="old-photos")
        yield Connection(ConnectionOptions(region=REGION))


async def fill(pilot: Pilot, name: str, new_buckets: str = "") -> ApplicationScreen:
    screen = pilot.app.screen
    assert isinstance(screen, ApplicationScreen)
    screen.query_one("#app-name", Input).value = name
    screen.query_one("#app-new-buckets", Input).value = new_buckets
    await pilot.pause()
    return screen


async def review(pilot: Pilot) -> None:
    await pilot.press("ctrl+s")
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def test_the_wizard_creates_the_application(conn: Connection) -> None:
    app = Host(conn)
    async with app.run_test(size=(120, 45)) as pilot:
        screen = await fill(pilot, "photos", "photos-data")
        screen.query_one("#app-buckets", SelectionList).select("old-photos")
        members = screen.query_one("#app-members", SelectionList)
        members.select("alice-laptop")
        await review(pilot)

        plan_screen = app.screen
        assert isinstance(plan_screen, PlanScreen)
        ids = [step.id for step in plan_screen.plan.steps]
        assert "group" in ids and "member-1" in ids and "key" in ids
        # old-photos is adopted (no create step), photos-data is created.
        assert "bucket-1-create" not in ids and "bucket-2-create" in ids

        await pilot.press("a")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert plan_screen.report is not None and plan_screen.report.ok
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.result, ApplyReport) and app.result.ok

    iam = boto3.client("iam", region_name=REGION)
    s3 = boto3.client("s3", region_name=REGION)
    assert [u["UserName"] for u in iam.get_group(GroupName="photos")["Users"]] == ["alice-laptop"]
    for bucket in ("old-photos", "photos-data"):
        tags = s3.get_bucket_tagging(Bucket=bucket)["TagSet"]
        assert tags == [{"Key": TAG_GROUPS, "Value": "photos"}]


async def test_bad_input_is_explained_and_nothing_is_planned(conn: Connection) -> None:
    app = Host(conn)
    async with app.run_test(size=(120, 45)) as pilot:
        screen = await fill(pilot, "my photos")
        await review(pilot)
        assert app.screen is screen
        message = screen.query_one("#app-message", Static)
        assert "not a valid IAM name" in str(message.render())
        assert message.has_class("error")

        await fill(pilot, "photos", "Bad_Bucket")
        await review(pilot)
        assert app.screen is screen
        assert "not a valid name for a new bucket" in str(message.render())


async def test_cancelling_the_plan_returns_to_the_wizard(conn: Connection) -> None:
    app = Host(conn)
    async with app.run_test(size=(120, 45)) as pilot:
        screen = await fill(pilot, "photos")
        await review(pilot)
        assert isinstance(app.screen, PlanScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen
        await pilot.press("escape")
        await pilot.pause()
    assert app.result is None
    assert boto3.client("iam", region_name=REGION).list_groups()["Groups"] == []


async def test_devices_are_listed_with_their_host_names(conn: Connection) -> None:
    app = Host(conn)
    async with app.run_test(size=(120, 45)) as pilot:
        screen = app.screen
        await pilot.pause()
        members = screen.query_one("#app-members", SelectionList)
        prompts = [str(members.get_option_at_index(i).prompt) for i in range(members.option_count)]
        assert prompts == ["alice-laptop  (alice-laptop-host)", "alice-phone  (alice-phone-host)"]


def test_split_names() -> None:
    assert split_names(" a-b, c-d  a-b,,e ") == ["a-b", "c-d", "e"]
