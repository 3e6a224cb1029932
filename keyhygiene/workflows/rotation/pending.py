"""Rotations left unfinished: found in the journals, described from what the profile holds now."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from keyhygiene.core.errors import KeyHygieneError
from keyhygiene.local.key_location import KeyLocation, held_key_id
from keyhygiene.plans.journal import Journal, open_journals
from keyhygiene.workflows.rotation.model import (
    NEW_KEY_PATH,
    PLAN_KIND,
    STEP_CREATE,
    STEP_WRITE,
    key_tail,
)

RecoveryAction = Literal["finish", "roll_back", "busy", "blocked"]


@dataclass(frozen=True)
class PendingRotation:
    """An interrupted rotation found at start, and what keyhygiene will do about it."""

    journal: Journal = field(repr=False, compare=False)
    profile: str
    user_name: str
    old_key_id: str
    new_key_id: str | None
    action: RecoveryAction
    description: str

    @property
    def location(self) -> KeyLocation:
        return KeyLocation.from_params(self.journal.plan.step(STEP_WRITE).call.params)


def pending_rotations(
    directory: Path | None = None, *, profile: str | None = None
) -> list[PendingRotation]:
    """The interrupted rotations in the state directory, oldest first, each with
    the action it needs. Reads only local files (and the keyring): no AWS call."""
    found = []
    for journal in open_journals(directory):
        if journal.plan.kind != PLAN_KIND:
            continue
        try:
            params = journal.plan.step(STEP_WRITE).call.params
        except KeyError:
            continue
        if profile is not None and params.get("profile") != profile:
            continue
        found.append(_describe_pending(journal, params))
    return found


def pending_rotation(
    profile: str | None = None, directory: Path | None = None
) -> PendingRotation | None:
    """The first interrupted rotation (of `profile`, if given), or None."""
    pending = pending_rotations(directory, profile=profile)
    return pending[0] if pending else None


def _describe_pending(journal: Journal, params: Mapping[str, Any]) -> PendingRotation:
    location = KeyLocation.from_params(params)
    user = str(params["user_name"])
    old = str(params["old_access_key_id"])
    new = journal.kept_values().get(STEP_CREATE, {}).get(NEW_KEY_PATH)
    base = f"{journal.summary()}."

    def pending(action: RecoveryAction, text: str) -> PendingRotation:
        return PendingRotation(journal, location.profile, user, old, new, action, f"{base} {text}")

    if journal.held_by_other_process():
        return pending("busy", "Another keyhygiene process is running it now; leave it be.")
    try:
        holding = held_key_id(location)
    except KeyHygieneError as exc:
        return pending(
            "blocked", f"Cannot tell what profile {location.profile} holds: {exc.message}"
        )
    if new and holding == new:
        return pending(
            "finish",
            f"Profile {location.profile} already holds the new key {key_tail(new)}: keyhygiene "
            f"will finish the rotation (verify it, deactivate and delete the old key {old}).",
        )
    if new:
        lost = f"The new key {new} was created but never written, and its secret is lost"
    else:
        lost = "A new key may have been created but never written, and its secret is lost"
    return pending(
        "roll_back",
        f"{lost}: keyhygiene will roll back (delete that key); profile {location.profile} "
        f"keeps its key {holding or 'as it is'}.",
    )
