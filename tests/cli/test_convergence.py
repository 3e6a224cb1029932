"""Every workflow converges after an interruption at any AWS request (issue 12, items 5-6).

For each workflow, a dry run (unfaulted, at collection time) counts its AWS
requests 1..N and records the account it leaves: the *expected* end state.
Each case seeds the account again, runs the command with a fault at request N
(tests/crash_harness.py) and, unless that run succeeded or changed nothing,
runs the same command again. `test_converges` passes when the account and the
computer's files end equal to the expected state (no orphan user, key,
membership, policy or statement; whitelists equal to the group members; one
working key per computer; files botocore reads; no journal left open), the
rerun exited 0 and said it found the interrupted run, and no run printed a
traceback or a secret. `test_failure_is_reported` asks of the faulted run that,
when it failed, it said so on stderr in one `keyhygiene: …` line naming the
cause.

The matrix, chosen by KEYHYGIENE_CRASH (the default keeps CI within minutes):
- `kill` (default): every request N of every workflow, SIGKILLed there;
- `sample`: as `kill`, plus one other fault kind in mode `from` and one in
  mode `once` at each N, the kinds rotating with N (each kind meets every
  workflow at about a sixth of its requests); KEYHYGIENE_CRASH_SHIFT=k
  rotates them by k, to cover the other pairs;
- `full` (or KEYHYGIENE_FULL_CRASH=1): every request × every kind × both modes.
KEYHYGIENE_CRASH_WORKFLOWS=enroll,rotate limits the workflows;
KEYHYGIENE_CRASH_LANES=n sets the worker processes (default: 2, one per core).

Cases run in worker processes (`crash_harness.Lanes`), each with its own moto
server; a test waits for its case's outcome. Timings per workflow are printed
at the end of the module.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cli.convergence_accounts import WORKFLOWS
from crash_harness import (
    FAULT_KINDS,
    Fault,
    HarnessFailure,
    Lab,
    Lanes,
    MotoServer,
    Outcome,
    Run,
    Sandbox,
    run_command,
)

MATRIX = (
    "full"
    if os.environ.get("KEYHYGIENE_FULL_CRASH") == "1"
    else (os.environ.get("KEYHYGIENE_CRASH") or "kill")
)
if MATRIX not in ("kill", "sample", "full"):
    raise ValueError(f"KEYHYGIENE_CRASH={MATRIX!r}: expected kill, sample or full")
SHIFT = int(os.environ.get("KEYHYGIENE_CRASH_SHIFT") or 0)
LANES = int(os.environ.get("KEYHYGIENE_CRASH_LANES") or min(2, os.cpu_count() or 1))
SELECTED = [
    name.strip()
    for name in (os.environ.get("KEYHYGIENE_CRASH_WORKFLOWS") or ",".join(WORKFLOWS)).split(",")
    if name.strip()
]
OTHER_KINDS = tuple(kind for kind in FAULT_KINDS if kind != "kill")

# A job for a lane: (workflow, fault kind, request number, mode); plain, to pickle.
Job = tuple[str, str, int, str]


@dataclass
class DryRun:
    run: Run | None
    expected: dict[str, Any] | None
    error: str = ""

    @property
    def count(self) -> int:
        return len(self.run.requests) if self.run else 0


# --------------------------------------------------------------------------- collection


_STATE: dict[str, Any] = {}


def _collection_lab() -> Lab:
    """A moto server for the dry runs (started at collection, stopped at exit)."""
    if "lab" not in _STATE:
        server = MotoServer.start()
        atexit.register(server.stop)
        _STATE["lab"] = Lab(server, Path(tempfile.mkdtemp(prefix="kh-crash-dry-")))
    lab: Lab = _STATE["lab"]
    return lab


def dry_run(name: str) -> DryRun:
    """The workflow run once without a fault, on a fresh seed (once per session)."""
    runs: dict[str, DryRun] = _STATE.setdefault("dry", {})
    if name not in runs:
        try:
            run, state, problems = _collection_lab().dry_run(WORKFLOWS[name])
            error = "the unfaulted run is not clean:\n" + "\n".join(problems) if problems else ""
            if problems:
                error += "\n" + run.excerpt()
            runs[name] = DryRun(run, None if problems else state, error)
        except Exception as exc:  # noqa: BLE001 - the tests report it, collection goes on
            runs[name] = DryRun(None, None, f"{type(exc).__name__}: {exc}")
    return runs[name]


def matrix() -> list[Job]:
    jobs: list[Job] = []
    for offset, name in enumerate(SELECTED):
        count = dry_run(name).count
        for at in range(1, max(count, 1) + 1):
            jobs.append((name, "kill", at, "once"))
            if MATRIX == "full":
                jobs.extend(
                    (name, kind, at, mode) for mode in ("from", "once") for kind in OTHER_KINDS
                )
            elif MATRIX == "sample":
                turn = at + offset + SHIFT
                jobs.append((name, OTHER_KINDS[turn % len(OTHER_KINDS)], at, "from"))
                jobs.append((name, OTHER_KINDS[(turn + 3) % len(OTHER_KINDS)], at, "once"))
    return jobs


def job_id(job: Job) -> str:
    name, kind, at, mode = job
    return f"{name}-{kind}{'' if kind == 'kill' else '-' + mode}-{at:02d}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "job" in metafunc.fixturenames:
        jobs = matrix()
        metafunc.parametrize("job", jobs, ids=[job_id(job) for job in jobs])
    elif "workflow_name" in metafunc.fixturenames:
        metafunc.parametrize("workflow_name", SELECTED)


# --------------------------------------------------------------------------- lanes


def work(lab: Lab, job: Job) -> Outcome | HarnessFailure:
    """In a lane: one case."""
    name, kind, at, mode = job
    dry = dry_run(name)  # computed before the lanes were forked
    if dry.expected is None:
        return HarnessFailure(f"no expected state for {name}: {dry.error}")
    return lab.run_case(WORKFLOWS[name], Fault(kind, at, mode), dry.expected)


class Outcomes:
    """The outcomes of this module's selected cases, computed by the lanes."""

    def __init__(self, lanes: Lanes) -> None:
        self._lanes = lanes
        self._known: dict[Job, Outcome | HarnessFailure] = {}

    def __getitem__(self, job: Job) -> Outcome:
        if job not in self._known:
            self._known[job] = self._lanes.result(job)
        found = self._known[job]
        if isinstance(found, HarnessFailure):
            pytest.fail(f"the harness failed on {job_id(job)}:\n{found.text}")
        return found

    def all(self) -> list[Outcome]:
        return [o for o in self._known.values() if isinstance(o, Outcome)]


