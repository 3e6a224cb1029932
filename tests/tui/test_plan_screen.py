"""PlanScreen: review, apply with live marks, report; roll back on failure."""

from __future__ import annotations

import boto3
from moto import mock_aws
from textual.app import App

from keyhygiene.aws.connection import Connection, ConnectionOptions
from keyhygiene.plans import Call, Plan, Step
from keyhygiene.ui.screens.plan_screen import PlanScreen
from keyhygiene.ui.widgets.plan_view import PlanView


def _plan(fail: bool = False) -> Plan:
    steps = [
        Step(
            id="user",
            description="Create user bob-laptop",
            call=Call("iam", "create_user", {"UserName": "bob-laptop"}),
            undo=Call("iam", "delete_user", {"UserName": "bob-laptop"}),
        ),
        Step(
            id="group",
            description="Add bob-laptop to group photos",
            call=Call(
                "iam",
                "add_user_to_group",
                {"UserName": "bob-laptop", "GroupName": "photos" if not fail else "missing"},
            ),
            undo=Call(
                "iam", "remove_user_from_group", {"UserName": "bob-laptop", "GroupName": "photos"}
            ),
        ),
    ]
    return Plan(kind="test", title="Register bob-laptop", steps=tuple(steps))


class Host(App[None]):
    def __init__(self, plan: Plan) -> None:
        super().__init__()
        self.plan = plan
        self.result: object = "unset"

    def on_mount(self) -> None:
        clients = Connection(ConnectionOptions(region="us-east-1"))
        self.push_screen(
            PlanScreen(self.plan, clients), lambda report: setattr(self, "result", report)
        )


async def _run(plan: Plan) -> Host:
    app = Host(plan)
    async with app.run_test(size=(120, 40)) as pilot:
        view = app.screen.query_one(PlanView)
        assert "Create user bob-laptop" in str(view.query_one("#plan-step-0").render())
        await pilot.press("a")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert view.statuses["user"] in ("done", "undone")
        await pilot.press("escape")
        await pilot.pause()
    return app


async def test_apply_runs_the_plan() -> None:
    with mock_aws():
        await _apply_runs_the_plan()


async def _apply_runs_the_plan() -> None:
    boto3.client("iam", region_name="us-east-1").create_group(GroupName="photos")
    app = await _run(_plan())
    assert app.result is not None and app.result.ok  # type: ignore[attr-defined]
    groups = boto3.client("iam", region_name="us-east-1").list_groups_for_user(
        UserName="bob-laptop"
    )
    assert [g["GroupName"] for g in groups["Groups"]] == ["photos"]


async def test_failure_rolls_back() -> None:
    with mock_aws():
        await _failure_rolls_back()


async def _failure_rolls_back() -> None:
    boto3.client("iam", region_name="us-east-1").create_group(GroupName="photos")
    app = await _run(_plan(fail=True))
    assert app.result is not None and not app.result.ok  # type: ignore[attr-defined]
    users = boto3.client("iam", region_name="us-east-1").list_users()["Users"]
    assert users == []
