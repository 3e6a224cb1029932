"""Interrupted runs found at start, against moto in-process: which are offered, with
which choices, and finishing or rolling them back.

A crash is simulated by an exception the plan engine does not catch (the
journal stays open with a step "running"), and the journal is then made to
look written by a process that is gone.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import pytest
from helpers import act_as_new_admin, seed_photos_account
from moto import mock_aws

from keyhygiene.aws.connection import Connection, ConnectionOptions
from keyhygiene.aws.inventory import load_snapshot
from keyhygiene.core.errors import BadInput
from keyhygiene.core.model import EXPIRY_POLICY_NAME
from keyhygiene.core.policy_documents import whitelisted_principals
from keyhygiene.plans import Call, ClientProvider, Plan, Step, apply_plan
from keyhygiene.plans.journal import Journal, open_journals
from keyhygiene.workflows.membership import SWEEP_KIND, plan_grant, plan_sweep
from keyhygiene.workflows.registry import (
    InterruptedRun,
    abandon,
    describe_unexpected,
    finish,
    interrupted_runs,
    roll_back,
)
from keyhygiene.workflows.revoke import PLAN_KIND as REVOKE_KIND

ACCOUNT = "123456789012"
# keyhygiene runs as an IAM user, as on AWS: moto's default key answers as
# `sts::…:user/moto`, which no policy can name.
RUNNER = "keyhygiene-admin"
RUNNER_ARN = f"arn:aws:iam::{ACCOUNT}:user/{RUNNER}"
NOW = datetime(2026, 11, 28, 19, 0, tzinfo=timezone.utc)
PHONE = "alice-phone"
PHONE_ARN = f"arn:aws:iam::{ACCOUNT}:user/{PHONE}"


class SimulatedCrash(Exception):
    """Neither a ClientError nor a KeyHygieneError: the process 'dies'."""


class CrashingClients:
    """Clients that 'die' on the first call of `operation`; other calls go to moto."""

    def __init__(self, inner: ClientProvider, operation: str) -> None:
        self.inner, self.operation = inner, operation

    def client(self, service: str) -> Any:
        return _Crashing(self.inner.client(service), self.operation)


class _Crashing:
    def __init__(self, client: Any, operation: str) -> None:
        self._client, self._operation = client, operation

    def __getattr__(self, name: str) -> Any:
        if name == self._operation:
            raise SimulatedCrash(name)
        return getattr(self._client, name)


def _seed() -> None:
    seed_photos_account(RUNNER_ARN)


@pytest.fixture
def conn(monkeypatch: pytest.MonkeyPatch) -> Iterator[Connection]:
    with mock_aws():
        _seed()
        act_as_new_admin(boto3.client("iam", region_name="us-east-1"), monkeypatch, RUNNER)
        yield Connection(ConnectionOptions(region="us-east-1"))


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def left_by_a_dead_process(journal: Journal) -> Journal:
    """As if another keyhygiene, since gone, had written this journal."""
    journal._data["pid"] = dead_pid()
    journal.save()
    return journal


def interrupt(plan: Plan, clients: ClientProvider, operation: str) -> Journal:
    """Apply `plan` until its first `operation` call, where the process 'dies'."""
    journal = Journal.create(plan)
    with pytest.raises(SimulatedCrash):
        apply_plan(plan, CrashingClients(clients, operation), journal=journal)
    return left_by_a_dead_process(journal)


def groups_of(user: str) -> set[str]:
    iam = boto3.client("iam", region_name="us-east-1")
    return {g["GroupName"] for g in iam.list_groups_for_user(UserName=user)["Groups"]}


def tags_of(user: str) -> dict[str, str]:
    iam = boto3.client("iam", region_name="us-east-1")
    return {t["Key"]: t["Value"] for t in iam.list_user_tags(UserName=user)["Tags"]}


def policies_of(user: str) -> list[str]:
    iam = boto3.client("iam", region_name="us-east-1")
    return list(iam.list_user_policies(UserName=user)["PolicyNames"])


def whitelisted(user_arn: str) -> bool:
    s3 = boto3.client("s3", region_name="us-east-1")
    document = json.loads(s3.get_bucket_policy(Bucket="photos-data")["Policy"])
    return user_arn in whitelisted_principals(document)


# Start-up, a few minutes after the interrupted loan (it ends at NOW + 2h).
SOON = NOW + timedelta(minutes=5)
EXPIRY = "2026-11-28T21:00:00Z"


def interrupted_grant(conn: Connection, *, found_at: datetime = SOON) -> InterruptedRun:
    plan = plan_grant(load_snapshot(conn), PHONE, "photos", "2h", now=NOW)
    interrupt(plan, conn, "add_user_to_group")  # tag and expiry policy done
    (run,) = interrupted_runs(now=found_at)
    return run


def test_an_interrupted_grant_is_offered_and_finished(conn: Connection) -> None:
    run = interrupted_grant(conn)
    assert run.kind == "grant" and run.can_finish and run.can_roll_back
    assert "2 of 4 steps done, step 3 was interrupted" in run.summary
    assert run.advice == "Finish it, or roll back what it did."
    result = finish(run, conn, now=SOON)
    assert result.ok, result.text
    assert result.report is not None and "done in an earlier run" in result.text
    assert groups_of(PHONE) == {"photos"} and whitelisted(PHONE_ARN)
    assert tags_of(PHONE) == {"keyhygiene:grant:photos": EXPIRY}
    assert policies_of(PHONE) == [EXPIRY_POLICY_NAME]
    assert interrupted_runs(now=SOON) == []


def test_an_interrupted_grant_found_after_its_expiry_is_only_rolled_back(
    conn: Connection,
) -> None:
    """The start-up sweep took the tag and the expiry policy away: finishing would
    leave a membership with neither, a permanent one."""
    later = NOW + timedelta(hours=3)
    run = interrupted_grant(conn, found_at=later)
    assert run.loan_expired and not run.can_finish and run.can_roll_back
    assert f"ended at {EXPIRY}" in run.advice and "permanent" in run.advice
    assert apply_plan(plan_sweep(load_snapshot(conn), now=later), conn).ok
    assert tags_of(PHONE) == {} and policies_of(PHONE) == []
    with pytest.raises(BadInput, match="expired since; roll it back instead"):
        finish(run, conn, now=later)
    assert groups_of(PHONE) == set() and not whitelisted(PHONE_ARN)
    result = roll_back(run, conn)
    assert result.ok, result.text
    assert groups_of(PHONE) == set() and not whitelisted(PHONE_ARN)
    assert tags_of(PHONE) == {} and policies_of(PHONE) == []
    assert interrupted_runs(now=later) == []


def test_a_grant_that_expires_between_the_offer_and_the_click_is_not_finished(
    conn: Connection,
) -> None:
    run = interrupted_grant(conn)
    assert run.can_finish
    with pytest.raises(BadInput, match="expired since; roll it back instead"):
        finish(run, conn, now=NOW + timedelta(hours=2))  # the expiry itself is not future
    assert groups_of(PHONE) == set() and not whitelisted(PHONE_ARN)
    assert run.journal.is_open


def test_an_interrupted_grant_is_rolled_back_to_nothing(conn: Connection) -> None:
    run = interrupted_grant(conn)
    result = roll_back(run, conn)
    assert result.ok, result.text
    assert groups_of(PHONE) == set() and not whitelisted(PHONE_ARN)
    assert tags_of(PHONE) == {} and policies_of(PHONE) == []
    assert interrupted_runs(now=SOON) == []


def test_runs_of_this_very_process_are_not_offered(conn: Connection) -> None:
    """The sweep at start runs while the journals are read: it is not interrupted."""
    plan = plan_grant(load_snapshot(conn), PHONE, "photos", "2h", now=NOW)
    journal = Journal.create(plan)
    journal.set_state("running")
    assert interrupted_runs() == []
    left_by_a_dead_process(journal)
    assert len(interrupted_runs()) == 1


def test_an_interrupted_revoke_is_run_again_not_finished_nor_undone(conn: Connection) -> None:
    step = Step(
        "keys",
        "Deactivate every access key of alice-phone at once",
        Call("iam", "list_access_keys", {"UserName": PHONE}),
    )
    journal = left_by_a_dead_process(
        Journal.create(Plan(REVOKE_KIND, "Revoke alice-phone", (step,)))
    )
    journal.set_state("running")
    (run,) = interrupted_runs()
    assert not run.can_finish and not run.can_roll_back
    assert "Run the revoke again" in run.advice
    with pytest.raises(BadInput, match="not finished from its journal"):
        finish(run, conn)
    with pytest.raises(BadInput, match="let the computer back in"):
        roll_back(run, conn)
    abandon(run)
    assert interrupted_runs() == [] and run.journal.state == "abandoned"


def test_an_interrupted_sweep_is_finished_by_a_new_sweep_never_rolled_back(
    conn: Connection,
) -> None:
    grant = plan_grant(load_snapshot(conn), PHONE, "photos", "2h", now=NOW)
    assert apply_plan(grant, conn).ok
    later = NOW + timedelta(hours=3)
    sweep = plan_sweep(load_snapshot(conn), now=later)
    interrupt(sweep, conn, "put_bucket_policy")  # the membership is gone already
    assert groups_of(PHONE) == set() and whitelisted(PHONE_ARN)
    (run,) = interrupted_runs()
    assert run.kind == SWEEP_KIND and run.can_finish and not run.can_roll_back
    assert "new sweep" in run.advice
    with pytest.raises(BadInput, match="give expired loans back"):
        roll_back(run, conn)
    result = finish(run, conn, now=later)
    assert result.ok, result.text
    assert result.text == "Removed 1 expired loan: alice-phone from photos."
    assert not whitelisted(PHONE_ARN)
    assert tags_of(PHONE) == {} and policies_of(PHONE) == []
    assert not run.journal.is_open and run.journal.state == "abandoned"
    assert open_journals() == [] and interrupted_runs() == []


def test_a_sweep_with_nothing_left_to_do_says_so(conn: Connection) -> None:
    grant = plan_grant(load_snapshot(conn), PHONE, "photos", "2h", now=NOW)
    assert apply_plan(grant, conn).ok
    later = NOW + timedelta(hours=3)
    interrupt(plan_sweep(load_snapshot(conn), now=later), conn, "remove_user_from_group")
    (run,) = interrupted_runs()
    # Another keyhygiene swept meanwhile.
    assert apply_plan(plan_sweep(load_snapshot(conn), now=later), conn).ok
    result = finish(run, conn, now=later)
    assert result.ok and result.report is None
    assert "Nothing has expired any more" in result.text


def test_an_unexpected_error_is_described_without_secrets() -> None:
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    text = describe_unexpected(RuntimeError(f"boom {secret} SecretAccessKey='abc'\nmore"))
    assert text.startswith("RuntimeError: boom ")
    assert secret not in text and "abc" not in text and "more" not in text
    assert describe_unexpected(KeyError()) == "KeyError"


# --------------------------------------------------------------------------- keyhygiene recover


def recover(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    from keyhygiene.cli.main import main

    code = main(["recover", *args, "--region", "us-east-1"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_recover_says_when_there_is_nothing(
    conn: Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    assert recover(capsys) == (0, "No interrupted run: nothing to recover.\n", "")


def test_recover_lists_an_interrupted_grant_and_rolls_it_back(
    conn: Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command line offers what the TUI's recovery screen offers, from the
    same registry, and does it."""
    interrupted_grant(conn, found_at=datetime.now(timezone.utc))
    code, out, _ = recover(capsys)
    assert code == 0
    assert "1. grant: " in out and "2 of 4 steps done, step 3 was interrupted" in out
    # The loan (made at NOW for 2 h) has ended by the real clock: finishing it
    # would make the membership permanent, so only undoing it is offered.
    assert "permanent" in out and "choices: --roll-back, --forget" in out
    code, _, err = recover(capsys, "1", "--finish", "--yes")
    assert code == 2 and "Safe for it: --roll-back, --forget" in err
    # Not on a terminal and no --yes: said, not done.
    code, out, _ = recover(capsys, "1", "--roll-back")
    assert code == 5 and "pass --yes" in out
    assert tags_of(PHONE) == {"keyhygiene:grant:photos": EXPIRY}
    code, out, _ = recover(capsys, "1", "--roll-back", "--yes")
    assert code == 0, out
    assert groups_of(PHONE) == set() and tags_of(PHONE) == {} and policies_of(PHONE) == []
    assert recover(capsys)[1] == "No interrupted run: nothing to recover.\n"


