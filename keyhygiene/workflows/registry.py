"""Interrupted runs found at start: list them, finish them or roll them back.

Every plan is journaled (no secrets) while it runs. A run cut short by a crash,
a kill or a lost connection leaves its journal open; at the next start the TUI
offers what is safe for that kind of run, and so does `keyhygiene recover`:
both read `everything_interrupted()`. Rotations have their own recovery (the
key the profile holds decides, see `keyhygiene.workflows.rotation`); this
module lists them beside the others and handles the rest:
- an emergency revoke is neither finished from its journal (its bucket and
  key policy documents were computed from the account as it was then, and
  replaying them could undo changes made since) nor rolled back (that would
  let the lost computer back in): the advice is to run the revoke again,
  which starts from the account as it is now;
- a sweep is never rolled back (that would give expired loans back); finishing
  it runs a new sweep from the account as it is now, for the same reason;
- a loan (a grant, or moving a loan's end) is finished only while the expiry it
  was setting is still in the future: once past, the start-up sweep removes the
  tag and the expiry policy it wrote, and finishing would then add the
  membership and the whitelist entries with neither, a permanent membership
  nobody asked for. An expired one can only be rolled back or forgotten;
- every other run can be finished (unless a value it needs, such as a secret,
  died with the process) or rolled back.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from keyhygiene.aws.connection import call_unless_missing
from keyhygiene.core.errors import BadInput
from keyhygiene.core.model import TAG_GRANT_PREFIX
from keyhygiene.plans import (
    ApplyReport,
    ClientProvider,
    ResumeImpossible,
    check_resumable,
    resume,
    rollback,
)
from keyhygiene.plans.journal import Journal, open_journals

# Every workflow, imported here: each registers its local actions when
# imported, and a journal can only be finished or undone once they are.
from keyhygiene.workflows import application, enrollment, membership, revoke, rotation
from keyhygiene.workflows.membership import SWEEP_KIND, format_expiry, parse_expiry
from keyhygiene.workflows.revoke import PLAN_KIND as REVOKE_KIND
from keyhygiene.workflows.rotation import PendingRotation, pending_rotations

WORKFLOWS = (application, enrollment, membership, revoke, rotation)
ROTATION_KIND = rotation.PLAN_KIND
# Plans that set a loan's expiry (`keyhygiene.workflows.membership.plan_grant`), and the id of
# their step that writes it in the `keyhygiene:grant:<G>` tag.
LOAN_KINDS = ("grant", "grant-extend")
LOAN_TAG_STEP = "grant-tag"
# Undo calls of a loan that the sweep (or ending the loan) may have made already.
_REMOVALS = frozenset({"remove_user_from_group", "delete_user_policy"})

# What an unexpected error's text may not show: anything shaped like an AWS
# secret access key (40 characters of base64), or a value after a secret's name.
_SECRET_SHAPED = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])")
_SECRET_NAMED = re.compile(
    r"((?:secret|password|token|session)[\w-]*[\"']?\s*[:=]\s*[\"']?)[^\"',\s}]+",
    re.IGNORECASE,
)
_MESSAGE_LIMIT = 300


@dataclass(frozen=True)
class InterruptedRun:
    journal: Journal
    resumable: bool = True  # False: a value it needs (a secret) died with the process
    why_not: str = ""
    # A loan whose expiry was already past when the runs were read: finishing it
    # would make the membership permanent (see the module).
    loan_expired: bool = False

    @property
    def kind(self) -> str:
        return self.journal.plan.kind

    @property
    def summary(self) -> str:
        return self.journal.summary()

    @property
    def can_finish(self) -> bool:
        """Finishing is safe: a sweep starts afresh, a revoke is run again by the person."""
        if self.kind == REVOKE_KIND or self.loan_expired:
            return False
        return self.kind == SWEEP_KIND or self.resumable

    @property
    def can_roll_back(self) -> bool:
        """Undoing a revoke lets the computer back in; undoing a sweep re-grants expired loans."""
        return self.kind not in (REVOKE_KIND, SWEEP_KIND)

    @property
    def advice(self) -> str:
        if self.kind == REVOKE_KIND:
            return (
                "Run the revoke again (ctrl+r, or `keyhygiene revoke USER --yes`): it starts "
                "from the account as it is now and does only what is missing. Replaying this "
                "run could undo policy changes made since, and rolling it back would let the "
                "computer back in. Forget it once the revoke is done."
            )
        if self.kind == SWEEP_KIND:
            return (
                "Finish it: a new sweep removes what has expired, from the account as it is now "
                "(this run is not replayed). It cannot be rolled back: that would give expired "
                "loans back, which AWS denies anyway."
            )
        if self.loan_expired:
            ends = loan_expiry(self.journal)
            when = f" at {format_expiry(ends)}" if ends else ""
            return (
                f"The loan it was making ended{when}. Finishing it now would add the membership "
                "and the whitelist entries without the expiry tag and policy (the sweep has "
                "removed those, or will): a permanent membership nobody asked for. Roll it "
                "back, or forget it; lend the group again if it is still needed."
            )
        if not self.resumable:
            return f"It can only be rolled back: {self.why_not}"
        return "Finish it, or roll back what it did."


@dataclass(frozen=True)
class RecoveryResult:
    """What finishing or rolling back did, in words for the screen."""

    ok: bool
    text: str
    report: ApplyReport | None = None  # None: nothing was applied (nothing was left to do)


def interrupted_runs(*, now: datetime | None = None) -> list[InterruptedRun]:
    """Open journals of other processes that are gone, rotations excepted.

    `now` decides which interrupted loans have expired (default: the real clock).
    """
    moment = now or datetime.now(timezone.utc)
    runs = []
    for journal in open_journals():
        if journal.plan.kind == ROTATION_KIND or _written_here(journal):
            continue
        if journal.held_by_other_process():
            continue
        expired = _loan_has_expired(journal, moment)
        try:
            check_resumable(journal)
        except ResumeImpossible as exc:
            runs.append(
                InterruptedRun(journal, resumable=False, why_not=exc.message, loan_expired=expired)
            )
        else:
            runs.append(InterruptedRun(journal, loan_expired=expired))
    return runs


@dataclass(frozen=True)
class Interrupted:
    """Every interrupted run: rotations (the key the profile holds decides what
    is done) and the rest (the person chooses among the safe choices)."""

    rotations: list[PendingRotation]
    runs: list[InterruptedRun]

    def __bool__(self) -> bool:
        return bool(self.rotations or self.runs)


def everything_interrupted(*, now: datetime | None = None) -> Interrupted:
    """What the TUI offers at start and `keyhygiene recover` lists."""
    return Interrupted(pending_rotations(), interrupted_runs(now=now))


def loan_expiry(journal: Journal) -> datetime | None:
    """The expiry a loan's journal was setting (from its plan's tag step), in UTC.

    None for a run that sets no loan, or whose planned expiry cannot be read.
    """
    if journal.plan.kind not in LOAN_KINDS:
        return None
    for step in journal.plan.steps:
        if step.id != LOAN_TAG_STEP:
            continue
        for tag in step.call.params.get("Tags", ()):
            if isinstance(tag, dict) and str(tag.get("Key", "")).startswith(TAG_GRANT_PREFIX):
                return parse_expiry(str(tag.get("Value", "")))
    return None


def _loan_has_expired(journal: Journal, now: datetime) -> bool:
    """A loan whose expiry is not in the future at `now`; an unreadable one counts as
    expired (finishing it blind could make the membership permanent)."""
    if journal.plan.kind not in LOAN_KINDS:
        return False
    ends = loan_expiry(journal)
    return ends is None or ends <= now


def _written_here(journal: Journal) -> bool:
    """A run of this very process (the sweep at start, running right now): not interrupted."""
    data = journal.to_json()
    return data.get("host") == socket.gethostname() and data.get("pid") == os.getpid()


def finish(
    run: InterruptedRun, clients: ClientProvider, *, now: datetime | None = None
) -> RecoveryResult:
    """Finish the run: resume its journal, or for a sweep run a new one.

    Blocking (AWS calls). `now` is the clock (default: the real one): the
    sweep's, and the one a loan's expiry is checked against right before it is
    resumed, since time has passed since the runs were read.
    Raises `BadInput` for a run that must not be finished (a revoke, a loan
    that has expired).
    """
    moment = now or datetime.now(timezone.utc)
    if run.kind == REVOKE_KIND:
        raise BadInput(
            "An interrupted revoke is not finished from its journal.",
            hint="Run the revoke again: it starts from the account as it is now.",
        )
    if run.loan_expired or _loan_has_expired(run.journal, moment):
        raise BadInput(
            "The loan has expired since; roll it back instead.",
            hint="Finishing it now would make the membership permanent. "
            "Lend the group again if it is still needed.",
        )
    if not run.can_finish:
        raise ResumeImpossible(run.why_not or "This run cannot be finished.")
    if run.kind == SWEEP_KIND:
        return _sweep_again(run, clients, moment)
    report = resume(run.journal, clients)
    return RecoveryResult(report.ok, report.render_text(), report)


def _sweep_again(run: InterruptedRun, clients: ClientProvider, now: datetime) -> RecoveryResult:
    from keyhygiene.aws.connection import Connection
    from keyhygiene.aws.inventory import load_snapshot
    from keyhygiene.workflows.membership import apply_sweep

    if not isinstance(clients, Connection):
        raise BadInput("A new sweep needs a connection to read the account.")
    outcome = apply_sweep(load_snapshot(clients), clients, now=now)
    # The new sweep did the old one's work (or tried to, and its own report
    # says what failed): the old journal is history now.
    run.journal.abandon()
    text = outcome.message or (
        "Nothing has expired any more: the interrupted sweep, or another one, finished the job."
    )
    return RecoveryResult(outcome.ok, text, outcome.report)


def roll_back(run: InterruptedRun, clients: ClientProvider) -> RecoveryResult:
    """Undo what the run did. Raises `BadInput` for a revoke or a sweep (see the module)."""
    if not run.can_roll_back:
        what = (
            "a revoke would let the computer back in"
            if run.kind == REVOKE_KIND
            else ("a sweep would give expired loans back")
        )
        raise BadInput(f"This run is not rolled back: undoing {what}.")
    if run.kind in LOAN_KINDS:
        # An expired loan's membership and expiry policy may be gone already
        # (the sweep at start removed them): that is what the undo wanted.
        clients = _GoneIsUndone(clients)
    report = rollback(run.journal, clients)
    return RecoveryResult(report.ok, report.render_text(), report)


class _GoneIsUndone:
    """Clients whose IAM removals accept "no such entity" as done."""

    def __init__(self, inner: ClientProvider) -> None:
        self._inner = inner

    def client(self, service: str) -> Any:
        client = self._inner.client(service)
        return _TolerantIam(client) if service == "iam" else client


class _TolerantIam:
    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if name not in _REMOVALS:
            return method

        def remove_unless_gone(**params: Any) -> dict[str, Any]:
            call_unless_missing(method, **params)
            return {}

        return remove_unless_gone


def abandon(run: InterruptedRun) -> None:
    """Stop offering it (the person will deal with it by hand)."""
    run.journal.abandon()


def describe_unexpected(exc: BaseException) -> str:
    """An unexpected error for the screen: its type and the first line of its text,
    cut short, with anything shaped like a secret masked."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    text = _SECRET_NAMED.sub(lambda match: match.group(1) + "****", text)
    text = _SECRET_SHAPED.sub("****", text)
    if len(text) > _MESSAGE_LIMIT:
        text = text[: _MESSAGE_LIMIT - 1] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
