"""Where this computer's key lives: the profile's two files and the keyring.

botocore's order decides which key a profile holds: the credentials file
first, then keyhygiene's `credential_process` serving the keyring's key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from keyhygiene.core import formatting
from keyhygiene.local import credentials_file, vault
from keyhygiene.local.vault import Secret, is_keyhygiene_process

# Where a key is kept: ~/.aws/credentials, or the OS keyring behind credential_process.
Store = Literal["file", "keyring"]


@dataclass(frozen=True)
class KeyLocation:
    """Where a profile keeps its key: the two files botocore reads (and the keyring)."""

    profile: str
    credentials_file: Path
    config_file: Path

    @classmethod
    def for_profile(cls, profile: str) -> KeyLocation:
        return cls(
            profile,
            credentials_file.credentials_path().absolute(),
            credentials_file.config_path().absolute(),
        )

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> KeyLocation:
        return cls(
            str(params["profile"]),
            Path(params["credentials_file"]),
            Path(params["config_file"]),
        )

    def params(self) -> dict[str, str]:
        return {
            "profile": self.profile,
            "credentials_file": str(self.credentials_file),
            "config_file": str(self.config_file),
        }

    @property
    def shown_credentials(self) -> str:
        return formatting.shown_path(self.credentials_file)

    @property
    def shown_config(self) -> str:
        return formatting.shown_path(self.config_file)


@dataclass(frozen=True)
class HeldKey:
    """The access key a profile holds, and where."""

    access_key_id: str
    secret: Secret = field(repr=False)
    store: Store


def held_key(location: KeyLocation) -> HeldKey | None:
    """The long-term key botocore would use for the profile, or None.

    The credentials file wins over `credential_process` (botocore's order),
    so plaintext keys there are what counts even if the config names
    keyhygiene's credential process.
    """
    values = credentials_file.read_profile(location.credentials_file, location.profile)
    key_id = values.get("aws_access_key_id", "")
    if key_id and values.get("aws_secret_access_key"):
        return HeldKey(key_id, Secret(values["aws_secret_access_key"]), "file")
    config = credentials_file.read_profile(
        location.config_file, location.profile, config_style=True
    )
    command = config.get("credential_process", "")
    if is_keyhygiene_process(command):
        vault.check_named_keyring(command, location.profile)
        stored = vault.load_key(location.profile)
        if stored is not None:
            return HeldKey(stored.access_key_id, stored.secret, "keyring")
    return None


def held_key_id(location: KeyLocation) -> str | None:
    key = held_key(location)
    return key.access_key_id if key else None
