"""What a rotation is made from (facts found in AWS and the files) and what the user asks for."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from keyhygiene.core.errors import BadInput
from keyhygiene.local.key_location import KeyLocation, Store
from keyhygiene.workflows.rotation.model import STORES
from keyhygiene.workflows.rotation_defaults import (
    DEFAULT_VERIFY_INTERVAL,
    DEFAULT_VERIFY_SUCCESSES,
    DEFAULT_VERIFY_TIMEOUT,
)


@dataclass(frozen=True)
class KeyInfo:
    access_key_id: str
    status: str  # "Active" | "Inactive"
    created: datetime | None = None


@dataclass(frozen=True)
class RotationFacts:
    """What a rotation plan is made from: found with two API calls and the files."""

    location: KeyLocation
    store: Store  # where the profile keeps its key now
    account_id: str
    user_name: str
    user_arn: str
    current_key_id: str
    keys: tuple[KeyInfo, ...]
    file_mode: int | None = None  # the credentials file's permission bits
    # Keys the edit writes into the profile only to override [DEFAULT]'s (a
    # session token botocore would otherwise send with the new key).
    inherited: tuple[str, ...] = ()

    @property
    def current_key(self) -> KeyInfo:
        return next(key for key in self.keys if key.access_key_id == self.current_key_id)

    @property
    def other_keys(self) -> tuple[KeyInfo, ...]:
        return tuple(key for key in self.keys if key.access_key_id != self.current_key_id)


@dataclass(frozen=True)
class RotationRequest:
    profile: str
    store: Store | None = None  # None: where the key is now
    delete_other: bool = False
    verify_timeout: float = DEFAULT_VERIFY_TIMEOUT
    verify_successes: int = DEFAULT_VERIFY_SUCCESSES
    verify_interval: float = DEFAULT_VERIFY_INTERVAL
    credential_process: str | None = None  # None: credential_process_command(profile)

    def __post_init__(self) -> None:
        if self.store is not None and self.store not in STORES:
            raise BadInput(f"--store must be one of {', '.join(STORES)}, not {self.store!r}.")
        if not 0 < self.verify_timeout <= 3600:
            raise BadInput("The verification timeout must be more than 0 and at most 3600 seconds.")
        if not 1 <= self.verify_successes <= 20:
            raise BadInput("The number of successes in a row must be between 1 and 20.")
        if not 0 <= self.verify_interval <= 60:
            raise BadInput("The pause between checks must be between 0 and 60 seconds.")
