"""The report after a revoke: what was contained when, what failed, and what to do next."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import partial

from keyhygiene.core.errors import permission_for
from keyhygiene.core.formatting import utc_z
from keyhygiene.core.model import (
    REVOKED_POLICY_NAME,
    TAG_REVOKED,
    AccessKey,
    Snapshot,
    User,
)
from keyhygiene.plans import (
    ApplyReport,
    Plan,
    PlanEvent,
    Step,
)
from keyhygiene.workflows.revoke.helpers import _mentions
from keyhygiene.workflows.revoke.model import (
    _LACKS,
    _LOCAL_PERMISSIONS,
    CONTAINMENT_STEPS,
    DENY_ALL_POLICY_NAME,
    DENY_INLINE,
    DENY_MANAGED,
    NO_ROOM,
    STEP_DENY,
    STEP_KEYS,
)
from keyhygiene.workflows.revoke.plan import _deny_all_attached
from keyhygiene.workflows.revoke.reach import _last_use


class ContainmentTimer:
    """Give it every PlanEvent: it notes when the user was put out of action.

    Time to containment is the time from the start of the run until step (1)
    (keys deactivated) completed; when keys were not part of the plan (already
    inactive, or a self-revoke), until the deny policy was attached.
    `requested_at` is the wall-clock time (UTC) when the last containment step
    of the run returned: when AWS had accepted both requests.
    """

    def __init__(
        self,
        plan: Plan,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self.step_id = containment_step(plan)
        self.clock = clock
        self.wall = wall
        self.started: float | None = None
        self.seconds: float | None = None
        self.requested_at: datetime | None = None

    def __call__(self, event: PlanEvent) -> None:
        if event.undo:
            return
        if event.kind == "plan_started":
            self.started = self.clock()
        elif event.kind == "step_done" and event.step_id in CONTAINMENT_STEPS:
            self.requested_at = self.wall()
            if event.step_id == self.step_id and self.started is not None:
                self.seconds = self.clock() - self.started


def containment_step(plan: Plan) -> str | None:
    ids = {step.id for step in plan.steps}
    return next((step for step in CONTAINMENT_STEPS if step in ids), None)


@dataclass(frozen=True)
class FailedStep:
    number: int
    description: str
    message: str
    permission: str  # what the identity needs, e.g. "iam:UpdateAccessKey"


# IAM's note on eventual consistency, quoted by the report.
EVENTUAL_CONSISTENCY_URL = (
    "https://docs.aws.amazon.com/IAM/latest/UserGuide/"
    "troubleshoot_general.html#troubleshoot_general_eventual-consistency"
)
PROPAGATION = "AWS may take a few minutes to apply it everywhere"


@dataclass(frozen=True)
class RevokeReport:
    """An ApplyReport of a revoke plan, read for a person in a hurry.

    Containment is *requested* when AWS accepted the calls that put the user
    out of action (this run or before it): IAM applies them everywhere only
    after a delay, so nothing here says it is done.
    """

    report: ApplyReport
    user: User
    containment_seconds: float | None  # None: containment was not requested in this run
    containment_note: str  # what was requested: "keys deactivated, deny-all attached (...)"
    reach: tuple[str, ...] = ()  # the buckets and KMS keys whose policies named it
    requested_at: datetime | None = None  # when AWS accepted the last containment call
    before_run: bool = False  # containment was requested by an earlier run
    deny_policy: str | None = REVOKED_POLICY_NAME  # the deny policy in place (None: none)

    @property
    def ok(self) -> bool:
        return self.report.ok

    @property
    def containment_requested(self) -> bool:
        return self.containment_seconds is not None

    @property
    def failures(self) -> tuple[FailedStep, ...]:
        plan = self.report.plan
        return tuple(
            FailedStep(
                plan.number(result.step_id),
                plan.step(result.step_id).description,
                result.message,
                needed_permission(plan.step(result.step_id), result.message),
            )
            for result in self.report.results
            if result.status != "done"
        )

    def headline(self) -> str:
        total = len(self.report.plan.steps)
        accepted = len(self.report.done)
        took = f"AWS accepted {accepted} of {total} steps in {self.report.elapsed:.2f} s."
        name = self.user.name
        if not self.containment_requested:
            return f"{name} is NOT contained: {self.containment_note}; {took}"
        note = self.containment_note
        if self.before_run:
            since = self.user.tags.get(TAG_REVOKED)
            when = f" ({TAG_REVOKED}={since})" if since else ""
            return f"Containment of {name} was requested before this run{when}: {note}. {took}"
        when = f" at {_clock(self.requested_at)}" if self.requested_at else ""
        when += f", {self.containment_seconds:.2f} s after the start"
        return f"Containment of {name} requested{when}: {note}; {PROPAGATION}. {took}"

    def advice(self) -> list[str]:
        return revoke_advice(self)

    def render_text(self) -> str:
        lines = [self.headline()]
        failures = self.failures
        if failures:
            lines.append("")
            lines.append("Not done:")
            for failure in failures:
                lines.append(f"  {failure.number}. {failure.description}")
                lines.append(f"     needs {failure.permission}")
                first = failure.message.splitlines()[0] if failure.message else ""
                if first and failure.permission not in first:
                    lines.append(f"     {first}")  # not a plain access denied: say what it was
        lines.append("")
        lines.append("What to check next:")
        lines.extend(f"  - {item}" for item in self.advice())
        return "\n".join(lines)


def _clock(moment: datetime) -> str:
    """`14:03:07Z`: the time of day in UTC, to the second."""
    return moment.astimezone(timezone.utc).strftime("%H:%M:%SZ")


def revoke_report(
    report: ApplyReport,
    user: User,
    *,
    timer: ContainmentTimer | None = None,
    snapshot: Snapshot | None = None,
) -> RevokeReport:
    """Read `report` (of `plan_revoke` for `user` as it was before the run).

    Containment is requested when its keys are inactive or a deny policy is
    attached, by this run or before it; the time is the timer's (no timer: not
    known). `snapshot` (the one planned from) names the buckets and KMS keys it
    could reach, for the advice.
    """
    planned = {step.id for step in report.plan.steps}
    done = _done_ids(report)
    keys_ok = STEP_KEYS in done or (STEP_KEYS not in planned and not user.active_keys)
    deny_ok = STEP_DENY in done or STEP_DENY not in planned
    reach = _reach(snapshot, user) if snapshot is not None else ()
    deny = _deny_in_place(report, user)
    at = timer.requested_at if timer is not None else None
    made = partial(RevokeReport, report, user, reach=reach, deny_policy=deny)
    if not (keys_ok or deny_ok):
        return made(None, "its keys are still active and the deny policy is not attached")
    attached = f"deny-all attached ({_deny_label(deny or REVOKED_POLICY_NAME)})"
    if STEP_KEYS in done:
        note = "keys deactivated"
        if STEP_DENY in done:
            note += f", {attached}"
        elif deny_ok:
            note += f"; {attached} before this run"
        else:
            note += "; the deny policy is NOT attached, so sessions made from the keys still work"
        return made(_seconds_until(report, STEP_KEYS, timer), note, requested_at=at)
    if STEP_DENY in done:
        note = attached + (
            "; its keys were inactive already"
            if keys_ok
            else "; its keys stay active, denied everything"
        )
        return made(_seconds_until(report, STEP_DENY, timer), note, requested_at=at)
    note = f"keys inactive, {attached}"
    if not keys_ok:
        note = f"{attached}; its keys stay active, denied everything"
    return made(0.0, note, before_run=True)


def _deny_in_place(report: ApplyReport, user: User) -> str | None:
    """The deny policy's name: what this run attached, else what the user had;
    None when this run's deny step did not go through."""
    planned = any(step.id == STEP_DENY for step in report.plan.steps)
    if planned and STEP_DENY not in _done_ids(report):
        return None
    attached = report.kept.get(STEP_DENY, {}).get("Attached")
    if attached == DENY_MANAGED:
        return DENY_ALL_POLICY_NAME
    if attached == DENY_INLINE:
        return REVOKED_POLICY_NAME
    has_inline = any(p.name == REVOKED_POLICY_NAME for p in user.inline_policies)
    if _deny_all_attached(user) and not has_inline:
        return DENY_ALL_POLICY_NAME
    return REVOKED_POLICY_NAME


