"""A passphrase-sealed file: the encrypted keyring of headless machines.

A computer without an OS keyring (a headless Linux box: no Secret Service)
can still keep its key out of plain text: `KEYHYGIENE_KEYRING=encrypted`
keeps the keyring's entries in one file sealed with a passphrase, as
aws-vault's `file` backend does. The passphrase comes from
$KEYHYGIENE_VAULT_PASSPHRASE, else it is asked on the terminal (/dev/tty,
which credential_process can reach: botocore pipes its stdout and stderr
only).

The seal: scrypt (RFC 7914; n=2^15, r=8, p=1, a fresh 16-byte salt per
file) derives a 256-bit key; AES-256-GCM (NIST SP 800-38D; a fresh 12-byte
nonce per write) encrypts and authenticates the entries, so a wrong
passphrase or a changed byte is refused, never read as garbage.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from typing import Any

from keyhygiene.core.errors import BadInput, KeyHygieneError

PASSPHRASE_VAR = "KEYHYGIENE_VAULT_PASSPHRASE"
FORMAT = "keyhygiene-sealed-1"
_SCRYPT = {"n": 2**15, "r": 8, "p": 1}
# The format name is authenticated with the entries: a file of another format
# (or version) cannot be passed off as this one.
_AAD = FORMAT.encode()

_KEYS: dict[tuple[str, bytes], bytes] = {}
_KEYS_LOCK = threading.Lock()


class SealError(KeyHygieneError):
    """The sealed file cannot be opened: wrong passphrase, damaged, or no passphrase."""


class NoPassphrase(BadInput):
    """No passphrase in the environment and no terminal to ask it on."""


def _aesgcm(key: bytes) -> Any:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:
        raise SealError(
            "The encrypted keyring needs the `cryptography` package, which is not installed.",
            hint="pip install cryptography (it comes with keyring's Secret Service support on "
            "Linux), or use the OS keyring.",
        ) from None
    return AESGCM(key)


def derive_key(passphrase: str, salt: bytes) -> bytes:
    return hashlib.scrypt(
        passphrase.encode("utf-8"), salt=salt, dklen=32, maxmem=64 * 1024 * 1024, **_SCRYPT
    )


def seal(entries: dict[str, str], key: bytes, salt: bytes) -> bytes:
    nonce = os.urandom(12)
    ciphertext = _aesgcm(key).encrypt(nonce, json.dumps(entries).encode("utf-8"), _AAD)
    document = {
        "format": FORMAT,
        "kdf": {"name": "scrypt", **_SCRYPT, "salt": base64.b64encode(salt).decode()},
        "nonce": base64.b64encode(nonce).decode(),
        "ciphertext": base64.b64encode(ciphertext).decode(),
    }
    return json.dumps(document, indent=1).encode("utf-8")


def salt_of(blob: bytes, shown: str) -> bytes:
    return base64.b64decode(_document(blob, shown)["kdf"]["salt"])


def unseal(blob: bytes, key: bytes, shown: str) -> dict[str, str]:
    from cryptography.exceptions import InvalidTag

    document = _document(blob, shown)
    try:
        plain = _aesgcm(key).decrypt(
            base64.b64decode(document["nonce"]), base64.b64decode(document["ciphertext"]), _AAD
        )
    except InvalidTag:
        raise SealError(
            f"The encrypted keyring {shown} does not open with this passphrase (or was changed).",
            hint=f"Check ${PASSPHRASE_VAR} or the passphrase you typed.",
        ) from None
    entries = json.loads(plain)
    return entries if isinstance(entries, dict) else {}


def _document(blob: bytes, shown: str) -> dict[str, Any]:
    try:
        document = json.loads(blob)
        if document.get("format") != FORMAT:
            raise ValueError
        return dict(document)
    except (ValueError, AttributeError):
        raise SealError(f"{shown} is not a keyhygiene encrypted keyring.") from None


def file_key(path: str, salt: bytes, *, confirm: bool) -> bytes:
    """The key of the sealed file at `path`, from the passphrase (asked once per process)."""
    with _KEYS_LOCK:
        cached = _KEYS.get((path, salt))
        if cached is not None:
            return cached
        key = derive_key(passphrase(path, confirm=confirm), salt)
        _KEYS[(path, salt)] = key
        return key


def forget_keys() -> None:
    with _KEYS_LOCK:
        _KEYS.clear()


def passphrase(path: str, *, confirm: bool = False) -> str:
    """$KEYHYGIENE_VAULT_PASSPHRASE, else asked on /dev/tty (twice for a new file)."""
    given = os.environ.get(PASSPHRASE_VAR)
    if given:
        return given
    try:
        # getpass opens /dev/tty itself, but falls back to stdin (with a
        # warning) without one: stdin may be the AWS CLI's, so check first.
        os.close(os.open("/dev/tty", os.O_RDWR))
    except OSError:
        raise NoPassphrase(
            f"The encrypted keyring {path} needs its passphrase, and there is no terminal "
            "to ask it on.",
            hint=f"Set {PASSPHRASE_VAR} in the environment of the command (and of the aws "
            "CLI that runs credential_process).",
        ) from None
    import getpass

    first = getpass.getpass(f"Passphrase of the keyhygiene keyring {path}: ")
    if confirm:
        again = getpass.getpass("The same passphrase again: ")
        if again != first:
            raise BadInput("The two passphrases differ; nothing was written.")
    if not first:
        raise BadInput("An empty passphrase would seal nothing; nothing was written.")
    return first
