"""Finish an interrupted rotation or roll it back, deleting the keys whose secret is lost."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone

from keyhygiene.aws.connection import (
    ConnectionOptions,
    call_unless_missing,
    translate_errors,
)
from keyhygiene.aws.held_key_clients import HeldKeyClients
from keyhygiene.core.errors import BadInput, KeyHygieneError
from keyhygiene.local import vault
from keyhygiene.local.key_location import Store, held_key_id
from keyhygiene.plans import (
    Plan,
    PlanEvent,
    resume,
    rollback,
)
from keyhygiene.plans.journal import Journal, JournalError
from keyhygiene.workflows.rotation.actions import delete_unused_keys
from keyhygiene.workflows.rotation.hints import _own_key_errors, _reworded_report, _rewording
from keyhygiene.workflows.rotation.model import (
    EXIT_AWS,
    EXIT_ROTATED,
    EXIT_VERIFY_FAILED,
    STEP_CREATE,
    STEP_DELETE_OTHER,
    STEP_WRITE,
    VERIFY_STEPS,
    RotationBusy,
    key_tail,
)
from keyhygiene.workflows.rotation.pending import PendingRotation, _describe_pending
from keyhygiene.workflows.rotation.plan import _list_keys, _plan_value
from keyhygiene.workflows.rotation.run import RotationOutcome, prove_identity, rotation_lock


def finish_or_roll_back(
    pending: PendingRotation,
    options: ConnectionOptions | None = None,
    *,
    clients: HeldKeyClients | None = None,
    on_event: Callable[[PlanEvent], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> RotationOutcome:
    """Finish an interrupted rotation whose new key the profile holds, or roll
    back one whose new key was never written (deleting any key it created).

    A failure while finishing is not rolled back: the old secret is gone, so
    the new key is the only one that can work; the journal stays open for the
    next try. Holds the profile's rotation lock (`RotationBusy` if taken).
    """
    if pending.action == "busy":
        raise RotationBusy(pending.description)
    # The journal lives in <state dir>/journals/: the lock sits in <state dir>.
    with rotation_lock(pending.profile, pending.journal.path.parent.parent):
        # Decide afresh, from the journal as it is now: another process may
        # have dealt with it since the description was made.
        try:
            journal = Journal.load(pending.journal.path)
        except JournalError:
            journal = None
        if journal is None or not journal.is_open:
            raise BadInput(
                f"The interrupted rotation of profile {pending.profile!r} was dealt with "
                "meanwhile. Nothing was changed."
            )
        fresh = _describe_pending(journal, journal.plan.step(STEP_WRITE).call.params)
        if fresh.action == "blocked":
            raise BadInput(fresh.description)
        if clients is None:
            clients = HeldKeyClients(
                options or ConnectionOptions(profile=fresh.profile), fresh.location
            )
        relay = _rewording(on_event, fresh.user_name)
        if fresh.action == "finish":
            return _finish(fresh, clients, relay, clock, sleep)
        return _roll_back(fresh, clients, relay, clock, sleep)


# The name the TUI and the command use; the two are one function.
recover_rotation = finish_or_roll_back


def _finish(
    pending: PendingRotation,
    clients: HeldKeyClients,
    on_event: Callable[[PlanEvent], None] | None,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> RotationOutcome:
    journal = pending.journal
    started, calls_before = clock(), clients.api_calls
    if journal.state == "rollback_incomplete":
        journal.set_state("stopped")  # going forward after all: the new key is held
    report = _reworded_report(
        resume(journal, clients, on_event=on_event, clock=clock, sleep=sleep),
        pending.user_name,
    )
    if report.ok:
        proof = prove_identity(clients)
        return RotationOutcome(
            journal.plan,
            EXIT_ROTATED,
            f"Finished the interrupted rotation: profile {pending.profile} holds the new key "
            f"{key_tail(pending.new_key_id)}; the old key {pending.old_key_id} is deleted.",
            proof_arn=proof,
            api_calls=clients.api_calls - calls_before,
            elapsed=clock() - started,
            report=report,
            old_key_id=pending.old_key_id,
            new_key_id=pending.new_key_id,
            action="finish",
        )
    failed = report.failed[0] if report.failed else None
    code = EXIT_VERIFY_FAILED if failed and failed.step_id in VERIFY_STEPS else EXIT_AWS
    return RotationOutcome(
        journal.plan,
        code,
        f"Could not finish the interrupted rotation: {failed.message if failed else 'stopped'}. "
        f"Profile {pending.profile} holds the new key {key_tail(pending.new_key_id)}; nothing was "
        "rolled back (the old secret is gone). Fix the cause and run `keyhygiene rotate` again.",
        api_calls=clients.api_calls - calls_before,
        elapsed=clock() - started,
        report=report,
        old_key_id=pending.old_key_id,
        new_key_id=pending.new_key_id,
        action="finish",
    )


def _roll_back(
    pending: PendingRotation,
    clients: HeldKeyClients,
    on_event: Callable[[PlanEvent], None] | None,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> RotationOutcome:
    journal = pending.journal
    started, calls_before = clock(), clients.api_calls
    create_started = _step_started_at(journal, STEP_CREATE)
    # Read before the rollback changes it: "running" means the call's answer
    # (and with it the new key's id) may have been lost with the process.
    create_interrupted = journal.status(STEP_CREATE) == "running"
    # The lost key first: the rollback closes the journal when it succeeds,
    # and a check that fails must be tried again by the next run.
    try:
        orphans, left = _delete_lost_keys(
            journal.plan,
            clients,
            pending.old_key_id,
            pending.new_key_id,
            create_started if create_interrupted else None,
        )
    except KeyHygieneError as exc:
        return RotationOutcome(
            journal.plan,
            EXIT_AWS,
            f"Could not roll back the interrupted rotation of profile {pending.profile}: "
            f"checking for the key it left behind failed: {exc.message} Nothing was changed; "
            "fix the cause and run `keyhygiene rotate` again.",
            old_key_id=pending.old_key_id,
            new_key_id=pending.new_key_id,
            api_calls=clients.api_calls - calls_before,
            elapsed=clock() - started,
            action="roll_back",
        )
    undo = _reworded_report(
        rollback(journal, clients, on_event=on_event, clock=clock, sleep=sleep),
        pending.user_name,
    )
    ok = undo.ok
    lines = [
        f"Rolled back the interrupted rotation of profile {pending.profile}"
        + ("" if ok else " only in part")
        + f": it keeps its key {pending.old_key_id}."
    ]
    undone = [journal.plan.step(result.step_id).description for result in undo.undone]
    if undone:
        lines.append("Undone: " + "; ".join(undone) + ".")
    if orphans:
        lines.append(
            "Deleted the key(s) the interrupted run created and never wrote: "
            + ", ".join(orphans)
            + "."
        )
    lines.extend(left)
    return RotationOutcome(
        journal.plan,
        EXIT_ROTATED if ok else EXIT_AWS,
        "\n".join(lines),
        undo_report=undo,
        old_key_id=pending.old_key_id,
        new_key_id=pending.new_key_id,
        api_calls=clients.api_calls - calls_before,
        elapsed=clock() - started,
        action="roll_back",
    )


def _step_started_at(journal: Journal, step_id: str) -> datetime | None:
    record = journal.to_json().get("steps", {}).get(step_id, {})
    try:
        moment = datetime.fromisoformat(str(record.get("started_at")))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _delete_lost_keys(
    plan: Plan,
    clients: HeldKeyClients,
    old_key_id: str,
    new_key_id: str | None,
    interrupted_create_started: datetime | None,
) -> tuple[list[str], list[str]]:
    """Delete the key this run created and never wrote (its secret is lost).
    By id when the journal kept it; when a CreateAccessKey was interrupted
    before its answer was journaled, the unknown keys created after that step
    started and never used (`delete_unused_keys`). Returns (deleted, notes)."""
    user = str(_plan_value(plan, "user_name"))
    known = {old_key_id}
    for step in plan.steps:
        if step.id.startswith(STEP_DELETE_OTHER):
            known.add(str(step.call.params["AccessKeyId"]))
    holding = held_key_id(clients.location)
    if holding:
        known.add(holding)
    if new_key_id:
        if new_key_id in known:
            return [], []
        listed = {key.access_key_id for key in _list_keys(clients, user)}
        if new_key_id not in listed:
            return [], []
        with (
            _own_key_errors(user),
            translate_errors(f"deleting the key {new_key_id}", service="iam"),
        ):
            call_unless_missing(
                clients.client("iam").delete_access_key, UserName=user, AccessKeyId=new_key_id
            )
        return [new_key_id], []
    if interrupted_create_started is None:
        return [], []
    return delete_unused_keys(clients, user, known=known, since=interrupted_create_started)


def check_store_usable(
    store: Store | None, current: Store | None = None, *, allow_insecure: bool = False
) -> None:
    """Raise `KeyringUnavailable` (exit 2, nothing changed) when the keyring is
    asked for, or in use, and this computer has none; `KeyringNotSafe` when the
    new key would go into a keyring that loses it or keeps it in plain text."""
    if store == "keyring":
        vault.check_safe_for_the_only_key(allow_insecure=allow_insecure)
    elif current == "keyring":
        vault.keyring_backend()