def test_recover_refuses_a_choice_that_is_not_safe_for_the_run(
    conn: Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    step = Step("keys", "List the keys", Call("iam", "list_access_keys", {"UserName": PHONE}))
    journal = left_by_a_dead_process(
        Journal.create(Plan(REVOKE_KIND, "Revoke alice-phone", (step,)))
    )
    journal.set_state("running")
    code, out, _ = recover(capsys)
    assert "1. revoke: " in out and "choices: --forget" in out
    code, _, err = recover(capsys, "1", "--finish", "--yes")
    assert code == 2
    assert "cannot be handled with --finish" in err and "Safe for it: --forget" in err
    assert "Run the revoke again" in err
    code, _, err = recover(capsys, "7", "--forget", "--yes")
    assert code == 2 and "no interrupted run 7 (there are 1)" in err
    code, out, _ = recover(capsys, "1", "--forget", "--yes")
    assert code == 0 and "forgotten" in out
    assert interrupted_runs() == []


def test_a_journal_written_by_0_1_is_offered_and_rolled_back(conn: Connection) -> None:
    """A loan interrupted under 0.1 (packages `tui` and `screens`, before the
    layout move): its journal names no module, so it resumes as it was."""
    from pathlib import Path

    from keyhygiene.local.state_dir import state_dir

    fixture = Path(__file__).parent.parent / "fixtures" / "journal-from-0.1-grant.json"
    data = json.loads(fixture.read_text())
    data["pid"], data["host"] = dead_pid(), socket.gethostname()
    journals = state_dir() / "journals"
    journals.mkdir(parents=True, exist_ok=True)
    (journals / fixture.name).write_text(json.dumps(data))
    (run,) = interrupted_runs(now=SOON)
    assert run.kind == "grant" and run.resumable and run.can_roll_back
    assert "Lend group photos to alice-phone" in run.summary
    result = roll_back(run, conn)
    assert result.ok, result.text
    assert groups_of(PHONE) == set() and tags_of(PHONE) == {} and policies_of(PHONE) == []
    assert interrupted_runs(now=SOON) == []
