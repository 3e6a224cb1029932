"""Running a plan from the command line: review, confirm, apply, report.

Every headless workflow (enroll, grant, sweep, revoke, app ...) ends here, so
they all behave alike:
- `--dry-run` prints the plan and changes nothing (exit 0);
- without `--yes` and without a terminal, the plan is printed and nothing
  changes (exit 5, EXIT_NOT_APPLIED, and the message says to pass --yes);
- without `--yes` on a terminal, the person is asked (no: exit 5);
- a failed step stops the plan; what was done is rolled back where it can be
  (unless the workflow says not to, like emergency revoke), and the report says
  what was done and undone (exit 3).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TextIO

from keyhygiene.cli.options import (
    EXIT_FAILED,
    EXIT_NOT_APPLIED,
    EXIT_OK,
    add_apply_options,
    not_applied_code,
)
from keyhygiene.cli.output import print_json, wants_json
from keyhygiene.plans import (
    ApplyReport,
    ClientProvider,
    Plan,
    PlanEvent,
)
from keyhygiene.plans.reviewed import apply_reviewed, close_as_done, earlier_runs

__all__ = [
    "EXIT_FAILED",
    "EXIT_NOT_APPLIED",
    "EXIT_OK",
    "add_apply_options",
    "not_applied_code",
]


# Streams default to None and are looked up at call time: a default of
# `sys.stdout` would keep the stream of the moment of import (a test's capture,
# a forked child's parent).


def print_event(event: PlanEvent, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    if event.kind == "step_started":
        prefix = "undo " if event.undo else ""
        print(f"[{event.index}/{event.total}] {prefix}{event.description} …", file=out, flush=True)
    elif event.kind == "step_failed":
        print(f"    failed: {event.message}", file=out, flush=True)


def ask(question: str, *, stdin: TextIO | None = None, out: TextIO | None = None) -> bool:
    """A yes/no question on the terminal; anything but y or yes is no."""
    stdin, out = stdin or sys.stdin, out or sys.stdout
    print(f"{question} [y/N] ", end="", file=out, flush=True)
    return stdin.readline().strip().lower() in ("y", "yes")


def agreed(args: argparse.Namespace, question: str, refusal: str, out: TextIO) -> bool:
    """--yes, or a yes on a terminal. Without a terminal, `refusal` (which says
    to pass --yes) is printed and the answer is no; on a no, "Nothing was changed."."""
    if getattr(args, "yes", False):
        return True
    if not sys.stdin.isatty():
        print(refusal, file=out)
        return False
    if ask(question, out=out):
        return True
    print("Nothing was changed.", file=out)
    return False


def approved(plan: Plan, args: argparse.Namespace, out: TextIO | None = None) -> bool:
    """Whether to apply `plan`, as every changing command decides it: --dry-run
    shows it (as JSON with --json) and changes nothing; --yes applies it;
    otherwise it is shown and, on a terminal, the person is asked; without a
    terminal nothing changes and the message says to pass --yes. The caller
    exits with `not_applied_code(args)` when this is False."""
    out = out or sys.stdout
    if getattr(args, "dry_run", False):
        if wants_json(args):
            print_json(plan.to_json(), args, out)
        else:
            print(plan.render_text(), file=out)
            print("\nDry run: nothing was changed.", file=out)
        return False
    if getattr(args, "yes", False):
        return True
    print(plan.render_text(), file=out)
    count = len(plan.steps)
    return agreed(
        args,
        f"\nApply these {count} change{'s' if count != 1 else ''}?",
        "\nNothing was changed: pass --yes to apply this plan.",
        out,
    )


def run_plan(
    plan: Plan,
    clients: ClientProvider,
    args: argparse.Namespace,
    *,
    roll_back_on_failure: bool = True,
    stop_on_failure: bool = True,
    on_event: Callable[[PlanEvent], None] | None = None,
    out: TextIO | None = None,
) -> tuple[int, ApplyReport | None]:
    """Review, confirm and apply `plan`; returns (exit code, report or None).

    The plan is built from the account as it is now, so when an earlier run of
    the same command was cut short, this one finishes what it left undone: the
    person is told, and the earlier run's journal is closed once this one
    succeeds (it is not offered again at the next start)."""
    out = out or sys.stdout
    earlier = earlier_runs(plan)
    for journal in earlier:
        print(
            f"An earlier run of this command was interrupted ({journal.summary()}); "
            "this run starts from the account as it is now and finishes it.",
            file=out,
            flush=True,
        )
    if not plan.steps and not getattr(args, "dry_run", False):
        print(f"{plan.title}: nothing to do.", file=out)
        if earlier:
            close_as_done(earlier, plan)
            print("The interrupted run is finished.", file=out, flush=True)
        return EXIT_OK, None
    if not approved(plan, args, out):
        return not_applied_code(args), None

    def rolling_back(report: ApplyReport) -> None:
        print(report.render_text(), file=out)
        print("\nRolling back what was done …", file=out)

    outcome = apply_reviewed(
        plan,
        clients,
        roll_back_on_failure=roll_back_on_failure,
        stop_on_failure=stop_on_failure,
        on_event=on_event or (lambda event: print_event(event, out)),
        on_rollback=rolling_back,
        earlier=earlier,
    )
    report, undone = outcome.report, outcome.undone
    print((undone or report).render_text(), file=out)
    if report.ok:
        if earlier:
            print("The interrupted run is finished.", file=out, flush=True)
        return EXIT_OK, report
    _say_failure(report, undone)
    return EXIT_FAILED, report


def _say_failure(report: ApplyReport, undone: ApplyReport | None) -> None:
    """One `keyhygiene: …` line on stderr, as every other failure gets: a script
    or cron mail sees why without reading the report on stdout."""
    failed = next((r for r in report.results if r.status == "failed"), None)
    why = f": {failed.message}" if failed is not None and failed.message else ""
    if undone is None:
        after = "" if not report.done else " What was done is listed above."
    elif undone.ok:
        after = " What it had done is rolled back."
    else:
        after = " It was rolled back only in part; run the same command again to finish it."
    print(f"keyhygiene: the plan stopped{why}.{after}", file=sys.stderr, flush=True)
