"""Rotate this computer's one access key, straight into ~/.aws/credentials.

The rotation is a `Plan` (keyhygiene/plans/engine.py), reviewed before it runs:

1. (if the user has a second key) delete it: an inactive one always, an active
   one only when asked (`delete_other`), since two active keys break
   one-key-per-computer;
2. create the new key (the journal keeps its id, the secret stays in memory);
3. write it where the profile keeps its key: the credentials file, or the OS
   keyring plus `credential_process` in the config file. The old bytes stay in
   memory so that a failure can put them back;
4. verify it: several `sts:GetCallerIdentity` successes in a row, made with
   the key *as written* (read back from the file or keyring), retrying with
   exponential backoff up to a bound (60 s by default): AWS is eventually
   consistent and one success proves little (rhyeal/aws-rotate-iam-keys#81);
5. deactivate the old key; 6. verify again; 7. delete the old key.

If the new key never verifies, the run is rolled back, with one rule above all:
the profile ends holding a working, *active* key. The old key is switched back
on (retried with backoff), and the previous content is put back only once the
old key is proven Active (its status) and answering `sts:GetCallerIdentity`
with its own secret; otherwise the profile keeps the new key, the run stays
open and the next run finishes it. Only the profile's own lines are put back,
unless the files are byte for byte what this run wrote (then their old bytes
return). Nothing is ever deleted that the profile still holds.

One rotation of a profile at a time: `execute_rotation` and
`finish_or_roll_back` hold an flock on `<state dir>/rotate-<profile>.lock`;
a second one is refused (`RotationBusy`, exit 2, nothing changed).

Which key signs the calls. Every call goes through `HeldKeyClients`, which
signs with the key the profile holds *now*: the old key until step 3, the new
one after. So the steps after the deactivation run with the new key (on real
AWS an inactive key cannot sign; moto would not notice), and a rollback that
restores the file goes back to the old key by itself.

A crash. The journal (no secret) lets the next run decide from what the
profile actually holds:
- the profile holds the new key: the write took effect; finish the run
  (verify, deactivate, delete the old key). The old secret was replaced, so
  going forward is the only way that keeps a working key;
- the profile still holds the old key: the new key's secret is lost (it was
  in memory only); roll back, deleting the new key, and the key an interrupted
  CreateAccessKey may have made (created after that step started, never used).
`pending_rotations()` describes that choice; `finish_or_roll_back()` makes it.

Secrets travel only in `Secret` objects (repr `****`), in the plan engine's
sealed results, and in the `_BACKUPS` and `_NEW_SECRETS` kept in memory for a
rollback (dropped when the run ends).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import logging
import os
import re
import signal
import stat
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

from keyhygiene.aws import held_key_clients
from keyhygiene.aws.connection import (
    ConnectionOptions,
    all_items,
    call_unless_missing,
    error_code,
    translate_errors,
)
from keyhygiene.aws.errors import BotoConnectionError, BotoCoreError, ClientError, HTTPClientError
from keyhygiene.aws.held_key_clients import HeldKeyClients, client_with_key
from keyhygiene.core import formatting
from keyhygiene.core.arns import name_of
from keyhygiene.core.errors import AwsProblem, BadInput, KeyHygieneError, from_client_error
from keyhygiene.local import credentials_file, vault
from keyhygiene.local.key_location import HeldKey, KeyLocation, Store, held_key, held_key_id
from keyhygiene.local.state_dir import state_dir
from keyhygiene.local.vault import (
    Secret,
    credential_process_command,
    is_keyhygiene_process,
    serves_mfa_sessions,
)
from keyhygiene.plans.engine import (
    ApplyContext,
    ApplyReport,
    Call,
    Plan,
    PlanEvent,
    Ref,
    ResultNotAvailable,
    Sealed,
    Step,
    apply_plan,
    local_action,
    resume,
    rollback,
)
from keyhygiene.plans.journal import Journal, JournalError, open_journals
from keyhygiene.workflows.rotation_defaults import (
    DEFAULT_VERIFY_INTERVAL,
    DEFAULT_VERIFY_SUCCESSES,
    DEFAULT_VERIFY_TIMEOUT,
)

log = logging.getLogger(__name__)

STORES: tuple[Store, ...] = ("file", "keyring")

PLAN_KIND = "rotate"
STEP_DELETE_OTHER = "delete-other"
STEP_CREATE = "create"
STEP_WRITE = "write"
STEP_VERIFY = "verify"
STEP_DEACTIVATE = "deactivate"
STEP_VERIFY_AGAIN = "verify-again"
STEP_DELETE_OLD = "delete-old"
VERIFY_STEPS = (STEP_VERIFY, STEP_VERIFY_AGAIN)
NEW_KEY_PATH = "AccessKey.AccessKeyId"

FIRST_BACKOFF = 0.5
MAX_BACKOFF = 8.0

EXIT_ROTATED = 0
EXIT_VERIFY_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_AWS = 3

# Test hook: `KEYHYGIENE_TEST_CRASH_AT=<step id>` kills the process (SIGKILL)
# right after that step took effect and before the journal records it;
# `<step id>:before` kills it as the step starts. Inert unless
# `KEYHYGIENE_TESTING=1` is set too: a stray variable must never kill a real
# rotation halfway.
CRASH_ENV = "KEYHYGIENE_TEST_CRASH_AT"
TESTING_ENV = "KEYHYGIENE_TESTING"

# A CreateAccessKey whose outcome is unknown (timeout, 5xx, connection error,
# retried, or a crash before its answer was journaled) may have made a key
# all the same: a key of the user that nothing knows, created after the step
# started (give or take this clock skew between this computer and AWS) and
# never used, is the one it made.
ORPHAN_CLOCK_SKEW = timedelta(seconds=60)

# The rollback's own retries: switching the old key back on, and proving it
# works before the old content goes back.
REACTIVATE_TIMEOUT = 30.0
RESTORE_CHECK_TIMEOUT = 20.0

CREDENTIAL_KEYS = (
    "aws_access_key_id",
    "aws_secret_access_key",
    *credentials_file.SESSION_TOKEN_KEYS,
)


class VerificationFailed(KeyHygieneError):
    """The new key did not authenticate as the user within the bound."""


class SecretLost(KeyHygieneError):
    """A step needs the new key's secret, which died with an earlier process."""


class RotationBusy(BadInput):
    """Another rotation of the same profile is running; nothing was changed."""


class OldKeyNotRestored(KeyHygieneError):
    """The rollback kept the new key: the old one is not active or does not answer."""


def _serves_mfa_sessions(location: KeyLocation) -> bool:
    """Whether the profile's keyhygiene credential_process serves MFA sessions
    (a strict computer's): a rotation keeps that."""
    config = credentials_file.read_profile(
        location.config_file, location.profile, config_style=True
    )
    return serves_mfa_sessions(config.get("credential_process", ""))


def key_tail(key_id: str | None) -> str:
    """`formatting.key_tail`, and a bare `…` while there is no key id yet."""
    return formatting.key_tail(key_id or "")


# --------------------------------------------------------------------------- clients


# --------------------------------------------------------------------------- crash hook (tests)


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def crash_hook_armed() -> bool:
    """The crash hook works only when the tests say so, twice."""
    return bool(os.environ.get(CRASH_ENV)) and os.environ.get(TESTING_ENV) == "1"


def crash_point(where: str) -> None:
    """Kill this process if the crash test asked for `where`."""
    if os.environ.get(CRASH_ENV) == where and crash_hook_armed():
        _die()


# After-call events of the API steps, for the crash hook.
_CRASH_AFTER = {
    "after-call.iam.CreateAccessKey": STEP_CREATE,
    "after-call.iam.UpdateAccessKey": STEP_DEACTIVATE,
}


def _crash_after_call(event_name: str = "", **_: Any) -> None:
    step = _CRASH_AFTER.get(event_name)
    if step is not None:
        crash_point(step)


def _arm_crash_hook(client: Any) -> None:
    if crash_hook_armed():
        client.meta.events.register("after-call", _crash_after_call)


held_key_clients.NEW_CLIENT_HOOKS.append(_arm_crash_hook)


def _crash_on_event(event: PlanEvent) -> None:
    if event.kind == "step_started" and not event.undo and event.step_id:
        crash_point(f"{event.step_id}:before")


