"""The keyring vault: this computer's access key kept in the OS keyring instead of a file.

With `keyhygiene rotate --store keyring` the secret goes into the OS keyring
(macOS Keychain, Windows Credential Locker, Secret Service on Linux) through
the `keyring` package, and `~/.aws/config` gets
`credential_process = keyhygiene credential-process --profile NAME`, which
hands the key to the AWS CLI and SDKs on demand.

One entry per profile: service `keyhygiene`, user name = the profile, value =
JSON `{"AccessKeyId": ..., "SecretAccessKey": ...}`.

`KEYHYGIENE_KEYRING` chooses the backend:
- unset or empty: the OS keyring, as `keyring` picks it (`PYTHON_KEYRING_BACKEND`
  and keyringrc.cfg are honoured);
- `memory`: a keyring inside this process only (the demo and the tests: the
  real keyring is never touched);
- `file:PATH`: a JSON file of mode 0600, for tests and demos that need the
  key in several processes. It is no safer than ~/.aws/credentials.

A headless Linux box usually has no keyring at all (`keyring` then falls back
to its `fail` backend, or to a chainer with nothing to chain): that is
detected and reported as `KeyringUnavailable` before anything is written.

Secrets travel in `Secret` objects whose repr and str hide them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from keyhygiene.core.errors import BadInput, KeyHygieneError
from keyhygiene.local import file_lock, sealed_file

SERVICE_NAME = "keyhygiene"
ENV_VAR = "KEYHYGIENE_KEYRING"
MEMORY = "memory"
FILE_PREFIX = "file:"
# A passphrase-sealed file (keyhygiene.local.sealed_file); `encrypted` alone
# keeps it in the state folder.
ENCRYPTED = "encrypted"


def default_encrypted_path() -> Path:
    from keyhygiene.local.state_dir import state_dir

    return state_dir() / "keyring.sealed"


def sealed_keyring_path(choice: str) -> Path | None:
    """The sealed file a KEYHYGIENE_KEYRING value names, absolute (None: not
    an encrypted keyring). One reading for the backend, the credential_process
    line and the check of a profile's named keyring, so that they agree."""
    choice = choice.strip()
    if choice != ENCRYPTED and not choice.startswith(ENCRYPTED + ":"):
        return None
    given = choice[len(ENCRYPTED) + 1 :]
    return (Path(given).expanduser() if given else default_encrypted_path()).absolute()


