"""Apply a plan in order, resume it or roll it back: the local actions' registry,
the runner, its context and its report."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from keyhygiene.aws.errors import BotoCoreError, ClientError, ParamValidationError
from keyhygiene.core.errors import KeyHygieneError, from_client_error
from keyhygiene.core.sealed import Sealed

if TYPE_CHECKING:
    from keyhygiene.plans.journal import Journal
from keyhygiene.plans.model import (
    LOCAL,
    Call,
    EventKind,
    Plan,
    PlanError,
    Ref,
    ResultNotAvailable,
    ResumeImpossible,
    Step,
    StepStatus,
    _is_name,
)
from keyhygiene.plans.scrub import _scrub
from keyhygiene.plans.values import _kept_values, _lookup, _lookup_kept

LocalAction = Callable[["ApplyContext", Mapping[str, Any]], "Mapping[str, Any] | None"]
_LOCAL_ACTIONS: dict[str, LocalAction] = {}


def register_local_action(name: str, func: LocalAction, *, replace: bool = False) -> LocalAction:
    """Make `Call("local", name, params)` run `func(ctx, params)`; returns `func`.

    The result (a mapping or None) becomes the step's result, like an API
    response. Modules register their actions when imported, so that a journal
    read at the next start can run them again.
    """
    if not _is_name(name, allow_dots=True):
        raise PlanError(f"Bad local action name {name!r}.")
    known = _LOCAL_ACTIONS.get(name)
    if known is not None and known is not func and not replace:
        raise PlanError(f"A local action named {name!r} is already registered.")
    _LOCAL_ACTIONS[name] = func
    return func


def local_action(name: str) -> Callable[[LocalAction], LocalAction]:
    """Decorator form of `register_local_action`."""
    return lambda func: register_local_action(name, func)


# --------------------------------------------------------------------------- applying


class ClientProvider(Protocol):
    def client(self, service: str) -> Any: ...


class ClientCache:
    """A `ClientProvider` over anything with `.client(name)` (a boto3 Session, or boto3 itself)."""

    def __init__(self, source: Any, **client_kwargs: Any) -> None:
        self._source = source
        self._kwargs = client_kwargs
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self._source.client(service, **self._kwargs)
        return self._clients[service]


class Results(Sealed):
    """Step id -> full result of a step run by this process."""

    def __getitem__(self, key: str) -> Any:
        try:
            return self._data[key]
        except KeyError:
            raise ResultNotAvailable(
                f"The result of step {key!r} is not in memory: that step ran in an earlier "
                "process, and only the values it kept were journaled.",
                hint="Roll the run back, then start it again.",
            ) from None


@dataclass
class ApplyContext:
    """What a local action can use while a plan runs."""

    clients: ClientProvider = field(repr=False)
    results: Results = field(repr=False)  # step id -> full result, memory only, may hold secrets
    record: Mapping[str, Mapping[str, Any]] = field(repr=False)  # step id -> journaled values
    step: Step | None = None
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    last_service: str = ""

    def client(self, service: str) -> Any:
        # Remembered so that a ClientError raised inside a local action names
        # the right permission ("s3:PutBucketPolicy", not "local:...").
        self.last_service = service
        return self.clients.client(service)


@dataclass(frozen=True)
class StepResult:
    step_id: str
    status: StepStatus
    seconds: float = 0.0
    message: str = ""
    # Failed without AWS's answer: it may have taken effect (a rollback tries its undo).
    uncertain: bool = False


@dataclass(frozen=True)
class PlanEvent:
    """Progress for the TUI and the command line. `undo` is True during a rollback."""

    kind: EventKind
    step_id: str | None = None
    index: int = 0  # 1-based step number, 0 for plan events
    total: int = 0
    description: str = ""
    seconds: float = 0.0
    message: str = ""
    undo: bool = False
    report: ApplyReport | None = None  # with "plan_finished"


@dataclass(frozen=True)
class ApplyReport:
    plan: Plan
    results: tuple[StepResult, ...]
    elapsed: float
    kept: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # journaled values
    rollback: bool = False
    journal: Journal | None = field(default=None, compare=False, repr=False)

    @property
    def ok(self) -> bool:
        """Applied: every step done. Rolled back: nothing failed to undo."""
        if self.rollback:
            return not self.failed
        return len(self.results) == len(self.plan.steps) and all(
            result.status == "done" for result in self.results
        )

    @property
    def done(self) -> tuple[StepResult, ...]:
        return self._with("done")

    @property
    def failed(self) -> tuple[StepResult, ...]:
        return self._with("failed")

    @property
    def skipped(self) -> tuple[StepResult, ...]:
        return self._with("skipped")

    @property
    def undone(self) -> tuple[StepResult, ...]:
        return self._with("undone")

    def result(self, step_id: str) -> StepResult:
        for result in self.results:
            if result.step_id == step_id:
                return result
        raise KeyError(step_id)

    def _with(self, status: str) -> tuple[StepResult, ...]:
        return tuple(result for result in self.results if result.status == status)

    def render_text(self) -> str:
        lines = [self._headline()]
        labels = {"done": "done", "failed": "FAILED", "skipped": "not run", "undone": "undone"}
        if self.rollback:
            labels["skipped"] = "not undone"
        for result in self.results:
            step = self.plan.step(result.step_id)
            timing = f" ({result.seconds:.1f} s)" if result.status in ("done", "undone") else ""
            line = f"  {labels[result.status]:<10} {self.plan.number(step.id)}. {step.description}{timing}"
            lines.append(line)
            if result.message:
                lines.append(f"{'':13}{result.message}")
        advice = self._advice()
        if advice:
            lines.extend(["", advice])
        return "\n".join(lines)

    def _headline(self) -> str:
        total = len(self.plan.steps)
        took = f"{self.elapsed:.1f} s"
        if self.rollback:
            verdict = "rolled back" if self.ok else "rolled back only in part"
            return f"{self.plan.title}: {verdict}, {len(self.undone)} step(s) undone in {took}."
        if self.ok:
            return f"{self.plan.title}: done, all {total} steps in {took}."
        return f"{self.plan.title}: not finished, {len(self.done)} of {total} steps done in {took}."

    def _advice(self) -> str:
        if self.rollback:
            if self.failed:
                return "Some steps could not be undone: fix the cause and roll back again."
            return ""
        if self.ok:
            return ""
        if self.done:
            if any(self.plan.step(result.step_id).undo for result in self.done):
                return "The account is changed in part: fix the cause and resume, or roll back."
            # Forward-only plans (emergency revoke, sweep) have nothing to roll back.
            return "The account is changed in part: fix the cause and run it again to finish."
        return "Nothing was changed."


def apply_plan(
    plan: Plan,
    clients: ClientProvider,
    *,
    journal: Journal | None = None,
    on_event: Callable[[PlanEvent], None] | None = None,
    stop_on_failure: bool = True,
    should_stop: Callable[[], bool] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    after_interruption: bool = False,
) -> ApplyReport:
    """Run the plan's steps in order and report what happened.

    A failed `must_succeed` step stops the plan (unless `stop_on_failure` is
    False); the steps after it are reported as not run. A failed step with
    `must_succeed=False` is reported and the plan goes on. `should_stop` is
    asked before each step (a TUI worker's `is_cancelled`).

    A ClientError, a botocore error, an OSError or a KeyHygieneError makes a
    step fail; anything else (a bug, Ctrl-C) propagates and leaves the journal
    open with the step marked running, as a killed process would.

    `after_interruption`: the plan was made to finish an earlier run of the
    same subject that was cut short, so any step may already have taken effect
    without the account showing it the way the plan expects (a KMS key created
    but not yet named): every step's settle call runs before the step.
    """
    _check_local_actions(plan)
    if journal is not None:
        if journal.plan != plan:
            raise PlanError("The journal given to apply_plan belongs to another plan.")
        if any(journal.status(step.id) != "pending" for step in plan.steps):
            raise PlanError("This run was started already: resume it or roll it back.")
    settle_first = [step.id for step in plan.steps] if after_interruption else ()
    runner = _Runner(plan, clients, journal, on_event, clock, sleep, interrupted=settle_first)
    return runner.run(stop_on_failure=stop_on_failure, should_stop=should_stop)


def resume(
    journal: Journal,
    clients: ClientProvider,
    *,
    on_event: Callable[[PlanEvent], None] | None = None,
    stop_on_failure: bool = True,
    should_stop: Callable[[], bool] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> ApplyReport:
    """Run the steps of an interrupted run that are not done yet.

    A step that was running when the earlier process stopped is run again;
    if it had taken effect, AWS may now refuse it (EntityAlreadyExists), and
    rolling back is the way out. Raises `ResumeImpossible` before changing
    anything when a remaining step needs a value that was never journaled.
    """
    plan = journal.plan
    _check_not_busy(journal)
    if journal.state in ("rolled_back", "rollback_incomplete"):
        raise ResumeImpossible(
            "This run was rolled back (at least in part); it cannot be resumed.",
            hint="Roll it back again to finish undoing it, then start over.",
        )
    if not journal.is_open:
        raise ResumeImpossible(f"This run is closed ({journal.state}); there is nothing to resume.")
    _check_local_actions(plan)
    check_resumable(journal)
    interrupted = [
        step.id for step in plan.steps if journal.status(step.id) in ("running", "failed")
    ]
    runner = _Runner(
        plan,
        clients,
        journal,
        on_event,
        clock,
        sleep,
        kept=journal.kept_values(),
        interrupted=interrupted,
    )
    done_before = {step.id for step in plan.steps if journal.status(step.id) == "done"}
    return runner.run(
        stop_on_failure=stop_on_failure, should_stop=should_stop, done_before=done_before
    )


def check_resumable(journal: Journal) -> None:
    """Raise `ResumeImpossible` if a step still to run needs a value that was lost."""
    plan = journal.plan
    kept = journal.kept_values()
    problems = []
    for step in plan.steps:
        if journal.status(step.id) == "done":
            continue
        for ref in step.call.refs():
            if journal.status(ref.step) != "done":
                continue  # that step runs again first and produces the value afresh
            if not _lookup_kept(kept.get(ref.step, {}), ref.path)[0]:
                source = plan.step(ref.step)
                problems.append(
                    f'step {plan.number(step.id)} ("{step.description}") needs {ref.path} '
                    f'from step {plan.number(ref.step)} ("{source.description}")'
                )
    if problems:
        raise ResumeImpossible(
            f'The run "{plan.title}" cannot be resumed: '
            + "; ".join(problems)
            + ". That value was never written to the journal (it is a secret, or was not"
            " kept) and was lost when the earlier run stopped.",
            hint="Roll the run back, then start it again.",
        )


def rollback(
    source: Journal | ApplyReport,
    clients: ClientProvider,
    *,
    on_event: Callable[[PlanEvent], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> ApplyReport:
    """Undo the steps that were done, last first, using the journaled values.

    Goes on past an undo that fails (the report lists it) so as to leave as
    little behind as possible. A step that was interrupted while running may
    or may not have taken effect: its undo is tried, and a failure of that
    undo is reported without counting as a failure. A done step without an
    undo is reported as not undone. The journal is closed when nothing failed.
    """
    journal = source.journal if isinstance(source, ApplyReport) else source
    if journal is not None:
        _check_not_busy(journal)
        plan = journal.plan
        statuses = {step.id: journal.status(step.id) for step in plan.steps}
        uncertain = {step.id for step in plan.steps if journal.uncertain(step.id)}
        kept = journal.kept_values()
    else:  # a report of a run made without a journal
        assert isinstance(source, ApplyReport)
        plan = source.plan
        statuses = {result.step_id: result.status for result in source.results}
        uncertain = {result.step_id for result in source.results if result.uncertain}
        kept = {step: dict(values) for step, values in source.kept.items()}
    _check_local_actions(plan, undo=True)
    runner = _Runner(plan, clients, journal, on_event, clock, sleep, kept=kept)
    # A step that failed without an answer is undone as an interrupted one:
    # tried, and a failure of its undo is not a failed rollback.
    return runner.undo(
        {
            step_id: "running" if status == "failed" and step_id in uncertain else status
            for step_id, status in statuses.items()
        }
    )


# --------------------------------------------------------------------------- the runner


class _StepFailed(Exception):
    """A step's call failed in a way the report explains; carries the message.

    `retried`: AWS answered after botocore had sent the request more than once,
    so an earlier attempt may have taken effect unseen."""

    def __init__(
        self, message: str, *, retried: bool = False, code: str = "", uncertain: bool = False
    ) -> None:
        super().__init__(message)
        self.retried = retried
        self.code = code  # AWS's error code, when AWS answered
        # No answer came (a timeout, a connection lost after sending): the
        # request may have taken effect.
        self.uncertain = uncertain


# An undo that removes something (delete_group, detach_group_policy,
# remove_user_from_group, ...) and hears that it is not there has nothing left
# to do: an earlier rollback's request took effect but its answer was lost.
_REMOVING = ("delete_", "remove_", "detach_", "deactivate_", "untag_", "schedule_key_deletion")
_GONE_CODES = frozenset(
    {"NoSuchEntity", "NoSuchBucket", "NoSuchBucketPolicy", "NotFoundException", "NoSuchTagSet"}
)


def _already_gone(call: Call, failure: _StepFailed) -> bool:
    return (
        call.service != LOCAL
        and call.operation.startswith(_REMOVING)
        and (failure.code in _GONE_CODES)
    )


class _Runner:
    def __init__(
        self,
        plan: Plan,
        clients: ClientProvider,
        journal: Journal | None,
        on_event: Callable[[PlanEvent], None] | None,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        *,
        kept: Mapping[str, Mapping[str, Any]] | None = None,
        interrupted: Collection[str] = (),
    ) -> None:
        self.plan = plan
        # Steps an earlier run started without seeing them done: settled first.
        self.interrupted = frozenset(interrupted)
        self.journal = journal
        self.on_event = on_event
        self.clock = clock
        self.kept: dict[str, Mapping[str, Any]] = dict(kept or {})
        self.ctx = ApplyContext(clients, Results(), self.kept, clock=clock, sleep=sleep)

    # -- applying

    def run(
        self,
        *,
        stop_on_failure: bool,
        should_stop: Callable[[], bool] | None,
        done_before: set[str] | frozenset[str] = frozenset(),
    ) -> ApplyReport:
        started = self.clock()
        self._emit("plan_started")
        if self.journal is not None:
            self.journal.set_state("running")
        results: list[StepResult] = []
        unusable: set[str] = set()  # steps whose result later steps cannot use
        stop_reason = ""
        for index, step in enumerate(self.plan.steps, 1):
            if step.id in done_before:
                seconds = self.journal.seconds(step.id) if self.journal else 0.0
                results.append(StepResult(step.id, "done", seconds, "done in an earlier run"))
                self._emit("step_done", step, index, seconds, "done in an earlier run")
                continue
            if not stop_reason and should_stop is not None and should_stop():
                stop_reason = "the run was cancelled"
            blocked = [ref.step for ref in step.call.refs() if ref.step in unusable]
            if stop_reason or blocked:
                message = stop_reason or (
                    f"it needs the result of step {self.plan.number(blocked[0])}, "
                    "which did not succeed"
                )
                results.append(self._skip(step, index, message))
                unusable.add(step.id)
                continue
            result = self._run_step(step, index)
            results.append(result)
            if result.status != "done":
                unusable.add(step.id)
                if step.must_succeed and stop_on_failure:
                    stop_reason = f"the plan stopped at step {index}"
        report = ApplyReport(
            self.plan, tuple(results), self.clock() - started, dict(self.kept), False, self.journal
        )
        if self.journal is not None:
            if report.ok:
                self.journal.close("finished")
            else:
                self.journal.set_state("stopped")
        self._emit("plan_finished", report=report)
        return report

    def _run_step(self, step: Step, index: int) -> StepResult:
        if self.journal is not None:
            self.journal.step_started(step.id)
        self._emit("step_started", step, index)
        self.ctx.step = step
        started = self.clock()
        doing = f"running step {index} ({step.description})"
        message = ""
        try:
            settled = step.id in self.interrupted and self._settled(step, doing)
            if settled:
                message = "an earlier run's attempt had done it"
            else:
                try:
                    # Stored straight into the sealed results: no local variable of
                    # this frame ever holds a response that may carry a secret.
                    self.ctx.results._put(step.id, self._perform(step.call, doing))
                except _StepFailed as failure:
                    if not (failure.retried and self._settled(step, doing)):
                        raise
                    message = "a retried request had done it"
        except _StepFailed as failure:
            seconds = self.clock() - started
            message = _scrub(str(failure), self.ctx.results)
            if self.journal is not None:
                self.journal.step_finished(
                    step.id, "failed", seconds=seconds, message=message, uncertain=failure.uncertain
                )
            self._emit("step_failed", step, index, seconds, message)
            return StepResult(step.id, "failed", seconds, message, uncertain=failure.uncertain)
        seconds = self.clock() - started
        self.kept[step.id] = _kept_values(self.ctx.results[step.id], step.keep)
        if self.journal is not None:
            self.journal.step_finished(
                step.id, "done", seconds=seconds, kept=self.kept[step.id], message=message
            )
        self._emit("step_done", step, index, seconds, message)
        return StepResult(step.id, "done", seconds, message)

    def _settled(self, step: Step, doing: str) -> bool:
        """Run the step's settle call: True (its result stored) when an earlier
        attempt had taken effect."""
        if step.settle is None:
            return False
        found = self._perform(step.settle, doing)
        if not found:
            return False
        self.ctx.results._put(step.id, found)
        return True

    def _skip(self, step: Step, index: int, message: str) -> StepResult:
        # The journal keeps the step's last real status (pending, or how an
        # earlier run left it): this run did not try it.
        self._emit("step_skipped", step, index, message=message)
        return StepResult(step.id, "skipped", 0.0, message)

    # -- undoing

    def undo(self, statuses: Mapping[str, str]) -> ApplyReport:
        started = self.clock()
        self._emit("plan_started", undo=True)
        results: list[StepResult] = []
        for index in range(len(self.plan.steps), 0, -1):
            step = self.plan.steps[index - 1]
            status = statuses.get(step.id, "pending")
            if status not in ("done", "running"):
                continue
            results.append(self._undo_step(step, index, interrupted=status == "running"))
        report = ApplyReport(
            self.plan, tuple(results), self.clock() - started, dict(self.kept), True, self.journal
        )
        if self.journal is not None:
            if report.ok:
                self.journal.close("rolled_back")
            else:
                self.journal.set_state("rollback_incomplete")
        self._emit("plan_finished", report=report, undo=True)
        return report

    def _undo_step(self, step: Step, index: int, *, interrupted: bool) -> StepResult:
        # An interrupted step may or may not have taken effect: failing to
        # undo it is reported, but does not count as a failed rollback.
        if step.undo is None:
            message = "cannot be undone automatically"
            if interrupted:
                message = "was interrupted while running and " + message
            return self._undo_skipped(step, index, 0.0, message)
        lost = [ref.path for ref in step.undo.refs() if not self._lookup_ref(ref)[0]]
        if lost and interrupted:
            message = (
                "was interrupted while running; if it took effect, undo it by hand "
                f"({step.undo.label}): the {', '.join(lost)} it needs was never journaled"
            )
            return self._undo_skipped(step, index, 0.0, message)
        self._emit("step_started", step, index, undo=True)
        self.ctx.step = step
        started = self.clock()
        message = ""
        try:
            self._perform(step.undo, f"undoing step {index} ({step.description})")
        except _StepFailed as failure:
            if not _already_gone(step.undo, failure):
                return self._undo_failed(step, index, started, failure, interrupted=interrupted)
            message = "it was undone already (an earlier attempt's answer was lost)"
        seconds = self.clock() - started
        if self.journal is not None:
            self.journal.step_finished(step.id, "undone", seconds=seconds, message=message)
        self._emit("step_done", step, index, seconds, message, undo=True)
        return StepResult(step.id, "undone", seconds, message)

    def _undo_failed(
        self, step: Step, index: int, started: float, failure: _StepFailed, *, interrupted: bool
    ) -> StepResult:
        seconds = self.clock() - started
        text = _scrub(str(failure), self.ctx.results)
        if interrupted:
            message = f"was interrupted while running and probably never took effect ({text})"
            return self._undo_skipped(step, index, seconds, message)
        self._emit("step_failed", step, index, seconds, text, undo=True)
        return StepResult(step.id, "failed", seconds, text)

    def _undo_skipped(self, step: Step, index: int, seconds: float, message: str) -> StepResult:
        self._emit("step_skipped", step, index, seconds, message, undo=True)
        return StepResult(step.id, "skipped", seconds, message)

    # -- one call

    def _perform(self, call: Call, doing: str) -> Mapping[str, Any]:
        """Run one call with its Refs resolved; raise `_StepFailed` with a clear message.

        `doing` completes "... while <doing>" in messages.
        """
        try:
            if call.service == LOCAL:
                func = _LOCAL_ACTIONS[call.operation]
                output = func(self.ctx, Sealed(self._resolve(call.params)))
                return dict(output or {})
            method = _client_method(self.ctx.client(call.service), call)
            response = dict(method(**self._resolve(call.params)))
            response.pop("ResponseMetadata", None)
            return response
        except ClientError as exc:
            service = call.service if call.service != LOCAL else self.ctx.last_service or LOCAL
            retried = bool(exc.response.get("ResponseMetadata", {}).get("RetryAttempts"))
            raise _StepFailed(
                str(from_client_error(exc, service=service, doing=doing)),
                retried=retried,
                code=str(exc.response.get("Error", {}).get("Code", "")),
                # An answer after retries: an earlier attempt may have taken effect.
                uncertain=retried,
            ) from None
        except ParamValidationError:
            # Its text quotes the parameter values; say which call instead.
            raise _StepFailed(
                f"Invalid parameters for {call.label} while {doing} (a bug in the plan)."
            ) from None
        except BotoCoreError as exc:
            raise _StepFailed(
                f"Could not complete {call.label} while {doing}: {exc}", uncertain=True
            ) from None
        except OSError as exc:
            raise _StepFailed(f"A file operation failed while {doing}: {exc}") from None
        except KeyHygieneError as exc:
            raise _StepFailed(str(exc)) from None
        except (ValueError, KeyError, TypeError, AssertionError) as exc:
            # A local action tripped over data it did not expect (a document
            # that is not JSON, a missing field): a failed step, not a crash
            # that would leave the journal running. The type says what; the
            # text may quote values, so it is scrubbed of this run's secrets.
            raise _StepFailed(
                f"{call.label} failed while {doing}: {type(exc).__name__}: "
                f"{_scrub(str(exc), self.ctx.results)}"
            ) from None

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, Ref):
            found, result = self._lookup_ref(value)
            if not found:
                raise PlanError(
                    f"Step {self.plan.number(value.step)} ({value.step}) has no value "
                    f"{value.path} available."
                )
            return result
        if isinstance(value, Mapping):
            return {key: self._resolve(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self._resolve(item) for item in value]
        return value

    def _lookup_ref(self, ref: Ref) -> tuple[bool, Any]:
        """From this run's results in memory, else from the journaled values."""
        if ref.step in self.ctx.results:
            return _lookup(self.ctx.results[ref.step], ref.path)
        return _lookup_kept(self.kept.get(ref.step, {}), ref.path)

    def _emit(
        self,
        kind: EventKind,
        step: Step | None = None,
        index: int = 0,
        seconds: float = 0.0,
        message: str = "",
        *,
        undo: bool = False,
        report: ApplyReport | None = None,
    ) -> None:
        if self.on_event is None:
            return
        self.on_event(
            PlanEvent(
                kind,
                step.id if step else None,
                index,
                len(self.plan.steps),
                step.description if step else self.plan.title,
                seconds,
                message,
                undo,
                report,
            )
        )


def _client_method(client: Any, call: Call) -> Callable[..., Any]:
    """The boto3 method for `call`, refusing anything that is not an API operation."""
    meta = getattr(client, "meta", None)
    mapping = getattr(meta, "method_to_api_mapping", None)
    if mapping is not None and call.operation not in mapping:
        raise PlanError(f"{call.service} has no API operation {call.operation!r}.")
    method = getattr(client, call.operation, None)
    if method is None:
        raise PlanError(f"{call.service} has no API operation {call.operation!r}.")
    return method


def _check_not_busy(journal: Journal) -> None:
    if journal.held_by_other_process():
        raise PlanError(
            f"Another keyhygiene process on this computer is still running {journal.plan.title!r}.",
            hint="Wait for it to finish, or stop it, then try again.",
        )


def _check_local_actions(plan: Plan, *, undo: bool = False) -> None:
    calls = [step.undo if undo else step.call for step in plan.steps]
    if not undo:
        calls += [step.settle for step in plan.steps]
    missing = sorted(
        {call.operation for call in calls if call and call.service == LOCAL} - set(_LOCAL_ACTIONS)
    )
    if missing:
        raise PlanError(
            f"The plan uses local action(s) this program does not know: {', '.join(missing)}.",
            hint="Run the keyhygiene version that made the plan.",
        )