# --------------------------------------------------------------------------- facts and plan


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


# --------------------------------------------------------------------------- hints for this workflow

# keyhygiene.core.errors hints "use --admin-profile" on AccessDenied, but a rotation signs
# every call with the profile's own key: the hint that helps names the policy.
_PERMISSION_IN_TEXT = re.compile(r"lacks ([\w-]+:[\w*]+)")
_OWN_KEY_MARK = "--admin-profile plays no part"


def own_key_hint(permission: str, user: str | None = None) -> str:
    who = user or "this computer's IAM user"
    return (
        f"A rotation signs every call with the profile's own key ({_OWN_KEY_MARK}), so "
        f"{who} itself needs {permission} on its own access keys: the "
        "keyhygiene-rotate-own-key policy grants it. Ask an administrator to attach that "
        "policy (`keyhygiene enroll` does), then run `keyhygiene rotate` again."
    )


def reworded(text: str, user: str | None = None) -> str:
    """`text` with the generic "--admin-profile" hint replaced by the rotation's."""
    if "--admin-profile" not in text:
        return text
    found = _PERMISSION_IN_TEXT.search(text)
    permission = found.group(1) if found else "the permission named above"
    return "\n".join(
        own_key_hint(permission, user)
        if "--admin-profile" in line and _OWN_KEY_MARK not in line
        else line
        for line in text.split("\n")
    )


@contextlib.contextmanager
def _own_key_errors(user: str | None = None) -> Iterator[None]:
    try:
        yield
    except AwsProblem as exc:
        if not exc.hint or "--admin-profile" not in exc.hint:
            raise
        permission = f"iam:{exc.operation}" if exc.operation else "the permission named above"
        found = _PERMISSION_IN_TEXT.search(exc.message)
        if found:
            permission = found.group(1)
        raise AwsProblem(
            exc.message,
            hint=own_key_hint(permission, user),
            code=exc.code,
            operation=exc.operation,
        ) from None


def _reworded_report(report: ApplyReport, user: str | None) -> ApplyReport:
    results = tuple(
        dataclasses.replace(result, message=reworded(result.message, user))
        for result in report.results
    )
    return dataclasses.replace(report, results=results)


def _rewording(
    on_event: Callable[[PlanEvent], None] | None, user: str | None
) -> Callable[[PlanEvent], None] | None:
    if on_event is None:
        return None

    def relay(event: PlanEvent) -> None:
        if event.message:
            event = dataclasses.replace(event, message=reworded(event.message, user))
        on_event(event)

    return relay


def inspect_rotation(clients: HeldKeyClients) -> RotationFacts:
    """Who this computer is and which keys its user has (sts:GetCallerIdentity,
    iam:ListAccessKeys), with the key the profile holds. Refuses, before any
    call, files botocore could not parse."""
    location = clients.location
    credentials_file.validate(location.credentials_file)
    credentials_file.validate(location.config_file)
    held = clients.held()
    if held.access_key_id.startswith("ASIA"):
        raise BadInput(
            f"Profile {location.profile!r} holds temporary credentials ({key_tail(held.access_key_id)}); "
            "only a long-term access key can be rotated."
        )
    with (
        _own_key_errors(),
        translate_errors("asking AWS who this computer's key belongs to", service="sts"),
    ):
        answer = clients.client("sts").get_caller_identity()
    arn, account = str(answer["Arn"]), str(answer["Account"])
    if ":user/" not in arn:
        raise BadInput(
            f"Profile {location.profile!r} is {arn}, not an IAM user: keyhygiene rotates the "
            "access key of this computer's IAM user."
        )
    user = name_of(arn)
    keys = _list_keys(clients, user)
    if held.access_key_id not in {key.access_key_id for key in keys}:
        raise BadInput(
            f"The key of profile {location.profile!r} ({held.access_key_id}) is not one of "
            f"{user}'s access keys; nothing to rotate."
        )
    in_file = held.store == "file"
    if in_file:
        # Refused now (a hard link, a folder it cannot write, another owner it
        # may not keep), not after the new key exists.
        credentials_file.check_writable(location.credentials_file)
    return RotationFacts(
        location=location,
        store=held.store,
        account_id=account,
        user_name=user,
        user_arn=arn,
        current_key_id=held.access_key_id,
        keys=keys,
        file_mode=_mode(location.credentials_file) if in_file else None,
        inherited=tuple(
            credentials_file.inherited_overrides(location.credentials_file, location.profile)
        )
        if in_file
        else (),
    )


def _list_keys(clients: Any, user: str) -> tuple[KeyInfo, ...]:
    with (
        _own_key_errors(user),
        translate_errors(f"listing the access keys of {user}", service="iam"),
    ):
        items = all_items(
            clients.client("iam"), "list_access_keys", "AccessKeyMetadata", UserName=user
        )
    return tuple(
        KeyInfo(str(item["AccessKeyId"]), str(item.get("Status", "")), item.get("CreateDate"))
        for item in items
    )


def _mode(path: Path) -> int | None:
    try:
        return stat.S_IMODE(Path(os.path.realpath(path)).stat().st_mode)
    except OSError:
        return None


class TwoActiveKeys(BadInput):
    """The user has a second active key; rotating would keep two working keys."""


def plan_rotation(facts: RotationFacts, request: RotationRequest) -> Plan:
    """The rotation as a plan. Pure: no AWS call, no file written."""
    location = facts.location
    user = facts.user_name
    old = facts.current_key_id
    store: Store = request.store or facts.store
    if facts.current_key.status != "Active":
        raise BadInput(
            f"The key of profile {location.profile!r} ({old}) is inactive in AWS, so it cannot "
            "sign the rotation.",
            hint="Reactivate it (an administrator can), then rotate.",
        )
    warnings: list[str] = []
    steps: list[Step] = []
    for number, other in enumerate(facts.other_keys, 1):
        if other.status == "Active" and not request.delete_other:
            raise TwoActiveKeys(
                f"{user} has a second active access key, {other.access_key_id} "
                f"(created {_day(other.created)}), besides the one in profile "
                f"{location.profile!r} ({old}). One computer keeps one key: a second "
                "working key is a copy somewhere else, and rotating would leave it working.",
                hint=(
                    "If this computer's user should have only this key, pass --delete-other "
                    "to delete the other one as part of the plan; otherwise find where it is "
                    "used first."
                ),
            )
        step_id = STEP_DELETE_OTHER if number == 1 else f"{STEP_DELETE_OTHER}-{number}"
        steps.append(_delete_other_step(step_id, facts, other))
        if other.status == "Active":
            warnings.append(
                f"The other key {other.access_key_id} is active: whatever uses it stops working."
            )
    command = request.credential_process or credential_process_command(
        location.profile, mfa_session=_serves_mfa_sessions(location)
    )
    steps.append(
        Step(
            STEP_CREATE,
            f"Create a new access key for {user} (the old key keeps working meanwhile)",
            # A local action around iam:CreateAccessKey: when AWS's answer is
            # lost (timeout, 5xx), it looks for the key the call may have made.
            Call("local", "rotation.create_key", {"UserName": user}),
            undo=_delete_call(facts, Ref(STEP_CREATE, NEW_KEY_PATH)),
            keep=(NEW_KEY_PATH,),
        )
    )
    write: dict[str, Any] = {
        **location.params(),
        "user_name": user,
        "store": store,
        "old_store": facts.store,
        "access_key_id": Ref(STEP_CREATE, NEW_KEY_PATH),
        "old_access_key_id": old,
    }
    if store == "keyring":
        write["credential_process"] = command
    steps.append(
        Step(
            STEP_WRITE,
            _write_description(location, store, facts.store, old, facts.inherited),
            Call("local", "rotation.write_key", write),
            # The undo finds the rest (files, stores) in this step's own call.
            undo=Call(
                "local",
                "rotation.restore_key",
                {"profile": location.profile, "access_key_id": Ref(STEP_CREATE, NEW_KEY_PATH)},
            ),
            keep=("store",),
        )
    )
    steps.append(_verify_step(STEP_VERIFY, facts, request, again=False))
    steps.append(
        Step(
            STEP_DEACTIVATE,
            f"Deactivate the old key {old} (it can be switched back on if something is wrong)",
            # iam:UpdateAccessKey. Switching off a key that is gone counts as
            # done; switching it back on (the undo) is retried with backoff:
            # a rollback must not give up on the old key at the first refusal.
            Call(
                "local",
                "rotation.set_key_status",
                {"UserName": user, "AccessKeyId": old, "Status": "Inactive"},
            ),
            undo=Call(
                "local",
                "rotation.set_key_status",
                {"UserName": user, "AccessKeyId": old, "Status": "Active"},
            ),
        )
    )
    steps.append(_verify_step(STEP_VERIFY_AGAIN, facts, request, again=True))
    steps.append(
        Step(
            STEP_DELETE_OLD,
            f"Delete the old key {old}",
            _delete_call(facts, old),
            keep=("AccessKeyId",),
        )
    )
    warnings.extend(_store_warnings(facts, store, command))
    return Plan(
        PLAN_KIND,
        f"Rotate the access key of {user} (profile {location.profile})",
        tuple(steps),
        warnings=tuple(warnings),
    )


