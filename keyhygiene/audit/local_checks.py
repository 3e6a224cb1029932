"""This computer's part of the audit: the credentials file, shell start-up files
and the environment.

Checks:
- the credentials file readable or writable by others (wider than 0600);
- one key id in several profiles (rotating one profile breaks the others);
- a key whose user's `keyhygiene:hostname` tag names another computer (a key
  copied between computers, which the practice forbids);
- AWS secrets in shell start-up files or a long-term secret in the environment.

It reads local files only and makes no AWS call. Key owners come from the
snapshot: the key ids it knows (users whose keys were read directly) and the
key this computer's profile authenticates with (`snapshot.this_user`).

A finding names the file, the line number and the variable, never a value:
values here are secrets. Key ids are shown by their last four characters.
The home folder, the environment and the host name are parameters so tests
never touch the real ones.
"""

from __future__ import annotations

import os
import re
import socket
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from keyhygiene.audit.findings import Finding, sort_findings
from keyhygiene.core.formatting import key_tail, shown_path
from keyhygiene.core.model import Snapshot
from keyhygiene.core.options import key_in_use

# The four the practice names, plus the other files bash and zsh read at start.
STARTUP_FILES = (
    ".bash_profile",
    ".bashrc",
    ".zshrc",
    ".profile",
    ".bash_login",
    ".zprofile",
    ".zshenv",
)
SECRET_VARIABLES = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
KEY_ID_VARIABLE = "AWS_ACCESS_KEY_ID"
CREDENTIALS_MODE = 0o600
ENVIRONMENT = "environment"

# `NAME=value`, after `export`, `declare -x`, or several on one line; fish's
# `set -gx NAME value` too. Case-insensitive: a lower-case copy is as secret.
_NAMES = "|".join((*SECRET_VARIABLES, KEY_ID_VARIABLE))
_ASSIGNMENT = re.compile(rf"(?<![\w$])(?P<name>{_NAMES})=(?P<value>\S*)", re.IGNORECASE)
_FISH_SET = re.compile(rf"^\s*set\s+(?:-\w+\s+)*(?P<name>{_NAMES})\s+(?P<value>\S+)", re.IGNORECASE)
_SECTION = re.compile(r"^\s*\[(?P<name>[^\]]*)\]")
_KEY_ID_LINE = re.compile(r"^\s*aws_access_key_id\s*[=:]\s*(?P<value>\S+)", re.IGNORECASE)
# Temporary credentials (STS) start with ASIA; long-term keys with AKIA.
_TEMPORARY_KEY_PREFIX = "ASIA"


@dataclass(frozen=True)
class ProfileKey:
    """A key id found in the credentials file (or the environment: profile None)."""

    profile: str | None
    line: int
    key_id: str

    @property
    def tail(self) -> str:
        return key_tail(self.key_id)


def run_local_audit(
    snapshot: Snapshot | None = None,
    *,
    profile: str | None = None,
    home: Path | None = None,
    env: Mapping[str, str] | None = None,
    hostname: str | None = None,
) -> list[Finding]:
    """This computer's findings, worst first.

    `profile` is the `--profile` given on the command line (None when not
    given: then, like boto3, environment keys win over AWS_PROFILE/default).
    """
    environ = os.environ if env is None else env
    folder = home if home is not None else Path.home()
    host = hostname if hostname is not None else socket.gethostname()
    credentials = credentials_path(folder, environ)
    text = _read_text(credentials)
    keys = profile_keys(text) if text is not None else []

    findings: list[Finding] = []
    findings.extend(credentials_mode(credentials, folder))
    findings.extend(shared_key_ids(credentials, keys, folder))
    if snapshot is not None:
        env_key = _env_key(environ)
        owners = key_owners(snapshot, keys, env_key, profile=profile, env=environ)
        findings.extend(
            other_computers_keys(snapshot, credentials, keys, env_key, owners, host, folder)
        )
    for name in STARTUP_FILES:
        findings.extend(startup_file_secrets(folder / name, folder))
    findings.extend(environment_secrets(environ))
    return sort_findings(findings)


