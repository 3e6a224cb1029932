"""MembershipScreen: pick, review in PlanScreen, apply; errors shown before any plan."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

import boto3
import pytest
from helpers import act_as_new_admin, seed_photos_account
from moto import mock_aws
from textual.app import App
from textual.widgets import Checkbox, Input, Select, Static

from keyhygiene.aws.connection import Connection, ConnectionOptions
from keyhygiene.aws.inventory import load_snapshot
from keyhygiene.core.model import EXPIRY_POLICY_NAME, TAG_REVOKED, Snapshot
from keyhygiene.ui.screens.membership_screen import FORCE_LABEL, MembershipScreen
from keyhygiene.ui.screens.plan_screen import PlanScreen

ACCOUNT = "123456789012"
# keyhygiene runs as an IAM user, as on AWS: moto's default key answers as
# `sts::…:user/moto`, which no policy can name.
RUNNER = "keyhygiene-admin"
RUNNER_ARN = f"arn:aws:iam::{ACCOUNT}:user/{RUNNER}"
NOW = datetime(2026, 11, 28, 19, 0, tzinfo=timezone.utc)


def _seed() -> None:
    seed_photos_account(RUNNER_ARN, groups=("photos", "videos"))


@pytest.fixture
def account(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Snapshot, Connection]]:
    with mock_aws():
        _seed()
        act_as_new_admin(boto3.client("iam", region_name="us-east-1"), monkeypatch, RUNNER)
        conn = Connection(ConnectionOptions(region="us-east-1"))
        yield load_snapshot(conn), conn


class Host(App[None]):
    def __init__(self, screen: MembershipScreen) -> None:
        super().__init__()
        self.membership = screen
        self.result: object = "unset"

    def on_mount(self) -> None:
        self.push_screen(self.membership, lambda report: setattr(self, "result", report))


def _groups(user: str) -> set[str]:
    iam = boto3.client("iam", region_name="us-east-1")
    return {g["GroupName"] for g in iam.list_groups_for_user(UserName=user)["Groups"]}


async def test_lend_from_a_device_node_reviews_and_applies(
    account: tuple[Snapshot, Connection],
) -> None:
    snapshot, conn = account
    screen = MembershipScreen(snapshot, conn, "lend", user="alice-phone", clock=lambda: NOW)
    app = Host(screen)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        picker = screen.query_one("#ms-group", Select)
        # The phone is in no group: both can be lent.
        assert [value for _, value in screen.group_choices()] == ["photos", "videos"]
        picker.value = "photos"
        screen.query_one("#ms-duration", Select).value = "8h"
        await pilot.pause()
        expiry = str(screen.query_one("#ms-expiry", Static).render())
        assert "Ends 2026-11-29T03:00:00Z (in 8 h)" in expiry
        await pilot.press("ctrl+s")
        await pilot.pause()
        plan_screen = app.screen
        assert isinstance(plan_screen, PlanScreen)
        assert plan_screen.plan.title == (
            "Lend group photos to alice-phone for 8 h, until 2026-11-29T03:00:00Z"
        )
        await pilot.press("a")
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
    assert app.result is not None and app.result.ok  # type: ignore[attr-defined]
    assert _groups("alice-phone") == {"photos"}
    iam = boto3.client("iam", region_name="us-east-1")
    assert EXPIRY_POLICY_NAME in iam.list_user_policies(UserName="alice-phone")["PolicyNames"]
    tags = {t["Key"]: t["Value"] for t in iam.list_user_tags(UserName="alice-phone")["Tags"]}
    assert tags == {"keyhygiene:grant:photos": "2026-11-29T03:00:00Z"}


async def test_a_typed_duration_wins_and_a_bad_one_is_refused_before_any_plan(
    account: tuple[Snapshot, Connection],
) -> None:
    snapshot, conn = account
    screen = MembershipScreen(snapshot, conn, "lend", group="photos", clock=lambda: NOW)
    app = Host(screen)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        # From the group: its permanent member is not offered, the phone is (and preselected).
        assert [value for _, value in screen.user_choices()] == ["alice-phone"]
        assert screen.query_one("#ms-user", Select).value == "alice-phone"
        typed = screen.query_one("#ms-duration-text", Input)
        typed.value = "45m"
        await pilot.pause()
        assert "in 45 min" in str(screen.query_one("#ms-expiry", Static).render())
        typed.value = "45d"
        await pilot.pause()
        assert "longer than" in str(screen.query_one("#ms-expiry", Static).render())
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is screen
        assert "longer than" in str(screen.query_one("#ms-message", Static).render())
        await pilot.press("escape")
        await pilot.pause()
    assert app.result is None
    assert _groups("alice-phone") == set()


async def test_add_and_remove_offer_only_what_makes_sense(
    account: tuple[Snapshot, Connection],
) -> None:
    snapshot, conn = account
    remove = MembershipScreen(snapshot, conn, "remove", user="alice-laptop")
    assert [value for _, value in remove.group_choices()] == ["photos"]
    add = MembershipScreen(snapshot, conn, "add", user="alice-laptop")
    assert [value for _, value in add.group_choices()] == ["videos"]
    nothing = MembershipScreen(snapshot, conn, "remove", user="alice-phone")
    app = Host(nothing)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert "alice-phone is in no group" in str(
            nothing.query_one("#ms-message", Static).render()
        )
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is nothing
        assert "Choose a computer and a group" in str(
            nothing.query_one("#ms-message", Static).render()
        )


async def test_add_from_a_group_node_applies_the_membership(
    account: tuple[Snapshot, Connection],
) -> None:
    snapshot, conn = account
    screen = MembershipScreen(snapshot, conn, "add", group="videos")
    app = Host(screen)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen.query_one("#ms-user", Select).value = "alice-phone"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, PlanScreen)
        assert app.screen.plan.title == "Add alice-phone to group videos"
        await pilot.press("a")
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
    assert app.result is not None and app.result.ok  # type: ignore[attr-defined]
    assert _groups("alice-phone") == {"videos"}


async def test_the_pickers_follow_the_core_rules_and_say_why_nothing_fits(
    account: tuple[Snapshot, Connection],
) -> None:
    _, conn = account
    iam = boto3.client("iam", region_name="us-east-1")
    # A loan whose tag spells the group in another case is still a loan (IAM ignores case).
    iam.add_user_to_group(UserName="alice-phone", GroupName="photos")
    iam.tag_user(
        UserName="alice-phone",
        Tags=[
            {"Key": "keyhygiene:grant:Photos", "Value": "2026-11-29T19:00:00Z"},
            {"Key": TAG_REVOKED, "Value": "2026-11-28T19:00:00Z"},
        ],
    )
    iam.create_user(UserName="bob-tablet")
    snapshot = load_snapshot(conn)
    screen = MembershipScreen(snapshot, conn, "remove", group="photos")
    assert screen.user_choices() == [
        ("alice-laptop", "alice-laptop"),
        ("alice-phone  (on loan until 2026-11-29T19:00:00Z)", "alice-phone"),
    ]
    revoked = MembershipScreen(snapshot, conn, "lend", user="alice-phone", clock=lambda: NOW)
    app = Host(revoked)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert revoked.group_choices() == []
        assert "alice-phone is revoked" in str(revoked.query_one("#ms-message", Static).render())


async def test_a_group_granting_iam_rights_is_lent_only_when_ticked(
    account: tuple[Snapshot, Connection],
) -> None:
    iam = boto3.client("iam", region_name="us-east-1")
    iam.create_group(GroupName="ops")
    iam.put_group_policy(
        GroupName="ops",
        PolicyName="iam-admin",
        PolicyDocument='{"Version": "2012-10-17", "Statement": '
        '[{"Effect": "Allow", "Action": "iam:*", "Resource": "*"}]}',
    )
    _, conn = account
    snapshot = load_snapshot(conn)
    screen = MembershipScreen(snapshot, conn, "lend", user="alice-phone", clock=lambda: NOW)
    app = Host(screen)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        force = screen.query_one("#ms-force", Checkbox)
        assert not force.display
        screen.query_one("#ms-group", Select).value = "ops"
        screen.query_one("#ms-duration", Select).value = "8h"
        await pilot.pause()
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is screen  # refused: no plan
        message = str(screen.query_one("#ms-message", Static).render())
        assert "Group ops is not lent to alice-phone" in message
        assert "allows iam:CreateUser" in message and FORCE_LABEL in message
        assert force.display and not force.value
        # Another group clears the choice: it must not lend that one by force.
        screen.query_one("#ms-group", Select).value = "photos"
        await pilot.pause()
        assert not force.display
        screen.query_one("#ms-group", Select).value = "ops"
        await pilot.pause()
        await pilot.press("ctrl+s")
        await pilot.pause()
        force.value = True
        await pilot.pause()
        await pilot.press("ctrl+s")
        await pilot.pause()
        plan_screen = app.screen
        assert isinstance(plan_screen, PlanScreen)
        assert any("by force" in w for w in plan_screen.plan.warnings), plan_screen.plan.warnings
        await pilot.press("escape")
        await pilot.pause()
    assert _groups("alice-phone") == set()  # reviewed, never applied