def _deny_label(name: str) -> str:
    if name == DENY_ALL_POLICY_NAME:
        return f"AWS managed policy {DENY_ALL_POLICY_NAME}"
    return f"inline policy {name}"


def _reach(snapshot: Snapshot, user: User) -> tuple[str, ...]:
    buckets = [f"bucket {b.name}" for b in snapshot.buckets if _mentions(b.policy, user.arn)]
    keys = [f"KMS key {k.label}" for k in snapshot.kms_keys if _mentions(k.policy, user.arn)]
    return tuple(buckets + keys)


def _done_ids(report: ApplyReport) -> set[str]:
    return {result.step_id for result in report.done}


def _seconds_until(report: ApplyReport, step_id: str, timer: ContainmentTimer | None) -> float:
    if timer is not None and timer.step_id == step_id and timer.seconds is not None:
        return timer.seconds
    total = 0.0
    for result in report.results:
        total += result.seconds
        if result.step_id == step_id:
            break
    return total


def needed_permission(step: Step, message: str) -> str:
    """The permission a failed step needed: as AWS named it, else what the step calls."""
    match = _LACKS.search(message)
    if match:
        return match.group(1)
    if message.startswith(NO_ROOM):
        return "room for a deny policy (IAM's quotas, not a permission)"
    call = step.call
    if call.service == "local":
        return ", ".join(_LOCAL_PERMISSIONS.get(call.operation, (call.label,)))
    operation = "".join(part[:1].upper() + part[1:] for part in call.operation.split("_"))
    return permission_for(call.service, operation)


