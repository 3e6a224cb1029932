"""The crash hook the tests arm: kill the process at a step, before or after it took effect."""

from __future__ import annotations

import os
import signal
from typing import Any

from keyhygiene.aws import held_key_clients
from keyhygiene.plans import (
    PlanEvent,
)
from keyhygiene.workflows.rotation.model import CRASH_ENV, STEP_CREATE, STEP_DEACTIVATE, TESTING_ENV


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def crash_hook_armed() -> bool:
    """The crash hook works only when the tests say so, twice."""
    return bool(os.environ.get(CRASH_ENV)) and os.environ.get(TESTING_ENV) == "1"


def crash_point(where: str) -> None:
    """Kill this process if the crash test asked for `where`."""
    if os.environ.get(CRASH_ENV) == where and crash_hook_armed():
        _die()


# After-call events of the API steps, for the crash hook.
_CRASH_AFTER = {
    "after-call.iam.CreateAccessKey": STEP_CREATE,
    "after-call.iam.UpdateAccessKey": STEP_DEACTIVATE,
}


def _crash_after_call(event_name: str = "", **_: Any) -> None:
    step = _CRASH_AFTER.get(event_name)
    if step is not None:
        crash_point(step)


def _arm_crash_hook(client: Any) -> None:
    if crash_hook_armed():
        client.meta.events.register("after-call", _crash_after_call)


held_key_clients.NEW_CLIENT_HOOKS.append(_arm_crash_hook)


def _crash_on_event(event: PlanEvent) -> None:
    if event.kind == "step_started" and not event.undo and event.step_id:
        crash_point(f"{event.step_id}:before")
