"""The AWS edge: sessions, clients and the errors they raise, made readable.

Two identities matter. `--profile` is this computer's own key (the one that
gets rotated); `--admin-profile` is the identity that changes other users,
groups and policies (by default the same profile). Both honour
`--endpoint-url` (or `AWS_ENDPOINT_URL`) so keyhygiene runs against AWS,
moto or LocalStack alike.

A profile whose config has `mfa_serial` (and no `role_arn`: botocore asks for
the code of a role profile itself) gets a GetSessionToken session: the code
comes from the provider set with `set_mfa_code_provider` (the command line's
prompt, the TUI's dialog), once per profile for the session's lifetime.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import boto3
import botocore.exceptions as bexc
import botocore.session
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.parsers import ResponseParserError

from keyhygiene.aws.sessions import (
    DEFAULT_REGION,
    boto3_session,
    client_config,
    key_session,
    mfa_session_token,
    new_botocore_session,
)
from keyhygiene.core.arns import name_of, resource_type
from keyhygiene.core.errors import BadInput, ConnectionProblem, KeyHygieneError, from_client_error
from keyhygiene.core.options import ConnectionOptions

T = TypeVar("T")


# ---- secrets in botocore's logs ------------------------------------------------

# XML bodies (<SecretAccessKey>, <SessionToken>), JSON or repr'd dicts
# ('SecretAccessKey': '...'), and INI lines (aws_secret_access_key = ...).
_SECRET_IN_BODY = re.compile(
    r"(<(?:SecretAccessKey|SessionToken)>)[^<]*(</(?:SecretAccessKey|SessionToken)>)"
    r"|([\"']?(?:SecretAccessKey|SessionToken|aws_secret_access_key|aws_session_token"
    r"|aws_security_token|X-Amz-Security-Token)[\"']?"
    r"\s*[:=]\s*b?[\"']?)[^\"',\s}]+",
    re.IGNORECASE,
)
_TRIGGERS = (
    "secretaccesskey",
    "sessiontoken",
    "secret_access_key",
    "session_token",
    "security_token",
    "security-token",
)


class RedactSecretKeys(logging.Filter):
    """botocore logs every response body at DEBUG, CreateAccessKey's too:
    mask the secret before any handler sees it. Installed when this module is
    imported, which every path to AWS does."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        lowered = message.lower()
        if any(word in lowered for word in _TRIGGERS):
            record.msg = _SECRET_IN_BODY.sub(_mask_match, message)
            record.args = ()
        return True


def _mask_match(match: re.Match[str]) -> str:
    if match.group(1):
        return f"{match.group(1)}****{match.group(2)}"
    return f"{match.group(3)}****"


# botocore.auth logs the canonical request, which holds x-amz-security-token.
for _logger_name in ("botocore.parsers", "botocore.endpoint", "botocore.hooks", "botocore.auth"):
    logging.getLogger(_logger_name).addFilter(RedactSecretKeys())


# ---- one model loader for the process -------------------------------------------


@dataclass(frozen=True)
class Identity:
    account_id: str
    arn: str

    @property
    def user_name(self) -> str | None:
        """The IAM user name when the identity is an IAM user."""
        return name_of(self.arn) if resource_type(self.arn) == "user" else None


# ---- MFA: one GetSessionToken session per profile and process ----------------

# (profile name, mfa serial) -> the 6-digit code the person's device shows.
MfaCodeProvider = Callable[[str, str], str]
MFA_SESSION_SECONDS = 3600
# A session this close to its end is not reused: a plan must not die half-way.
_MFA_MARGIN = timedelta(minutes=5)
_MFA_CODE = re.compile(r"^\d{6}$")
# Where the profile's own long-term key came from (not the environment, SSO...).
_PROFILE_KEY_METHODS = frozenset({"shared-credentials-file", "config-file"})

_mfa_code_provider: MfaCodeProvider | None = None
_mfa_sessions: dict[tuple[str, str, str | None], _MfaSession] = {}
# Held while a code is asked, so that parallel workers ask once, not each.
_MFA_LOCK = threading.Lock()


