"""Run a reviewed rotation under the profile's lock, and word its failure."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keyhygiene.aws.errors import BotoCoreError, ClientError
from keyhygiene.aws.held_key_clients import HeldKeyClients
from keyhygiene.core.errors import BadInput, KeyHygieneError
from keyhygiene.local import file_lock
from keyhygiene.local.key_location import KeyLocation, held_key_id
from keyhygiene.local.state_dir import state_dir
from keyhygiene.plans import (
    ApplyReport,
    Plan,
    PlanEvent,
    apply_plan,
    rollback,
)
from keyhygiene.plans.journal import Journal
from keyhygiene.workflows.rotation.actions import (
    _BACKUPS,
    _BACKUPS_LOCK,
    _NEW_SECRETS,
    UNCHECKED_CREATE,
)
from keyhygiene.workflows.rotation.crash_hook import _crash_on_event, crash_hook_armed
from keyhygiene.workflows.rotation.hints import _reworded_report, _rewording
from keyhygiene.workflows.rotation.model import (
    EXIT_AWS,
    EXIT_ROTATED,
    EXIT_VERIFY_FAILED,
    NEW_KEY_PATH,
    STEP_CREATE,
    STEP_DELETE_OLD,
    VERIFY_STEPS,
    RotationBusy,
    key_tail,
)
from keyhygiene.workflows.rotation.pending import pending_rotations
from keyhygiene.workflows.rotation.plan import _plan_value

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RotationOutcome:
    """How a rotation (or the recovery of one) ended; `render_text` says it for people."""

    plan: Plan
    exit_code: int
    headline: str
    report: ApplyReport | None = None
    undo_report: ApplyReport | None = None
    old_key_id: str | None = None
    new_key_id: str | None = None
    proof_arn: str | None = None
    api_calls: int = 0
    elapsed: float = 0.0
    action: str = "rotate"  # "rotate", "finish", "roll_back"

    @property
    def ok(self) -> bool:
        return self.exit_code == EXIT_ROTATED

    @property
    def new_key_tail(self) -> str:
        return key_tail(self.new_key_id)

    def render_text(self, *, details: bool = True) -> str:
        lines = [self.headline]
        if details and self.report is not None:
            lines += ["", self.report.render_text()]
        if details and self.undo_report is not None:
            lines += ["", self.undo_report.render_text()]
        if self.proof_arn:
            lines += [
                "",
                f"Proof, made with the new key {self.new_key_tail}: AWS says this computer is "
                f"{self.proof_arn}.",
            ]
        return "\n".join(lines)


def execute_rotation(
    plan: Plan,
    clients: HeldKeyClients,
    *,
    on_event: Callable[[PlanEvent], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    journal_dir: Path | None = None,
) -> RotationOutcome:
    """Apply a rotation plan with a journal, then decide: done (exit 0), rolled
    back after a failed verification (1), or failed with what was done and
    undone (3). A failure while deleting the old key is left for the next run
    to finish: the new key works and the old one is already off.

    Holds the profile's rotation lock throughout; raises `RotationBusy` (or
    `BadInput` for a plan the profile has moved past), nothing changed."""
    with rotation_lock(clients.location.profile, journal_dir):
        _check_plan_still_current(plan, clients, journal_dir)
        return _execute(plan, clients, on_event, should_stop, clock, sleep, journal_dir)


def _check_plan_still_current(
    plan: Plan, clients: HeldKeyClients, journal_dir: Path | None
) -> None:
    """A plan made before another rotation of the profile ran must not run."""
    profile = clients.location.profile
    old_id = _plan_value(plan, "old_access_key_id")
    holding = held_key_id(clients.location)
    if holding != old_id:
        raise BadInput(
            f"Profile {profile!r} holds {holding or 'no key'} now, not the key {old_id} this plan "
            "rotates (another rotation ran meanwhile?). Nothing was changed.",
            hint="Make a new plan: run `keyhygiene rotate` again.",
        )
    if pending_rotations(journal_dir, profile=profile):
        raise BadInput(
            f"An interrupted rotation of profile {profile!r} is waiting. Nothing was changed.",
            hint="Run `keyhygiene rotate` again: it finishes or rolls back that one first.",
        )


def _execute(
    plan: Plan,
    clients: HeldKeyClients,
    on_event: Callable[[PlanEvent], None] | None,
    should_stop: Callable[[], bool] | None,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    journal_dir: Path | None,
) -> RotationOutcome:
    started = clock()
    calls_before = clients.api_calls
    user = str(_plan_value(plan, "user_name"))
    relay = _rewording(on_event, user)
    journal = Journal.create(plan, journal_dir)
    report = apply_plan(
        plan,
        clients,
        journal=journal,
        on_event=_with_crash_hook(relay),
        should_stop=should_stop,
        clock=clock,
        sleep=sleep,
    )
    report = _reworded_report(report, user)
    old_id = _plan_value(plan, "old_access_key_id")
    new_id = report.kept.get(STEP_CREATE, {}).get(NEW_KEY_PATH)

    def outcome(code: int, headline: str, **more: Any) -> RotationOutcome:
        return RotationOutcome(
            plan,
            code,
            headline,
            report=report,
            old_key_id=old_id,
            new_key_id=new_id,
            api_calls=clients.api_calls - calls_before,
            elapsed=clock() - started,
            **more,
        )

    if report.ok:
        _drop_backup(new_id)
        proof = prove_identity(clients)
        return outcome(
            EXIT_ROTATED,
            f"Rotated: profile {clients.location.profile} now holds the new key "
            f"{key_tail(new_id)}; the old key {old_id} is deleted.",
            proof_arn=proof,
        )
    stopped_at = _first_unfinished(report)
    if stopped_at == STEP_DELETE_OLD:
        _drop_backup(new_id)
        return outcome(
            EXIT_AWS,
            f"Almost done: the new key {key_tail(new_id)} is in use and verified, and the old key "
            f"{old_id} is deactivated, but deleting it failed: "
            f"{report.result(STEP_DELETE_OLD).message or 'the run was stopped'}. "
            "Run `keyhygiene rotate` again to finish this run.",
        )
    if stopped_at == STEP_CREATE and UNCHECKED_CREATE in report.result(STEP_CREATE).message:
        # CreateAccessKey may have made a key that nobody could look for (AWS
        # stopped answering). The journal stays open with that step marked
        # interrupted, as after a crash: the next run looks for the key
        # (made after the step started, never used), deletes it, rolls back.
        journal.mark_interrupted(STEP_CREATE)
        _drop_backup(new_id)
        return outcome(
            EXIT_AWS,
            f"Not finished: {_failure_message(report)} Run `keyhygiene rotate` again: it "
            "looks for that key first, deletes it if it was never used, and rotates afresh.",
        )
    undo = rollback(report, clients, on_event=relay, clock=clock, sleep=sleep)
    undo = _reworded_report(undo, user)
    # Whatever the rollback did, the old secret leaves memory now.
    _drop_backup(new_id)
    if not report.done:
        headline = f"Nothing was changed: {_failure_message(report) or 'the run was cancelled'}"
        return outcome(EXIT_AWS, headline, undo_report=undo if undo.results else None)
    return outcome(
        _failure_code(report, undo),
        _failure_headline(report, undo, clients.location, old_id, new_id),
        undo_report=undo,
    )


def _lock_name(profile: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.@+=,-]", "_", profile)
    if safe != profile:
        # Two profiles that differ only in unsafe characters get two locks.
        safe += "-" + hashlib.sha256(profile.encode()).hexdigest()[:8]
    return safe


@contextlib.contextmanager
def rotation_lock(profile: str, directory: Path | None = None) -> Iterator[Path]:
    """One rotation of `profile` at a time on this computer (TUI, cron and the
    command line alike): an flock on `<state dir>/rotate-<profile>.lock`, which
    the system releases when the process dies (`local.file_lock`). Never waits: a second one gets
    `RotationBusy` (exit 2) before anything is changed."""
    folder = Path(directory) if directory else state_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / f"rotate-{_lock_name(profile)}.lock"
    flags = os.O_RDWR | os.O_CREAT | file_lock.CLOEXEC | file_lock.NOFOLLOW
    fd = os.open(path, flags, 0o600)
    try:
        if not file_lock.try_lock(fd):
            raise RotationBusy(
                f"Another rotation of profile {profile!r} is running on this computer "
                "(keyhygiene in another window, a scheduled job, or the TUI). Nothing was changed.",
                hint="Let it finish, then run `keyhygiene rotate` again if needed.",
            ) from None
        yield path
    finally:
        os.close(fd)  # closing releases the lock


def _with_crash_hook(
    on_event: Callable[[PlanEvent], None] | None,
) -> Callable[[PlanEvent], None] | None:
    if not crash_hook_armed():
        return on_event

    def hooked(event: PlanEvent) -> None:
        if on_event is not None:
            on_event(event)
        _crash_on_event(event)

    return hooked


def _drop_backup(new_id: str | None) -> None:
    if new_id:
        with _BACKUPS_LOCK:
            _BACKUPS.pop(new_id, None)
            _NEW_SECRETS.pop(new_id, None)


def _first_unfinished(report: ApplyReport) -> str | None:
    for result in report.results:
        if result.status != "done":
            return result.step_id
    return None


def _failure_message(report: ApplyReport) -> str:
    for result in report.results:
        if result.status == "failed":
            return result.message
    return ""


def _failure_code(report: ApplyReport, undo: ApplyReport) -> int:
    failed = [result.step_id for result in report.failed]
    if undo.ok and failed and failed[0] in VERIFY_STEPS:
        return EXIT_VERIFY_FAILED
    return EXIT_AWS


def _failure_headline(
    report: ApplyReport,
    undo: ApplyReport,
    location: KeyLocation,
    old_id: str | None,
    new_id: str | None,
) -> str:
    failed = report.failed[0] if report.failed else None
    where = (
        f"step {report.plan.number(failed.step_id)} ({report.plan.step(failed.step_id).description})"
        if failed
        else "a cancelled step"
    )
    reason = failed.message if failed else "the run was cancelled"
    done = [report.plan.step(result.step_id).description for result in report.done]
    undone = [report.plan.step(result.step_id).description for result in undo.undone]
    kept = [
        report.plan.step(result.step_id).description
        for result in undo.results
        if result.status != "undone" and result.step_id not in VERIFY_STEPS
    ]
    verification = bool(failed and failed.step_id in VERIFY_STEPS)
    lines = [
        (
            f"The new key {key_tail(new_id)} never verified: {reason}"
            if verification
            else f"The rotation failed at {where}: {reason}"
        )
    ]
    lines.append("Done before the failure: " + ("; ".join(done) if done else "nothing") + ".")
    lines.append("Undone: " + ("; ".join(undone) if undone else "nothing") + ".")
    if kept:
        lines.append("Not undone: " + "; ".join(kept) + ".")
    if undo.ok:
        lines.append(
            f"Profile {location.profile} holds the old key {old_id}, as before; "
            + ("the new key is deleted." if new_id else "no new key was made.")
        )
    elif new_id and _holds(location, new_id):
        lines.append(
            f"Profile {location.profile} keeps the new key {key_tail(new_id)} ({new_id}), which "
            f"stays active: the old key {old_id} could not be put back in working order, and "
            "giving it back to the profile would leave this computer without a working key. "
            "Run `keyhygiene rotate` again: it finishes this rotation with the new key "
            "(verifies it, deactivates and deletes the old key)."
        )
    else:
        lines.append(
            "The rollback is incomplete: fix the cause and run `keyhygiene rotate` again, which "
            "finishes rolling back first."
        )
    return "\n".join(lines)


def _holds(location: KeyLocation, key_id: str) -> bool:
    try:
        return held_key_id(location) == key_id
    except KeyHygieneError:
        return False


def prove_identity(clients: HeldKeyClients) -> str | None:
    """Who AWS says the profile's key is, asked with that very key."""
    try:
        return str(clients.client("sts").get_caller_identity()["Arn"])
    except (ClientError, BotoCoreError, KeyHygieneError) as exc:
        log.warning("Could not make the final who-am-I proof: %s", type(exc).__name__)
        return None
