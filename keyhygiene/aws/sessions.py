"""The one place keyhygiene makes botocore and boto3 sessions.

Every route to AWS goes through here: a profile's session (`Connection`), a
profile's settings with a key given outright (the key rotation holds, the
keyring's key), an MFA session from GetSessionToken, the demo's seeding. All
share one model loader and the same client settings, so that a fix to how a
session is built (a region default, a retry policy, a secret kept out of a
traceback) reaches every caller.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.loaders import Loader

from keyhygiene.core.sealed import Sealed

DEFAULT_REGION = "us-east-1"
# Bounded pool: enough parallel S3/KMS reads to hide latency, few enough
# not to trip throttling on a small account.
MAX_POOL = 16

_LOADER: Loader | None = None
_LOADER_LOCK = threading.Lock()


def shared_loader() -> Loader:
    """One botocore model loader for the process: each new session otherwise
    parses the service models again (about 0.1-0.3 s each)."""
    global _LOADER
    with _LOADER_LOCK:
        if _LOADER is None:
            _LOADER = botocore.session.get_session().get_component("data_loader")
        return _LOADER


def new_botocore_session(profile: str | None = None) -> botocore.session.Session:
    """A botocore session sharing the process's model loader; `profile` names
    the profile whose settings (region, endpoint, files) it reads."""
    session = botocore.session.get_session()
    session.register_component("data_loader", shared_loader())
    if profile:
        session.set_config_variable("profile", profile)
    return session


def client_config(*, max_attempts: int = 8) -> Config:
    # Adaptive retries absorb throttling (a client-side token bucket plus
    # backoff); timeouts keep an unreachable endpoint from hanging the UI.
    return Config(
        retries={"mode": "adaptive", "max_attempts": max_attempts},
        max_pool_connections=MAX_POOL,
        connect_timeout=5,
        read_timeout=30,
    )


def single_try_config() -> Config:
    """No retry at all: for loops that count their own tries (the checks of a
    new key, which must see N successes in a row)."""
    return Config(retries={"max_attempts": 1, "mode": "standard"})


def boto3_session(
    core: botocore.session.Session | None = None,
    *,
    profile: str | None = None,
    region: str | None = None,
) -> boto3.Session:
    """A boto3 session over `core` (a new shared-loader session by default)."""
    return boto3.Session(
        botocore_session=core or new_botocore_session(),
        profile_name=profile or None,
        region_name=region or None,
    )


def profile_files_session(
    profile: str, *, credentials_file: str, config_file: str
) -> botocore.session.Session:
    """The profile as the `aws` CLI reads it from these two files.

    An explicit profile makes botocore ignore AWS_ACCESS_KEY_ID and friends,
    so the answer proves what the files hold."""
    session = new_botocore_session(profile)
    session.set_config_variable("credentials_file", credentials_file)
    session.set_config_variable("config_file", config_file)
    return session


def key_session(
    profile: str | None, access_key_id: str, secret: Any, token: str | None = None
) -> botocore.session.Session:
    """The profile's settings (region, endpoint_url) with the key given
    explicitly: its credential_process, if any, is not run. `secret` is a
    `vault.Secret` or anything with `reveal()`."""
    session = new_botocore_session(profile)
    # Revealed inline: no local of this frame holds the secret.
    session.set_credentials(access_key_id, secret.reveal(), token)
    return session


def temporary_session(
    profile: str | None, credentials: Mapping[str, Any]
) -> botocore.session.Session:
    """The profile's settings with the temporary credentials of an STS answer."""
    session = new_botocore_session(profile)
    # Straight from the answer: no local holds the session's secret.
    session.set_credentials(
        credentials["AccessKeyId"], credentials["SecretAccessKey"], credentials["SessionToken"]
    )
    return session


def static_key_session(access_key_id: str, secret_access_key: str, region: str) -> boto3.Session:
    """A boto3 session on a fixed key: moto's `testing` key for the demo's seeding."""
    core = new_botocore_session()
    core.set_credentials(access_key_id, secret_access_key)
    return boto3_session(core, region=region)


def mfa_session_token(
    core: botocore.session.Session,
    *,
    serial: str,
    code: str,
    duration_seconds: int,
    region: str | None,
    endpoint_url: str | None,
) -> Sealed:
    """GetSessionToken with `core`'s key and an MFA code: the answer's
    `Credentials` (AccessKeyId, SecretAccessKey, SessionToken, Expiration),
    sealed at once so that the secret never shows in a traceback's locals.

    The one GetSessionToken of keyhygiene: a profile's MFA session, rotation's
    session for its IAM calls, credential-process's cached session."""
    sts = core.create_client(
        "sts",
        region_name=region or DEFAULT_REGION,
        endpoint_url=endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None,
        config=client_config(max_attempts=2),
    )
    return Sealed(
        sts.get_session_token(
            SerialNumber=serial, TokenCode=code, DurationSeconds=duration_seconds
        )["Credentials"]
    )
