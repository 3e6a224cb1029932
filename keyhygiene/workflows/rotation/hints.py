"""Error hints for a workflow that signs every call with the profile's own key."""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Callable, Iterator

from keyhygiene.core.errors import AwsProblem
from keyhygiene.plans import (
    ApplyReport,
    PlanEvent,
)

# keyhygiene.core.errors hints "use --admin-profile" on AccessDenied, but a rotation signs
# every call with the profile's own key: the hint that helps names the policy.
_PERMISSION_IN_TEXT = re.compile(r"lacks ([\w-]+:[\w*]+)")
_OWN_KEY_MARK = "--admin-profile plays no part"


def own_key_hint(permission: str, user: str | None = None) -> str:
    who = user or "this computer's IAM user"
    return (
        f"A rotation signs every call with the profile's own key ({_OWN_KEY_MARK}), so "
        f"{who} itself needs {permission} on its own access keys: the "
        "keyhygiene-rotate-own-key policy grants it. Ask an administrator to attach that "
        "policy (`keyhygiene enroll` does), then run `keyhygiene rotate` again."
    )


def reworded(text: str, user: str | None = None) -> str:
    """`text` with the generic "--admin-profile" hint replaced by the rotation's."""
    if "--admin-profile" not in text:
        return text
    found = _PERMISSION_IN_TEXT.search(text)
    permission = found.group(1) if found else "the permission named above"
    return "\n".join(
        own_key_hint(permission, user)
        if "--admin-profile" in line and _OWN_KEY_MARK not in line
        else line
        for line in text.split("\n")
    )


@contextlib.contextmanager
def _own_key_errors(user: str | None = None) -> Iterator[None]:
    try:
        yield
    except AwsProblem as exc:
        if not exc.hint or "--admin-profile" not in exc.hint:
            raise
        permission = f"iam:{exc.operation}" if exc.operation else "the permission named above"
        found = _PERMISSION_IN_TEXT.search(exc.message)
        if found:
            permission = found.group(1)
        raise AwsProblem(
            exc.message,
            hint=own_key_hint(permission, user),
            code=exc.code,
            operation=exc.operation,
        ) from None


def _reworded_report(report: ApplyReport, user: str | None) -> ApplyReport:
    results = tuple(
        dataclasses.replace(result, message=reworded(result.message, user))
        for result in report.results
    )
    return dataclasses.replace(report, results=results)


def _rewording(
    on_event: Callable[[PlanEvent], None] | None, user: str | None
) -> Callable[[PlanEvent], None] | None:
    if on_event is None:
        return None

    def relay(event: PlanEvent) -> None:
        if event.message:
            event = dataclasses.replace(event, message=reworded(event.message, user))
        on_event(event)

    return relay
