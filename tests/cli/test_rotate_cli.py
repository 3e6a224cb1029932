"""`keyhygiene rotate` and `keyhygiene credential-process` against a moto server, as a user runs them."""

from __future__ import annotations

import fcntl
import json
import os
import stat
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from helpers import ROOT

from keyhygiene.aws.held_key_clients import HeldKeyClients
from keyhygiene.aws.sessions import shared_loader
from keyhygiene.cli import main as cli
from keyhygiene.local import credentials_file, vault
from keyhygiene.local.state_dir import state_dir
from keyhygiene.workflows import rotation

USER = "christopher-laptop"
PROFILE = "laptop"
AWS_CLI = Path(sys.executable).parent / "aws"


@dataclass
class Computer:
    endpoint: str
    iam: Any
    credentials: Path
    config: Path
    old_key_id: str
    old_secret: str
    before: bytes

    def keys(self) -> dict[str, str]:
        listed = self.iam.list_access_keys(UserName=USER)["AccessKeyMetadata"]
        return {key["AccessKeyId"]: key["Status"] for key in listed}

    def held(self) -> tuple[str, str]:
        values = credentials_file.read_profile(self.credentials, PROFILE)
        return values.get("aws_access_key_id", ""), values.get("aws_secret_access_key", "")


def admin_client(
    endpoint: str, service: str, key_id: str = "testing", secret: str = "testing"
) -> Any:
    session = botocore.session.get_session()
    session.register_component("data_loader", shared_loader())
    return session.create_client(
        service,
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
    )


@pytest.fixture
def computer(moto_endpoint: str, isolated_aws: Path) -> Computer:
    iam = admin_client(moto_endpoint, "iam")
    iam.create_user(UserName=USER)
    key = iam.create_access_key(UserName=USER)["AccessKey"]
    credentials = isolated_aws / ".aws" / "credentials"
    config = isolated_aws / ".aws" / "config"
    text = (
        "# keys of this computer\n"
        "[default]\n"
        "region = us-east-1\n"
        "\n"
        f"[{PROFILE}]\n"
        f"aws_access_key_id = {key['AccessKeyId']}\n"
        f"aws_secret_access_key = {key['SecretAccessKey']}\n"
        "aws_session_token = stale-token-from-long-ago\n"
        "\n"
        "[other] ; another account\n"
        "aws_access_key_id = AKIAOTHEROTHEROTHER0\n"
        "aws_secret_access_key = other-secret\n"
    )
    credentials.write_text(text)
    os.chmod(credentials, 0o600)
    config.write_text(f"[profile {PROFILE}]\nregion = us-east-1\n")
    return Computer(
        moto_endpoint,
        iam,
        credentials,
        config,
        key["AccessKeyId"],
        key["SecretAccessKey"],
        text.encode(),
    )


