"""The journal of a plan run: what was done, so that a cut-short run can be resumed or undone.

One JSON file per run in `<state dir>/journals/`, rewritten atomically (temp
file in the same folder, fsync, `os.replace`) before and after every step. It
holds the plan, each step's status, timestamps and message, and the values
the step chose to keep (`Step.keep`: key ids, ARNs), never a secret.

A finished or rolled-back run is moved to `journals/done/`, which is the
history of what keyhygiene changed. `open_journals` lists the others: the
runs to offer to resume or roll back at the next start.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
import tempfile
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from keyhygiene.core.errors import KeyHygieneError
from keyhygiene.local.state_dir import private_dir, state_dir
from keyhygiene.plans.model import Plan, PlanError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
JOURNALS = "journals"
DONE = "done"
# "pending": created, nothing run yet; "running": a process is applying it;
# "stopped": a step failed or the run was cancelled;
# "rollback_incomplete": an undo failed.
OPEN_STATES = ("pending", "running", "stopped", "rollback_incomplete")
# "abandoned": the person chose to neither resume nor roll back.
CLOSED_STATES = ("finished", "rolled_back", "abandoned")
STEP_STATUSES = ("pending", "running", "done", "failed", "undone")


class JournalError(KeyHygieneError):
    """A journal file that cannot be read or written."""


class Journal:
    """One run of one plan, as recorded on disk."""

    def __init__(self, path: Path, data: dict[str, Any], plan: Plan) -> None:
        self.path = path
        self._data = data
        self.plan = plan

    # -- making and reading

    @classmethod
    def create(cls, plan: Plan, directory: Path | None = None) -> Journal:
        """A new journal for `plan`, written at once in `<directory or state_dir()>/journals/`."""
        folder = private_dir(Path(directory or state_dir()) / JOURNALS)
        now = _now()
        run_id = f"{now:%Y%m%dT%H%M%SZ}-{plan.kind}-{secrets.token_hex(3)}"
        data: dict[str, Any] = {
            "version": FORMAT_VERSION,
            "run_id": run_id,
            "state": "pending",
            "created_at": _stamp(now),
            "updated_at": _stamp(now),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "plan": plan.to_json(),
            "steps": {step.id: _new_step_record() for step in plan.steps},
        }
        journal = cls(folder / f"{run_id}.json", data, plan)
        journal.save()
        return journal

    @classmethod
    def load(cls, path: Path) -> Journal:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise JournalError(f"Cannot read the journal {path}: {exc}") from None
        if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
            raise JournalError(f"The journal {path} is not in a format this keyhygiene knows.")
        try:
            plan = Plan.from_json(data["plan"])
        except (KeyError, PlanError) as exc:
            raise JournalError(f"The journal {path} holds a damaged plan: {exc}") from None
        steps = data.get("steps")
        if not isinstance(steps, dict) or set(steps) != {step.id for step in plan.steps}:
            raise JournalError(f"The journal {path} does not match its own plan.")
        return cls(Path(path), data, plan)

    # -- reading

    @property
    def run_id(self) -> str:
        return str(self._data["run_id"])

    @property
    def state(self) -> str:
        return str(self._data["state"])

    @property
    def created_at(self) -> str:
        return str(self._data["created_at"])

    @property
    def updated_at(self) -> str:
        return str(self._data["updated_at"])

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    def status(self, step_id: str) -> str:
        return str(self._step(step_id)["status"])

    def seconds(self, step_id: str) -> float:
        return float(self._step(step_id).get("seconds") or 0.0)

    def message(self, step_id: str) -> str:
        return str(self._step(step_id).get("message") or "")

    def kept_values(self) -> dict[str, dict[str, Any]]:
        """Step id -> {kept path: value}, for the steps that kept anything."""
        out = {}
        for step_id, record in self._data["steps"].items():
            if record.get("kept"):
                out[step_id] = dict(record["kept"])
        return out

    def held_by_other_process(self) -> bool:
        """True when the process that wrote this journal still runs on this computer.

        Then it may still be applying the plan: do not resume or roll back
        under its feet. (A pid reused after a reboot gives a false alarm,
        which is the safe side.)
        """
        pid = int(self._data.get("pid") or 0)
        if self._data.get("host") != socket.gethostname() or pid in (0, os.getpid()):
            return False
        if os.name != "posix":
            return False  # no harmless liveness probe there (os.kill would kill)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # it exists, run by another user
        return self.state == "running"

    def summary(self) -> str:
        """One line for the "resume or roll back?" prompt."""
        statuses = [self.status(step.id) for step in self.plan.steps]
        text = (
            f"{self.plan.title} ({self.plan.kind}, started {self.created_at}): "
            f"{statuses.count('done')} of {len(statuses)} steps done"
        )
        interrupted = [
            self.plan.number(step.id)
            for step in self.plan.steps
            if self.status(step.id) == "running"
        ]
        if interrupted:
            text += f", step {interrupted[0]} was interrupted"
        if self.state == "rollback_incomplete":
            text += ", rolled back only in part"
        return text

    # -- recording

    def step_started(self, step_id: str) -> None:
        record = self._step(step_id)
        record.update(status="running", started_at=_stamp(_now()), finished_at=None, message="")
        self.save()

    def step_finished(
        self,
        step_id: str,
        status: str,
        *,
        seconds: float = 0.0,
        message: str = "",
        kept: Mapping[str, Any] | None = None,
        uncertain: bool = False,
    ) -> None:
        """`uncertain`: the step failed without AWS's answer (a timeout, a lost
        connection), so it may have taken effect: a rollback tries its undo."""
        if status not in STEP_STATUSES:
            raise ValueError(f"unknown step status {status!r}")
        record = self._step(step_id)
        record.update(
            status=status,
            finished_at=_stamp(_now()),
            seconds=round(seconds, 3),
            message=message,
        )
        if kept is not None:
            record["kept"] = dict(kept)
        if uncertain:
            record["uncertain"] = True
        else:
            record.pop("uncertain", None)
        self.save()

    def mark_interrupted(self, step_id: str) -> None:
        """Record a failed step as interrupted (running, its start time kept):
        it may have taken effect, and the next run treats it as after a crash."""
        record = self._step(step_id)
        record.update(status="running", finished_at=None)
        self.set_state("stopped")

    def uncertain(self, step_id: str) -> bool:
        return bool(self._step(step_id).get("uncertain"))

    def set_state(self, state: str) -> None:
        if state not in OPEN_STATES + CLOSED_STATES:
            raise ValueError(f"unknown journal state {state!r}")
        self._data["state"] = state
        self.save()

    def close(self, state: str = "finished") -> None:
        """Record the final state and move the file to `journals/done/`."""
        if state not in CLOSED_STATES:
            raise ValueError(f"{state!r} is not a final state")
        self.set_state(state)
        self._move_to_done()

    def close_as_finished_by(self, other: Journal) -> None:
        """A rerun of the same command, built from the account as it is now,
        did what this interrupted run had left undone."""
        self._data["finished_by"] = other.run_id
        self.close("finished")

    def abandon(self) -> None:
        """Neither resume nor roll back: keep the record, stop asking."""
        self.close("abandoned")

    def save(self) -> None:
        self._data["updated_at"] = _stamp(_now())
        try:
            write_json_atomic(self.path, self._data)
        except OSError as exc:
            raise JournalError(f"Cannot write the journal {self.path}: {exc}") from None

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(self._data))

    def _step(self, step_id: str) -> dict[str, Any]:
        return self._data["steps"][step_id]

    def _move_to_done(self) -> None:
        if self.path.parent.name == DONE:
            return  # closed before (a finished run rolled back afterwards)
        done = private_dir(self.path.parent / DONE)
        target = done / self.path.name
        os.replace(self.path, target)
        _fsync_dir(self.path.parent)
        _fsync_dir(done)
        self.path = target

    def __repr__(self) -> str:
        return f"Journal({self.run_id!r}, state={self.state!r})"


def open_journals(directory: Path | None = None) -> list[Journal]:
    """The unfinished runs in `<directory or state_dir()>/journals/`, oldest first.

    A journal that cannot be read is logged and left where it is, so that one
    damaged file never blocks the start.
    """
    folder = Path(directory or state_dir()) / JOURNALS
    if not folder.is_dir():
        return []
    journals = []
    for path in sorted(folder.glob("*.json")):
        try:
            journal = Journal.load(path)
        except JournalError as exc:
            log.warning("%s", exc)
            continue
        if journal.is_open:
            journals.append(journal)
        else:
            # Closed, but the process stopped between recording and moving it.
            journal._move_to_done()
    return journals


def interrupted_runs_of(plan: Plan, directory: Path | None = None) -> list[Journal]:
    """The interrupted runs with the same subject as `plan` (none being applied
    by a live process): the runs that `plan`, built from the account as it is
    now, finishes. The subject names the intent, so the kinds may differ (a loan
    moved instead of made). Plans without a subject match nothing."""
    return interrupted_runs_about(plan.subject, directory)


def interrupted_runs_about(subject: str, directory: Path | None = None) -> list[Journal]:
    """The interrupted runs whose plan has `subject` (IAM names ignore case)."""
    if not subject:
        return []
    wanted = subject.casefold()
    return [
        journal
        for journal in open_journals(directory)
        if journal.plan.subject.casefold() == wanted and not journal.held_by_other_process()
    ]


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that a reader sees the old file or the new one, never a part."""
    text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    # The leading dot and suffix keep a leftover temp file out of `*.json`.
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not possible (nor needed) on Windows.
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _new_step_record() -> dict[str, Any]:
    return {
        "status": "pending",
        "started_at": None,
        "finished_at": None,
        "seconds": None,
        "message": "",
        "kept": {},
    }


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")
