"""Values whose repr hides them: results and answers that may hold a secret."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any


class Sealed(Mapping[str, Any]):
    """A read-only mapping whose repr hides its values.

    Textual prints a crash traceback *with local variables* (rich's
    show_locals); results and resolved parameters may hold a secret, so they
    travel in this wrapper rather than in a plain dict.
    """

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self._data: dict[str, Any] = dict(data or {})

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"<{len(self._data)} values, hidden>"

    def _put(self, key: str, value: Any) -> None:
        self._data[key] = value