def keyhygiene(
    computer: Computer, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`keyhygiene ARGS --endpoint-url URL` in a child process, stdin not a terminal."""
    return subprocess.run(
        [sys.executable, "-m", "keyhygiene", *args, "--endpoint-url", computer.endpoint],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        timeout=120,
        cwd=ROOT,
    )


def rotate(computer: Computer, *args: str, env: dict[str, str] | None = None) -> Any:
    return keyhygiene(
        computer, "rotate", "--profile", PROFILE, "--verify-interval", "0", *args, env=env
    )


def aws_whoami(computer: Computer, env: dict[str, str] | None = None) -> dict[str, Any]:
    """The real AWS CLI reading the rotated profile."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ACCESS_KEY")}
    clean.pop("AWS_SECRET_ACCESS_KEY", None)
    result = subprocess.run(
        [
            str(AWS_CLI),
            "sts",
            "get-caller-identity",
            "--profile",
            PROFILE,
            "--endpoint-url",
            computer.endpoint,
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        env={**clean, "AWS_DEFAULT_REGION": "us-east-1", **(env or {})},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def assert_secrets_hidden(computer: Computer, *outputs: str) -> None:
    secrets = [computer.old_secret]
    new_secret = computer.held()[1]
    if new_secret:
        secrets.append(new_secret)
    journals = "".join(path.read_text() for path in state_dir().rglob("*.json"))
    for secret in secrets:
        for text in (*outputs, journals):
            assert secret not in text


def assert_one_working_key(computer: Computer, *, aws_cli: bool = False) -> str:
    """One key on the user, active, in the file, signing as the user (asked
    through the real `aws` CLI when `aws_cli`: it takes a second to start)."""
    keys = computer.keys()
    key_id, secret = computer.held()
    assert keys == {key_id: "Active"}
    if aws_cli:
        arn = aws_whoami(computer)["Arn"]
    else:
        sts = admin_client(computer.endpoint, "sts", key_id, secret)
        arn = sts.get_caller_identity()["Arn"]
    assert arn.endswith(f":user/{USER}")
    return key_id


# --------------------------------------------------------------------------- done when


def test_rotate_yes_leaves_one_key_in_an_otherwise_identical_file(computer: Computer) -> None:
    result = rotate(computer, "--yes")
    assert result.returncode == 0, result.stdout + result.stderr

    new_id = assert_one_working_key(computer, aws_cli=True)
    assert new_id != computer.old_key_id
    new_secret = computer.held()[1]
    # Only the key lines changed, and the stale session token went.
    expected = (
        computer.before.replace(computer.old_key_id.encode(), new_id.encode())
        .replace(computer.old_secret.encode(), new_secret.encode())
        .replace(b"aws_session_token = stale-token-from-long-ago\n", b"")
    )
    assert computer.credentials.read_bytes() == expected
    assert stat.S_IMODE(computer.credentials.stat().st_mode) == 0o600
    assert f"Rotated: profile {PROFILE} now holds the new key …{new_id[-4:]}" in result.stdout
    assert f"AWS says this computer is arn:aws:iam::123456789012:user/{USER}" in result.stdout
    assert "[6/6] Delete the old key" in result.stdout
    assert_secrets_hidden(computer, result.stdout, result.stderr)


def test_without_yes_and_without_a_terminal_only_the_plan_shows(computer: Computer) -> None:
    result = rotate(computer)
    # Not 0: a cron job that forgot --yes must not pass for one that rotated.
    assert result.returncode == 5, result.stderr
    assert "Plan (rotate): Rotate the access key of christopher-laptop" in result.stdout
    assert "Nothing was changed: pass --yes" in result.stdout
    dry = rotate(computer, "--dry-run", "--json")
    assert dry.returncode == 0 and json.loads(dry.stdout)["kind"] == "rotate"
    assert computer.credentials.read_bytes() == computer.before
    assert computer.keys() == {computer.old_key_id: "Active"}
    assert not list(state_dir().rglob("*.json"))


def test_a_file_botocore_cannot_parse_is_refused_untouched(computer: Computer) -> None:
    broken = computer.before + b"aws_access_key_id = AKIADUPLICATEDUPLICA\n"
    computer.credentials.write_bytes(broken)
    result = rotate(computer, "--yes")
    assert result.returncode == 2
    assert "duplicate key 'aws_access_key_id' in [other]" in result.stderr
    assert "nothing" in result.stderr.lower() or "will not edit it" in result.stderr
    assert computer.credentials.read_bytes() == broken
    assert computer.keys() == {computer.old_key_id: "Active"}


def test_a_second_active_key_stops_the_rotation_unless_deleted(computer: Computer) -> None:
    other = computer.iam.create_access_key(UserName=USER)["AccessKey"]["AccessKeyId"]
    refused = rotate(computer, "--yes")
    assert refused.returncode == 2
    assert f"second active access key, {other}" in refused.stderr
    assert "--delete-other" in refused.stderr
    assert computer.keys() == {computer.old_key_id: "Active", other: "Active"}

    done = rotate(computer, "--yes", "--delete-other")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        "Warning: The other key" in done.stdout
        or f"Delete {USER}'s other access key" in done.stdout
    )
    assert other not in computer.keys()  # noqa: SIM118
    assert_one_working_key(computer)


# --------------------------------------------------------------------------- the keyring


def test_keyring_store_serves_the_aws_cli_through_credential_process(
    computer: Computer, tmp_path: Path
) -> None:
    env = {vault.ENV_VAR: f"file:{tmp_path / 'keyring.json'}"}
    result = rotate(computer, "--yes", "--store", "keyring", "--insecure-keyring", env=env)
    assert result.returncode == 0, result.stdout + result.stderr

    text = computer.credentials.read_text()
    assert computer.old_secret not in text
    assert "aws_secret_access_key = other-secret" in text  # other profiles untouched
    assert computer.held() == ("", "")
    config = credentials_file.read_profile(computer.config, PROFILE, config_style=True)
    assert config["credential_process"].endswith(f"credential-process --profile {PROFILE}")
    assert Path(config["credential_process"].split()[0]).is_absolute()

    printed = keyhygiene(computer, "credential-process", "--profile", PROFILE, env=env)
    assert printed.returncode == 0, printed.stderr
    document = json.loads(printed.stdout)
    assert set(document) == {"Version", "AccessKeyId", "SecretAccessKey"}
    assert document["Version"] == 1
    assert printed.stdout == json.dumps(document) + "\n"  # nothing else on stdout
    assert computer.keys() == {document["AccessKeyId"]: "Active"}
    assert aws_whoami(computer, env)["Arn"].endswith(f":user/{USER}")
    for output in (result.stdout, result.stderr):
        assert document["SecretAccessKey"] not in output and computer.old_secret not in output


def test_no_usable_keyring_keeps_the_file(computer: Computer) -> None:
    env = {
        vault.ENV_VAR: "",
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
    }
    result = rotate(computer, "--yes", "--store", "keyring", "--insecure-keyring", env=env)
    assert result.returncode == 2
    assert "No usable OS keyring on this computer" in result.stderr
    assert "The key stays in the credentials file; nothing was changed." in result.stderr
    assert computer.credentials.read_bytes() == computer.before
    assert computer.keys() == {computer.old_key_id: "Active"}


def test_credential_process_prints_only_into_a_pipe(
    computer: Computer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keyring_file = tmp_path / "keyring.json"
    monkeypatch.setenv(vault.ENV_VAR, f"file:{keyring_file}")
    vault.store_key(PROFILE, computer.old_key_id, vault.Secret(computer.old_secret))
    command = [sys.executable, "-m", "keyhygiene", "credential-process", "--profile", PROFILE]

    # `keyhygiene credential-process > creds.json` would copy the key into a plain file.
    target = tmp_path / "creds.json"
    with target.open("w") as handle:
        into_file = subprocess.run(
            command, stdout=handle, stderr=subprocess.PIPE, text=True, timeout=60, cwd=ROOT
        )
    assert into_file.returncode == 2
    assert target.read_text() == ""
    assert "will not print it to a terminal or into a file" in into_file.stderr
    assert computer.old_secret not in into_file.stderr

    # A pipe, as botocore runs it: the JSON and nothing else.
    piped = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert piped.returncode == 0, piped.stderr
    assert json.loads(piped.stdout)["AccessKeyId"] == computer.old_key_id


def test_a_second_rotation_at_the_same_time_is_refused(computer: Computer) -> None:
    with rotation.rotation_lock(PROFILE):
        result = rotate(computer, "--yes")
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"Another rotation of profile '{PROFILE}' is running" in result.stderr
    assert "Nothing was changed" in result.stderr
    assert computer.credentials.read_bytes() == computer.before
    assert computer.keys() == {computer.old_key_id: "Active"}
    assert not list((state_dir() / "journals").glob("*.json"))


def test_an_edit_waiting_for_the_lock_says_so_and_then_goes_on(computer: Computer) -> None:
    lock = computer.credentials.with_name(computer.credentials.name + credentials_file.LOCK_SUFFIX)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    # Another keyhygiene holds the file's lock for 3 s while this one rotates.
    release = threading.Timer(3.0, lambda: os.close(fd))
    release.start()
    try:
        result = rotate(computer, "--yes")
    finally:
        release.join()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "keyhygiene: Waiting for ~/.aws/credentials.keyhygiene.lock" in result.stderr
    assert "gives up after 30 s" in result.stderr
    assert_one_working_key(computer)


def test_credential_process_without_a_key_prints_nothing(computer: Computer) -> None:
    result = keyhygiene(computer, "credential-process", "--profile", PROFILE)
    assert result.returncode == 2 and result.stdout == ""
    assert f"No key for profile '{PROFILE}' in the keyring" in result.stderr


# --------------------------------------------------------------------------- crashes


@pytest.mark.parametrize("where", ["create", "write", "deactivate"])
def test_a_run_killed_by_sigkill_is_recovered_by_the_next_run(
    computer: Computer, where: str
) -> None:
    killed = rotate(computer, "--yes", env={rotation.CRASH_ENV: where, rotation.TESTING_ENV: "1"})
    assert killed.returncode == -9, killed.stdout + killed.stderr

    after = rotate(computer, "--yes")
    assert after.returncode == 0, after.stdout + after.stderr
    assert "An earlier rotation was interrupted" in after.stdout
    if where == "create":
        assert "Going to roll it back" in after.stdout
        assert "Deleted the key(s) the interrupted run created and never wrote" in after.stdout
        assert "Now rotating afresh." in after.stdout
    else:
        assert "Going to finish it" in after.stdout
        assert "Finished the interrupted rotation" in after.stdout
    new_id = assert_one_working_key(computer)
    assert new_id != computer.old_key_id
    assert_secrets_hidden(computer, killed.stdout, killed.stderr, after.stdout, after.stderr)


# --------------------------------------------------------------------------- exit codes


def run_main(computer: Computer, *args: str) -> int:
    return cli.main(
        ["rotate", "--profile", PROFILE, "--endpoint-url", computer.endpoint, "--yes", *args]
    )


def test_exit_1_when_the_new_key_never_verifies(
    computer: Computer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        rotation.verification, "_who_am_i", lambda clients, key: ("", "InvalidClientTokenId")
    )
    code = run_main(computer, "--verify-timeout", "0.4", "--verify-interval", "0")
    out = capsys.readouterr()
    assert code == 1, out.out + out.err
    assert "never verified" in out.out and "holds the old key" in out.out
    assert computer.credentials.read_bytes() == computer.before
    assert computer.keys() == {computer.old_key_id: "Active"}
    assert_secrets_hidden(computer, out.out, out.err)


def test_exit_3_says_what_aws_refused(
    computer: Computer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from botocore.exceptions import ClientError

    real = HeldKeyClients.client_for_key

    def denying(self: Any, service: str, key: Any) -> Any:
        client = real(self, service, key)

        def deny(**_: Any) -> None:
            error = {"Code": "AccessDenied", "Message": "not authorized"}
            raise ClientError({"Error": error}, "CreateAccessKey")

        client.meta.events.register("before-call.iam.CreateAccessKey", deny)
        return client

    monkeypatch.setattr(HeldKeyClients, "client_for_key", denying)
    code = run_main(computer, "--verify-interval", "0")
    out = capsys.readouterr()
    assert code == 3
    assert "Nothing was changed: Access denied" in out.out
    assert "lacks iam:CreateAccessKey" in out.out
    # The generic hint would send the person to --admin-profile, which rotate ignores.
    assert "use --admin-profile" not in out.out
    assert f"{USER} itself needs iam:CreateAccessKey" in out.out
    assert "keyhygiene-rotate-own-key" in out.out
    assert computer.credentials.read_bytes() == computer.before
    assert computer.keys() == {computer.old_key_id: "Active"}


# ------------------------------------------------------------- the key in use


def test_keys_in_the_environment_are_refused_with_the_reason(computer: Computer) -> None:
    """botocore signs with AWS_ACCESS_KEY_ID when no profile is given outright:
    rotating [laptop] would leave this shell on a key that is then deleted."""
    result = keyhygiene(
        computer,
        "rotate",
        "--yes",
        env={"AWS_PROFILE": PROFILE, "AWS_ACCESS_KEY_ID": computer.old_key_id},
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "AWS_ACCESS_KEY_ID" in result.stderr
    assert f"…{computer.old_key_id[-4:]}" in result.stderr
    assert "--profile" in result.stderr
    assert computer.credentials.read_bytes() == computer.before
    assert computer.keys() == {computer.old_key_id: "Active"}
    assert computer.old_secret not in result.stdout + result.stderr


def test_aws_default_profile_wins_over_aws_profile_as_in_botocore(computer: Computer) -> None:
    """AWS_DEFAULT_PROFILE names the profile botocore and the aws CLI use, even
    with AWS_PROFILE set: rotate and the inventory agree on it."""
    env = {
        "AWS_DEFAULT_PROFILE": PROFILE,
        "AWS_PROFILE": "other",
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
    }
    result = keyhygiene(computer, "rotate", "--yes", "--verify-interval", "0", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    new_key_id = assert_one_working_key(computer)
    assert new_key_id != computer.old_key_id
    other = credentials_file.read_profile(computer.credentials, "other")
    assert other["aws_access_key_id"] == "AKIAOTHEROTHEROTHER0"
    inventory = keyhygiene(computer, "inventory", "--json", env=env)
    assert inventory.returncode == 0, inventory.stderr
    assert json.loads(inventory.stdout)["this_user"] == USER


def test_a_memory_keyring_from_the_command_line_is_refused(computer: Computer) -> None:
    """It would die with the command, after the old key was deleted: the profile
    would authenticate no more. Refused; the old key still works."""
    result = rotate(computer, "--yes", "--store", "keyring", env={vault.ENV_VAR: "memory"})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "memory keyring" in result.stderr and "--insecure-keyring" in result.stderr
    assert computer.credentials.read_bytes() == computer.before
    assert_one_working_key(computer)


def test_debug_logs_botocores_steps_and_no_secret(computer: Computer) -> None:
    """--debug shows the requests (CreateAccessKey's answer included) with the
    old and the new secret masked."""
    result = rotate(computer, "--yes", "--debug")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "botocore.endpoint DEBUG" in result.stderr and "CreateAccessKey" in result.stderr
    assert "****" in result.stderr
    assert_secrets_hidden(computer, result.stdout, result.stderr)


def test_an_encrypted_keyring_serves_a_headless_computer(
    computer: Computer, tmp_path: Path
) -> None:
    """No OS keyring (headless Linux): KEYHYGIENE_KEYRING=encrypted seals the key
    with a passphrase. The file holds no secret in clear; credential_process names
    the file, so the aws CLI needs only the passphrase; a wrong one is refused."""
    sealed = tmp_path / "keyring.sealed"
    passphrase = "correct horse battery staple"
    env = {vault.ENV_VAR: f"encrypted:{sealed}", "KEYHYGIENE_VAULT_PASSPHRASE": passphrase}
    result = rotate(computer, "--yes", "--store", "keyring", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert computer.held() == ("", "")
    config = credentials_file.read_profile(computer.config, PROFILE, config_style=True)
    assert f"--keyring encrypted:{sealed}" in config["credential_process"]

    # The aws CLI's environment names no keyring, only the passphrase.
    whoami = aws_whoami(computer, {"KEYHYGIENE_VAULT_PASSPHRASE": passphrase})
    assert whoami["Arn"].endswith(f":user/{USER}")
    new_key_id = next(iter(computer.keys()))
    blob = sealed.read_text()
    assert new_key_id not in blob and passphrase not in blob
    assert oct(sealed.stat().st_mode & 0o777) == "0o600"

    wrong = keyhygiene(
        computer,
        "credential-process",
        "--profile",
        PROFILE,
        "--keyring",
        f"encrypted:{sealed}",
        env={"KEYHYGIENE_VAULT_PASSPHRASE": "not it"},
    )
    assert wrong.returncode != 0
    assert "does not open with this passphrase" in wrong.stderr
    assert_secrets_hidden(computer, result.stdout, result.stderr, wrong.stdout, wrong.stderr)