def credentials_path(home: Path, env: Mapping[str, str]) -> Path:
    """Where botocore reads keys: $AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials."""
    configured = env.get("AWS_SHARED_CREDENTIALS_FILE")
    if not configured:
        return home / ".aws" / "credentials"
    if configured == "~" or configured.startswith("~/"):
        return home / configured[2:]
    return Path(configured)


def profile_keys(text: str) -> list[ProfileKey]:
    """The `aws_access_key_id` of each section, as botocore would see the file (loosely:
    the audit must still say something about a file botocore refuses)."""
    found: list[ProfileKey] = []
    section: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith(("#", ";")):
            continue
        header = _SECTION.match(line)
        if header:
            section = header.group("name").strip()
            continue
        match = _KEY_ID_LINE.match(line)
        if match and section is not None:
            found.append(ProfileKey(section, number, match.group("value")))
    return found


# ---- the rules ------------------------------------------------------------------


def credentials_mode(path: Path, home: Path) -> Iterator[Finding]:
    """Other accounts on this computer must not read (or replace) the keys."""
    if os.name != "posix":
        return
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return
    extra = mode & ~CREDENTIALS_MODE
    if not extra:
        return
    others = bool(extra & 0o077)
    yield Finding(
        id="local.credentials-mode",
        severity="high" if others else "low",
        title=f"{shown_path(path, home)} is mode {mode:04o}, wider than 0600",
        resource=str(path),
        detail=(
            "Other users of this computer can read or change the access keys in it."
            if others
            else "The owner has more rights on it than reading and writing."
        ),
        resource_kind="local",
        fix=f"Run `chmod 600 {shown_path(path, home)}`.",
    )


def shared_key_ids(path: Path, keys: list[ProfileKey], home: Path) -> Iterator[Finding]:
    """One key in several profiles: rotating one leaves the others with a dead key."""
    by_id: dict[str, list[ProfileKey]] = {}
    for key in keys:
        by_id.setdefault(key.key_id, []).append(key)
    for same in by_id.values():
        profiles = sorted({k.profile or "" for k in same})
        if len(profiles) < 2:
            continue
        lines = ", ".join(str(k.line) for k in same)
        yield Finding(
            id="local.shared-key-id",
            severity="medium",
            title=f"Key {same[0].tail} is in {len(profiles)} profiles of {shown_path(path, home)}",
            resource=str(path),
            detail=f"Profiles {', '.join(profiles)} (lines {lines}) hold the same access key id.",
            resource_kind="local",
            fix="Keep the key in this computer's one profile and delete the copies; "
            "`keyhygiene rotate` then changes it in one place.",
        )


def other_computers_keys(
    snapshot: Snapshot,
    path: Path,
    keys: list[ProfileKey],
    env_key: ProfileKey | None,
    owners: Mapping[str, str],
    hostname: str,
    home: Path,
) -> Iterator[Finding]:
    """A key made for another computer and copied here breaks one-key-per-computer."""
    for key in [*keys, *([env_key] if env_key else [])]:
        user = snapshot.user(owners.get(key.key_id, ""))
        if user is None or not user.hostname or same_host(user.hostname, hostname):
            continue
        where = (
            f"profile {key.profile} of {shown_path(path, home)} (line {key.line})"
            if key.profile is not None
            else f"the environment ({KEY_ID_VARIABLE})"
        )
        yield Finding(
            id="local.other-computers-key",
            severity="high",
            title=f"Key {key.tail} of {user.name} is on this computer",
            resource=str(path) if key.profile is not None else ENVIRONMENT,
            detail=f"{where} holds a key of {user.name}, whose keyhygiene:hostname is "
            f"{user.hostname}; this computer is {hostname}.",
            resource_kind="local",
            fix=f"Remove the key from this computer and enroll it with `keyhygiene enroll`; "
            f"on {user.hostname}, `keyhygiene rotate` replaces the copied key.",
        )


