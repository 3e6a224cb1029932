"""Values that steps keep and refer to, found by dotted path."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass
from keyhygiene.plans.model import _jsonable
from keyhygiene.plans.scrub import _redacted


def _lookup(value: Any, path: str) -> tuple[bool, Any]:
    """Follow a dotted path ("AccessKey.AccessKeyId", "Users.0.UserName")."""
    for part in path.split(".") if path else []:
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, (list, tuple)) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return False, None
    return True, value


def _lookup_kept(kept: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    """A path among kept values: kept as such, or below a kept path."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        prefix = ".".join(parts[:cut])
        if prefix in kept:
            return _lookup(kept[prefix], ".".join(parts[cut:]))
    return False, None


def _kept_values(result: Mapping[str, Any], keep: Sequence[str]) -> dict[str, Any]:
    kept = {}
    for path in keep:
        found, value = _lookup(result, path)
        if found:
            kept[path] = _redacted(_jsonable(value))
    return kept
