"""keyhygiene's own config file: the accounts to load, or an organization.

`$KEYHYGIENE_CONFIG`, else `config.toml` in the user config folder
(`~/.config/keyhygiene/config.toml` on Linux):

    [[accounts]]
    name = "personal"                 # how keyhygiene names it (tree, --account)
    admin_profile = "personal-admin"  # reads and changes the account
    profile = "personal"              # this computer's key in it (optional)
    account_id = "111111111111"       # optional: checked when it loads
    devices = ["christopher-laptop", "christopher-work"]  # optional practice

    [[accounts]]
    name = "work"
    admin_profile = "work-admin"
    devices = ["christopher-work"]    # the home computer must not be here

    # Or every account of an organization, through a role in each:
    [organization]
    admin_profile = "org-management"
    role_name = "OrganizationAccountAccessRole"

`devices` is the practice the audit holds each account to: when given, a
computer (a `person-device` user) not listed has no business in that account.
The file holds profile names, never a key.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from PyPI
    import tomli as tomllib

from keyhygiene.core.accounts import DEFAULT_ORGANIZATION_ROLE, AccountSpec
from keyhygiene.core.errors import BadInput
from keyhygiene.core.options import ConnectionOptions

ENV_VAR = "KEYHYGIENE_CONFIG"
_ACCOUNT_KEYS = {
    "name",
    "profile",
    "admin_profile",
    "account_id",
    "devices",
    "region",
    "endpoint_url",
}
_ORGANIZATION_KEYS = {"profile", "admin_profile", "role_name", "devices", "region", "endpoint_url"}


@dataclass(frozen=True)
class OrganizationConfig:
    options: ConnectionOptions
    role_name: str = DEFAULT_ORGANIZATION_ROLE
    devices: tuple[str, ...] | None = None


@dataclass(frozen=True)
class AccountsConfig:
    path: Path
    accounts: tuple[AccountSpec, ...] = ()
    organization: OrganizationConfig | None = None

    @property
    def empty(self) -> bool:
        return not self.accounts and self.organization is None


def config_path() -> Path:
    override = os.environ.get(ENV_VAR, "").strip()
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_config_dir("keyhygiene", appauthor=False)) / "config.toml"


def read_accounts_config(path: Path | None = None) -> AccountsConfig:
    """The config file's accounts; an empty config when there is no file.

    Raises BadInput naming the file and the entry when it cannot be used, so
    that a typo never silently loads fewer accounts than the person meant."""
    where = path or config_path()
    try:
        raw = where.read_bytes()
    except FileNotFoundError:
        return AccountsConfig(where)
    except OSError as exc:
        raise BadInput(f"Cannot read the keyhygiene config file {where}: {exc.strerror}.") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(
            f"The keyhygiene config file {where} is not valid TOML: {exc}.",
            hint="Fix the file (its format is in the README, 'Several accounts').",
        ) from None
    unknown = set(data) - {"accounts", "organization"}
    if unknown:
        raise BadInput(
            f"The keyhygiene config file {where} has unknown entries: {', '.join(sorted(unknown))}.",
            hint="Only [[accounts]] and [organization] are read.",
        )
    accounts = data.get("accounts", [])
    if not isinstance(accounts, list):
        raise BadInput(f"In {where}, accounts must be a list of [[accounts]] tables.")
    specs = tuple(_account(where, index, entry) for index, entry in enumerate(accounts, start=1))
    names = [spec.name for spec in specs]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise BadInput(f"In {where}, the account name {twice[0]!r} is used more than once.")
    organization = data.get("organization")
    return AccountsConfig(
        where,
        specs,
        _organization(where, organization) if organization is not None else None,
    )


def _account(where: Path, index: int, entry: Any) -> AccountSpec:
    what = f"account {index} of {where}"
    if not isinstance(entry, Mapping):
        raise BadInput(f"The {what} is not a table.")
    _check_keys(what, entry, _ACCOUNT_KEYS)
    name = _text(what, entry, "name", required=True)
    if not entry.get("profile") and not entry.get("admin_profile"):
        raise BadInput(f"The {what} ({name}) names no profile: give admin_profile or profile.")
    try:
        return AccountSpec(
            name=name or "",
            options=_options(what, entry),
            account_id=_text(what, entry, "account_id"),
            devices=_devices(what, entry),
            source="config file",
        )
    except ValueError as exc:
        raise BadInput(f"In the {what}: {exc}.") from None


def _organization(where: Path, entry: Any) -> OrganizationConfig:
    what = f"[organization] of {where}"
    if not isinstance(entry, Mapping):
        raise BadInput(f"The {what} is not a table.")
    _check_keys(what, entry, _ORGANIZATION_KEYS)
    if not entry.get("profile") and not entry.get("admin_profile"):
        raise BadInput(f"The {what} names no profile: give admin_profile.")
    return OrganizationConfig(
        options=_options(what, entry),
        role_name=_text(what, entry, "role_name") or DEFAULT_ORGANIZATION_ROLE,
        devices=_devices(what, entry),
    )


def _options(what: str, entry: Mapping[str, Any]) -> ConnectionOptions:
    return ConnectionOptions(
        profile=_text(what, entry, "profile"),
        admin_profile=_text(what, entry, "admin_profile"),
        region=_text(what, entry, "region"),
        endpoint_url=_text(what, entry, "endpoint_url"),
        computer_key=bool(entry.get("profile")),
    )


def _check_keys(what: str, entry: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = set(entry) - allowed
    if unknown:
        raise BadInput(
            f"The {what} has unknown keys: {', '.join(sorted(unknown))}.",
            hint="Known keys: " + ", ".join(sorted(allowed)) + ".",
        )


def _text(what: str, entry: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value = entry.get(key)
    if value is None:
        if required:
            raise BadInput(f"The {what} has no {key}.")
        return None
    if not isinstance(value, str) or not value.strip():
        raise BadInput(f"In the {what}, {key} must be a non-empty string.")
    return value.strip()


def _devices(what: str, entry: Mapping[str, Any]) -> tuple[str, ...] | None:
    value = entry.get("devices")
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise BadInput(f"In the {what}, devices must be a list of user names.")
    return tuple(value)