class Secret:
    """A secret string that never shows: repr and str give `****`.

    Textual prints crash tracebacks with local variables, and f-strings,
    logs and exception messages all call str(): only `reveal()` gives the
    value, at the one place that must hand it on.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise TypeError("a Secret holds a non-empty string")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret(****)"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> Any:
        raise TypeError("a Secret cannot be pickled")


@dataclass(frozen=True)
class StoredKey:
    """An access key as kept in the vault."""

    access_key_id: str
    secret: Secret = field(repr=False)


@dataclass(frozen=True)
class StoredSession:
    """An MFA session (GetSessionToken's answer) cached for credential-process."""

    access_key_id: str
    secret: Secret = field(repr=False)
    token: Secret = field(repr=False)
    expiration: datetime

    def usable(self, *, margin: timedelta, now: datetime | None = None) -> bool:
        return self.expiration - margin > (now or datetime.now(timezone.utc))


class KeyringUnavailable(BadInput):
    """No usable keyring backend on this computer; nothing was written."""


class VaultError(KeyHygieneError):
    """The keyring refused to read or write (locked, denied, damaged entry)."""


# --------------------------------------------------------------------------- backends


def _keyring_backend_base() -> type:
    from keyring.backend import KeyringBackend

    return KeyringBackend


def _make_backends() -> tuple[type, type, type]:
    """Our two backends. Made on first use, so that importing this module does
    not import `keyring`; their `priority` raises because keyring registers
    every backend class it sees, and must never pick ours by itself."""
    from keyring.compat import properties

    base = _keyring_backend_base()

    class MemoryKeyring(base):  # type: ignore[misc, valid-type]
        """Secrets kept in this process only (KEYHYGIENE_KEYRING=memory)."""

        @properties.classproperty
        def priority(cls) -> float:
            raise RuntimeError("chosen only through KEYHYGIENE_KEYRING=memory")

        def __init__(self) -> None:
            super().__init__()
            self._items: dict[tuple[str, str], str] = {}
            self._lock = threading.Lock()

        def get_password(self, service: str, username: str) -> str | None:
            with self._lock:
                return self._items.get((service, username))

        def set_password(self, service: str, username: str, password: str) -> None:
            with self._lock:
                self._items[(service, username)] = password

        def delete_password(self, service: str, username: str) -> None:
            from keyring.errors import PasswordDeleteError

            with self._lock:
                if self._items.pop((service, username), None) is None:
                    raise PasswordDeleteError("no such entry")

        def __str__(self) -> str:
            return "keyhygiene memory keyring (this process only)"

        def __repr__(self) -> str:
            return f"<MemoryKeyring, {len(self._items)} entries, hidden>"

    class FileKeyring(base):  # type: ignore[misc, valid-type]
        """Secrets in a 0600 JSON file (KEYHYGIENE_KEYRING=file:PATH), for tests and demos."""

        @properties.classproperty
        def priority(cls) -> float:
            raise RuntimeError("chosen only through KEYHYGIENE_KEYRING=file:PATH")

        def __init__(self, path: Path) -> None:
            super().__init__()
            self.path = path

        def get_password(self, service: str, username: str) -> str | None:
            with self._locked():
                return self._read().get(f"{service}/{username}")

        def set_password(self, service: str, username: str, password: str) -> None:
            with self._locked():
                items = self._read()
                items[f"{service}/{username}"] = password
                self._write(items)

        def delete_password(self, service: str, username: str) -> None:
            from keyring.errors import PasswordDeleteError

            with self._locked():
                items = self._read()
                if items.pop(f"{service}/{username}", None) is None:
                    raise PasswordDeleteError("no such entry")
                self._write(items)

        @contextlib.contextmanager
        def _locked(self) -> Iterator[None]:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(
                self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600
            )
            try:
                file_lock.lock(fd)
                yield
            finally:
                os.close(fd)

        def _read(self) -> dict[str, str]:
            try:
                blob = self.path.read_bytes()
            except FileNotFoundError:
                return {}
            except OSError:
                raise VaultError(f"The keyring file {self.path} cannot be read.") from None
            return self._decode(blob)

        def _decode(self, blob: bytes) -> dict[str, str]:
            try:
                data = json.loads(blob)
            except ValueError:
                # No detail: a JSON error object carries the whole document.
                raise VaultError(f"The keyring file {self.path} cannot be read.") from None
            return data if isinstance(data, dict) else {}

        def _encode(self, items: dict[str, str]) -> bytes:
            return json.dumps(items).encode("utf-8")

        def _write(self, items: dict[str, str]) -> None:
            blob = self._encode(items)
            fd, temp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(blob)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
                raise

        def __str__(self) -> str:
            return f"keyhygiene file keyring {self.path} (for tests, no safer than a file)"

        def __repr__(self) -> str:
            return f"<FileKeyring {str(self.path)!r}>"

    class EncryptedFileKeyring(FileKeyring):
        """Secrets in a file sealed with a passphrase (KEYHYGIENE_KEYRING=encrypted[:PATH]):
        for computers without an OS keyring. See keyhygiene.local.sealed_file."""

        @properties.classproperty
        def priority(cls) -> float:
            raise RuntimeError("chosen only through KEYHYGIENE_KEYRING=encrypted")

        def _decode(self, blob: bytes) -> dict[str, str]:
            shown = str(self.path)
            salt = sealed_file.salt_of(blob, shown)
            return sealed_file.unseal(blob, sealed_file.file_key(shown, salt, confirm=False), shown)

        def _encode(self, items: dict[str, str]) -> bytes:
            shown = str(self.path)
            try:
                salt = sealed_file.salt_of(self.path.read_bytes(), shown)
                new = False
            except FileNotFoundError:
                salt, new = os.urandom(16), True
            return sealed_file.seal(items, sealed_file.file_key(shown, salt, confirm=new), salt)

        def __str__(self) -> str:
            return f"keyhygiene encrypted keyring {self.path} (sealed with a passphrase)"

        def __repr__(self) -> str:
            return f"<EncryptedFileKeyring {str(self.path)!r}>"

    return MemoryKeyring, FileKeyring, EncryptedFileKeyring


_BACKEND_CLASSES: tuple[type, type, type] | None = None
_MEMORY_BACKEND: Any = None
_CLASSES_LOCK = threading.Lock()


def _classes() -> tuple[type, type, type]:
    global _BACKEND_CLASSES
    with _CLASSES_LOCK:
        if _BACKEND_CLASSES is None:
            _BACKEND_CLASSES = _make_backends()
        return _BACKEND_CLASSES


def memory_backend() -> Any:
    """The process-wide memory keyring (KEYHYGIENE_KEYRING=memory)."""
    global _MEMORY_BACKEND
    memory_class, _, _ = _classes()
    with _CLASSES_LOCK:
        if _MEMORY_BACKEND is None:
            _MEMORY_BACKEND = memory_class()
        return _MEMORY_BACKEND


def reset_memory_backend() -> None:
    """Forget every secret of the memory keyring (tests)."""
    global _MEMORY_BACKEND
    with _CLASSES_LOCK:
        _MEMORY_BACKEND = None


def keyring_backend() -> Any:
    """The backend in use, or `KeyringUnavailable` when none can keep a secret."""
    choice = os.environ.get(ENV_VAR, "").strip()
    if choice == MEMORY:
        return memory_backend()
    if choice.startswith(FILE_PREFIX):
        _, file_class, _ = _classes()
        return file_class(Path(choice[len(FILE_PREFIX) :]).expanduser())
    sealed = sealed_keyring_path(choice)
    if sealed is not None:
        _, _, encrypted_class = _classes()
        return encrypted_class(sealed)
    if choice:
        raise BadInput(
            f"{ENV_VAR}={choice!r} is not understood.",
            hint="Leave it unset for the OS keyring, use 'encrypted' (or 'encrypted:PATH') for "
            f"a passphrase-sealed file, or {MEMORY!r} or 'file:PATH' for tests.",
        )
    try:
        import keyring
    except ImportError:
        raise KeyringUnavailable(
            "The `keyring` package is not installed, so keyhygiene cannot use the OS keyring.",
            hint="Install keyhygiene with its dependencies, or keep the key in the file (--store file).",
        ) from None
    backend = keyring.get_keyring()
    problem = unusable_reason(backend)
    if problem:
        raise KeyringUnavailable(
            f"No usable OS keyring on this computer: {problem}. The key stays in the "
            "credentials file; nothing was changed.",
            hint=(
                "On Linux, run a Secret Service (GNOME Keyring or KWallet) in a desktop "
                "session; on a headless box set KEYHYGIENE_KEYRING=encrypted (a file sealed "
                "with a passphrase), or keep --store file (the default)."
            ),
        )
    return backend


def unusable_reason(backend: Any) -> str:
    """Why `backend` cannot keep a secret, or "" when it can."""
    from keyring.backends import chainer, fail, null

    if isinstance(backend, fail.Keyring):
        return "the `keyring` package found no backend (only its 'fail' placeholder)"
    if isinstance(backend, null.Keyring):
        return "the keyring is disabled (the 'null' backend is configured)"
    if isinstance(backend, chainer.ChainerBackend):
        usable = [item for item in backend.backends if not unusable_reason(item)]
        if not usable:
            return "the `keyring` package found no backend to chain"
    return ""


class KeyringNotSafe(KeyringUnavailable):
    """The keyring would lose the key (a memory keyring) or keeps it in plain text."""


# Environment flag of `--insecure-keyring`, read by the check below; the demo sets
# KEYHYGIENE_DEMO, whose keyring lives and dies with its sandbox on purpose.
INSECURE_VAR = "KEYHYGIENE_INSECURE_KEYRING"


def unsafe_reason(backend: Any) -> str:
    """Why `backend` must not hold this computer's only key, or "" when it may:
    a keyring that dies with the process loses the key when the command ends
    (and the old key is deleted by then), and a plaintext file is no safer
    than ~/.aws/credentials while claiming to be."""
    memory_class, file_class, encrypted_class = _classes()
    if isinstance(backend, encrypted_class):
        return ""
    if isinstance(backend, memory_class):
        return "it is a memory keyring, emptied when this process ends"
    if isinstance(backend, file_class):
        return "it is a plaintext file"
    kind = type(backend)
    if kind.__module__.startswith("keyrings.alt") and "Plaintext" in kind.__name__:
        return "it is keyrings.alt's plaintext file, no safer than ~/.aws/credentials"
    if kind.__module__.startswith("keyring.backends.chainer"):
        chained = list(getattr(backend, "backends", ()))
        first = next((item for item in chained if not unusable_reason(item)), None)
        return unsafe_reason(first) if first is not None else ""
    return ""


def check_safe_for_the_only_key(*, allow_insecure: bool = False) -> Any:
    """The keyring backend, refused (`KeyringNotSafe`, nothing changed) when it
    would lose the key or keeps it in plain text, unless told (`allow_insecure`,
    $KEYHYGIENE_INSECURE_KEYRING=1, or the demo)."""
    backend = keyring_backend()
    allowed = allow_insecure or os.environ.get(INSECURE_VAR) == "1"
    if allowed or os.environ.get("KEYHYGIENE_DEMO") == "1":
        return backend
    reason = unsafe_reason(backend)
    if reason:
        raise KeyringNotSafe(
            f"Refusing to keep this computer's only key in {backend}: {reason}. Nothing was "
            "changed.",
            hint="Use the OS keyring (unset KEYHYGIENE_KEYRING and PYTHON_KEYRING_BACKEND), "
            "keep --store file, or pass --insecure-keyring if this is a throwaway sandbox.",
        )
    return backend


def keyring_status() -> tuple[bool, str]:
    """(usable, a sentence for people): for the TUI and `--store keyring` checks."""
    try:
        backend = check_safe_for_the_only_key()
    except KeyHygieneError as exc:
        return False, exc.message
    return True, f"Keyring in use: {backend}."


# --------------------------------------------------------------------------- the command in ~/.aws/config

MFA_SESSION_FLAG = "--mfa-session"
KEYRING_FLAG = "--keyring"


def is_keyhygiene_process(command: str) -> bool:
    """True for a `credential_process` that is keyhygiene's own."""
    try:
        words = shlex.split(command)
    except ValueError:
        return False
    return "credential-process" in words


def named_keyring(command: str) -> str | None:
    """The keyring a keyhygiene `credential_process` names with --keyring, or None."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    if KEYRING_FLAG in words[:-1]:
        return words[words.index(KEYRING_FLAG) + 1]
    return None


def check_named_keyring(command: str, profile: str) -> None:
    """Refuse (exit 2) to read or replace the profile's key in another keyring
    than the one its credential_process serves it from: the aws CLI would go
    on reading the old one."""
    named = named_keyring(command)
    if named is None:
        return
    current = os.environ.get(ENV_VAR, "").strip()
    sealed = sealed_keyring_path(current)
    if sealed is not None:
        current = f"{ENCRYPTED}:{sealed}"
    if current != named:
        raise BadInput(
            f"Profile {profile!r} keeps its key in the keyring {named} (its credential_process "
            f"says --keyring {named}), but this run uses "
            f"{current or 'the OS keyring'}. Nothing was changed.",
            hint=f"Run again with {ENV_VAR}={named}.",
        )


def serves_mfa_sessions(command: str) -> bool:
    """True for keyhygiene's `credential_process` serving MFA sessions."""
    try:
        return is_keyhygiene_process(command) and MFA_SESSION_FLAG in shlex.split(command)
    except ValueError:
        return False


def credential_process_command(profile: str, *, mfa_session: bool = False) -> str:
    """`<absolute keyhygiene> credential-process --profile NAME [--mfa-session]`,
    quoted for botocore (which splits it as a POSIX shell would)."""
    beside = Path(sys.executable).parent / "keyhygiene"
    if beside.is_file() and os.access(beside, os.X_OK):
        program = [str(beside.absolute())]
    elif found := shutil.which("keyhygiene"):
        program = [str(Path(found).absolute())]
    else:
        program = [str(Path(sys.executable).absolute()), "-m", "keyhygiene"]
    flags = [MFA_SESSION_FLAG] if mfa_session else []
    sealed = sealed_keyring_path(os.environ.get(ENV_VAR, ""))
    if sealed is not None:
        # The AWS CLI that runs the command has its own environment: the
        # command names the sealed file it reads, by its absolute path.
        flags += [KEYRING_FLAG, f"{ENCRYPTED}:{sealed}"]
    return shlex.join([*program, "credential-process", "--profile", profile, *flags])


# --------------------------------------------------------------------------- entries


def store_key(profile: str, access_key_id: str, secret: Secret) -> None:
    """Keep the profile's key in the keyring, replacing what was there."""
    backend = keyring_backend()
    with _keyring_errors(backend, f"storing the key of profile {profile!r}"):
        # Built inline: no local variable of this frame holds the secret.
        backend.set_password(
            SERVICE_NAME,
            profile,
            json.dumps({"AccessKeyId": access_key_id, "SecretAccessKey": secret.reveal()}),
        )


def load_key(profile: str) -> StoredKey | None:
    """The profile's key from the keyring, or None when there is none."""
    backend = keyring_backend()
    with _keyring_errors(backend, f"reading the key of profile {profile!r}"):
        entry = _sealed(backend.get_password(SERVICE_NAME, profile))
    return None if entry is None else _parse_entry(profile, entry)


def _sealed(value: str | None) -> Secret | None:
    return Secret(value) if value else None


def _parse_entry(profile: str, entry: Secret) -> StoredKey:
    data: Any = None
    try:
        data = json.loads(entry.reveal())
        return StoredKey(str(data["AccessKeyId"]), Secret(str(data["SecretAccessKey"])))
    except (ValueError, KeyError, TypeError):
        data = None  # a traceback's locals must not show the entry
        raise VaultError(
            f"The keyring entry {SERVICE_NAME}/{profile} is damaged (not the JSON keyhygiene writes).",
            hint="Rotate the key again with --store file, or delete the entry.",
        ) from None


def delete_key(profile: str) -> bool:
    """Remove the profile's entry; False when there was none."""
    backend = keyring_backend()
    if load_key(profile) is None:
        return False
    with _keyring_errors(backend, f"deleting the key of profile {profile!r}"):
        backend.delete_password(SERVICE_NAME, profile)
    return True


# --------------------------------------------------------------------------- MFA sessions

# The session sits beside the key, in an entry of its own: the key's entry
# stays exactly what rotation wrote.
_SESSION_SUFFIX = "#mfa-session"


def store_session(
    profile: str, access_key_id: str, secret: Secret, token: Secret, expiration: datetime
) -> None:
    backend = keyring_backend()
    with _keyring_errors(backend, f"storing the MFA session of profile {profile!r}"):
        backend.set_password(
            SERVICE_NAME,
            profile + _SESSION_SUFFIX,
            json.dumps(
                {
                    "AccessKeyId": access_key_id,
                    "SecretAccessKey": secret.reveal(),
                    "SessionToken": token.reveal(),
                    "Expiration": expiration.astimezone(timezone.utc).isoformat(),
                }
            ),
        )


def load_session(profile: str) -> StoredSession | None:
    """The profile's cached MFA session, or None (none, or not one keyhygiene wrote)."""
    backend = keyring_backend()
    with _keyring_errors(backend, f"reading the MFA session of profile {profile!r}"):
        entry = _sealed(backend.get_password(SERVICE_NAME, profile + _SESSION_SUFFIX))
    if entry is None:
        return None
    data: Any = None
    try:
        data = json.loads(entry.reveal())
        expiration = datetime.fromisoformat(str(data["Expiration"]))
        if expiration.tzinfo is None:
            expiration = expiration.replace(tzinfo=timezone.utc)
        return StoredSession(
            str(data["AccessKeyId"]),
            Secret(str(data["SecretAccessKey"])),
            Secret(str(data["SessionToken"])),
            expiration,
        )
    except (ValueError, KeyError, TypeError):
        data = None  # a traceback's locals must not show the entry
        return None  # a damaged cache is no cache: a new session replaces it


def delete_session(profile: str) -> bool:
    backend = keyring_backend()
    from keyring.errors import PasswordDeleteError

    with _keyring_errors(backend, f"deleting the MFA session of profile {profile!r}"):
        try:
            backend.delete_password(SERVICE_NAME, profile + _SESSION_SUFFIX)
        except PasswordDeleteError:
            return False
    return True


@contextlib.contextmanager
def _keyring_errors(backend: Any, doing: str) -> Iterator[None]:
    """Keyring errors become VaultError. Only the error's class goes into the
    message: a backend's text could quote what it was given."""
    from keyring.errors import KeyringError, KeyringLocked, NoKeyringError

    try:
        yield
    except KeyringLocked:
        raise VaultError(
            f"The keyring is locked while {doing}.", hint="Unlock it (log in again) and retry."
        ) from None
    except NoKeyringError:
        raise KeyringUnavailable(f"No usable OS keyring while {doing}.") from None
    except KeyringError as exc:
        raise VaultError(
            f"The keyring ({backend}) refused while {doing} ({type(exc).__name__})."
        ) from None
