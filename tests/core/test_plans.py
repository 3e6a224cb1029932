"""The plan engine against moto's IAM: render, apply, fail, roll back, crash, resume."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from keyhygiene.core.errors import KeyHygieneError
from keyhygiene.local.state_dir import state_dir
from keyhygiene.plans import (
    ApplyContext,
    ApplyReport,
    Call,
    ClientCache,
    Plan,
    PlanError,
    PlanEvent,
    Ref,
    ResumeImpossible,
    Step,
    apply_plan,
    register_local_action,
    resume,
    rollback,
)
from keyhygiene.plans.journal import Journal, open_journals

USER = "christopher-phone"
FAKE_SECRET = "FAKE-SECRET-TOKEN-0123456789abcdef"
EXPIRY_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "KeyHygieneExpiry",
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {"DateGreaterThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}},
        }
    ],
}


class SimulatedCrash(Exception):
    """Not a ClientError nor a KeyHygieneError: the process 'dies' with it."""


# What the local actions saw; reset by the `local` fixture.
SEEN: dict[str, Any] = {}


def _write_credentials(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    secret = ctx.results["key"]["AccessKey"]["SecretAccessKey"]
    SEEN["secret"] = secret
    SEEN["key_id"] = params["key_id"]
    # A result full of things that must stay in memory, and one that may be kept.
    return {"profile": params["profile"], "token": FAKE_SECRET, "echo": secret}


def _checkpoint(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    SEEN.setdefault("checkpoints", []).append(dict(params))
    if SEEN.get("crash"):
        raise SimulatedCrash("the power went out")
    return {"key_id": params["key_id"]}


def _use_secret(ctx: ApplyContext, params: Mapping[str, Any]) -> None:
    SEEN["used_secret"] = params["secret"]


def _fail(ctx: ApplyContext, params: Mapping[str, Any]) -> None:
    raise KeyHygieneError("the verification did not pass")


def _echo(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    return dict(params)


def _wait(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    ctx.sleep(params["seconds"])
    return {"now": ctx.clock()}


for _name, _func in {
    "test.write_credentials": _write_credentials,
    "test.checkpoint": _checkpoint,
    "test.use_secret": _use_secret,
    "test.fail": _fail,
    "test.echo": _echo,
    "test.wait": _wait,
}.items():
    register_local_action(_name, _func, replace=True)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def local(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv("KEYHYGIENE_STATE_DIR", str(tmp_path / "state"))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    SEEN.clear()
    yield
    SEEN.clear()


@pytest.fixture
def clients() -> Iterator[ClientCache]:
    with mock_aws():
        provider = ClientCache(boto3, region_name="us-east-1")
        provider.client("iam").create_group(GroupName="photos")
        yield provider


def enroll_plan(*, group: str = "photos", checkpoint: bool = False) -> Plan:
    """User, group, key (keep only its id), credentials file, inline policy."""
    steps = [
        Step(
            "user",
            f"Create IAM user {USER}",
            Call("iam", "create_user", {"UserName": USER}),
            undo=Call("iam", "delete_user", {"UserName": USER}),
            keep=("User.Arn",),
        ),
        Step(
            "group",
            f"Add {USER} to group {group}",
            Call("iam", "add_user_to_group", {"GroupName": group, "UserName": USER}),
            undo=Call("iam", "remove_user_from_group", {"GroupName": group, "UserName": USER}),
        ),
        Step(
            "key",
            f"Create an access key for {USER}",
            Call("iam", "create_access_key", {"UserName": USER}),
            undo=Call(
                "iam",
                "delete_access_key",
                {"UserName": USER, "AccessKeyId": Ref("key", "AccessKey.AccessKeyId")},
            ),
            keep=("AccessKey.AccessKeyId",),
        ),
        Step(
            "write",
            "Write the new key into ~/.aws/credentials, profile photos",
            Call(
                "local",
                "test.write_credentials",
                {"profile": "photos", "key_id": Ref("key", "AccessKey.AccessKeyId")},
            ),
            keep=("profile",),
        ),
    ]
    if checkpoint:
        steps.append(
            Step(
                "check",
                "Check that the key works",
                Call("local", "test.checkpoint", {"key_id": Ref("key", "AccessKey.AccessKeyId")}),
                keep=("key_id",),
            )
        )
    steps.append(
        Step(
            "policy",
            f"Make AWS refuse every request of {USER} after 2030-01-01",
            Call(
                "iam",
                "put_user_policy",
                {
                    "UserName": USER,
                    "PolicyName": "keyhygiene-expiry",
                    "PolicyDocument": json.dumps(EXPIRY_POLICY),
                },
            ),
            undo=Call(
                "iam", "delete_user_policy", {"UserName": USER, "PolicyName": "keyhygiene-expiry"}
            ),
            after=EXPIRY_POLICY,
        )
    )
    return Plan("enroll", f"Enroll {USER}", tuple(steps), warnings=("photos is a test group",))


def user_exists(clients: ClientCache) -> bool:
    try:
        clients.client("iam").get_user(UserName=USER)
    except ClientError:
        return False
    return True


def group_members(clients: ClientCache, group: str = "photos") -> list[str]:
    users = clients.client("iam").get_group(GroupName=group)["Users"]
    return [user["UserName"] for user in users]


def key_ids(clients: ClientCache) -> list[str]:
    keys = clients.client("iam").list_access_keys(UserName=USER)["AccessKeyMetadata"]
    return [key["AccessKeyId"] for key in keys]


def journal_files() -> list[Path]:
    return sorted(state_dir().rglob("*.json"))


def crash_mid_plan(clients: ClientCache, plan: Plan) -> Journal:
    SEEN["crash"] = True
    journal = Journal.create(plan)
    with pytest.raises(SimulatedCrash):
        apply_plan(plan, clients, journal=journal)
    SEEN["crash"] = False
    return journal


class Denying:
    """A client provider whose identity lacks one IAM permission."""

    def __init__(self, inner: ClientCache, operation: str, api_name: str) -> None:
        self.inner = inner
        self.operation = operation
        self.api_name = api_name

    def client(self, service: str) -> Any:
        denying = self

        class _Client:
            def __getattr__(self, name: str) -> Any:
                if name == denying.operation:
                    return self._deny
                return getattr(denying.inner.client(service), name)

            def _deny(self, **_params: Any) -> None:
                error = {"Code": "AccessDenied", "Message": "not authorized"}
                raise ClientError({"Error": error}, denying.api_name)

        return _Client()


# --------------------------------------------------------------------------- plan data


def test_render_text_shows_steps_calls_undo_and_diff() -> None:
    text = enroll_plan().render_text()
    assert text.startswith(
        f"Plan (enroll): Enroll {USER}\n5 steps\nWarning: photos is a test group"
    )
    assert f"1. Create IAM user {USER}" in text
    assert f'do:   iam:CreateUser {{"UserName": "{USER}"}}' in text
    assert f'undo: iam:DeleteUser {{"UserName": "{USER}"}}' in text
    assert "do:   iam:AddUserToGroup" in text
    assert '"AccessKeyId": <AccessKey.AccessKeyId from step 3>' in text
    assert "journal keeps: AccessKey.AccessKeyId" in text
    assert "4. Write the new key into ~/.aws/credentials, profile photos" in text
    assert "local:test.write_credentials" in text
    assert "undo: none, this step cannot be undone automatically" in text
    # The policy: the call names the document, the diff shows it, sorted and indented.
    assert '"PolicyDocument": <the policy shown after the change below>' in text
    assert "+++ policy after" in text
    assert '+  "Statement": [' in text
    assert '+      "Action": "*",' in text
    plain = enroll_plan().render_text(diffs=False)
    assert "+++" not in plain
    assert '"PolicyDocument": "{\\"Version\\": \\"2012-10-17\\"' in plain


def test_render_text_diff_of_a_changed_policy_and_optional_step() -> None:
    before = {"Version": "2012-10-17", "Statement": [{"Sid": "A", "Effect": "Allow"}]}
    after = {"Version": "2012-10-17", "Statement": [{"Sid": "B", "Effect": "Allow"}]}
    step = Step(
        "bucket",
        "Whitelist the users of photos in bucket photos-data",
        Call("s3", "put_bucket_policy", {"Bucket": "photos-data", "Policy": json.dumps(after)}),
        undo=Call(
            "s3", "put_bucket_policy", {"Bucket": "photos-data", "Policy": json.dumps(before)}
        ),
        before=before,
        after=after,
        must_succeed=False,
    )
    text = Plan("application", "Application photos", (step,)).render_text()
    assert "s3:PutBucketPolicy" in text
    assert '-      "Sid": "A"' in text
    assert '+      "Sid": "B"' in text
    assert "if it fails, the plan goes on" in text
    same = Step(
        "same", "Keep the policy", Call("s3", "get_bucket_policy"), before=after, after=after
    )
    assert "(policy unchanged)" in Plan("x", "x", (same,)).render_text()


def test_to_json_round_trip_with_refs() -> None:
    plan = enroll_plan(checkpoint=True)
    data = json.loads(json.dumps(plan.to_json()))
    key_step = data["steps"][2]
    assert key_step["undo"]["params"]["AccessKeyId"] == {"$ref": ["key", "AccessKey.AccessKeyId"]}
    assert Plan.from_json(data) == plan


def test_plans_are_checked_when_built() -> None:
    create = Call("iam", "create_user", {"UserName": USER})
    with pytest.raises(PlanError, match="not an earlier step"):
        Plan(
            "x",
            "x",
            (
                Step("a", "A", Call("local", "test.echo", {"v": Ref("b", "x")})),
                Step("b", "B", create),
            ),
        )
    with pytest.raises(PlanError, match="does not keep"):
        Plan(
            "x",
            "x",
            (
                Step(
                    "k",
                    "K",
                    create,
                    undo=Call("iam", "delete_user", {"UserName": Ref("k", "User.Arn")}),
                ),
            ),
        )
    with pytest.raises(PlanError, match="looks like a secret"):
        Step("k", "K", create, keep=("AccessKey.SecretAccessKey",))
    with pytest.raises(PlanError, match="Two steps"):
        Plan("x", "x", (Step("a", "A", create), Step("a", "B", create)))
    with pytest.raises(PlanError, match="Bad operation"):
        Call("iam", "_make_api_call")
    with pytest.raises(PlanError, match="cannot be part of a plan"):
        Call("iam", "create_user", {"UserName": object()})


# --------------------------------------------------------------------------- applying


def test_apply_runs_every_step_and_journals_only_kept_values(clients: ClientCache) -> None:
    plan = enroll_plan()
    events: list[PlanEvent] = []
    journal = Journal.create(plan)
    report = apply_plan(plan, clients, journal=journal, on_event=events.append)

    assert report.ok, report.render_text()
    assert [r.status for r in report.results] == ["done"] * 5
    assert group_members(clients) == [USER]
    assert key_ids(clients) == [SEEN["key_id"]]
    policy = clients.client("iam").get_user_policy(UserName=USER, PolicyName="keyhygiene-expiry")
    assert policy["PolicyDocument"] == EXPIRY_POLICY
    # The local action got the secret from memory, the key id through a Ref.
    assert SEEN["secret"] and len(SEEN["secret"]) == 40
    assert report.kept["key"] == {"AccessKey.AccessKeyId": SEEN["key_id"]}
    assert report.kept["write"] == {"profile": "photos"}

    kinds = [event.kind for event in events]
    assert kinds == ["plan_started"] + ["step_started", "step_done"] * 5 + ["plan_finished"]
    assert events[-1].report is report
    assert events[1].index == 1 and events[1].total == 5 and events[1].step_id == "user"

    # Finished: the journal moved to done/, and it holds no secret at all.
    assert open_journals() == []
    assert journal.path.parent.name == "done"
    saved = json.loads(journal.path.read_text())
    assert saved["state"] == "finished"
    assert saved["steps"]["key"]["kept"] == {"AccessKey.AccessKeyId": SEEN["key_id"]}
    for path in journal_files():
        text = path.read_text()
        assert SEEN["secret"] not in text
        assert FAKE_SECRET not in text
    for shown in (report.render_text(), repr(report), repr(events)):
        assert SEEN["secret"] not in shown and FAKE_SECRET not in shown


def test_failure_stops_the_plan_and_the_report_says_so(clients: ClientCache) -> None:
    plan = enroll_plan(group="nope")
    journal = Journal.create(plan)
    report = apply_plan(plan, clients, journal=journal)

    assert not report.ok
    assert [r.status for r in report.results] == ["done", "failed", "skipped", "skipped", "skipped"]
    failed = report.result("group")
    assert "NoSuchEntity" in failed.message and "running step 2" in failed.message
    assert report.result("key").message == "the plan stopped at step 2"
    assert user_exists(clients) and key_ids(clients) == []
    text = report.render_text()
    assert "not finished, 1 of 5 steps done" in text
    assert "FAILED     2. Add christopher-phone to group nope" in text
    assert "not run    3. Create an access key" in text
    assert "fix the cause and resume, or roll back" in text
    # The run stays open for the next start.
    [still_open] = open_journals()
    assert still_open.run_id == journal.run_id and still_open.state == "stopped"
    assert still_open.status("group") == "failed" and still_open.status("key") == "pending"

    undo = rollback(report, clients)
    assert undo.ok and [r.step_id for r in undo.results] == ["user"]
    assert not user_exists(clients)
    assert open_journals() == []


def test_access_denied_names_the_missing_permission(clients: ClientCache) -> None:
    denying = Denying(clients, "add_user_to_group", "AddUserToGroup")
    report = apply_plan(enroll_plan(), denying, journal=None)
    message = report.result("group").message
    assert "lacks iam:AddUserToGroup" in message
    assert report.failed == (report.result("group"),)


def test_stop_on_failure_false_goes_on(clients: ClientCache) -> None:
    report = apply_plan(enroll_plan(group="nope"), clients, journal=None, stop_on_failure=False)
    assert [r.status for r in report.results] == ["done", "failed", "done", "done", "done"]
    assert not report.ok
    assert len(key_ids(clients)) == 1


def test_optional_step_failure_goes_on_but_its_dependents_do_not(clients: ClientCache) -> None:
    plan = Plan(
        "revoke",
        "Revoke",
        (
            Step("verify", "Verify", Call("local", "test.fail"), must_succeed=False),
            Step("echo", "Echo", Call("local", "test.echo", {"v": Ref("verify", "x")})),
            Step("other", "Other", Call("local", "test.echo", {"v": 1})),
        ),
    )
    report = apply_plan(plan, clients, journal=None)
    assert [r.status for r in report.results] == ["failed", "skipped", "done"]
    assert report.result("verify").message == "the verification did not pass"
    assert "needs the result of step 1" in report.result("echo").message


def test_a_non_api_method_is_refused(clients: ClientCache) -> None:
    plan = Plan("x", "x", (Step("p", "Paginate", Call("iam", "get_paginator", {})),))
    report = apply_plan(plan, clients, journal=None)
    assert "no API operation 'get_paginator'" in report.result("p").message


def test_clock_and_sleep_are_injectable(clients: ClientCache) -> None:
    ticks = iter(range(100))
    slept: list[float] = []
    plan = Plan("x", "x", (Step("w", "Wait", Call("local", "test.wait", {"seconds": 5})),))
    report = apply_plan(
        plan, clients, journal=None, clock=lambda: float(next(ticks)), sleep=slept.append
    )
    assert slept == [5]
    assert report.results[0].seconds == 2.0  # started at 1, the action read 2, finished at 3


def test_cancel_between_steps(clients: ClientCache) -> None:
    calls = iter([False, True])
    report = apply_plan(enroll_plan(), clients, journal=None, should_stop=lambda: next(calls, True))
    assert [r.status for r in report.results] == ["done"] + ["skipped"] * 4
    assert report.result("group").message == "the run was cancelled"


# --------------------------------------------------------------------------- rollback


def test_rollback_undoes_in_reverse(clients: ClientCache) -> None:
    plan = enroll_plan()
    report = apply_plan(plan, clients, journal=Journal.create(plan))
    assert report.ok
    events: list[PlanEvent] = []
    undo = rollback(report, clients, on_event=events.append)

    assert undo.ok and undo.rollback
    assert [(r.step_id, r.status) for r in undo.results] == [
        ("policy", "undone"),
        ("write", "skipped"),
        ("key", "undone"),
        ("group", "undone"),
        ("user", "undone"),
    ]
    assert undo.result("write").message == "cannot be undone automatically"
    started = [e.step_id for e in events if e.kind == "step_started"]
    assert started == ["policy", "key", "group", "user"]
    assert all(e.undo for e in events)
    assert not user_exists(clients)
    assert group_members(clients) == []
    saved = json.loads(report.journal.path.read_text())  # type: ignore[union-attr]
    assert saved["state"] == "rolled_back"
    assert "rolled back, 4 step(s) undone" in undo.render_text()


def test_rollback_without_journal_uses_the_reports_kept_values(clients: ClientCache) -> None:
    report = apply_plan(enroll_plan(), clients, journal=None)
    undo = rollback(report, clients)
    assert undo.ok
    assert not user_exists(clients)


def test_an_undo_whose_target_is_gone_counts_as_undone(clients: ClientCache) -> None:
    # An earlier rollback's RemoveUserFromGroup took effect, its answer was lost.
    plan = enroll_plan()
    report = apply_plan(plan, clients, journal=Journal.create(plan))
    clients.client("iam").remove_user_from_group(GroupName="photos", UserName=USER)
    undo = rollback(report, clients)
    assert undo.ok, undo.render_text()
    assert undo.result("group").status == "undone"
    assert "undone already" in undo.result("group").message


def test_rollback_goes_on_past_a_failed_undo(
    clients: ClientCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = enroll_plan()
    report = apply_plan(plan, clients, journal=Journal.create(plan))
    denied = {"Error": {"Code": "AccessDenied", "Message": "not allowed"}}

    def refuse(**_params: Any) -> None:
        raise ClientError(denied, "RemoveUserFromGroup")  # type: ignore[arg-type]

    monkeypatch.setattr(clients.client("iam"), "remove_user_from_group", refuse)
    undo = rollback(report, clients)
    assert not undo.ok
    assert undo.result("group").status == "failed"
    message = undo.result("group").message
    assert "lacks iam:RemoveUserFromGroup" in message and "undoing step 2" in message
    assert undo.result("user").status == "undone"
    assert "rolled back only in part" in undo.render_text()
    assert report.journal is not None
    assert json.loads(report.journal.path.read_text())["state"] == "rollback_incomplete"


# --------------------------------------------------------------------------- crash, resume


def test_crash_leaves_an_open_journal_that_resume_finishes(clients: ClientCache) -> None:
    plan = enroll_plan(checkpoint=True)
    crash_mid_plan(clients, plan)

    [journal] = open_journals()
    assert journal.plan == plan
    statuses = [journal.status(step.id) for step in plan.steps]
    assert statuses == ["done", "done", "done", "done", "running", "pending"]
    assert "4 of 6 steps done, step 5 was interrupted" in journal.summary()
    assert not journal.held_by_other_process()
    for path in journal_files():
        assert SEEN["secret"] not in path.read_text()
        assert FAKE_SECRET not in path.read_text()

    events: list[PlanEvent] = []
    report = resume(journal, clients, on_event=events.append)
    assert report.ok, report.render_text()
    assert report.result("user").message == "done in an earlier run"
    # The checkpoint ran again with the key id read back from the journal.
    assert SEEN["checkpoints"] == [{"key_id": SEEN["key_id"]}] * 2
    assert [e.step_id for e in events if e.kind == "step_started"] == ["check", "policy"]
    assert clients.client("iam").list_user_policies(UserName=USER)["PolicyNames"] == [
        "keyhygiene-expiry"
    ]
    assert key_ids(clients) == [SEEN["key_id"]]
    assert open_journals() == []


def test_crash_then_rollback(clients: ClientCache) -> None:
    plan = enroll_plan(checkpoint=True)
    crash_mid_plan(clients, plan)
    [journal] = open_journals()

    undo = rollback(journal, clients)
    assert undo.ok, undo.render_text()
    assert [(r.step_id, r.status) for r in undo.results] == [
        ("check", "skipped"),
        ("write", "skipped"),
        ("key", "undone"),
        ("group", "undone"),
        ("user", "undone"),
    ]
    assert "was interrupted" in undo.result("check").message
    assert not user_exists(clients)
    assert open_journals() == []
    [done] = journal_files()
    assert done.parent.name == "done"
    assert json.loads(done.read_text())["state"] == "rolled_back"


def test_resume_refuses_when_a_needed_secret_was_lost(clients: ClientCache) -> None:
    plan = Plan(
        "rotate",
        "Rotate",
        (
            *enroll_plan().steps[:3],
            Step(
                "check",
                "Checkpoint",
                Call("local", "test.checkpoint", {"key_id": Ref("key", "AccessKey.AccessKeyId")}),
            ),
            Step(
                "use",
                "Write the secret",
                Call(
                    "local", "test.use_secret", {"secret": Ref("key", "AccessKey.SecretAccessKey")}
                ),
            ),
        ),
    )
    crash_mid_plan(clients, plan)
    [journal] = open_journals()
    with pytest.raises(ResumeImpossible) as caught:
        resume(journal, clients)
    message = str(caught.value)
    assert "cannot be resumed" in message
    assert 'step 5 ("Write the secret") needs AccessKey.SecretAccessKey from step 3' in message
    assert "Roll the run back" in message
    assert len(SEEN["checkpoints"]) == 1  # nothing ran
    assert "used_secret" not in SEEN

    assert rollback(journal, clients).ok
    assert not user_exists(clients)


def test_a_local_action_asking_for_a_lost_result_fails_clearly(clients: ClientCache) -> None:
    plan = enroll_plan()
    journal = Journal.create(plan)
    SEEN["crash"] = True
    # Crash in step "write" by making the action itself raise: same as a kill.
    register_local_action("test.write_credentials", _crash_then_write, replace=True)
    try:
        with pytest.raises(SimulatedCrash):
            apply_plan(plan, clients, journal=journal)
        SEEN["crash"] = False
        report = resume(open_journals()[0], clients)
    finally:
        register_local_action("test.write_credentials", _write_credentials, replace=True)
    assert report.result("write").status == "failed"
    assert "not in memory" in report.result("write").message
    assert "Roll the run back" in report.result("write").message


def _crash_then_write(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    if SEEN.get("crash"):
        raise SimulatedCrash("killed")
    return _write_credentials(ctx, params)


def test_apply_refuses_a_journal_that_was_started() -> None:
    plan = enroll_plan()
    journal = Journal.create(plan)
    journal.step_started("user")
    with pytest.raises(PlanError, match="resume it or roll it back"):
        apply_plan(plan, ClientCache(boto3), journal=journal)
    with pytest.raises(PlanError, match="another plan"):
        apply_plan(enroll_plan(group="other"), ClientCache(boto3), journal=journal)


# --------------------------------------------------------------------------- state on disk


def test_state_dir_and_journal_files_are_private(tmp_path: Path) -> None:
    folder = state_dir()
    assert folder == tmp_path / "state"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    journal = Journal.create(enroll_plan())
    assert stat.S_IMODE(journal.path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(journal.path.stat().st_mode) == 0o600
    assert [p.name for p in journal.path.parent.iterdir()] == [journal.path.name]  # no temp file
    assert Journal.load(journal.path).plan == journal.plan


def test_open_journals_skips_a_damaged_file(caplog: pytest.LogCaptureFixture) -> None:
    good = Journal.create(enroll_plan())
    (good.path.parent / "broken.json").write_text("{not json")
    assert [j.run_id for j in open_journals()] == [good.run_id]
    assert "Cannot read the journal" in caplog.text
    good.abandon()
    assert open_journals() == []


def test_reports_have_no_secret_in_their_repr(clients: ClientCache) -> None:
    report = apply_plan(enroll_plan(), clients, journal=None)
    assert isinstance(report, ApplyReport)
    assert SEEN["secret"] not in repr(report)


def test_a_run_held_by_another_live_process_is_left_alone(clients: ClientCache) -> None:
    journal = Journal.create(enroll_plan())
    journal.set_state("running")
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        journal._data["pid"] = other.pid  # as if that process had written it
        assert journal.held_by_other_process()
        with pytest.raises(PlanError, match="still running"):
            resume(journal, clients)
        with pytest.raises(PlanError, match="still running"):
            rollback(journal, clients)
    finally:
        other.kill()
        other.wait()
    assert not journal.held_by_other_process()


def test_resume_refuses_a_closed_run(clients: ClientCache) -> None:
    plan = enroll_plan()
    journal = Journal.create(plan)
    assert apply_plan(plan, clients, journal=journal).ok
    with pytest.raises(ResumeImpossible, match="closed"):
        resume(journal, clients)


def _trips_on_bad_data(ctx: Any, params: Mapping[str, Any]) -> Mapping[str, Any]:
    return json.loads("not json")


register_local_action("test.trips_on_bad_data", _trips_on_bad_data, replace=True)


def test_a_local_action_tripping_on_data_is_a_failed_step_not_a_crash(
    clients: ClientCache, tmp_path: Path
) -> None:
    plan = Plan(
        kind="test",
        title="Trip",
        steps=(
            Step(
                id="trip",
                description="Read a document",
                call=Call("local", "test.trips_on_bad_data"),
            ),
        ),
    )
    journal = Journal.create(plan, tmp_path)
    report = apply_plan(plan, clients, journal=journal)
    assert not report.ok
    assert "JSONDecodeError" in report.render_text()
    assert Journal.load(journal.path).status("trip") == "failed"
