"""Waiting for IAM to propagate a principal that was just created.

IAM is eventually consistent. For some seconds after CreateUser or
CreateRole, S3 and KMS do not know the new principal yet: PutBucketPolicy
answers `MalformedPolicy` ("Invalid principal in policy"), CreateKey and
PutKeyPolicy answer `MalformedPolicyDocumentException`. AWS's advice is to
wait and retry. Only a call whose policy names a principal made by the same
plan should wait: anywhere else these codes mean the document is wrong, and
retrying would only delay the error.

The wait is bounded twice, by a list of pauses (they add up to 45 s) and by
a time budget; `sleep` and `clock` are injectable so that tests take no time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from botocore.exceptions import ClientError

from keyhygiene.aws.connection import error_code

T = TypeVar("T")


class CallContext(Protocol):
    """What a call needs from a plan run (the plan engine's `ApplyContext` is
    one): its clients and its injectable `sleep` and `clock`. A protocol, so
    that the AWS edge does not import the plan engine above it."""

    @property
    def sleep(self) -> Callable[[float], None]: ...

    @property
    def clock(self) -> Callable[[], float]: ...

    def client(self, service: str) -> Any: ...


# What S3 and KMS answer while they cannot resolve a new principal yet.
NOT_YET_VISIBLE: frozenset[str] = frozenset({"MalformedPolicyDocumentException", "MalformedPolicy"})
# Pauses between tries, with backoff; 45 s in all.
PROPAGATION_WAITS: tuple[float, ...] = (1, 2, 4, 8, 15, 15)
# No try starts after this many seconds, whatever the pauses say.
PROPAGATION_BUDGET = 60.0


def retry_until_visible(
    call: Callable[[], T],
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    waits: Sequence[float] = PROPAGATION_WAITS,
    budget: float = PROPAGATION_BUDGET,
    codes: frozenset[str] = NOT_YET_VISIBLE,
) -> T:
    """`call()`, tried again after each pause of `waits` while it fails with one of `codes`.

    Any other error, or the last failure once the pauses or the budget are
    spent, propagates unchanged (the caller turns it into a clear message).
    """
    started = clock()
    for wait in (*waits, None):
        try:
            return call()
        except ClientError as exc:
            if wait is None or error_code(exc) not in codes:
                raise
            if clock() - started + wait > budget:
                raise
        sleep(wait)
    raise AssertionError("unreachable: the last try returns or raises")


def call_until_visible(
    ctx: CallContext, service: str, operation: str, params: Mapping[str, Any]
) -> dict[str, Any]:
    """One boto3 call from a local action, patient while a new principal propagates.

    Uses the plan run's `sleep` and `clock`, so a test that injects them into
    `apply_plan` waits for nothing.
    """

    def once() -> dict[str, Any]:
        response = dict(getattr(ctx.client(service), operation)(**params))
        response.pop("ResponseMetadata", None)
        return response

    return retry_until_visible(once, sleep=ctx.sleep, clock=ctx.clock)
