"""Applying a reviewed plan: the one policy of both front ends.

Once a person has reviewed a plan (read it on the command line and passed
`--yes` or answered `y`, or pressed Apply in the TUI), the same things
happen, in the same order, whoever asked:
- runs of the same command cut short earlier are found first: this plan,
  built from the account as it is now, finishes them, and their journals are
  closed as finished by this one once it succeeds;
- the plan runs under a journal of its own;
- a failure rolls back what was done, unless the workflow says not to
  (an emergency revoke, a sweep: undoing them would let a computer back in or
  give expired loans back).
The front ends differ only in how they show it (printed lines, the plan
view's marks), which they pass as `on_event`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from keyhygiene.plans.engine import ApplyReport, ClientProvider, PlanEvent, apply_plan, rollback
from keyhygiene.plans.journal import Journal, interrupted_runs_of
from keyhygiene.plans.model import Plan


@dataclass(frozen=True)
class ReviewedOutcome:
    """What applying a reviewed plan did."""

    report: ApplyReport
    undone: ApplyReport | None  # the roll-back's report, when there was one
    # Earlier interrupted runs of the same command, finished by this one when it succeeded.
    earlier: list[Journal] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        return self.report.ok


def earlier_runs(plan: Plan) -> list[Journal]:
    """Interrupted runs of the same command that this plan would finish."""
    return interrupted_runs_of(plan)


def apply_reviewed(
    plan: Plan,
    clients: ClientProvider,
    *,
    roll_back_on_failure: bool = True,
    stop_on_failure: bool = True,
    on_event: Callable[[PlanEvent], None] | None = None,
    on_rollback: Callable[[ApplyReport], None] | None = None,
    earlier: list[Journal] | None = None,
) -> ReviewedOutcome:
    """Apply `plan` under a new journal; roll back on failure when asked.

    `earlier`: the interrupted runs found before the plan was shown (found
    again when not given). `on_rollback(report)` is called before a roll-back
    starts (the command line prints the failed report and says so)."""
    found = earlier_runs(plan) if earlier is None else earlier
    journal = Journal.create(plan)
    report = apply_plan(
        plan,
        clients,
        journal=journal,
        on_event=on_event,
        stop_on_failure=stop_on_failure,
        after_interruption=bool(found),
    )
    if report.ok:
        for run in found:
            run.close_as_finished_by(journal)
        return ReviewedOutcome(report, None, found)
    undone = None
    if roll_back_on_failure and report.done:
        if on_rollback is not None:
            on_rollback(report)
        undone = rollback(report, clients, on_event=on_event)
    return ReviewedOutcome(report, undone, found)


def close_as_done(earlier: list[Journal], plan: Plan) -> None:
    """A plan with nothing left to do: the earlier runs had done everything but
    record it. Closed as finished by a journal of this (empty) run."""
    journal = Journal.create(plan)
    journal.close("finished")
    for run in earlier:
        run.close_as_finished_by(journal)