@pytest.fixture(scope="module")
def outcomes(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Outcomes]:
    jobs = list(
        dict.fromkeys(
            item.callspec.params["job"]
            for item in request.session.items
            if getattr(item, "module", None) is request.module
            and hasattr(item, "callspec")
            and "job" in item.callspec.params
        )
    )
    # Whole workflows to a lane (a cut that changed nothing lets the next case of
    # the same workflow skip seeding), the biggest first, to the least loaded lane.
    sizes = Counter(job[0] for job in jobs)
    loads = [0] * max(1, min(LANES, len(sizes)))
    lane_of_workflow = {}
    for name, size in sizes.most_common():
        lane = loads.index(min(loads))
        lane_of_workflow[name] = lane
        loads[lane] += size
    started = time.monotonic()
    lanes = Lanes(len(loads), tmp_path_factory.mktemp("crash-lanes"), work)
    lanes.submit(jobs, lambda job: lane_of_workflow[job[0]])
    known = Outcomes(lanes)
    try:
        yield known
    finally:
        lanes.close()
        _report_timings(request, known.all(), time.monotonic() - started, len(loads))


def _report_timings(
    request: pytest.FixtureRequest, done: list[Outcome], wall: float, lanes: int
) -> None:
    if not done:
        return
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"crash matrix: {len(done)} cases in {wall:.1f} s wall, {lanes} lane(s)"]
    for name in SELECTED:
        mine = [o for o in done if o.workflow == name]
        if mine:
            seconds = sum(o.seconds for o in mine)
            failing = sum(bool(o.problems) for o in mine)
            reruns = sum(o.rerun is not None for o in mine)
            lines.append(
                f"  {name:<13} {len(mine):4d} cases, {seconds:6.1f} s in its lane "
                f"({seconds / len(mine):.2f} s a case), {reruns} reruns, "
                f"{dry_run(name).count} requests, {failing} not converging"
            )
    report = Path(os.environ.get("KEYHYGIENE_CRASH_REPORT") or tempfile.gettempdir()) / (
        "keyhygiene-crash-report.json"
    )
    with contextlib.suppress(OSError):
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps([_as_json(o) for o in done], indent=1))
        lines.append(f"  every case, with its runs and problems: {report}")
    if reporter is not None:
        reporter.write_line("")
        for line in lines:
            reporter.write_line(line)


def _as_json(outcome: Outcome) -> dict[str, Any]:
    at = outcome.at
    runs = {"first": outcome.first, "rerun": outcome.rerun}
    return {
        "workflow": outcome.workflow,
        "fault": outcome.fault.label,
        "at": outcome.fault.at,
        "request": f"{at.service}:{at.operation}" if at else None,
        "seconds": round(outcome.seconds, 2),
        "changed_nothing": outcome.changed_nothing,
        "problems": outcome.problems,
        "message_problems": outcome.message_problems,
        **{
            name: None
            if run is None
            else {
                "code": run.code,
                "stdout": run.stdout,
                "stderr": run.stderr,
                "requests": [str(r) for r in run.requests],
            }
            for name, run in runs.items()
        },
    }


# --------------------------------------------------------------------------- the tests


def test_dry_run_is_clean_and_repeatable(workflow_name: str, tmp_path: Path) -> None:
    """The reference run is consistent by itself, and makes the same requests again."""
    dry = dry_run(workflow_name)
    assert not dry.error, dry.error
    assert dry.run is not None
    lab = _collection_lab()
    sandbox = Sandbox(tmp_path / "again")
    seeded = lab.seed(WORKFLOWS[workflow_name], sandbox)
    again = run_command(WORKFLOWS[workflow_name].argv(lab.server.url), sandbox, seeded.env)
    assert again.code == 0, again.excerpt()
    assert sorted(f"{r.service}:{r.operation}" for r in again.requests) == sorted(
        f"{r.service}:{r.operation}" for r in dry.run.requests
    ), "the workflow's requests differ between two unfaulted runs: kill points would move"


def test_converges(job: Job, outcomes: Outcomes) -> None:
    outcome = outcomes[job]
    assert not outcome.problems, f"{job_id(job)}\n{outcome.report()}"


def test_failure_is_reported(job: Job, outcomes: Outcomes) -> None:
    outcome = outcomes[job]
    assert not outcome.message_problems, (
        f"{job_id(job)}\n{outcome.report(outcome.message_problems)}"
    )