def _delete_other_step(step_id: str, facts: RotationFacts, other: KeyInfo) -> Step:
    state = "inactive" if other.status != "Active" else "ACTIVE"
    return Step(
        step_id,
        f"Delete {facts.user_name}'s other access key {other.access_key_id} ({state}, created "
        f"{_day(other.created)}): a computer keeps one key, and AWS allows only two",
        _delete_call(facts, other.access_key_id),
        keep=("AccessKeyId",),
    )


def _delete_call(facts: RotationFacts, key_id: str | Ref) -> Call:
    # A local action rather than a bare iam:DeleteAccessKey: it refuses to
    # delete the key the profile holds, and a key already gone counts as deleted.
    return Call(
        "local", "rotation.delete_key", {"UserName": facts.user_name, "AccessKeyId": key_id}
    )


def _verify_step(
    step_id: str, facts: RotationFacts, request: RotationRequest, *, again: bool
) -> Step:
    checks = request.verify_successes
    times = "time" if checks == 1 else "times in a row"
    when = "again, now that the old key is off" if again else "as written"
    return Step(
        step_id,
        f"Check the new key {when}: sts:GetCallerIdentity with it must answer {facts.user_arn} "
        f"{checks} {times}, retrying with backoff for up to {request.verify_timeout:g} s",
        Call(
            "local",
            "rotation.verify_key",
            {
                "profile": facts.location.profile,
                "access_key_id": Ref(STEP_CREATE, NEW_KEY_PATH),
                "user_arn": facts.user_arn,
                "successes": checks,
                "timeout": request.verify_timeout,
                "interval": request.verify_interval,
            },
        ),
        keep=("Arn", "AccessKeyId", "Tries"),
    )


def _write_description(
    location: KeyLocation,
    store: Store,
    old_store: Store,
    old: str,
    inherited: Sequence[str] = (),
) -> str:
    if store == "file":
        text = (
            f"Write the new key into {location.shown_credentials}, profile [{location.profile}], "
            f"in place of {old}; every other line stays as it is"
        )
        text += credentials_file.overrides_sentence(location.profile, inherited)
        if old_store == "keyring":
            text += (
                f", and take the key out of the keyring and credential_process out of "
                f"{location.shown_config}"
            )
    else:
        text = (
            f"Put the new key in the OS keyring (entry {vault.SERVICE_NAME}/{location.profile}), "
            f"in place of {old}"
        )
        if old_store == "file":
            text += (
                f"; set credential_process in {location.shown_config} and remove the plaintext "
                f"key from {location.shown_credentials}"
            )
    return text + ". The old content stays in memory until the new key works"


def _store_warnings(facts: RotationFacts, store: Store, command: str) -> list[str]:
    location = facts.location
    warnings = []
    if store == "keyring" and facts.store == "file":
        warnings.append(
            f"The secret moves from {location.shown_credentials} to the OS keyring; profile "
            f"{location.profile} will get `credential_process = {command}`."
        )
    if store == "file" and facts.store == "keyring":
        warnings.append(
            f"The secret moves from the OS keyring back to {location.shown_credentials}."
        )
    mode = facts.file_mode
    if store == "file" and mode is not None and mode & 0o077:
        warnings.append(
            f"{location.shown_credentials} has mode {mode:04o}: others can read it. It will be 0600."
        )
    return warnings


def _day(moment: datetime | None) -> str:
    return moment.date().isoformat() if isinstance(moment, datetime) else "on an unknown date"


# --------------------------------------------------------------------------- local actions


class _Backup:
    """What the write replaced, for a rollback in this process. Memory only.

    `old_key` is the key the profile held (to prove it still works before it
    goes back); `*_values` are the profile's own lines, put back one by one
    when someone else edited the file meanwhile; `*_after` are hashes of the
    files as this run left them, which allow putting the old bytes back whole.
    """

    __slots__ = (
        "credentials",
        "config",
        "config_touched",
        "vault_key",
        "vault_touched",
        "old_key",
        "credential_values",
        "credential_process",
        "credentials_after",
        "config_after",
    )

    def __init__(self) -> None:
        self.credentials: bytes | None = None
        self.config: bytes | None = None
        self.config_touched = False
        self.vault_key: vault.StoredKey | None = None
        self.vault_touched = False
        self.old_key: HeldKey | None = None
        self.credential_values: dict[str, Secret] = {}
        self.credential_process: str | None = None
        self.credentials_after: str | None = None
        self.config_after: str | None = None

    def __repr__(self) -> str:
        return "<rotation backup, hidden>"


# New key id -> what its write replaced. A crash loses it, on purpose: it
# holds the old secret, which must not outlive the process.
_BACKUPS: dict[str, _Backup] = {}
# New key id -> its secret, for a rollback (which runs without the results of
# the run it undoes) that must let the new key sign its own deletion.
_NEW_SECRETS: dict[str, Secret] = {}
_BACKUPS_LOCK = threading.Lock()


def forget_backups() -> None:
    """Drop the in-memory backups, as the death of the process would (tests)."""
    with _BACKUPS_LOCK:
        _BACKUPS.clear()
        _NEW_SECRETS.clear()


def _new_secret(ctx: ApplyContext) -> Secret | None:
    """The new key's secret from this run's memory, or None after a restart."""
    try:
        return Secret(ctx.results[STEP_CREATE]["AccessKey"]["SecretAccessKey"])
    except ResultNotAvailable:
        return None


def _location(ctx: ApplyContext, profile: str) -> KeyLocation:
    """The files of the profile being rotated: those of the clients that sign
    with its key (so that reading the key and signing with it agree)."""
    location = getattr(ctx.clients, "location", None)
    if not isinstance(location, KeyLocation) or location.profile != profile:
        raise KeyHygieneError(
            f"A rotation step of profile {profile!r} ran without that profile's clients "
            "(a bug: use HeldKeyClients)."
        )
    return location


