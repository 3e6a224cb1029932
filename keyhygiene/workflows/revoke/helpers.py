"""Small helpers on principals and policy documents."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from keyhygiene.core.errors import BadInput
from keyhygiene.core.policy_documents import (
    as_document,
)


def _same_principal(actor_arn: str, user_arn: str) -> bool:
    return actor_arn.lower() == user_arn.lower()


def _mentions(value: Any, arn: str) -> bool:
    """True when the ARN appears anywhere in a policy (principals, conditions)."""
    if value is None:
        return False
    if isinstance(value, str):
        return value == arn
    if isinstance(value, Mapping):
        return any(_mentions(item, arn) for item in value.values())
    if isinstance(value, (list, tuple)):
        return any(_mentions(item, arn) for item in value)
    return False


def _plain(document: Any) -> dict[str, Any]:
    return as_document(document) or {}


def _document(raw: Any) -> dict[str, Any]:
    """A policy as a dict: IAM answers with a dict, S3 and KMS with JSON text."""
    try:
        return as_document(raw) or {}
    except BadInput:
        return {}
