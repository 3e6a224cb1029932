"""MFA sessions served by `keyhygiene credential-process --mfa-session`, as aws-vault does.

A strict computer's key can do nothing without an MFA session, and the AWS
CLI cannot make one from a plain profile (`mfa_serial` works there only for
roles). So its profile names keyhygiene's credential process with
`--mfa-session`: the long-term key stays in the keyring, and what the AWS CLI
gets is a GetSessionToken session made with one MFA code, cached in the
keyring beside the key until shortly before it ends. One code a day (the
default session lasts 12 hours), not one per command.

The rules this rests on:
- GetSessionToken with `SerialNumber` and `TokenCode` gives a session whose
  requests carry `aws:MultiFactorAuthPresent = true`; it lasts 900 to 129,600
  seconds for an IAM user
  (https://docs.aws.amazon.com/STS/latest/APIReference/API_GetSessionToken.html).
- botocore refreshes a `credential_process` session 15 minutes before its
  `Expiration` (advisory) and insists at 10 minutes (mandatory), so a cached
  session is served only while it has more than 15 minutes left; the JSON
  the process prints is the documented `Version 1` document
  (https://docs.aws.amazon.com/cli/latest/userguide/cli-configure-sourcing-external.html).
- botocore runs the process with stdout and stderr piped, so the code is
  asked on the controlling terminal (/dev/tty); without one (cron, an IDE),
  the process says so and fails rather than hang.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from keyhygiene.core.errors import BadInput, ConnectionProblem
from keyhygiene.core.formatting import shown_path
from keyhygiene.local import credentials_file, vault
from keyhygiene.local.vault import Secret, StoredSession

# botocore's advisory refresh time: a session with less left would be
# asked for again at once.
SERVE_MARGIN = timedelta(minutes=15)
DEFAULT_SESSION_SECONDS = 12 * 3600
MIN_SESSION_SECONDS = 900
MAX_SESSION_SECONDS = 129_600
# Set by keyhygiene's own TUI, which owns the terminal: a credential-process
# it starts (through botocore) must not write a prompt over the screen.
NO_PROMPT_ENV = "KEYHYGIENE_CREDENTIAL_PROCESS_NO_PROMPT"

CodeAsker = Callable[[str, str], str]  # (profile, serial) -> code, "" when none
SessionMaker = Callable[..., Any]


@dataclass(frozen=True)
class SessionRequest:
    profile: str
    config_file: str
    region: str | None = None
    endpoint_url: str | None = None
    duration_seconds: int = DEFAULT_SESSION_SECONDS


def parse_duration(text: str) -> int:
    """`12h`, `90m`, `3600` (seconds) -> seconds, within GetSessionToken's bounds."""
    value = text.strip().lower()
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        seconds = int(value[:-1]) * units[value[-1]] if value[-1:] in units else int(value)
    except ValueError:
        raise BadInput(f"{text!r} is not a duration (like 12h, 90m or 3600).") from None
    if not MIN_SESSION_SECONDS <= seconds <= MAX_SESSION_SECONDS:
        raise BadInput(
            f"An MFA session lasts 15 minutes to 36 hours for an IAM user, not {text!r}."
        )
    return seconds


def serve_session(
    request: SessionRequest,
    *,
    ask_code: CodeAsker,
    make_session: SessionMaker,
    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
) -> StoredSession:
    """The profile's cached MFA session while it has time left, else a new one
    made with the keyring's key and a code from `ask_code`, then cached."""
    cached = vault.load_session(request.profile)
    if cached is not None and cached.usable(margin=SERVE_MARGIN, now=now()):
        return cached
    config = credentials_file.read_profile(request.config_file, request.profile, config_style=True)
    serial = config.get("mfa_serial", "").strip()
    if not serial:
        raise BadInput(
            f"The profile {request.profile} has no mfa_serial in "
            f"{shown_path(request.config_file)}, so keyhygiene cannot make "
            "its MFA session.",
            hint="Set mfa_serial to the ARN of the computer's MFA device, or drop "
            f"{vault.MFA_SESSION_FLAG} from its credential_process.",
        )
    key = vault.load_key(request.profile)
    if key is None:
        raise BadInput(
            f"No key for profile {request.profile!r} in the keyring to make its MFA session with.",
            hint=f"Rotate it into the keyring: `keyhygiene rotate --profile {request.profile} "
            "--store keyring`.",
        )
    code = ask_code(request.profile, serial).strip()
    if not code:
        raise ConnectionProblem(
            f"The MFA session of profile {request.profile} has ended and no code could be "
            "asked for (no terminal).",
            hint=f"Run `aws sts get-caller-identity --profile {request.profile}` in a terminal "
            "and type the code your MFA device shows; the session then serves this "
            "process too.",
        )
    if not (len(code) == 6 and code.isdigit()):
        raise BadInput(f"An MFA code is 6 digits (profile {request.profile}).")
    answer = make_session(
        key.access_key_id,
        key.secret,
        serial=serial,
        code=code,
        duration_seconds=request.duration_seconds,
        region=request.region or config.get("region") or None,
        endpoint_url=request.endpoint_url,
    )
    expiration = answer["Expiration"]
    if isinstance(expiration, str):
        expiration = datetime.fromisoformat(expiration.replace("Z", "+00:00"))
    if expiration.tzinfo is None:
        expiration = expiration.replace(tzinfo=timezone.utc)
    # Straight from the answer into sealed values.
    session = StoredSession(
        str(answer["AccessKeyId"]),
        Secret(str(answer["SecretAccessKey"])),
        Secret(str(answer["SessionToken"])),
        expiration,
    )
    vault.store_session(
        request.profile, session.access_key_id, session.secret, session.token, expiration
    )
    return session


def terminal_code_asker(profile: str, serial: str) -> str:
    """The code typed on the controlling terminal, unseen; "" without one (or
    inside keyhygiene's TUI, which owns the terminal)."""
    if os.environ.get(NO_PROMPT_ENV):
        return ""
    given = os.environ.get("KEYHYGIENE_MFA_CODE", "").strip()
    if given:
        return given
    if os.name == "nt":
        return ""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return ""
    os.close(fd)
    import getpass

    # getpass reads /dev/tty itself, without echo.
    return getpass.getpass(f"MFA code for profile {profile} ({serial}): ")
