"""The rotation's apply-time actions: create, write, switch, restore, delete; the
backups kept in memory."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from keyhygiene.aws.connection import (
    all_items,
    call_unless_missing,
    error_code,
    translate_errors,
)
from keyhygiene.aws.errors import BotoConnectionError, BotoCoreError, ClientError, HTTPClientError
from keyhygiene.aws.held_key_clients import client_with_key
from keyhygiene.core.arns import name_of
from keyhygiene.core.errors import AwsProblem, KeyHygieneError, from_client_error
from keyhygiene.local import credentials_file, vault
from keyhygiene.local.key_location import HeldKey, KeyLocation, held_key, held_key_id
from keyhygiene.local.vault import (
    Secret,
    is_keyhygiene_process,
)
from keyhygiene.plans import (
    ApplyContext,
    ResultNotAvailable,
    Sealed,
    local_action,
)
from keyhygiene.workflows.rotation.crash_hook import crash_point
from keyhygiene.workflows.rotation.facts import KeyInfo
from keyhygiene.workflows.rotation.hints import _own_key_errors, own_key_hint
from keyhygiene.workflows.rotation.model import (
    CREDENTIAL_KEYS,
    FIRST_BACKOFF,
    MAX_BACKOFF,
    ORPHAN_CLOCK_SKEW,
    REACTIVATE_TIMEOUT,
    RESTORE_CHECK_TIMEOUT,
    STEP_CREATE,
    STEP_VERIFY,
    STEP_WRITE,
    OldKeyNotRestored,
    SecretLost,
)
from keyhygiene.workflows.rotation.plan import _list_keys
from keyhygiene.workflows.rotation.verification import verify_held_key

log = logging.getLogger(__name__)


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
