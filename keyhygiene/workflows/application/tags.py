"""The tags that name the groups an application's role and key belong to."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from keyhygiene.core.aws_limits import (
    MAX_TAG_VALUE,
    MAX_TAGS_PER_RESOURCE,
)
from keyhygiene.core.errors import BadInput
from keyhygiene.core.model import (
    TAG_GROUPS,
    groups_from_tag,
)
from keyhygiene.plans import (
    Call,
    Step,
)

# ---- tags shared by the role and the key


@dataclass(frozen=True)
class _TagCalls:
    put: Callable[[str], Call]  # the call setting keyhygiene:groups to a value
    remove: Call  # removes keyhygiene:groups


def _merged_groups_value(old: str | None, name: str) -> str:
    return " ".join((*groups_from_tag(old), name))


def _adopt_tag_steps(
    step_prefix: str,
    name: str,
    tags: Mapping[str, str],
    calls: _TagCalls,
    warnings: list[str],
    label: str,
    *,
    id_suffix: str = "",
) -> list[Step]:
    """Add NAME to an adopted resource's `keyhygiene:groups` (nothing when it is there)."""
    old = tags.get(TAG_GROUPS)
    groups = groups_from_tag(old)
    if name in groups:
        return []
    value = _merged_groups_value(old, name)
    _check_tags(label, tags, value)
    if groups:
        warnings.append(
            f"{label[0].upper()}{label[1:]} is also tagged for {', '.join(groups)}: "
            f"its whitelist will hold those groups' members too."
        )
    return [
        Step(
            id=f"{step_prefix}-tag{id_suffix}",
            description=f"Tag {label} {TAG_GROUPS}={value}",
            call=calls.put(value),
            undo=calls.put(old) if old is not None else calls.remove,
        )
    ]


def _check_tags(label: str, tags: Mapping[str, str], value: str) -> None:
    if len(value) > MAX_TAG_VALUE:
        raise BadInput(
            f"The tag {TAG_GROUPS} of {label} would be longer than {MAX_TAG_VALUE} characters.",
            hint="Use shorter group names, or fewer groups on one resource.",
        )
    if TAG_GROUPS not in tags and len(tags) >= MAX_TAGS_PER_RESOURCE:
        raise BadInput(
            f"{label[0].upper()}{label[1:]} already has {len(tags)} tags, the most AWS allows.",
            hint="Remove a tag that is no longer needed.",
        )