def revoke_advice(revoke: RevokeReport) -> list[str]:
    """What a person should check next, most urgent first."""
    user = revoke.user
    advice: list[str] = []
    if not revoke.containment_requested:
        advice.append(
            f"URGENT: {user.name} can still use its keys. Give the missing permission to the "
            f"identity in use, or run `keyhygiene revoke {user.name} --admin-profile ADMIN` "
            "with one that has it; in the AWS console, IAM > Users > Security credentials > "
            "Deactivate works too."
        )
    elif not revoke.before_run:
        since = f" after {_clock(revoke.requested_at)}" if revoke.requested_at else ""
        advice.append(
            "IAM changes are eventually consistent: for a few minutes some AWS endpoints may "
            f"still accept {user.name}'s keys ({EVENTUAL_CONSISTENCY_URL}). Look in "
            f"CloudTrail for calls by {user.name}{since} that AWS still let through."
        )
    if revoke.failures:
        advice.append(
            f"Run `keyhygiene revoke {user.name}` again once the cause is fixed: it does only "
            "what is still missing."
        )
    for key in user.access_keys:
        advice.append(_cloudtrail_advice(user, key))
    if not user.access_keys:
        advice.append(
            f"Look in CloudTrail (Event history, user name {user.name}) for what it did recently."
        )
    where = ", ".join(revoke.reach) if revoke.reach else "the buckets and keys its groups reach"
    advice.append(
        f"Find out what it read or changed in {where}: CloudTrail's event history holds "
        "management events only, so use a trail's S3 and KMS data events or S3 server access "
        "logs if they are on, and treat data it could read as disclosed."
    )
    if revoke.deny_policy is not None:
        advice.append(
            f"Keep the deny policy ({_deny_label(revoke.deny_policy)}) attached until the user "
            "is deleted: it also refuses temporary sessions that were made from the keys before "
            "they were deactivated."
        )
    advice.append(
        "Sessions of roles it assumed act as the role, so no user policy reaches them: if it "
        "could assume a role, revoke that role's active sessions (IAM console, the role's "
        "Revoke sessions tab)."
    )
    advice.append(
        "Revoke the computer's other secrets too: SSH keys, other AWS accounts' profiles in its "
        "~/.aws/credentials, tokens and browser sessions."
    )
    advice.append(
        "If the computer turns up again, do not re-activate the old key: enroll it afresh."
    )
    return advice


def _cloudtrail_advice(user: User, key: AccessKey) -> str:
    key_name = key.id or f"{user.name}'s {key.id_tail}"
    if key.last_used is not None:
        # IAM records last use to the hour or so: start a day earlier.
        since = key.last_used.astimezone(timezone.utc) - timedelta(days=1)
        text = f"Check CloudTrail for what key {key_name} did since it was last seen ({_last_use(key)})"
    else:
        since = None
        text = (
            f"Check CloudTrail for any use of key {key_name} (never used as far as IAM "
            "knows, which lags by hours)"
        )
    if not key.id:
        return text + "."
    start = f" --start-time {utc_z(since)}" if since else ""
    return (
        f"{text}: aws cloudtrail lookup-events --lookup-attributes "
        f"AttributeKey=AccessKeyId,AttributeValue={key.id}{start}, in every region it used."
    )
