"""RecoveryScreen, driven with Pilot against moto in-process: the choices each kind
of interrupted run gets, the buttons, and an unexpected error."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import boto3
import pytest
from helpers import act_as_new_admin
from moto import mock_aws
from textual.app import App
from textual.pilot import Pilot
from textual.widgets import Button, Static

from keyhygiene.aws.connection import Connection, ConnectionOptions
from keyhygiene.aws.inventory import load_snapshot
from keyhygiene.core.model import TAG_GROUPS
from keyhygiene.core.policy_documents import bucket_policy_with_whitelist
from keyhygiene.plans import Call, ClientProvider, Plan, Step, apply_plan
from keyhygiene.plans.journal import Journal
from keyhygiene.ui.screens.recovery_screen import RecoveryScreen
from keyhygiene.workflows.membership import plan_grant
from keyhygiene.workflows.registry import InterruptedRun, interrupted_runs
from keyhygiene.workflows.revoke import PLAN_KIND as REVOKE_KIND

ACCOUNT = "123456789012"
# keyhygiene runs as an IAM user, as on AWS: moto's default key answers as
# `sts::…:user/moto`, which no policy can name.
RUNNER = "keyhygiene-admin"
RUNNER_ARN = f"arn:aws:iam::{ACCOUNT}:user/{RUNNER}"
NOW = datetime(2026, 11, 28, 19, 0, tzinfo=timezone.utc)
PHONE = "alice-phone"


class SimulatedCrash(Exception):
    """Not caught by the plan engine: the process 'dies'."""


class Clients:
    """moto's clients, but `operation` raises `error` (a crash, or a bug)."""

    def __init__(self, inner: ClientProvider, operation: str, error: Exception) -> None:
        self.inner, self.operation, self.error = inner, operation, error

    def client(self, service: str) -> Any:
        return _Client(self.inner.client(service), self.operation, self.error)


class _Client:
    def __init__(self, client: Any, operation: str, error: Exception) -> None:
        self._client, self._operation, self._error = client, operation, error

    def __getattr__(self, name: str) -> Any:
        if name == self._operation:
            raise self._error
        return getattr(self._client, name)


@pytest.fixture
def conn(monkeypatch: pytest.MonkeyPatch) -> Iterator[Connection]:
    with mock_aws():
        act_as_new_admin(boto3.client("iam", region_name="us-east-1"), monkeypatch, RUNNER)
        iam = boto3.client("iam", region_name="us-east-1")
        s3 = boto3.client("s3", region_name="us-east-1")
        iam.create_group(GroupName="photos")
        iam.create_user(UserName=PHONE)
        s3.create_bucket(Bucket="photos-data")
        s3.put_bucket_tagging(
            Bucket="photos-data", Tagging={"TagSet": [{"Key": TAG_GROUPS, "Value": "photos"}]}
        )
        document = bucket_policy_with_whitelist(
            None,
            bucket="photos-data",
            principals=[],
            keep_admin_arns=[f"arn:aws:iam::{ACCOUNT}:root", RUNNER_ARN],
        )
        s3.put_bucket_policy(Bucket="photos-data", Policy=json.dumps(document))
        iam.generate_credential_report()
        yield Connection(ConnectionOptions(region="us-east-1"))


def _left_by_a_dead_process(journal: Journal) -> None:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    journal._data["pid"] = process.pid
    journal.save()


def interrupted_grant(conn: Connection) -> None:
    plan = plan_grant(load_snapshot(conn), PHONE, "photos", "2h", now=NOW)
    journal = Journal.create(plan)
    with pytest.raises(SimulatedCrash):
        apply_plan(plan, Clients(conn, "add_user_to_group", SimulatedCrash()), journal=journal)
    _left_by_a_dead_process(journal)


def interrupted_revoke() -> None:
    step = Step(
        "keys",
        "Deactivate every access key of alice-phone at once",
        Call("iam", "list_access_keys", {"UserName": PHONE}),
    )
    journal = Journal.create(Plan(REVOKE_KIND, "Revoke alice-phone", (step,)))
    journal.set_state("running")
    _left_by_a_dead_process(journal)


class Host(App[None]):
    def __init__(self, screen: RecoveryScreen) -> None:
        super().__init__()
        self.recovery = screen
        self.result: object = "unset"

    def on_mount(self) -> None:
        self.push_screen(self.recovery, lambda changed: setattr(self, "result", changed))


async def settle(pilot: Pilot) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def shown(screen: RecoveryScreen) -> list[str]:
    return [str(b.id) for b in screen.query(Button) if b.display]


def text(screen: RecoveryScreen, widget_id: str) -> str:
    return str(screen.query_one(widget_id, Static).render())


def _groups() -> set[str]:
    iam = boto3.client("iam", region_name="us-east-1")
    return {g["GroupName"] for g in iam.list_groups_for_user(UserName=PHONE)["Groups"]}


async def test_each_run_gets_only_its_safe_choices_and_the_buttons_work(
    conn: Connection,
) -> None:
    interrupted_grant(conn)
    interrupted_revoke()
    runs: list[InterruptedRun] = sorted(interrupted_runs(now=NOW), key=lambda r: r.kind != "grant")
    screen = RecoveryScreen(runs, conn, clock=lambda: NOW)
    app = Host(screen)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert "Lend group photos to alice-phone" in text(screen, "#recovery-summary")
        assert "1 more after this one" in text(screen, "#recovery-summary")
        assert shown(screen) == ["finish", "rollback", "forget", "later"]
        await pilot.click("#finish")
        await settle(pilot)
        # Finished: the revoke comes next, with neither finish nor roll back.
        assert _groups() == {"photos"}
        assert "Revoke alice-phone" in text(screen, "#recovery-summary")
        assert "Run the revoke again" in text(screen, "#recovery-summary")
        assert shown(screen) == ["forget", "later"]
        await pilot.click("#forget")
        await settle(pilot)
    assert app.result is True
    assert interrupted_runs(now=NOW) == []


async def test_roll_it_back_undoes_the_run(conn: Connection) -> None:
    interrupted_grant(conn)
    screen = RecoveryScreen(interrupted_runs(now=NOW), conn, clock=lambda: NOW)
    app = Host(screen)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.click("#rollback")
        await settle(pilot)
    assert app.result is True
    assert _groups() == set() and interrupted_runs(now=NOW) == []


async def test_an_unexpected_error_is_reported_and_the_screen_stays_usable(
    conn: Connection,
) -> None:
    interrupted_grant(conn)
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    broken = Clients(conn, "add_user_to_group", RuntimeError(f"bug near {secret}"))
    screen = RecoveryScreen(interrupted_runs(now=NOW), broken, clock=lambda: NOW)
    app = Host(screen)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.click("#finish")
        await settle(pilot)
        report = text(screen, "#recovery-report")
        assert "Unexpected error (RuntimeError: bug near ****)" in report
        assert secret not in report
        assert not screen.busy
        assert not screen.query_one("#later", Button).disabled
        await pilot.press("escape")
        await pilot.pause()
    assert app.result is True  # it may have changed the account in part: reload