@local_action("rotation.create_key")
def _create_key(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """iam:CreateAccessKey. When its outcome is unknown, the key it may have
    made is looked for and deleted (it was never used: its secret is lost)."""
    user = str(params["UserName"])
    started = datetime.now(timezone.utc)
    try:
        # Sealed at once: the answer holds the new secret, and no local
        # variable may show it in a traceback.
        answer = Sealed(ctx.client("iam").create_access_key(UserName=user))
    except (ClientError, BotoCoreError) as exc:
        if not _outcome_unknown(exc):
            raise  # a definite refusal made no key: nothing to look for
        note = _clean_up_after_create(ctx, user, started, made=None)
        raise _create_failed(exc, user, note) from None
    result = Sealed({key: answer[key] for key in answer if key != "ResponseMetadata"})
    with _BACKUPS_LOCK:
        _NEW_SECRETS[str(result["AccessKey"]["AccessKeyId"])] = Secret(
            result["AccessKey"]["SecretAccessKey"]
        )
    retries = int((answer.get("ResponseMetadata") or {}).get("RetryAttempts") or 0)
    if retries:
        # botocore retried: an earlier attempt may have made a key too.
        made = str(result["AccessKey"]["AccessKeyId"])
        note = _clean_up_after_create(ctx, user, started, made=made, when_none="")
        if note:
            log.warning("%s", note)
    return result


def _outcome_unknown(exc: BaseException) -> bool:
    """True when a failed call may have taken effect all the same: no answer
    (timeout, connection), a server error, or an answer after retries."""
    if isinstance(exc, ClientError):
        meta = exc.response.get("ResponseMetadata") or {}
        status = int(meta.get("HTTPStatusCode") or 0)
        return status >= 500 or int(meta.get("RetryAttempts") or 0) > 0
    return isinstance(exc, (HTTPClientError, BotoConnectionError))


def _create_failed(exc: Exception, user: str, note: str) -> KeyHygieneError:
    doing = f"creating a new access key for {user}"
    if isinstance(exc, ClientError):
        problem = from_client_error(exc, service="iam", doing=doing)
        hint = problem.hint
        if hint and "--admin-profile" in hint:
            hint = own_key_hint("iam:CreateAccessKey", user)
        return AwsProblem(
            f"{problem.message} {note}",
            hint=hint,
            code=problem.code,
            operation=problem.operation,
        )
    return AwsProblem(f"Could not complete iam:CreateAccessKey while {doing}: {exc}. {note}")


def _clean_up_after_create(
    ctx: Any,
    user: str,
    started: datetime,
    *,
    made: str | None,
    when_none: str = "It made no key (checked).",
) -> str:
    """Delete what an uncertain CreateAccessKey may have made; say what happened."""
    known = {made} if made else set()
    holding = held_key_id(ctx.clients.location) if hasattr(ctx.clients, "location") else None
    if holding:
        known.add(holding)
    try:
        deleted, left = delete_unused_keys(ctx, user, known=known, since=started)
    except KeyHygieneError as exc:
        return f"{UNCHECKED_CREATE}; could not check: {exc.message}"
    return _orphan_sentence(deleted, left) or when_none


UNCHECKED_CREATE = "It may have made a key all the same"


def _orphan_sentence(deleted: list[str], left: list[str]) -> str:
    parts = []
    if deleted:
        parts.append(
            f"The uncertain CreateAccessKey had made a key after all: {', '.join(deleted)}, "
            "now deleted (never used, its secret was lost)."
        )
    parts.extend(left)
    return " ".join(parts)


def orphan_candidates(
    keys: tuple[KeyInfo, ...] | list[KeyInfo], *, known: set[str], since: datetime
) -> list[KeyInfo]:
    """The keys an uncertain CreateAccessKey that started at `since` may have
    made: unknown, and created after `since` (less the clock skew). Pure."""
    floor = since.astimezone(timezone.utc) - ORPHAN_CLOCK_SKEW
    return [
        key
        for key in keys
        if key.access_key_id not in known
        and isinstance(key.created, datetime)
        and key.created.astimezone(timezone.utc) >= floor
    ]


def delete_unused_keys(
    clients: Any, user: str, *, known: set[str], since: datetime
) -> tuple[list[str], list[str]]:
    """Delete the `orphan_candidates` that were never used (no LastUsedDate).
    Returns (deleted key ids, sentences about the keys left in place)."""
    deleted: list[str] = []
    left: list[str] = []
    for key in orphan_candidates(_list_keys(clients, user), known=known, since=since):
        key_id = key.access_key_id
        try:
            used = clients.client("iam").get_access_key_last_used(AccessKeyId=key_id)
        except (ClientError, BotoCoreError) as exc:
            code = error_code(exc) if isinstance(exc, ClientError) else ""
            left.append(
                f"{user} has a key {key_id} made about then, left in place: could not tell "
                f"whether it was ever used ({code or type(exc).__name__}; "
                "iam:GetAccessKeyLastUsed is needed). Delete it if nothing uses it."
            )
            continue
        if (used.get("AccessKeyLastUsed") or {}).get("LastUsedDate"):
            left.append(f"{user}'s key {key_id} was made about then but has been used: left.")
            continue
        with _own_key_errors(user), translate_errors(f"deleting the key {key_id}", service="iam"):
            call_unless_missing(
                clients.client("iam").delete_access_key, UserName=user, AccessKeyId=key_id
            )
        deleted.append(key_id)
    return deleted, left


@local_action("rotation.write_key")
def _write_key(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    location = _location(ctx, str(params["profile"]))
    if location != KeyLocation.from_params(params):
        raise KeyHygieneError(
            f"The plan writes {params['credentials_file']}, but profile {location.profile!r} "
            f"is read from {location.credentials_file} now; make a new plan."
        )
    new_id = str(params["access_key_id"])
    secret = _new_secret(ctx)
    if secret is None:
        # Resumed after a crash: fine only if the write had taken effect.
        if held_key_id(location) != new_id:
            raise SecretLost(
                f"The new key {new_id} was never written to profile {location.profile!r}, "
                "and its secret was lost when the earlier run stopped.",
                hint="Roll this run back (the new key gets deleted), then rotate again.",
            )
        _finish_write(params, location)
        return {"store": params["store"], "resumed": True}
    backup = _backup_for(params, location)
    with _BACKUPS_LOCK:
        _BACKUPS[new_id] = backup
    tightened = None
    if params["store"] == "file":
        result = credentials_file.set_access_key(
            location.credentials_file, location.profile, new_id, secret.reveal()
        )
        tightened = result.tightened_from
    else:
        vault.store_key(location.profile, new_id, secret)
    _finish_write(params, location)
    # The files as this run left them: a rollback puts the old bytes back
    # whole only if nobody has changed them since.
    backup.credentials_after = _digest(location.credentials_file)
    if backup.config_touched:
        backup.config_after = _digest(location.config_file)
    _crash_if_running(ctx, STEP_WRITE, "rotation.write_key")
    out: dict[str, Any] = {"store": params["store"]}
    if tightened is not None:
        out["tightened_from"] = f"{tightened:04o}"
    return out


def _digest(path: Path) -> str | None:
    data = credentials_file.backup_bytes(path)
    return None if data is None else hashlib.sha256(data).hexdigest()


def _backup_for(params: Mapping[str, Any], location: KeyLocation) -> _Backup:
    backup = _Backup()
    backup.old_key = held_key(location)
    backup.credentials = credentials_file.backup_bytes(location.credentials_file)
    values = credentials_file.read_profile(location.credentials_file, location.profile)
    backup.credential_values = {
        key: Secret(values[key]) for key in CREDENTIAL_KEYS if values.get(key)
    }
    if "keyring" in (params["store"], params["old_store"]):
        backup.config = credentials_file.backup_bytes(location.config_file)
        backup.config_touched = True
        config = credentials_file.read_profile(
            location.config_file, location.profile, config_style=True
        )
        backup.credential_process = config.get("credential_process") or None
        backup.vault_key = vault.load_key(location.profile)
        backup.vault_touched = True
    return backup


def _finish_write(params: Mapping[str, Any], location: KeyLocation) -> None:
    """The part of the write that needs no secret, safe to run twice."""
    if params["store"] == "keyring":
        credentials_file.set_config_values(
            location.config_file,
            location.profile,
            {"credential_process": str(params["credential_process"])},
        )
        # Plaintext keys in the credentials file would win over credential_process.
        credentials_file.write_profile_values(
            location.credentials_file, location.profile, {}, remove=CREDENTIAL_KEYS
        )
    elif params["old_store"] == "keyring":
        _drop_credential_process(location)
        vault.delete_key(location.profile)
        # Its cached MFA session (a strict computer's) serves nothing any more.
        vault.delete_session(location.profile)


def _drop_credential_process(location: KeyLocation) -> None:
    config = credentials_file.read_profile(
        location.config_file, location.profile, config_style=True
    )
    if is_keyhygiene_process(config.get("credential_process", "")):
        credentials_file.set_config_values(
            location.config_file, location.profile, {}, remove=("credential_process",)
        )


@local_action("rotation.set_key_status")
def _set_key_status(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """iam:UpdateAccessKey. Inactive: once, and a key already gone is off for
    good. Active (the rollback): retried with backoff for up to
    REACTIVATE_TIMEOUT seconds, since it is signed with the new key, which may
    be slow to propagate (the old one is off)."""
    user, key_id, status = (
        str(params["UserName"]),
        str(params["AccessKeyId"]),
        str(params["Status"]),
    )
    deadline = ctx.clock() + (REACTIVATE_TIMEOUT if status == "Active" else 0.0)
    backoff, tries = FIRST_BACKOFF, 0
    while True:
        tries += 1
        try:
            ctx.client("iam").update_access_key(UserName=user, AccessKeyId=key_id, Status=status)
            return {"AccessKeyId": key_id, "Status": status, "Tries": tries}
        except (ClientError, BotoCoreError) as exc:
            gone = isinstance(exc, ClientError) and error_code(exc) == "NoSuchEntity"
            if gone and status != "Active":
                return {"AccessKeyId": key_id, "Status": status, "AlreadyGone": True}
            if gone or ctx.clock() + backoff > deadline:
                raise
        ctx.sleep(backoff)
        backoff = min(backoff * 2, MAX_BACKOFF)


@local_action("rotation.restore_key")
def _restore_key(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    location = _location(ctx, str(params["profile"]))
    new_id = str(params["access_key_id"])
    # Undoing the write step: its own call says what it wrote.
    assert ctx.step is not None
    written = ctx.step.call.params
    with _BACKUPS_LOCK:
        backup = _BACKUPS.pop(new_id, None)
    if backup is not None:
        user = str(written["user_name"])
        problem = _old_key_problem(ctx, backup.old_key, user)
        if problem:
            # Going back would leave the computer with a key that cannot
            # work. Forward is the only way now; the old secret goes.
            raise OldKeyNotRestored(
                f"Kept the new key {new_id} in profile {location.profile!r}: {problem}, so "
                "putting it back would leave this computer without a working key.",
                hint="Run `keyhygiene rotate` again: it finishes this rotation with the new key.",
            )
        how = _put_back(location, backup)
        return {"restored": how}
    if held_key_id(location) == new_id:
        raise KeyHygieneError(
            f"Profile {location.profile!r} holds the new key {new_id}, and the previous "
            "content is gone with the run that wrote it: the old key cannot be put back.",
            hint="Finish the rotation instead (run `keyhygiene rotate` again).",
        )
    # The write never took effect; tidy what its first part may have left.
    if written["old_store"] == "file" and written["store"] == "keyring":
        _drop_credential_process(location)
        try:
            stored = vault.load_key(location.profile)
        except vault.KeyringUnavailable:
            stored = None
        if stored is not None and stored.access_key_id == new_id:
            vault.delete_key(location.profile)
    return {"restored": "nothing: the new key had not been written"}


def _old_key_problem(ctx: ApplyContext, old: HeldKey | None, user: str) -> str:
    """What keeps the old key from going back into the profile, or "" when it
    is Active and answers as `user` with its own secret. Retried with backoff: a key switched back on a moment
    ago may take a while to answer everywhere. (moto authenticates an inactive
    key: the status is the proof there, as it is on AWS.)"""
    if old is None:
        return "the profile held no key before this run"
    deadline = ctx.clock() + RESTORE_CHECK_TIMEOUT
    backoff = FIRST_BACKOFF
    while True:
        problem, final = _old_key_check(ctx, old, user)
        if not problem or final or ctx.clock() + backoff > deadline:
            return problem
        ctx.sleep(backoff)
        backoff = min(backoff * 2, MAX_BACKOFF)


def _old_key_check(ctx: ApplyContext, old: HeldKey, user: str) -> tuple[str, bool]:
    """One try of `_old_key_problem`: (problem or "", whether retrying is pointless)."""
    try:
        arn = str(client_with_key(ctx.clients, "sts", old).get_caller_identity()["Arn"])
    except (ClientError, BotoCoreError, KeyHygieneError) as exc:
        code = error_code(exc) if isinstance(exc, ClientError) else ""
        name = code or type(exc).__name__
        return f"the old key {old.access_key_id} does not answer ({name})", False
    if ":user/" not in arn or name_of(arn) != user:
        return f"the old key {old.access_key_id} signs as {arn}, not as {user}", True
    status = _key_status(ctx, old, user)
    if status != "Active":
        return f"the old key {old.access_key_id} is {status or 'of unknown status'} in AWS", False
    return "", False


def _key_status(ctx: ApplyContext, key: HeldKey, user: str) -> str:
    """The key's status, listed with the key itself, else with the profile's key."""
    signers = [lambda: client_with_key(ctx.clients, "iam", key), lambda: ctx.client("iam")]
    for signer in signers:
        try:
            items = all_items(signer(), "list_access_keys", "AccessKeyMetadata", UserName=user)
        except (ClientError, BotoCoreError, KeyHygieneError):
            continue
        for item in items:
            if item.get("AccessKeyId") == key.access_key_id:
                return str(item.get("Status") or "")
        return "deleted"
    return ""


def _put_back(location: KeyLocation, backup: _Backup) -> str:
    """The profile's previous key, where it was. Whole files only when they are
    exactly as this run left them; otherwise only the profile's own lines, so
    that an edit made meanwhile (another profile, a comment) survives."""
    by_lines = False
    if _digest(location.credentials_file) == backup.credentials_after:
        credentials_file.restore_bytes(location.credentials_file, backup.credentials)
    else:
        by_lines = True
        present = backup.credential_values
        credentials_file.write_profile_values(
            location.credentials_file,
            location.profile,
            {key: value.reveal() for key, value in present.items()},
            remove=[key for key in CREDENTIAL_KEYS if key not in present],
        )
    if backup.config_touched:
        if _digest(location.config_file) == backup.config_after:
            credentials_file.restore_bytes(location.config_file, backup.config)
        else:
            by_lines = True
            process = backup.credential_process
            credentials_file.set_config_values(
                location.config_file,
                location.profile,
                {"credential_process": process} if process else {},
                remove=() if process else ("credential_process",),
            )
    if backup.vault_touched:
        if backup.vault_key is not None:
            vault.store_key(
                location.profile, backup.vault_key.access_key_id, backup.vault_key.secret
            )
        else:
            vault.delete_key(location.profile)
    if by_lines:
        return "the profile's previous lines (the files had changed since the write)"
    return "the previous files, from memory"


@local_action("rotation.verify_key")
def _verify_key(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    result = verify_held_key(
        ctx.clients,
        _location(ctx, str(params["profile"])),
        str(params["access_key_id"]),
        str(params["user_arn"]),
        successes=int(params["successes"]),
        timeout=float(params["timeout"]),
        interval=float(params["interval"]),
        clock=ctx.clock,
        sleep=ctx.sleep,
    )
    step_id = ctx.step.id if ctx.step else STEP_VERIFY
    _crash_if_running(ctx, step_id, "rotation.verify_key")
    return result


@local_action("rotation.delete_key")
def _delete_key(ctx: ApplyContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    key_id = str(params["AccessKeyId"])
    location = getattr(ctx.clients, "location", None)
    if isinstance(location, KeyLocation) and held_key_id(location) == key_id:
        raise KeyHygieneError(
            f"Refusing to delete {key_id}: profile {location.profile!r} holds it, and it would "
            "leave this computer without a working key."
        )
    try:
        gone = _delete_signed(ctx.client("iam"), str(params["UserName"]), key_id)
    except ClientError:
        # Undoing the create: the new key may sign its own deletion (the
        # keyhygiene-rotate-own-key policy allows it) when the profile's key
        # cannot, so that no key whose secret dies with this run is left.
        own = _this_runs_new_key(ctx, key_id)
        if own is None:
            raise
        gone = _delete_signed(
            client_with_key(ctx.clients, "iam", own), str(params["UserName"]), key_id
        )
    if ctx.step is not None:
        _crash_if_running(ctx, ctx.step.id, "rotation.delete_key")
    return {"AccessKeyId": key_id, "AlreadyGone": gone}


def _delete_signed(iam: Any, user: str, key_id: str) -> bool:
    """Delete the key; True when it was gone already (a run that stopped
    before journaling the deletion)."""
    return not call_unless_missing(iam.delete_access_key, UserName=user, AccessKeyId=key_id)


def _this_runs_new_key(ctx: ApplyContext, key_id: str) -> HeldKey | None:
    """The new key, with its secret, when this process created `key_id`."""
    with _BACKUPS_LOCK:
        secret = _NEW_SECRETS.get(key_id)
    return HeldKey(key_id, secret, "file") if secret is not None else None


def _crash_if_running(ctx: ApplyContext, step_id: str, action: str) -> None:
    # Only while the step runs, not while it is undone.
    if ctx.step is not None and ctx.step.call.operation == action:
        crash_point(step_id)


# --------------------------------------------------------------------------- verification


def verify_held_key(
    clients: Any,
    location: KeyLocation,
    key_id: str,
    user_arn: str,
    *,
    successes: int = DEFAULT_VERIFY_SUCCESSES,
    timeout: float = DEFAULT_VERIFY_TIMEOUT,
    interval: float = DEFAULT_VERIFY_INTERVAL,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Prove that the profile holds `key_id` and that it signs as `user_arn`,
    `successes` times in a row; on failure retry with exponential backoff
    (0.5 s, 1 s, 2 s ... 8 s) until `timeout` seconds have passed."""
    started = clock()
    deadline = started + timeout
    in_a_row = tries = 0
    backoff = FIRST_BACKOFF
    last_problem = ""
    while True:
        held = held_key(location)
        if held is None or held.access_key_id != key_id:
            raise VerificationFailed(
                f"Profile {location.profile!r} does not hold the new key {key_id} "
                f"(it holds {held.access_key_id if held else 'no key'})."
            )
        tries += 1
        arn, problem = _who_am_i(clients, held)
        if problem:
            in_a_row, last_problem = 0, problem
            pause, backoff = backoff, min(backoff * 2, MAX_BACKOFF)
        elif arn != user_arn:
            raise VerificationFailed(f"The new key {key_id} signs as {arn}, not as {user_arn}.")
        else:
            in_a_row += 1
            if in_a_row >= successes:
                return {
                    "Arn": arn,
                    "AccessKeyId": key_id,
                    "Tries": tries,
                    "Seconds": round(clock() - started, 3),
                }
            pause = interval
        if clock() + pause > deadline:
            raise VerificationFailed(
                f"The new key {key_id} did not answer as {user_arn} {successes} time(s) in a row "
                f"within {timeout:g} s ({tries} tries; last problem: {last_problem or 'none'})."
            )
        sleep(pause)


def _who_am_i(clients: Any, key: HeldKey) -> tuple[str, str]:
    """(ARN, "") on success, ("", what went wrong) on failure."""
    try:
        client = client_with_key(clients, "sts", key)
        return str(client.get_caller_identity()["Arn"]), ""
    except ClientError as exc:
        return "", error_code(exc) or "ClientError"
    except (BotoCoreError, KeyHygieneError) as exc:
        return "", type(exc).__name__


# --------------------------------------------------------------------------- running it


@dataclass(frozen=True)
class RotationOutcome:
    """How a rotation (or the recovery of one) ended; `render_text` says it for people."""

    plan: Plan
    exit_code: int
    headline: str
    report: ApplyReport | None = None
    undo_report: ApplyReport | None = None
    old_key_id: str | None = None
    new_key_id: str | None = None
    proof_arn: str | None = None
    api_calls: int = 0
    elapsed: float = 0.0
    action: str = "rotate"  # "rotate", "finish", "roll_back"

    @property
    def ok(self) -> bool:
        return self.exit_code == EXIT_ROTATED

    @property
    def new_key_tail(self) -> str:
        return key_tail(self.new_key_id)

    def render_text(self, *, details: bool = True) -> str:
        lines = [self.headline]
        if details and self.report is not None:
            lines += ["", self.report.render_text()]
        if details and self.undo_report is not None:
            lines += ["", self.undo_report.render_text()]
        if self.proof_arn:
            lines += [
                "",
                f"Proof, made with the new key {self.new_key_tail}: AWS says this computer is "
                f"{self.proof_arn}.",
            ]
        return "\n".join(lines)


def execute_rotation(
    plan: Plan,
    clients: HeldKeyClients,
    *,
    on_event: Callable[[PlanEvent], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    journal_dir: Path | None = None,
) -> RotationOutcome:
    """Apply a rotation plan with a journal, then decide: done (exit 0), rolled
    back after a failed verification (1), or failed with what was done and
    undone (3). A failure while deleting the old key is left for the next run
    to finish: the new key works and the old one is already off.

    Holds the profile's rotation lock throughout; raises `RotationBusy` (or
    `BadInput` for a plan the profile has moved past), nothing changed."""
    with rotation_lock(clients.location.profile, journal_dir):
        _check_plan_still_current(plan, clients, journal_dir)
        return _execute(plan, clients, on_event, should_stop, clock, sleep, journal_dir)


def _check_plan_still_current(
    plan: Plan, clients: HeldKeyClients, journal_dir: Path | None
) -> None:
    """A plan made before another rotation of the profile ran must not run."""
    profile = clients.location.profile
    old_id = _plan_value(plan, "old_access_key_id")
    holding = held_key_id(clients.location)
    if holding != old_id:
        raise BadInput(
            f"Profile {profile!r} holds {holding or 'no key'} now, not the key {old_id} this plan "
            "rotates (another rotation ran meanwhile?). Nothing was changed.",
            hint="Make a new plan: run `keyhygiene rotate` again.",
        )
    if pending_rotations(journal_dir, profile=profile):
        raise BadInput(
            f"An interrupted rotation of profile {profile!r} is waiting. Nothing was changed.",
            hint="Run `keyhygiene rotate` again: it finishes or rolls back that one first.",
        )


def _execute(
    plan: Plan,
    clients: HeldKeyClients,
    on_event: Callable[[PlanEvent], None] | None,
    should_stop: Callable[[], bool] | None,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    journal_dir: Path | None,
) -> RotationOutcome:
    started = clock()
    calls_before = clients.api_calls
    user = str(_plan_value(plan, "user_name"))
    relay = _rewording(on_event, user)
    journal = Journal.create(plan, journal_dir)
    report = apply_plan(
        plan,
        clients,
        journal=journal,
        on_event=_with_crash_hook(relay),
        should_stop=should_stop,
        clock=clock,
        sleep=sleep,
    )
    report = _reworded_report(report, user)
    old_id = _plan_value(plan, "old_access_key_id")
    new_id = report.kept.get(STEP_CREATE, {}).get(NEW_KEY_PATH)

    def outcome(code: int, headline: str, **more: Any) -> RotationOutcome:
        return RotationOutcome(
            plan,
            code,
            headline,
            report=report,
            old_key_id=old_id,
            new_key_id=new_id,
            api_calls=clients.api_calls - calls_before,
            elapsed=clock() - started,
            **more,
        )

    if report.ok:
        _drop_backup(new_id)
        proof = prove_identity(clients)
        return outcome(
            EXIT_ROTATED,
            f"Rotated: profile {clients.location.profile} now holds the new key "
            f"{key_tail(new_id)}; the old key {old_id} is deleted.",
            proof_arn=proof,
        )
    stopped_at = _first_unfinished(report)
    if stopped_at == STEP_DELETE_OLD:
        _drop_backup(new_id)
        return outcome(
            EXIT_AWS,
            f"Almost done: the new key {key_tail(new_id)} is in use and verified, and the old key "
            f"{old_id} is deactivated, but deleting it failed: "
            f"{report.result(STEP_DELETE_OLD).message or 'the run was stopped'}. "
            "Run `keyhygiene rotate` again to finish this run.",
        )
    if stopped_at == STEP_CREATE and UNCHECKED_CREATE in report.result(STEP_CREATE).message:
        # CreateAccessKey may have made a key that nobody could look for (AWS
        # stopped answering). The journal stays open with that step marked
        # interrupted, as after a crash: the next run looks for the key
        # (made after the step started, never used), deletes it, rolls back.
        journal.mark_interrupted(STEP_CREATE)
        _drop_backup(new_id)
        return outcome(
            EXIT_AWS,
            f"Not finished: {_failure_message(report)} Run `keyhygiene rotate` again: it "
            "looks for that key first, deletes it if it was never used, and rotates afresh.",
        )
    undo = rollback(report, clients, on_event=relay, clock=clock, sleep=sleep)
    undo = _reworded_report(undo, user)
    # Whatever the rollback did, the old secret leaves memory now.
    _drop_backup(new_id)
    if not report.done:
        headline = f"Nothing was changed: {_failure_message(report) or 'the run was cancelled'}"
        return outcome(EXIT_AWS, headline, undo_report=undo if undo.results else None)
    return outcome(
        _failure_code(report, undo),
        _failure_headline(report, undo, clients.location, old_id, new_id),
        undo_report=undo,
    )


def _lock_name(profile: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.@+=,-]", "_", profile)
    if safe != profile:
        # Two profiles that differ only in unsafe characters get two locks.
        safe += "-" + hashlib.sha256(profile.encode()).hexdigest()[:8]
    return safe


@contextlib.contextmanager
def rotation_lock(profile: str, directory: Path | None = None) -> Iterator[Path]:
    """One rotation of `profile` at a time on this computer (TUI, cron and the
    command line alike): an flock on `<state dir>/rotate-<profile>.lock`, which
    the system releases when the process dies. Never waits: a second one gets
    `RotationBusy` (exit 2) before anything is changed."""
    folder = Path(directory) if directory else state_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / f"rotate-{_lock_name(profile)}.lock"
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RotationBusy(
                f"Another rotation of profile {profile!r} is running on this computer "
                "(keyhygiene in another window, a scheduled job, or the TUI). Nothing was changed.",
                hint="Let it finish, then run `keyhygiene rotate` again if needed.",
            ) from None
        yield path
    finally:
        os.close(fd)  # closing releases the lock


def _with_crash_hook(
    on_event: Callable[[PlanEvent], None] | None,
) -> Callable[[PlanEvent], None] | None:
    if not crash_hook_armed():
        return on_event

    def hooked(event: PlanEvent) -> None:
        if on_event is not None:
            on_event(event)
        _crash_on_event(event)

    return hooked


def _drop_backup(new_id: str | None) -> None:
    if new_id:
        with _BACKUPS_LOCK:
            _BACKUPS.pop(new_id, None)
            _NEW_SECRETS.pop(new_id, None)


def _first_unfinished(report: ApplyReport) -> str | None:
    for result in report.results:
        if result.status != "done":
            return result.step_id
    return None


def _failure_message(report: ApplyReport) -> str:
    for result in report.results:
        if result.status == "failed":
            return result.message
    return ""


def _failure_code(report: ApplyReport, undo: ApplyReport) -> int:
    failed = [result.step_id for result in report.failed]
    if undo.ok and failed and failed[0] in VERIFY_STEPS:
        return EXIT_VERIFY_FAILED
    return EXIT_AWS


def _failure_headline(
    report: ApplyReport,
    undo: ApplyReport,
    location: KeyLocation,
    old_id: str | None,
    new_id: str | None,
) -> str:
    failed = report.failed[0] if report.failed else None
    where = (
        f"step {report.plan.number(failed.step_id)} ({report.plan.step(failed.step_id).description})"
        if failed
        else "a cancelled step"
    )
    reason = failed.message if failed else "the run was cancelled"
    done = [report.plan.step(result.step_id).description for result in report.done]
    undone = [report.plan.step(result.step_id).description for result in undo.undone]
    kept = [
        report.plan.step(result.step_id).description
        for result in undo.results
        if result.status != "undone" and result.step_id not in VERIFY_STEPS
    ]
    verification = bool(failed and failed.step_id in VERIFY_STEPS)
    lines = [
        (
            f"The new key {key_tail(new_id)} never verified: {reason}"
            if verification
            else f"The rotation failed at {where}: {reason}"
        )
    ]
    lines.append("Done before the failure: " + ("; ".join(done) if done else "nothing") + ".")
    lines.append("Undone: " + ("; ".join(undone) if undone else "nothing") + ".")
    if kept:
        lines.append("Not undone: " + "; ".join(kept) + ".")
    if undo.ok:
        lines.append(
            f"Profile {location.profile} holds the old key {old_id}, as before; "
            + ("the new key is deleted." if new_id else "no new key was made.")
        )
    elif new_id and _holds(location, new_id):
        lines.append(
            f"Profile {location.profile} keeps the new key {key_tail(new_id)} ({new_id}), which "
            f"stays active: the old key {old_id} could not be put back in working order, and "
            "giving it back to the profile would leave this computer without a working key. "
            "Run `keyhygiene rotate` again: it finishes this rotation with the new key "
            "(verifies it, deactivates and deletes the old key)."
        )
    else:
        lines.append(
            "The rollback is incomplete: fix the cause and run `keyhygiene rotate` again, which "
            "finishes rolling back first."
        )
    return "\n".join(lines)


def _holds(location: KeyLocation, key_id: str) -> bool:
    try:
        return held_key_id(location) == key_id
    except KeyHygieneError:
        return False


def prove_identity(clients: HeldKeyClients) -> str | None:
    """Who AWS says the profile's key is, asked with that very key."""
    try:
        return str(clients.client("sts").get_caller_identity()["Arn"])
    except (ClientError, BotoCoreError, KeyHygieneError) as exc:
        log.warning("Could not make the final who-am-I proof: %s", type(exc).__name__)
        return None


def _plan_value(plan: Plan, name: str) -> Any:
    """A parameter of the plan's write step (profile, files, user, old key, stores)."""
    return plan.step(STEP_WRITE).call.params.get(name)


# --------------------------------------------------------------------------- recovery

RecoveryAction = Literal["finish", "roll_back", "busy", "blocked"]


@dataclass(frozen=True)
class PendingRotation:
    """An interrupted rotation found at start, and what keyhygiene will do about it."""

    journal: Journal = field(repr=False, compare=False)
    profile: str
    user_name: str
    old_key_id: str
    new_key_id: str | None
    action: RecoveryAction
    description: str

    @property
    def location(self) -> KeyLocation:
        return KeyLocation.from_params(self.journal.plan.step(STEP_WRITE).call.params)


def pending_rotations(
    directory: Path | None = None, *, profile: str | None = None
) -> list[PendingRotation]:
    """The interrupted rotations in the state directory, oldest first, each with
    the action it needs. Reads only local files (and the keyring): no AWS call."""
    found = []
    for journal in open_journals(directory):
        if journal.plan.kind != PLAN_KIND:
            continue
        try:
            params = journal.plan.step(STEP_WRITE).call.params
        except KeyError:
            continue
        if profile is not None and params.get("profile") != profile:
            continue
        found.append(_describe_pending(journal, params))
    return found


def pending_rotation(
    profile: str | None = None, directory: Path | None = None
) -> PendingRotation | None:
    """The first interrupted rotation (of `profile`, if given), or None."""
    pending = pending_rotations(directory, profile=profile)
    return pending[0] if pending else None


def _describe_pending(journal: Journal, params: Mapping[str, Any]) -> PendingRotation:
    location = KeyLocation.from_params(params)
    user = str(params["user_name"])
    old = str(params["old_access_key_id"])
    new = journal.kept_values().get(STEP_CREATE, {}).get(NEW_KEY_PATH)
    base = f"{journal.summary()}."

    def pending(action: RecoveryAction, text: str) -> PendingRotation:
        return PendingRotation(journal, location.profile, user, old, new, action, f"{base} {text}")

    if journal.held_by_other_process():
        return pending("busy", "Another keyhygiene process is running it now; leave it be.")
    try:
        holding = held_key_id(location)
    except KeyHygieneError as exc:
        return pending(
            "blocked", f"Cannot tell what profile {location.profile} holds: {exc.message}"
        )
    if new and holding == new:
        return pending(
            "finish",
            f"Profile {location.profile} already holds the new key {key_tail(new)}: keyhygiene "
            f"will finish the rotation (verify it, deactivate and delete the old key {old}).",
        )
    if new:
        lost = f"The new key {new} was created but never written, and its secret is lost"
    else:
        lost = "A new key may have been created but never written, and its secret is lost"
    return pending(
        "roll_back",
        f"{lost}: keyhygiene will roll back (delete that key); profile {location.profile} "
        f"keeps its key {holding or 'as it is'}.",
    )


def finish_or_roll_back(
    pending: PendingRotation,
    options: ConnectionOptions | None = None,
    *,
    clients: HeldKeyClients | None = None,
    on_event: Callable[[PlanEvent], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> RotationOutcome:
    """Finish an interrupted rotation whose new key the profile holds, or roll
    back one whose new key was never written (deleting any key it created).

    A failure while finishing is not rolled back: the old secret is gone, so
    the new key is the only one that can work; the journal stays open for the
    next try. Holds the profile's rotation lock (`RotationBusy` if taken).
    """
    if pending.action == "busy":
        raise RotationBusy(pending.description)
    # The journal lives in <state dir>/journals/: the lock sits in <state dir>.
    with rotation_lock(pending.profile, pending.journal.path.parent.parent):
        # Decide afresh, from the journal as it is now: another process may
        # have dealt with it since the description was made.
        try:
            journal = Journal.load(pending.journal.path)
        except JournalError:
            journal = None
        if journal is None or not journal.is_open:
            raise BadInput(
                f"The interrupted rotation of profile {pending.profile!r} was dealt with "
                "meanwhile. Nothing was changed."
            )
        fresh = _describe_pending(journal, journal.plan.step(STEP_WRITE).call.params)
        if fresh.action == "blocked":
            raise BadInput(fresh.description)
        if clients is None:
            clients = HeldKeyClients(
                options or ConnectionOptions(profile=fresh.profile), fresh.location
            )
        relay = _rewording(on_event, fresh.user_name)
        if fresh.action == "finish":
            return _finish(fresh, clients, relay, clock, sleep)
        return _roll_back(fresh, clients, relay, clock, sleep)


# The name the TUI and the command use; the two are one function.
recover_rotation = finish_or_roll_back


def _finish(
    pending: PendingRotation,
    clients: HeldKeyClients,
    on_event: Callable[[PlanEvent], None] | None,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> RotationOutcome:
    journal = pending.journal
    started, calls_before = clock(), clients.api_calls
    if journal.state == "rollback_incomplete":
        journal.set_state("stopped")  # going forward after all: the new key is held
    report = _reworded_report(
        resume(journal, clients, on_event=on_event, clock=clock, sleep=sleep),
        pending.user_name,
    )
    if report.ok:
        proof = prove_identity(clients)
        return RotationOutcome(
            journal.plan,
            EXIT_ROTATED,
            f"Finished the interrupted rotation: profile {pending.profile} holds the new key "
            f"{key_tail(pending.new_key_id)}; the old key {pending.old_key_id} is deleted.",
            proof_arn=proof,
            api_calls=clients.api_calls - calls_before,
            elapsed=clock() - started,
            report=report,
            old_key_id=pending.old_key_id,
            new_key_id=pending.new_key_id,
            action="finish",
        )
    failed = report.failed[0] if report.failed else None
    code = EXIT_VERIFY_FAILED if failed and failed.step_id in VERIFY_STEPS else EXIT_AWS
    return RotationOutcome(
        journal.plan,
        code,
        f"Could not finish the interrupted rotation: {failed.message if failed else 'stopped'}. "
        f"Profile {pending.profile} holds the new key {key_tail(pending.new_key_id)}; nothing was "
        "rolled back (the old secret is gone). Fix the cause and run `keyhygiene rotate` again.",
        api_calls=clients.api_calls - calls_before,
        elapsed=clock() - started,
        report=report,
        old_key_id=pending.old_key_id,
        new_key_id=pending.new_key_id,
        action="finish",
    )


def _roll_back(
    pending: PendingRotation,
    clients: HeldKeyClients,
    on_event: Callable[[PlanEvent], None] | None,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> RotationOutcome:
    journal = pending.journal
    started, calls_before = clock(), clients.api_calls
    create_started = _step_started_at(journal, STEP_CREATE)
    # Read before the rollback changes it: "running" means the call's answer
    # (and with it the new key's id) may have been lost with the process.
    create_interrupted = journal.status(STEP_CREATE) == "running"
    # The lost key first: the rollback closes the journal when it succeeds,
    # and a check that fails must be tried again by the next run.
    try:
        orphans, left = _delete_lost_keys(
            journal.plan,
            clients,
            pending.old_key_id,
            pending.new_key_id,
            create_started if create_interrupted else None,
        )
    except KeyHygieneError as exc:
        return RotationOutcome(
            journal.plan,
            EXIT_AWS,
            f"Could not roll back the interrupted rotation of profile {pending.profile}: "
            f"checking for the key it left behind failed: {exc.message} Nothing was changed; "
            "fix the cause and run `keyhygiene rotate` again.",
            old_key_id=pending.old_key_id,
            new_key_id=pending.new_key_id,
            api_calls=clients.api_calls - calls_before,
            elapsed=clock() - started,
            action="roll_back",
        )
    undo = _reworded_report(
        rollback(journal, clients, on_event=on_event, clock=clock, sleep=sleep),
        pending.user_name,
    )
    ok = undo.ok
    lines = [
        f"Rolled back the interrupted rotation of profile {pending.profile}"
        + ("" if ok else " only in part")
        + f": it keeps its key {pending.old_key_id}."
    ]
    undone = [journal.plan.step(result.step_id).description for result in undo.undone]
    if undone:
        lines.append("Undone: " + "; ".join(undone) + ".")
    if orphans:
        lines.append(
            "Deleted the key(s) the interrupted run created and never wrote: "
            + ", ".join(orphans)
            + "."
        )
    lines.extend(left)
    return RotationOutcome(
        journal.plan,
        EXIT_ROTATED if ok else EXIT_AWS,
        "\n".join(lines),
        undo_report=undo,
        old_key_id=pending.old_key_id,
        new_key_id=pending.new_key_id,
        api_calls=clients.api_calls - calls_before,
        elapsed=clock() - started,
        action="roll_back",
    )


def _step_started_at(journal: Journal, step_id: str) -> datetime | None:
    record = journal.to_json().get("steps", {}).get(step_id, {})
    try:
        moment = datetime.fromisoformat(str(record.get("started_at")))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _delete_lost_keys(
    plan: Plan,
    clients: HeldKeyClients,
    old_key_id: str,
    new_key_id: str | None,
    interrupted_create_started: datetime | None,
) -> tuple[list[str], list[str]]:
    """Delete the key this run created and never wrote (its secret is lost).
    By id when the journal kept it; when a CreateAccessKey was interrupted
    before its answer was journaled, the unknown keys created after that step
    started and never used (`delete_unused_keys`). Returns (deleted, notes)."""
    user = str(_plan_value(plan, "user_name"))
    known = {old_key_id}
    for step in plan.steps:
        if step.id.startswith(STEP_DELETE_OTHER):
            known.add(str(step.call.params["AccessKeyId"]))
    holding = held_key_id(clients.location)
    if holding:
        known.add(holding)
    if new_key_id:
        if new_key_id in known:
            return [], []
        listed = {key.access_key_id for key in _list_keys(clients, user)}
        if new_key_id not in listed:
            return [], []
        with (
            _own_key_errors(user),
            translate_errors(f"deleting the key {new_key_id}", service="iam"),
        ):
            call_unless_missing(
                clients.client("iam").delete_access_key, UserName=user, AccessKeyId=new_key_id
            )
        return [new_key_id], []
    if interrupted_create_started is None:
        return [], []
    return delete_unused_keys(clients, user, known=known, since=interrupted_create_started)


def check_store_usable(store: Store | None, current: Store | None = None) -> None:
    """Raise `KeyringUnavailable` (exit 2, nothing changed) when the keyring is
    asked for, or in use, and this computer has none."""
    if "keyring" in (store, current):
        vault.keyring_backend()


__all__ = [
    "HeldKey",
    "HeldKeyClients",
    "KeyInfo",
    "KeyLocation",
    "OldKeyNotRestored",
    "PendingRotation",
    "RotationBusy",
    "RotationFacts",
    "RotationOutcome",
    "RotationRequest",
    "Secret",
    "TwoActiveKeys",
    "VerificationFailed",
    "check_store_usable",
    "credential_process_command",
    "delete_unused_keys",
    "execute_rotation",
    "finish_or_roll_back",
    "held_key",
    "inspect_rotation",
    "orphan_candidates",
    "own_key_hint",
    "pending_rotation",
    "pending_rotations",
    "plan_rotation",
    "prove_identity",
    "recover_rotation",
    "reworded",
    "rotation_lock",
    "verify_held_key",
]