def set_mfa_code_provider(func: MfaCodeProvider | None) -> None:
    """Who answers when a profile needs an MFA code (None: nobody, it is an error)."""
    global _mfa_code_provider
    _mfa_code_provider = func


def forget_mfa_sessions() -> None:
    """Drop every cached MFA session (tests; a person switching devices)."""
    with _MFA_LOCK:
        _mfa_sessions.clear()
        _last_code_window.clear()
        _given_codes.clear()


class _MfaSession:
    """Temporary credentials and their end; the repr shows only the end."""

    __slots__ = ("credentials", "expires")

    def __init__(self, credentials: Credentials, expires: datetime) -> None:
        self.credentials = credentials
        self.expires = expires

    def __repr__(self) -> str:
        return f"<MFA session until {self.expires.isoformat()}>"

    def usable(self) -> bool:
        return self.expires - datetime.now(timezone.utc) > _MFA_MARGIN


# A code is accepted once (and AWS refuses a second session in the same
# 30-second window with the same code): the window each serial last used.
_last_code_window: dict[str, int] = {}
# The code each serial was last given: a provider that can only repeat one
# (`--mfa-code`) is told apart from a person typing the next one.
_given_codes: dict[str, str] = {}
# Called with the seconds left while waiting for the next code (a countdown).
mfa_wait_notice: Callable[[str], None] | None = None
_TOTP_STEP = 30


