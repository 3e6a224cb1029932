"""Interrupted runs found at start: list them, finish them or roll them back.

Every plan is journaled (no secrets) while it runs. A run cut short by a crash,
a kill or a lost connection leaves its journal open; at the next start the TUI
offers to finish it or undo it. Rotations have their own recovery (the key the
profile holds decides, see `tui.rotation`); this module handles the others.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from tui.journal import Journal, open_journals
from tui.plans import (
    ApplyReport,
    ClientProvider,
    ResumeImpossible,
    check_resumable,
    resume,
    rollback,
)

# Workflows register their local actions when imported; a journal can only be
# finished or undone once they are.
WORKFLOW_MODULES = (
    "tui.enrollment",
    "tui.membership",
    "tui.revoke",
    "tui.application",
    "tui.rotation",
)
ROTATION_KIND = "rotate"


def load_workflows() -> None:
    for name in WORKFLOW_MODULES:
        importlib.import_module(name)


@dataclass(frozen=True)
class InterruptedRun:
    journal: Journal
    can_finish: bool  # False: a value it needs (a secret) died with the process
    why_not: str = ""

    @property
    def summary(self) -> str:
        return self.journal.summary()

    @property
    def advice(self) -> str:
        if self.journal.plan.kind == "revoke":
            return "Run the revoke again rather than finishing it: it starts from the account as it is now."
        if not self.can_finish:
            return f"It can only be rolled back: {self.why_not}"
        return "Finish it, or roll back what it did."


def interrupted_runs() -> list[InterruptedRun]:
    """Open journals of other processes that are gone, rotations excepted."""
    load_workflows()
    runs = []
    for journal in open_journals():
        if journal.plan.kind == ROTATION_KIND or journal.held_by_other_process():
            continue
        try:
            check_resumable(journal)
        except ResumeImpossible as exc:
            runs.append(InterruptedRun(journal, can_finish=False, why_not=exc.message))
        else:
            runs.append(InterruptedRun(journal, can_finish=True))
    return runs


def finish(run: InterruptedRun, clients: ClientProvider) -> ApplyReport:
    return resume(run.journal, clients)


def roll_back(run: InterruptedRun, clients: ClientProvider) -> ApplyReport:
    return rollback(run.journal, clients)


def abandon(run: InterruptedRun) -> None:
    """Stop offering it (the person will deal with it by hand)."""
    run.journal.abandon()
