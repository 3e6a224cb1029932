"""The emergency revoke screen, driven with Pilot against moto in-process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from helpers import act_as_new_admin
from moto import mock_aws
from textual.app import App
from textual.pilot import Pilot
from textual.widgets import Button, Input, OptionList, Static

from keyhygiene.aws.connection import Connection, ConnectionOptions
from keyhygiene.aws.inventory import load_snapshot
from keyhygiene.core.model import REVOKED_POLICY_NAME, TAG_DEVICE, TAG_HOSTNAME, TAG_PERSON
from keyhygiene.core.policy_documents import bucket_policy_with_whitelist, whitelisted_principals
from keyhygiene.ui.screens.revoke_screen import RevokeScreen, matching_users
from keyhygiene.ui.widgets.plan_view import PlanView
from keyhygiene.workflows.revoke import RevokeReport

ACCOUNT = "123456789012"
PHONE = "christopher-phone"
PHONE_ARN = f"arn:aws:iam::{ACCOUNT}:user/{PHONE}"
LAPTOP_ARN = f"arn:aws:iam::{ACCOUNT}:user/christopher-laptop"
RUNNER = "keyhygiene-admin"
RUNNER_ARN = f"arn:aws:iam::{ACCOUNT}:user/{RUNNER}"


@pytest.fixture
def account(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        iam, s3 = session.client("iam"), session.client("s3")
        # keyhygiene runs as an IAM user, as on AWS (moto's default key answers as
        # `sts::…:user/moto`, which no policy can name).
        act_as_new_admin(iam, monkeypatch, RUNNER)
        iam.create_group(GroupName="photos")
        for device, host in (("phone", "pixel-7"), ("laptop", "chris-mbp")):
            name = f"christopher-{device}"
            iam.create_user(
                UserName=name,
                Tags=[
                    {"Key": TAG_PERSON, "Value": "christopher"},
                    {"Key": TAG_DEVICE, "Value": device},
                    {"Key": TAG_HOSTNAME, "Value": host},
                ],
            )
            iam.add_user_to_group(GroupName="photos", UserName=name)
            iam.create_access_key(UserName=name)
        s3.create_bucket(Bucket="photos-data")
        policy = bucket_policy_with_whitelist(
            None,
            bucket="photos-data",
            principals=[PHONE_ARN, LAPTOP_ARN],
            keep_admin_arns=[f"arn:aws:iam::{ACCOUNT}:root", RUNNER_ARN],
        )
        s3.put_bucket_policy(Bucket="photos-data", Policy=json.dumps(policy))
        yield session


class Host(App[None]):
    def __init__(self, screen: RevokeScreen) -> None:
        super().__init__()
        self.revoke_screen = screen
        self.result: object = "unset"

    def on_mount(self) -> None:
        self.push_screen(self.revoke_screen, lambda result: setattr(self, "result", result))


def make_host() -> Host:
    connection = Connection(ConnectionOptions(region="us-east-1"))
    snapshot = load_snapshot(connection, this_user="christopher-laptop")
    return Host(RevokeScreen(snapshot, connection))


async def settle(pilot: Pilot) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def text_of(screen: RevokeScreen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


async def test_search_review_confirm_revoke_and_copy(account: Any) -> None:
    app = make_host()
    async with app.run_test(size=(140, 50)) as pilot:
        screen = app.revoke_screen
        await pilot.press(*"pixel")  # its host name
        matches = screen.query_one("#revoke-matches", OptionList)
        assert matches.option_count == 1
        assert matches.get_option_at_index(0).id == PHONE
        await pilot.press("enter")
        await settle(pilot)

        reach = text_of(screen, "#revoke-reach")
        assert "Groups: photos" in reach and "photos-data" in reach
        assert "last used" in reach or "never used" in reach
        view = screen.query_one(PlanView)
        assert view.plan.steps[0].id == "deactivate-keys"

        # A wrong name does not revoke.
        confirm = screen.query_one("#revoke-confirm", Input)
        assert confirm.has_focus
        confirm.value = "christopher-laptop"
        await pilot.press("enter")
        await settle(pilot)
        assert screen.result is None and screen.query_one("#revoke-go", Button).disabled
        confirm.value = PHONE[:-1]
        await pilot.press("e")  # typed, the last letter
        assert not screen.query_one("#revoke-go", Button).disabled
        await pilot.press("enter")
        await settle(pilot)

        summary = screen.result
        assert isinstance(summary, RevokeReport) and summary.ok and summary.containment_requested
        assert set(view.statuses.values()) == {"done"}
        report = text_of(screen, "#revoke-report")
        assert f"Containment of {PHONE} requested at " in report and "CloudTrail" in report
        assert "may take a few minutes" in report and "contained" not in report
        assert "AWS accepted" in text_of(screen, "#revoke-status")
        await pilot.press("c")
        assert app.clipboard == summary.render_text()
        await pilot.press("escape")
        await pilot.pause()
        assert app.result is summary

    iam, s3 = account.client("iam"), account.client("s3")
    keys = iam.list_access_keys(UserName=PHONE)["AccessKeyMetadata"]
    assert {k["Status"] for k in keys} == {"Inactive"}
    assert REVOKED_POLICY_NAME in iam.list_user_policies(UserName=PHONE)["PolicyNames"]
    assert iam.list_groups_for_user(UserName=PHONE)["Groups"] == []
    policy = json.loads(s3.get_bucket_policy(Bucket="photos-data")["Policy"])
    assert whitelisted_principals(policy) == {LAPTOP_ARN}


async def test_escape_goes_back_then_closes_without_changes(account: Any) -> None:
    app = make_host()
    async with app.run_test(size=(140, 50)) as pilot:
        screen = app.revoke_screen
        await pilot.press(*"laptop", "enter")
        await settle(pilot)
        warnings = screen.query_one(PlanView).plan.warnings
        assert any("the computer you are on" in w for w in warnings)
        assert "This is the computer you are on." in text_of(screen, "#revoke-reach")
        await pilot.press("escape")
        await pilot.pause()
        assert screen.query_one("#revoke-search", Input).has_focus
        await pilot.press("escape")
        await pilot.pause()
        assert app.result is None
    keys = account.client("iam").list_access_keys(UserName="christopher-laptop")
    assert {k["Status"] for k in keys["AccessKeyMetadata"]} == {"Active"}


def test_matching_puts_exact_hits_first(account: Any) -> None:
    connection = Connection(ConnectionOptions(region="us-east-1"))
    snapshot = load_snapshot(connection)
    assert [u.name for u in matching_users(snapshot, "phone")] == [PHONE]
    assert [u.name for u in matching_users(snapshot, "chris-mbp")] == ["christopher-laptop"]
    assert len(matching_users(snapshot, "christopher")) == 2
    assert matching_users(snapshot, "nothing-like-it") == []