def startup_file_secrets(path: Path, home: Path) -> Iterator[Finding]:
    """Secrets in start-up files land in every process, dotfile repo and backup."""
    text = _read_text(path)
    if text is None:
        return
    hits = list(_assignments(text))
    if not hits:
        return
    secret = any(name.upper() in SECRET_VARIABLES for _, name in hits)
    places = ", ".join(f"line {number}: {name}" for number, name in hits)
    yield Finding(
        id="local.secret-in-startup-file",
        severity="high" if secret else "low",
        title=f"{shown_path(path, home)} holds AWS " + ("secrets" if secret else "key ids"),
        resource=str(path),
        detail=f"{places}. A shell start-up file hands them to every program, and is often "
        "copied to other computers with the rest of the dotfiles.",
        resource_kind="local",
        fix=f"Delete these lines from {shown_path(path, home)} and keep the key only in this computer's "
        "profile of ~/.aws/credentials (`keyhygiene enroll`); rotate it if the file was ever "
        "copied or shared.",
    )


def environment_secrets(env: Mapping[str, str]) -> Iterator[Finding]:
    """A long-term secret in the environment leaks to every child process and crash dump.

    Temporary credentials (a session token, an ASIA key id) are how tools such
    as aws-vault hand out short-lived access: those are fine.
    """
    secret = env.get("AWS_SECRET_ACCESS_KEY")
    if not secret:
        return
    key_id = env.get(KEY_ID_VARIABLE, "")
    if env.get("AWS_SESSION_TOKEN") or key_id.upper().startswith(_TEMPORARY_KEY_PREFIX):
        return
    with_id = f" (with {KEY_ID_VARIABLE} {key_tail(key_id)})" if key_id else ""
    yield Finding(
        id="local.secret-in-environment",
        severity="medium",
        title="A long-term AWS secret is in the environment",
        resource=ENVIRONMENT,
        detail=f"AWS_SECRET_ACCESS_KEY is set{with_id}; every program started from here "
        "inherits it.",
        resource_kind="local",
        fix="Unset it and remove the export that sets it; keep the key in this computer's "
        "profile of ~/.aws/credentials.",
    )


# ---- key owners ------------------------------------------------------------------


def key_owners(
    snapshot: Snapshot,
    keys: list[ProfileKey],
    env_key: ProfileKey | None,
    *,
    profile: str | None,
    env: Mapping[str, str],
) -> dict[str, str]:
    """Key id -> user name, from what the snapshot knows without another call."""
    owners = {key.id: user.name for user in snapshot.users for key in user.access_keys if key.id}
    active = active_key_id(keys, env_key, profile=profile, env=env)
    if active and snapshot.this_user:
        owners.setdefault(active, snapshot.this_user)
    return owners


def active_key_id(
    keys: list[ProfileKey],
    env_key: ProfileKey | None,
    *,
    profile: str | None,
    env: Mapping[str, str],
) -> str | None:
    """The key botocore authenticates with (`core.options.key_in_use`): environment
    keys win unless --profile was given."""
    in_use = key_in_use(profile, env)
    if in_use.from_environment and env_key is not None:
        return env_key.key_id
    return next((k.key_id for k in keys if k.profile == in_use.profile), None)


def same_host(tagged: str, local: str) -> bool:
    """Host names compare without case and without the domain (`mbp.local` is `mbp`)."""

    def short(name: str) -> str:
        return name.strip().lower().split(".", 1)[0]

    return short(tagged) == short(local)


# ---- helpers ------------------------------------------------------------------


def _env_key(env: Mapping[str, str]) -> ProfileKey | None:
    key_id = env.get(KEY_ID_VARIABLE)
    return ProfileKey(None, 0, key_id) if key_id else None


def _assignments(text: str) -> Iterator[tuple[int, str]]:
    """(line number, variable name) of each literal AWS value set in a shell file."""
    for number, line in enumerate(text.splitlines(), start=1):
        # Commented-out lines count too: the secret is in the file all the same.
        matches = list(_ASSIGNMENT.finditer(line)) or list(_FISH_SET.finditer(line))
        for match in matches:
            if _is_literal(match.group("value")):
                yield number, match.group("name")


def _is_literal(value: str) -> bool:
    """A value written in the file, not fetched at start (`$(pass aws)`, `$VAR`)."""
    bare = value.strip().strip("'\"")
    return bool(bare) and not bare.startswith(("$", "`"))


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