def ask_mfa_code(
    profile: str,
    serial: str,
    provider: MfaCodeProvider | None = None,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """A fresh 6-digit code for `serial`, from `provider` (default: the process's).

    When the serial's last code was used in the current 30-second window, the
    same code would be refused: this waits for the next window, saying so
    every few seconds, before asking. A provider that can only repeat the code
    it gave (`--mfa-code`) is told apart: a second code is then an error that
    says why, not a refused call."""
    provider = provider or _mfa_code_provider
    last = _last_code_window.get(serial)
    if last is not None:
        while int(clock() // _TOTP_STEP) <= last:
            left = _TOTP_STEP - (clock() % _TOTP_STEP)
            if mfa_wait_notice is not None:
                mfa_wait_notice(
                    f"This needs a second MFA code for profile {profile}: the next one shows "
                    f"in {int(left) + 1} s."
                )
            sleep(min(5.0, left + 0.2))
    code = (provider(profile, serial) if provider else "").strip()
    if not code:
        raise ConnectionProblem(
            f"The profile {profile} requires MFA (mfa_serial {serial}): pass --mfa-code "
            "or run in a terminal.",
            hint="The code is the 6 digits your MFA device shows now (or set KEYHYGIENE_MFA_CODE).",
        )
    if not _MFA_CODE.match(code):
        raise BadInput(f"An MFA code is 6 digits (profile {profile}).")
    if last is not None and _given_codes.get(serial) == code:
        raise ConnectionProblem(
            f"This needs a second MFA code for profile {profile}, and the code given "
            "(--mfa-code or KEYHYGIENE_MFA_CODE) was used already: AWS accepts a code once.",
            hint="Run it in a terminal, where keyhygiene asks for the next code.",
        )
    _last_code_window[serial] = int(clock() // _TOTP_STEP)
    _given_codes[serial] = code
    return code


def _mfa_serial_to_answer(core: botocore.session.Session) -> str | None:
    """The profile's `mfa_serial` when keyhygiene must get the session itself.

    Not for a role profile (botocore asks for the code when it assumes the
    role), nor when the key in use is not the profile's own (environment
    variables win over a profile that was not named explicitly).
    """
    config = core.get_scoped_config()
    serial = config.get("mfa_serial")
    if not serial or config.get("role_arn"):
        return None
    credentials = core.get_credentials()
    if credentials is None or credentials.method not in _PROFILE_KEY_METHODS:
        return None
    return str(serial)


def _session_credentials(answer: Mapping[str, Any]) -> _MfaSession:
    # Straight from the answer into botocore's object: no secret in a local.
    return _MfaSession(
        Credentials(
            answer["AccessKeyId"],
            answer["SecretAccessKey"],
            answer["SessionToken"],
            method="mfa-session-token",
        ),
        answer["Expiration"],
    )


def session_for_key(
    access_key_id: str,
    secret: Any,
    *,
    serial: str,
    code: str,
    duration_seconds: int,
    region: str | None,
    endpoint_url: str | None,
) -> Mapping[str, Any]:
    """GetSessionToken with a long-term key given outright (`secret` is a
    `vault.Secret`) and an MFA code: the answer's `Credentials`, sealed from
    `repr`. For keyhygiene's credential-process, which holds the key from the
    keyring and no profile that botocore could read it from."""
    core = key_session(None, access_key_id, secret)
    with translate_errors("getting an MFA session", service="sts"):
        return mfa_session_token(
            core,
            serial=serial,
            code=code,
            duration_seconds=duration_seconds,
            region=region,
            endpoint_url=endpoint_url,
        )


class Connection:
    """A boto3 session for one profile, with cached thread-safe clients.

    boto3 clients are thread-safe once created; creating them is not, hence
    the lock. `mfa_code_provider` overrides the process-wide one.
    """

    def __init__(
        self,
        options: ConnectionOptions,
        *,
        config: Config | None = None,
        mfa_code_provider: MfaCodeProvider | None = None,
    ) -> None:
        self.options = options
        self._config = config or client_config()
        self._mfa_code_provider = mfa_code_provider
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}
        self._session: boto3.Session | None = None
        self.mfa_serial: str | None = None  # set when the session is an MFA session

    @property
    def session(self) -> boto3.Session:
        if self._session is None:
            with translate_errors("opening the AWS session", profile=self.options.profile_name):
                core = new_botocore_session()
                session = boto3_session(
                    core, profile=self.options.profile, region=self.options.region
                )
                self._adapt_assume_role(core)
                serial = _mfa_serial_to_answer(core)
            if serial is not None:
                # The profile's region and settings stay; only the key changes.
                mfa = self._mfa_session(core, serial, session.region_name)
                core.set_credentials(
                    mfa.credentials.access_key, mfa.credentials.secret_key, mfa.credentials.token
                )
                self.mfa_serial = serial
            if self.options.role_arn:
                self._assume_role(core, self.options.role_arn, session.region_name)
            self._session = session
        return self._session

    def _adapt_assume_role(self, core: botocore.session.Session) -> None:
        """A role profile: botocore assumes the role with a client it makes itself.

        - With `mfa_serial`, botocore asks for the code with getpass on the
          terminal. That prompt cannot read --mfa-code or $KEYHYGIENE_MFA_CODE,
          ends in EOFError without a terminal, and would write over the screen
          Textual owns: it is replaced with the prompter every other MFA code
          of keyhygiene comes from.
        - Its STS client knows nothing of --endpoint-url (only the environment's
          and the profile's endpoint settings), so with moto or LocalStack it
          would call AWS: it is given the endpoint.

        botocore has no public hook for either: AssumeRoleProvider keeps them in
        `_prompter` and `_client_creator` (botocore/credentials.py); tests fail
        if a botocore release moves them."""
        provider = core.get_component("credential_provider").get_provider("assume-role")
        if provider is None or not hasattr(provider, "_prompter"):
            return
        endpoint_url = self.options.endpoint_url
        creator = getattr(provider, "_client_creator", None)
        if endpoint_url and creator is not None:

            def client_creator(service_name: str, **kwargs: Any) -> Any:
                kwargs.setdefault("endpoint_url", endpoint_url)
                return creator(service_name, **kwargs)

            provider._client_creator = client_creator
        profile = self.options.profile_name
        code_provider = self._mfa_code_provider

        def prompter(prompt: str) -> str:
            # botocore's prompt is "Enter MFA code for <serial>: ".
            serial = prompt.removeprefix("Enter MFA code for ").rstrip().rstrip(":")
            return ask_mfa_code(profile, serial, code_provider)

        provider._prompter = prompter

    def _assume_role(
        self, core: botocore.session.Session, role_arn: str, region: str | None
    ) -> None:
        """Sign as `role_arn` (a member account's OrganizationAccountAccessRole),
        assumed with the profile's credentials and renewed before it expires:
        the TUI stays open longer than one role session."""
        from botocore.credentials import AssumeRoleCredentialFetcher, DeferredRefreshableCredentials

        source = core.get_credentials()
        if source is None:
            raise ConnectionProblem(
                f"No AWS credentials found for profile {self.options.profile_name!r} to assume "
                f"{role_arn}.",
                hint="Pass --admin-profile with the organization's management profile.",
            )
        endpoint_url = self.options.endpoint_url
        region_name = self.options.region or region or DEFAULT_REGION

        def client_creator(service_name: str, **kwargs: Any) -> Any:
            kwargs.setdefault("region_name", region_name)
            if endpoint_url:
                kwargs.setdefault("endpoint_url", endpoint_url)
            return core.create_client(service_name, **kwargs)

        fetcher = AssumeRoleCredentialFetcher(
            client_creator,
            source,
            role_arn,
            extra_args={"RoleSessionName": ROLE_SESSION_NAME},
        )
        # Replaced on the session itself, so every client made from it signs as the role.
        core._credentials = DeferredRefreshableCredentials(
            refresh_using=fetcher.fetch_credentials, method="assume-role"
        )

    def _mfa_session(
        self, core: botocore.session.Session, serial: str, region: str | None
    ) -> _MfaSession:
        """The profile's cached MFA session, or a new one with a code asked now."""
        profile = self.options.profile_name
        key = (profile, serial, self.endpoint_url)
        with _MFA_LOCK:
            cached = _mfa_sessions.get(key)
            if cached is not None and cached.usable():
                return cached
            code = self._ask_mfa_code(profile, serial)
            with translate_errors(f"getting an MFA session for profile {profile}", service="sts"):
                fresh = _session_credentials(
                    mfa_session_token(
                        core,
                        serial=serial,
                        code=code,
                        duration_seconds=MFA_SESSION_SECONDS,
                        region=self.options.region or region,
                        endpoint_url=self.options.endpoint_url,
                    )
                )
            _mfa_sessions[key] = fresh
            return fresh

    def _ask_mfa_code(self, profile: str, serial: str) -> str:
        return ask_mfa_code(profile, serial, self._mfa_code_provider)

    @property
    def region(self) -> str:
        return self.options.region or self.session.region_name or DEFAULT_REGION

    @property
    def endpoint_url(self) -> str | None:
        return self.options.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None

    def client(self, service: str) -> Any:
        with self._lock:
            if service not in self._clients:
                kwargs: dict[str, Any] = {"region_name": self.region, "config": self._config}
                if self.options.endpoint_url:
                    kwargs["endpoint_url"] = self.options.endpoint_url
                with translate_errors("creating an AWS client", profile=self.options.profile_name):
                    self._clients[service] = self.session.client(service, **kwargs)
            return self._clients[service]

    def whoami(self) -> Identity:
        # The first call of a run: with few retries, an unreachable endpoint or
        # a refused key is reported in seconds, not after a minute of backoff.
        with translate_errors(
            "asking AWS who this profile is", profile=self.options.profile_name, service="sts"
        ):
            kwargs: dict[str, Any] = {
                "region_name": self.region,
                "config": client_config(max_attempts=2),
            }
            if self.options.endpoint_url:
                kwargs["endpoint_url"] = self.options.endpoint_url
            answer = self.session.client("sts", **kwargs).get_caller_identity()
        return Identity(account_id=answer["Account"], arn=answer["Arn"])


ROLE_SESSION_NAME = "keyhygiene"


def connect_pair(options: ConnectionOptions) -> tuple[Connection, Connection]:
    """This computer's connection and the admin connection (the same object when equal)."""
    own = Connection(options.for_computer())
    if options.role_arn or (options.admin_profile and options.admin_profile != options.profile):
        return own, Connection(options.for_admin())
    return own, own


@contextmanager
def translate_errors(
    doing: str, *, profile: str | None = None, service: str = "aws"
) -> Iterator[None]:
    """Re-raise botocore failures as KeyHygieneError with a message a person can act on."""
    try:
        yield
    except KeyHygieneError:
        raise
    except bexc.ProfileNotFound as exc:
        raise ConnectionProblem(
            f"The profile {exc.kwargs.get('profile', profile)!r} is not in the AWS credentials or config file.",
            # `aws configure list-profiles` is CLI v2 only: name the files instead.
            hint="Use --profile with one of your profiles (the [profile NAME] sections of "
            "~/.aws/config and the [NAME] sections of ~/.aws/credentials), "
            "or register this computer with `keyhygiene enroll`.",
        ) from None
    except (bexc.SSOError, bexc.TokenRetrievalError):
        name = profile or "default"
        raise ConnectionProblem(
            f"Profile {name!r} signs in through AWS IAM Identity Center (SSO), and its "
            f"sign-in has expired or was never made, while {doing}.",
            hint=f"Run `aws sso login --profile {name}`, then try again.",
        ) from None
    except (bexc.NoCredentialsError, bexc.PartialCredentialsError):
        raise ConnectionProblem(
            f"No AWS credentials found for profile {profile or 'default'!r} while {doing}.",
            hint="Pass --profile, set AWS_PROFILE, or register this computer with `keyhygiene enroll`.",
        ) from None
    except bexc.EndpointConnectionError as exc:
        raise ConnectionProblem(
            f"Cannot reach the AWS endpoint {exc.kwargs.get('endpoint_url', '')} while {doing}.",
            hint="Check the network, --endpoint-url / AWS_ENDPOINT_URL and --region.",
        ) from None
    except (bexc.ConnectTimeoutError, bexc.ReadTimeoutError):
        raise ConnectionProblem(
            f"The AWS endpoint did not answer in time while {doing}.",
            hint="Check the network and --endpoint-url, then retry.",
        ) from None
    except bexc.NoRegionError:
        raise ConnectionProblem(
            f"No AWS region is set while {doing}.", hint="Pass --region or set AWS_REGION."
        ) from None
    except bexc.ClientError as exc:
        raise from_client_error(exc, service=service, doing=doing) from None
    except ResponseParserError:
        raise ConnectionProblem(
            f"The endpoint answered with something that is not an AWS response while {doing}.",
            hint="Check --endpoint-url / AWS_ENDPOINT_URL: it must point at AWS, moto or LocalStack.",
        ) from None
    except bexc.ParamValidationError:
        # Its text quotes the parameter values, which may include a key.
        raise ConnectionProblem(
            f"Invalid parameters for an AWS call while {doing} (a bug in keyhygiene)."
        ) from None
    except bexc.BotoCoreError as exc:
        # Other botocore errors describe configuration problems; their text
        # holds names and paths, never key material.
        raise ConnectionProblem(f"AWS configuration problem while {doing}: {exc}") from None


def call(client: Any, operation: str, doing: str, service: str, **params: Any) -> Mapping[str, Any]:
    """One API call with errors translated."""
    with translate_errors(doing, service=service):
        return getattr(client, operation)(**params)


def paginate(
    client: Any, operation: str, key: str, doing: str, service: str, **params: Any
) -> list[Any]:
    """All items of a paginated listing, errors translated."""
    with translate_errors(doing, service=service):
        return all_items(client, operation, key, **params)


def all_items(client: Any, operation: str, key: str, **params: Any) -> list[Any]:
    """All items of a paginated listing, AWS's errors left as they are (for
    plan steps, whose errors the plan runner reports)."""
    return [
        item
        for page in client.get_paginator(operation).paginate(**params)
        for item in page.get(key, [])
    ]


def error_code(exc: bexc.ClientError) -> str:
    """AWS's error code (`NoSuchEntity`, `AccessDenied` ...), "" when it gave none."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def quietly(func: Callable[[], T], *, missing_codes: tuple[str, ...]) -> T | None:
    """Run `func`; return None when AWS answers with one of `missing_codes` (the
    thing is simply not configured: no bucket policy, no encryption...)."""
    try:
        return func()
    except bexc.ClientError as exc:
        if error_code(exc) in missing_codes:
            return None
        raise


def call_unless_missing(method: Callable[..., Any], /, **params: Any) -> bool:
    """`method(**params)`: True when it ran, False when AWS answered NoSuchEntity.

    For removals that another run (or a crash before the journal) may have
    done already: the thing being gone is what the caller wanted.
    """
    try:
        method(**params)
    except bexc.ClientError as exc:
        if error_code(exc) != "NoSuchEntity":
            raise
        return False
    return True
