"""The encrypted keyring's seal: scrypt + AES-256-GCM, a passphrase from the
environment or the terminal, and every damage refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from keyhygiene.core.errors import BadInput
from keyhygiene.local import sealed_file, vault
from keyhygiene.local.vault import Secret


@pytest.fixture(autouse=True)
def sealed_keyring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "keyring.sealed"
    monkeypatch.setenv(vault.ENV_VAR, f"encrypted:{path}")
    monkeypatch.setenv(sealed_file.PASSPHRASE_VAR, "a long passphrase")
    sealed_file.forget_keys()
    yield path
    sealed_file.forget_keys()


def test_a_key_round_trips_and_the_file_holds_no_secret(sealed_keyring: Path) -> None:
    vault.store_key("laptop", "AKIAEXAMPLEEXAMPLE00", Secret("s3cr3t" * 7))
    assert vault.load_key("laptop").secret.reveal() == "s3cr3t" * 7  # type: ignore[union-attr]
    text = sealed_keyring.read_text()
    assert "s3cr3t" not in text and "AKIAEXAMPLE" not in text and "laptop" not in text
    assert json.loads(text)["format"] == sealed_file.FORMAT
    # Safe enough for the only key: no --insecure-keyring needed.
    assert vault.unsafe_reason(vault.keyring_backend()) == ""
    assert vault.check_safe_for_the_only_key() is not None


def test_a_wrong_passphrase_or_a_changed_byte_is_refused(
    sealed_keyring: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault.store_key("laptop", "AKIAEXAMPLEEXAMPLE00", Secret("x" * 40))
    sealed_file.forget_keys()
    monkeypatch.setenv(sealed_file.PASSPHRASE_VAR, "another passphrase")
    with pytest.raises(sealed_file.SealError, match="does not open with this passphrase"):
        vault.load_key("laptop")
    monkeypatch.setenv(sealed_file.PASSPHRASE_VAR, "a long passphrase")
    sealed_file.forget_keys()
    document = json.loads(sealed_keyring.read_text())
    cipher = bytearray(document["ciphertext"].encode())
    cipher[10] = ord("A") if cipher[10] != ord("A") else ord("B")
    document["ciphertext"] = cipher.decode()
    sealed_keyring.write_text(json.dumps(document))
    with pytest.raises(sealed_file.SealError):
        vault.load_key("laptop")
    sealed_keyring.write_text("{}")
    with pytest.raises(sealed_file.SealError, match="not a keyhygiene encrypted keyring"):
        vault.load_key("laptop")


def test_without_a_passphrase_or_a_terminal_it_says_what_to_set(sealed_keyring: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != sealed_file.PASSPHRASE_VAR}
    code = (
        "from keyhygiene.local import vault\n"
        "from keyhygiene.local.vault import Secret\n"
        "try:\n"
        "    vault.store_key('laptop', 'AKIAEXAMPLEEXAMPLE00', Secret('x' * 40))\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # no controlling terminal, as under cron
    )
    assert "NoPassphrase" in result.stdout and sealed_file.PASSPHRASE_VAR in result.stdout
    assert not sealed_keyring.exists()


def test_a_profile_served_from_a_sealed_file_is_read_only_with_that_keyring(
    sealed_keyring: Path, monkeypatch: pytest.MonkeyPatch, isolated_aws: Path
) -> None:
    """credential_process names the sealed file; a run on another keyring would
    read or replace the wrong key, so it is refused with the variable to set."""
    from keyhygiene.local import credentials_file
    from keyhygiene.local.key_location import KeyLocation, held_key

    vault.store_key("laptop", "AKIAEXAMPLEEXAMPLE00", Secret("x" * 40))
    command = vault.credential_process_command("laptop")
    assert f"--keyring encrypted:{sealed_keyring}" in command
    credentials_file.set_config_values(
        credentials_file.config_path(), "laptop", {"credential_process": command}
    )
    location = KeyLocation.for_profile("laptop")
    held = held_key(location)
    assert held is not None and held.store == "keyring"
    monkeypatch.setenv(vault.ENV_VAR, "memory")
    with pytest.raises(BadInput, match=f"KEYHYGIENE_KEYRING=encrypted:{sealed_keyring}"):
        held_key(location)


def test_a_relative_sealed_path_is_the_same_keyring_everywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`encrypted:keyring.sealed` run from its folder names the same file as the
    absolute path written into credential_process: not another keyring."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(vault.ENV_VAR, "encrypted:keyring.sealed")
    command = vault.credential_process_command("laptop")
    assert f"--keyring encrypted:{tmp_path / 'keyring.sealed'}" in command
    vault.check_named_keyring(command, "laptop")  # the same keyring: no refusal
    assert vault.keyring_backend().path == tmp_path / "keyring.sealed"
