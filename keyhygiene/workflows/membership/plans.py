"""The membership plans: add, remove, lend, end a loan, guard loans, sweep."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from keyhygiene.core.errors import BadInput
from keyhygiene.core.formatting import describe_duration
from keyhygiene.core.model import (
    EXPIRY_POLICY_NAME,
    TAG_GRANT_PREFIX,
    Group,
    Snapshot,
    User,
)
from keyhygiene.plans import (
    ApplyReport,
    ClientProvider,
    Plan,
    PlanEvent,
    Step,
    apply_plan,
)
from keyhygiene.steps.whitelists import check_whole_account
from keyhygiene.workflows.membership.checks import (
    _check_group_room,
    _check_not_actor,
    _check_not_revoked,
    _find_group,
    _find_user,
    _grant_tag_key,
    _grant_value,
    _in_group,
    _readable_grants,
    _unreadable_grants_warning,
)
from keyhygiene.workflows.membership.durations import format_expiry, parse_duration, utc
from keyhygiene.workflows.membership.expiry import ensure_inline_policies_fit, expiry_policy
from keyhygiene.workflows.membership.grants import Grant, expired_grants
from keyhygiene.workflows.membership.model import DEFAULT_MAX_DURATION, SWEEP_KIND, SWEEP_SUBJECT
from keyhygiene.workflows.membership.risks import _check_loan_risks, _loan_risk_warnings, loan_risks
from keyhygiene.workflows.membership.steps import (
    _add_to_group_step,
    _check_grants_step,
    _expiry_policy_steps,
    _forward_only,
    _members,
    _remove_from_group_step,
    _sweep_gate_step,
    _sweep_remove_step,
    _sweep_untag_step,
    _tag_group,
    _tag_step,
    _untag_step,
    _whitelist_steps,
)


def plan_add_member(snapshot: Snapshot, user_name: str, group_name: str) -> Plan:
    """Make `user_name` a permanent member of `group_name` (a loan becomes permanent).

    Built from the account as it is, so that the same command run again after an
    interruption finishes the work: a membership already there with whitelists
    or an expiry policy not yet matching it gets only the missing steps."""
    check_whole_account(snapshot)
    user = _find_user(snapshot, user_name)
    group = _find_group(snapshot, group_name)
    _check_not_revoked(user, f"added to {group.name}")
    loan = _grant_value(user, group)
    member = _in_group(user, group)
    if not member:
        _check_group_room(user, group)
    steps: list[Step] = []
    if not member:
        steps.append(_add_to_group_step(user, group))
    steps.extend(_whitelist_steps(snapshot, {group.name: _members(group) | {user.name}}))
    warnings: list[str] = []
    if loan is not None:
        steps.append(
            _untag_step(
                "grant-untag",
                user,
                {TAG_GRANT_PREFIX + _tag_group(user, group): loan},
                why=f"the membership of {group.name} is no longer temporary",
            )
        )
    if loan is not None or member:
        # With the loan's tag gone (now, or by a run cut short after it), the
        # expiry policy must stop ending this membership.
        policy = expiry_policy(snapshot, user, _readable_grants(user, without=group.name))
        steps.extend(_expiry_policy_steps(user, policy))
        if steps:
            warnings.extend(policy.warnings)
    if loan is not None:
        title = f"Make {user.name}'s loan of {group.name} permanent"
    elif member and steps:
        title = f"Finish adding {user.name} to group {group.name}: it is a member already"
    elif member:
        title = f"{user.name} is already a permanent member of {group.name}"
    else:
        title = f"Add {user.name} to group {group.name}"
    return Plan(
        "group-add", title, tuple(steps), tuple(warnings), subject=_subject("add", user, group)
    )


def plan_remove_member(snapshot: Snapshot, user_name: str, group_name: str) -> Plan:
    """Take `user_name` out of `group_name`; a loan is ended with everything it added.

    Run again after an interruption, it finishes: a user already out of the
    group but still in its whitelists gets only the whitelist steps."""
    check_whole_account(snapshot)
    user = _find_user(snapshot, user_name)
    group = _find_group(snapshot, group_name)
    if _grant_value(user, group) is not None:
        return plan_end_grant(snapshot, user.name, group.name)
    member = _in_group(user, group)
    steps = [_remove_from_group_step(user, group)] if member else []
    steps.extend(_whitelist_steps(snapshot, {group.name: _members(group) - {user.name}}))
    if member:
        title = f"Remove {user.name} from group {group.name}"
    elif steps:
        title = (
            f"Finish removing {user.name} from group {group.name}: it is out of the group already"
        )
    else:
        title = f"{user.name} is not a member of {group.name}"
    return Plan("group-remove", title, tuple(steps), subject=_subject("remove", user, group))


def _subject(intent: str, user: User, group: Group) -> str:
    """What a membership plan is for, whatever plan the account's state made of it:
    `group remove` of a loan ends the loan, `grant` of a lent group moves its end."""
    return f"{intent} {user.name} {group.name}"


def plan_grant(
    snapshot: Snapshot,
    user_name: str,
    group_name: str,
    duration: timedelta | str,
    *,
    now: datetime,
    max_duration: timedelta = DEFAULT_MAX_DURATION,
    force: bool = False,
) -> Plan:
    """Lend `group_name` to `user_name` until `now + duration`, or move an existing loan's expiry.

    A group whose policies allow IAM writes (`IAM_WRITE_RIGHTS`, `*:*`
    included), or one of whose policies cannot be read, is refused
    (`LoanRefused`) unless `force`: before its expiry the borrower could create
    users and keys that no expiry covers. Forced, the plan warns about it.

    Order, for a run cut short: the tag and the expiry policy come first, so a
    half-applied loan still ends on time and `sweep` still finds it; then the
    membership and the whitelists.
    """
    check_whole_account(snapshot)
    if isinstance(duration, str):
        duration = parse_duration(duration, maximum=max_duration)
    elif duration <= timedelta() or duration > max_duration:
        raise BadInput(
            f"A loan lasts more than nothing and at most {describe_duration(max_duration)} "
            f"(asked: {describe_duration(duration) if duration > timedelta() else 'nothing'})."
        )
    user = _find_user(snapshot, user_name)
    group = _find_group(snapshot, group_name)
    _check_not_revoked(user, f"lent group {group.name}")
    current = _grant_value(user, group)
    if _in_group(user, group) and current is None:
        raise BadInput(
            f"{user.name} is a permanent member of {group.name}: there is nothing to lend.",
            hint=f"Remove it from {group.name} first if it should only have a loan.",
        )
    _check_group_room(user, group)
    _check_not_actor(snapshot, user)
    risks = loan_risks(snapshot, user, group, now=now)
    _check_loan_risks(user, group, risks, force=force)
    tag_key = (
        _grant_tag_key(user, group)
        if current is None
        else TAG_GRANT_PREFIX + _tag_group(user, group)
    )
    expiry = utc(now).replace(microsecond=0) + duration
    expiry_text = format_expiry(expiry)
    grants = _readable_grants(user, without=group.name)
    grants[group.name] = expiry
    policy = expiry_policy(snapshot, user, grants)
    ensure_inline_policies_fit(user, policy.document)

    steps: list[Step] = [_tag_step(user, tag_key, expiry_text, current)]
    steps.extend(_expiry_policy_steps(user, policy))
    if not _in_group(user, group):
        steps.append(_add_to_group_step(user, group))
    steps.extend(_whitelist_steps(snapshot, {group.name: _members(group) | {user.name}}))
    if current is None:
        title = f"Lend group {group.name} to {user.name} for {describe_duration(duration)}, until {expiry_text}"
        kind = "grant"
    else:
        title = (
            f"Move the end of {user.name}'s loan of {group.name} from {current} to {expiry_text}"
        )
        kind = "grant-extend"
    warnings = [
        *_loan_risk_warnings(user, group, risks, expiry_text, forced=force),
        *policy.warnings,
        *_unreadable_grants_warning(user),
    ]
    return Plan(kind, title, tuple(steps), tuple(warnings), subject=_subject("lend", user, group))


def plan_guard_loans(snapshot: Snapshot, user_name: str) -> Plan:
    """Rewrite `keyhygiene-expiry` from the user's loans as they stand (same
    groups, same expiries), now with the guard: the fix for a loan written
    before keyhygiene guarded them (audit `policy.expiry-unguarded`)."""
    check_whole_account(snapshot)
    user = _find_user(snapshot, user_name)
    grants = _readable_grants(user)
    if not grants:
        raise BadInput(f"{user.name} holds no loan with a readable expiry. Nothing was changed.")
    policy = expiry_policy(snapshot, user, grants)
    ensure_inline_policies_fit(user, policy.document)
    steps = _expiry_policy_steps(user, policy, step_id="guard-expiry-policy")
    if not steps:
        raise BadInput(f"{user.name}'s {EXPIRY_POLICY_NAME} is already guarded. Nothing to do.")
    return Plan(
        "grant-guard",
        f"Guard {user.name}'s loans (expiries unchanged)",
        tuple(steps),
        (*policy.warnings, *_unreadable_grants_warning(user)),
        subject=f"guard {user.name.lower()}",
    )


def plan_end_grant(
    snapshot: Snapshot, user_name: str, group_name: str, *, finishing: bool = False
) -> Plan:
    """End a loan now: membership, whitelist entries, tag and expiry policy statement.

    The membership goes first and the expiry policy last, so that until the
    very end something still takes the loan's rights away.

    `finishing`: an earlier end of this loan was cut short after its tag was
    removed. Then no loan is left to name, and the plan is what that run left
    undone (a whitelist entry, the expiry policy), possibly nothing.
    """
    check_whole_account(snapshot)
    user = _find_user(snapshot, user_name)
    group = _find_group(snapshot, group_name)
    current = _grant_value(user, group)
    if current is None:
        if _in_group(user, group):
            raise BadInput(
                f"{user.name} is a permanent member of {group.name}, not on loan.",
                hint=f"Use `keyhygiene group remove {user.name} {group.name}` to take it out.",
            )
        if not finishing:
            raise BadInput(f"{user.name} has no loan of {group.name}. Nothing was changed.")
    steps: list[Step] = []
    if _in_group(user, group):
        steps.append(_remove_from_group_step(user, group))
    steps.extend(_whitelist_steps(snapshot, {group.name: _members(group) - {user.name}}))
    if current is not None:
        tag_key = TAG_GRANT_PREFIX + _tag_group(user, group)
        steps.append(_untag_step("grant-untag", user, {tag_key: current}, why="the loan is over"))
    policy = expiry_policy(
        snapshot,
        user,
        _readable_grants(user, without=group.name),
        groups_after=[g for g in user.groups if g.lower() != group.name.lower()],
    )
    steps.extend(_expiry_policy_steps(user, policy))
    verb = "End" if current is not None else "Finish ending"
    return Plan(
        "grant-end",
        f"{verb} {user.name}'s loan of {group.name}" + (" now" if current is not None else ""),
        tuple(steps),
        tuple(policy.warnings),
        subject=_subject("remove", user, group),
    )


def plan_sweep(snapshot: Snapshot, *, now: datetime) -> Plan:
    """Remove every loan whose expiry is past at `now` (an empty plan when there is none).

    Forward only: nothing in a sweep is ever undone, because undoing it would
    give expired loans back. A failure is reported and the next sweep, which
    starts from the account as it is then, finishes the job. So every step
    accepts what is already done (by an earlier sweep, or another keyhygiene
    running at the same time), and the order keeps the account safe wherever
    a run stops:
    1. a check that the loans are still tagged as the snapshot saw them (a
       loan extended or ended meanwhile is not swept from stale data); its
       failure stops the sweep before anything changes;
    2. the memberships and the whitelist entries go (each may fail alone: it
       only takes access away);
    3. a gate: only when all of step 2 succeeded do
    4. the expiry policies and the tags go. Until then AWS keeps denying the
       expired loans, and the tags let the next sweep find them again.
    """
    check_whole_account(snapshot)
    expired = expired_grants(snapshot, now)
    if not expired:
        return Plan(SWEEP_KIND, "Sweep expired loans: none", (), subject=SWEEP_SUBJECT)
    by_user: dict[str, list[Grant]] = {}
    for grant in expired:
        by_user.setdefault(grant.user, []).append(grant)
    steps: list[Step] = [_check_grants_step(expired)]
    taking_away: list[Step] = []
    members_after: dict[str, set[str]] = {}
    warnings: list[str] = []
    for index, grant in enumerate(expired, 1):
        user = _find_user(snapshot, grant.user)
        group = snapshot.group(grant.group)
        if grant.expiry is None:
            warnings.append(
                f"{user.name}'s loan of {grant.group} has an unreadable expiry "
                f"({grant.expiry_text!r}): it is swept as if expired."
            )
        if group is None:
            continue
        if _in_group(user, group):
            taking_away.append(_sweep_remove_step(index, user, group, grant))
        # Even when the membership is gone already (an earlier sweep stopped
        # after removing it): the whitelists may still name the user.
        members_after.setdefault(group.name, _members(group)).discard(user.name)
    taking_away.extend(_whitelist_steps(snapshot, members_after))
    steps.extend(_forward_only(step) for step in taking_away)
    if taking_away:
        steps.append(_sweep_gate_step([step.id for step in taking_away]))
    for index, (user_name, grants) in enumerate(sorted(by_user.items()), 1):
        user = _find_user(snapshot, user_name)
        swept = {g.group.lower() for g in grants}
        remaining = {g: t for g, t in _readable_grants(user).items() if g.lower() not in swept}
        policy = expiry_policy(
            snapshot,
            user,
            remaining,
            groups_after=[g for g in user.groups if g.lower() not in swept],
        )
        policy_steps = [
            _forward_only(step)
            for step in _expiry_policy_steps(
                user, policy, step_id=f"sweep-expiry-{index}", tolerant=True
            )
        ]
        steps.extend(policy_steps)
        # The tag last: while it stays, the next sweep finds the loan again.
        steps.append(_sweep_untag_step(index, user, grants, [s.id for s in policy_steps]))
    count = len(expired)
    return Plan(
        SWEEP_KIND,
        f"Sweep {count} expired loan{'s' if count != 1 else ''}",
        tuple(steps),
        tuple(warnings),
        subject=SWEEP_SUBJECT,
    )


@dataclass(frozen=True)
class SweepOutcome:
    """What `apply_sweep` did, with the sentence the TUI shows in its notification."""

    plan: Plan
    grants: tuple[Grant, ...]  # the expired loans the plan removes
    report: ApplyReport | None = None  # None: nothing had expired, nothing ran

    @property
    def ok(self) -> bool:
        return self.report is None or self.report.ok

    @property
    def message(self) -> str:
        """ "" when nothing expired; else what was removed, or why not all of it was."""
        if self.report is None:
            return ""
        return sweep_summary(self.report, self.grants)


def sweep_summary(report: ApplyReport, grants: Sequence[Grant]) -> str:
    """One paragraph on a sweep's run, for the TUI's notification and the command line."""
    loans = ", ".join(f"{g.user} from {g.group}" for g in grants)
    count = len(grants)
    if report.ok:
        return f"Removed {count} expired loan{'s' if count != 1 else ''}: {loans}."
    failed = [r for r in report.results if r.status == "failed"]
    why = f": {failed[0].message.rstrip('.')}" if failed and failed[0].message else ""
    more = f" ({len(failed) - 1} more step(s) failed)" if len(failed) > 1 else ""
    if not report.done:
        return (
            f"Could not remove the expired loans ({loans}){why}{more}. Nothing was changed: "
            "the next sweep reads the account afresh."
        )
    return (
        f"Could not remove the expired loans ({loans}){why}{more}. Nothing is rolled back "
        "(that would give expired loans back): AWS keeps denying them, and the next sweep "
        "finishes the job."
    )


def close_sweep_journal(report: ApplyReport) -> None:
    """A sweep is never resumed nor rolled back: the next one starts afresh.

    So a sweep that did not finish leaves no open journal behind, and the next
    start does not offer to finish or undo it (the journal stays, as history,
    in journals/done/ with the state "abandoned").
    """
    journal = report.journal
    if journal is not None and journal.is_open:
        journal.abandon()


def apply_sweep(
    snapshot: Snapshot,
    clients: ClientProvider,
    *,
    now: datetime,
    on_event: Callable[[PlanEvent], None] | None = None,
) -> SweepOutcome:
    """Compute and apply the sweep with a journal, forward only (see `plan_sweep`).

    Blocking (AWS calls): the TUI runs it in a thread worker at start and
    shows `outcome.message` when it is not empty.
    """
    from keyhygiene.plans.journal import Journal, interrupted_runs_of

    plan = plan_sweep(snapshot, now=now)
    grants = expired_grants(snapshot, now)
    # A sweep killed midway left its journal running; this one, planned from
    # the account as it is now, does what it left (as the command line's does).
    earlier = interrupted_runs_of(plan)
    if not plan.steps:
        for run in earlier:
            run.abandon()
        return SweepOutcome(plan, grants)
    report = apply_plan(plan, clients, journal=Journal.create(plan), on_event=on_event)
    if report.ok and report.journal is not None:
        for run in earlier:
            run.close_as_finished_by(report.journal)
    close_sweep_journal(report)
    return SweepOutcome(plan, grants, report)
