"""Secret scrubbing: results that look secret are redacted, and never reach a message."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass


_SECRET_WORDS = ("secret", "password", "sessiontoken", "privatekey", "plaintext")


def _looks_secret(key: str) -> bool:
    lowered = key.lower().replace("_", "")
    return any(word in lowered for word in _SECRET_WORDS)


def _redacted(value: Any) -> Any:
    """Belt and braces: a kept mapping never carries a secret-named member."""
    if isinstance(value, Mapping):
        return {
            key: "(not kept)" if _looks_secret(str(key)) else _redacted(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    return value


def _secret_strings(value: Any, under_secret: bool = False) -> Iterator[str]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _secret_strings(item, under_secret or _looks_secret(str(key)))
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _secret_strings(item, under_secret)
    elif under_secret and isinstance(value, str) and len(value) >= 8:
        yield value


def _scrub(message: str, results: Mapping[str, Any]) -> str:
    """Mask any secret of this run that a failure message might quote."""
    for secret in _secret_strings(dict(results)):
        message = message.replace(secret, "****")
    return message
