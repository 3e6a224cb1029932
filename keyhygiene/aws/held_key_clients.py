"""Clients that sign with the key a profile holds now, for rotating that key.

Rotation cannot use the profile's ordinary session: the key changes under it
mid-run, and the profile's credential_process (a keyring key) must not run
for every client. These clients read the held key (file or keyring) and sign
with it directly; an MFA-gated profile's IAM calls go through one
GetSessionToken session for the whole run.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from keyhygiene.aws.connection import (
    MFA_SESSION_SECONDS,
    ConnectionOptions,
    ask_mfa_code,
    translate_errors,
)
from keyhygiene.aws.sessions import (
    DEFAULT_REGION,
    client_config,
    key_session,
    mfa_session_token,
    new_botocore_session,
    temporary_session,
)
from keyhygiene.core.errors import BadInput
from keyhygiene.local import credentials_file
from keyhygiene.local.key_location import HeldKey, KeyLocation, held_key

# Called with every client a HeldKeyClients makes. The rotation workflow adds
# its crash-test hook here (it kills the process right after chosen calls, only
# when the tests arm it), without this edge knowing the workflow's steps.
NEW_CLIENT_HOOKS: list[Callable[[Any], None]] = []


class NoKeyHeld(BadInput):
    """The profile holds no long-term access key keyhygiene can rotate."""


class HeldKeyClients:
    """A plan `ClientProvider` whose clients sign with the key the profile holds now.

    Clients are cached per key id; `api_calls` counts API operations made
    through them (the benchmark's figure).
    """

    def __init__(
        self, options: ConnectionOptions, location: KeyLocation, *, max_attempts: int = 8
    ) -> None:
        self.options = options
        self.location = location
        self._config = client_config(max_attempts=max_attempts)
        self._lock = threading.Lock()
        self._sessions: dict[str, Any] = {}
        self._clients: dict[tuple[str, str], Any] = {}
        self.calls: Counter[str] = Counter()
        # The profile's MFA device (mfa_serial in the config file): IAM calls
        # then go through a GetSessionToken session made with one code, since
        # an MFA-gated computer's key alone may not manage keys. Read once.
        self._mfa_serial: str | None = None
        self._mfa_serial_read = False

    @property
    def api_calls(self) -> int:
        return sum(self.calls.values())

    def held(self) -> HeldKey:
        key = held_key(self.location)
        if key is None:
            raise NoKeyHeld(
                f"Profile {self.location.profile!r} holds no long-term access key: not in "
                f"{self.location.shown_credentials}, nor in the keyring through keyhygiene's "
                f"credential_process in {self.location.shown_config}.",
                hint="Use --profile with this computer's profile, or enroll the computer first.",
            )
        return key

    def client(self, service: str) -> Any:
        return self.client_for_key(service, self.held())

    @property
    def mfa_serial(self) -> str | None:
        if not self._mfa_serial_read:
            values = credentials_file.read_profile(
                self.location.config_file, self.location.profile, config_style=True
            )
            self._mfa_serial = values.get("mfa_serial") or None
            self._mfa_serial_read = True
        return self._mfa_serial

    def client_for_key(self, service: str, key: HeldKey) -> Any:
        # Only IAM is gated; GetCallerIdentity (the checks of a new key) never is.
        # One MFA session serves every IAM call of this run, whichever key the
        # profile holds by then: the user is the same, and a second session
        # would need a second code.
        mfa = service == "iam" and self.mfa_serial is not None
        session_key = "mfa-session" if mfa else key.access_key_id
        with self._lock:
            cached = self._clients.get((session_key, service))
            if cached is not None:
                return cached
            session = self._sessions.get(session_key)
            if session is None:
                with translate_errors("opening an AWS session", profile=self.location.profile):
                    session = self._session_for(key)
                if mfa:
                    session = self._mfa_session(session)
                self._sessions[session_key] = session
            kwargs: dict[str, Any] = {"config": self._config}
            if self.options.endpoint_url:
                kwargs["endpoint_url"] = self.options.endpoint_url
            with translate_errors("creating an AWS client", profile=self.location.profile):
                region = (
                    self.options.region or session.get_config_variable("region") or DEFAULT_REGION
                )
                client = session.create_client(service, region_name=region, **kwargs)
            client.meta.events.register("before-call", self._count)
            for hook in NEW_CLIENT_HOOKS:
                hook(client)
            self._clients[(session_key, service)] = client
            return client

    def _mfa_session(self, session: Any) -> Any:
        """`session`'s key traded, with one MFA code, for a session that may call IAM.

        The session outlives whatever happens to the key that made it
        (temporary credentials cannot be revoked by deleting the key), so one
        code covers the whole rotation: creating the new key and deactivating
        and deleting the old one."""
        serial = str(self.mfa_serial)
        profile = self.location.profile
        code = ask_mfa_code(profile, serial)
        region = self.options.region or session.get_config_variable("region") or DEFAULT_REGION
        with translate_errors(f"getting an MFA session for profile {profile}", service="sts"):
            answer = mfa_session_token(
                session,
                serial=serial,
                code=code,
                duration_seconds=MFA_SESSION_SECONDS,
                region=region,
                endpoint_url=self.options.endpoint_url,
            )
        return temporary_session(profile, answer)

    def _session_for(self, key: HeldKey) -> Any:
        # The profile's own settings (region, endpoint_url) with the key given
        # explicitly: its credential_process, if any, is not run. A botocore
        # session (the clients are the same as boto3's) sharing one model
        # loader: each new session would otherwise parse the IAM and endpoint
        # models again, which costs more than the calls themselves.
        return key_session(self.location.profile, key.access_key_id, key.secret)

    def _count(self, model: Any = None, **_: Any) -> None:
        name = getattr(model, "name", "?")
        service = getattr(getattr(model, "service_model", None), "service_name", "?")
        with self._lock:
            self.calls[f"{service}:{name}"] += 1

    def __repr__(self) -> str:
        return f"HeldKeyClients(profile={self.location.profile!r})"


def client_with_key(clients: Any, service: str, key: HeldKey) -> Any:
    if hasattr(clients, "client_for_key"):
        return clients.client_for_key(service, key)
    # Any other provider: same region and endpoint, signed with `key`.
    base = clients.client(service)
    return new_botocore_session().create_client(
        service,
        region_name=base.meta.region_name,
        endpoint_url=base.meta.endpoint_url,
        aws_access_key_id=key.access_key_id,
        aws_secret_access_key=key.secret.reveal(),
        config=client_config(max_attempts=3),
    )
