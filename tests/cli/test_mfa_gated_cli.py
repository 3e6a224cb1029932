"""MFA-gated computers from the command line, against a moto server: `enroll --mfa`
in a real terminal (a pty: the QR code and the secret go to /dev/tty only), the
refusal without one, and `rotate` with one code."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from typing import Any

import pytest
from helpers import ROOT
from helpers import moto_client as admin_client

from keyhygiene.core.mfa_devices import MFA_GROUP, totp
from keyhygiene.local import credentials_file

REGION = "us-east-1"
SERIAL = "arn:aws:iam::123456789012:mfa/alice-laptop"
ENROLL = ("enroll", "--person", "alice", "--device", "laptop", "--group", "admins", "--yes")


@pytest.fixture
def account(moto_endpoint: str, isolated_aws: Any) -> str:
    """An admin profile and a group `admins` allowed everything."""
    iam = admin_client(moto_endpoint, "iam")
    iam.create_user(UserName="admin")
    key = iam.create_access_key(UserName="admin")["AccessKey"]
    credentials_file.set_access_key(
        credentials_file.credentials_path(), "admin", key["AccessKeyId"], key["SecretAccessKey"]
    )
    credentials_file.set_config_values(credentials_file.config_path(), "admin", {"region": REGION})
    iam.create_group(GroupName="admins")
    iam.put_group_policy(
        GroupName="admins",
        PolicyName="all",
        PolicyDocument='{"Version": "2012-10-17", "Statement": '
        '[{"Effect": "Allow", "Action": "*", "Resource": "*"}]}',
    )
    return moto_endpoint


def argv(endpoint: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "keyhygiene", *args, "--endpoint-url", endpoint]


def test_without_a_terminal_an_mfa_enrollment_is_refused_before_aws(account: str) -> None:
    done = subprocess.run(
        argv(account, *ENROLL, "--admin-profile", "admin"),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        cwd=ROOT,
        start_new_session=True,  # no controlling terminal, as under cron
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "MFA-gated" in done.stderr and "--no-mfa" in done.stderr
    users = [u["UserName"] for u in admin_client(account, "iam").list_users()["Users"]]
    assert users == ["admin"]


def test_enroll_in_a_terminal_shows_the_device_once_and_confirms_it(account: str) -> None:
    pid, fd = pty.fork()
    if pid == 0:  # the child: the pty is its controlling terminal
        os.chdir(ROOT)
        os.execv(sys.executable, argv(account, *ENROLL, "--admin-profile", "admin"))
    seen = ""
    try:
        seen = _read_until(fd, "Code your app shows now: ")
        match = re.search(r"Or type this secret into the app: ([A-Z2-7 ]+)", seen)
        assert match, seen
        seed = match.group(1).replace(" ", "")
        assert "▀" in seen or "▄" in seen  # the QR code
        now = time.time()
        os.write(fd, (totp(seed, now) + "\n").encode())
        seen += _read_until(fd, "Next code: ")
        os.write(fd, (totp(seed, now + 30) + "\n").encode())
        seen += _read_until(fd, "This computer is registered", timeout=90)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, seen
    # Its secret was cleared from the screen and scrollback once read.
    assert "\x1b[3J" in seen.split(seed[:4])[-1]
    iam = admin_client(account, "iam")
    devices = iam.list_mfa_devices(UserName="alice-laptop")["MFADevices"]
    assert [d["SerialNumber"] for d in devices] == [SERIAL]
    groups = {g["GroupName"] for g in iam.list_groups_for_user(UserName="alice-laptop")["Groups"]}
    assert {MFA_GROUP, "admins"} <= groups
    config = credentials_file.read_profile(
        credentials_file.config_path(), "alice-laptop", config_style=True
    )
    assert config["mfa_serial"] == SERIAL
    # The secret went to the terminal only: no file holds it.
    for path in (credentials_file.credentials_path(), credentials_file.config_path()):
        assert seed not in path.read_text()

    # Then the computer rotates its own key, in an MFA session made with one code.
    old = credentials_file.read_profile(credentials_file.credentials_path(), "alice-laptop")
    rotated = subprocess.run(
        argv(account, "rotate", "--profile", "alice-laptop", "--yes", "--verify-interval", "0"),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "KEYHYGIENE_MFA_CODE": totp(seed)},
    )
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    new = credentials_file.read_profile(credentials_file.credentials_path(), "alice-laptop")
    assert new["aws_access_key_id"] != old["aws_access_key_id"]
    keys = iam.list_access_keys(UserName="alice-laptop")["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in keys] == [new["aws_access_key_id"]]


def test_a_scheduled_rotation_that_needs_a_code_leaves_a_notice(account: str) -> None:
    iam = admin_client(account, "iam")
    iam.create_user(UserName="alice-laptop")
    key = iam.create_access_key(UserName="alice-laptop")["AccessKey"]
    credentials_file.set_access_key(
        credentials_file.credentials_path(),
        "alice-laptop",
        key["AccessKeyId"],
        key["SecretAccessKey"],
    )
    credentials_file.set_config_values(
        credentials_file.config_path(),
        "alice-laptop",
        {"region": REGION, "mfa_serial": SERIAL},
    )
    scheduled = subprocess.run(
        argv(account, "rotate", "--profile", "alice-laptop", "--yes", "--scheduled"),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        cwd=ROOT,
        start_new_session=True,
    )
    assert scheduled.returncode != 0
    assert "requires MFA" in scheduled.stderr
    status = subprocess.run(
        argv(account, "schedule", "status"), capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert "Notice:" in status.stdout and "did not run" in status.stdout
    assert "requires MFA" in status.stdout
    assert [
        k["AccessKeyId"] for k in iam.list_access_keys(UserName="alice-laptop")["AccessKeyMetadata"]
    ] == [key["AccessKeyId"]]


def _read_until(fd: int, marker: str, timeout: float = 60) -> str:
    text = _read(fd, marker, timeout)
    if marker not in text:
        raise AssertionError(f"no {marker!r} in:\n{text}")
    return text


def _read(fd: int, marker: str | None, timeout: float) -> str:
    """What the terminal shows until `marker` (None: until the program ends)."""
    text = ""
    end = time.monotonic() + timeout
    while marker is None or marker not in text:
        left = end - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        text += chunk.decode("utf-8", "replace")
    return text


AWS_CLI = os.path.join(os.path.dirname(sys.executable), "aws")


def _in_terminal(command: list[str], env: dict[str, str]) -> tuple[int, int]:
    """(pid, fd) of `command` run with a pty as its controlling terminal."""
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(ROOT)
        os.execve(command[0], command, env)
    return pid, fd


def _finish(pid: int, fd: int) -> tuple[int, str]:
    """The exit code and the rest of what the terminal showed."""
    rest = _read(fd, None, timeout=120)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), rest


def test_a_strict_computer_serves_the_aws_cli_mfa_sessions(account: str, tmp_path: Any) -> None:
    """`enroll --mfa-strict`: the key goes to the keyring only, and the real AWS
    CLI gets an MFA session through credential-process: one code asked on the
    terminal, then the cached session without asking."""
    env = {
        **os.environ,
        "KEYHYGIENE_KEYRING": f"file:{tmp_path / 'keyring.json'}",
        "KEYHYGIENE_INSECURE_KEYRING": "1",
        "AWS_ENDPOINT_URL": account,
    }
    pid, fd = _in_terminal(argv(account, *ENROLL, "--mfa-strict", "--admin-profile", "admin"), env)
    seen = ""
    try:
        seen = _read_until(fd, "Code your app shows now: ")
        match = re.search(r"Or type this secret into the app: ([A-Z2-7 ]+)", seen)
        assert match, seen
        seed = match.group(1).replace(" ", "")
        now = time.time()
        os.write(fd, (totp(seed, now) + "\n").encode())
        seen += _read_until(fd, "Next code: ")
        os.write(fd, (totp(seed, now + 30) + "\n").encode())
        seen += _read_until(fd, "This computer is registered", timeout=90)
    finally:
        code, rest = _finish(pid, fd)
    assert code == 0, seen + rest
    assert "MFA sessions" in seen + rest
    # No plaintext key: the credentials file has no profile for it.
    assert credentials_file.read_profile(credentials_file.credentials_path(), "alice-laptop") == {}
    iam = admin_client(account, "iam")
    groups = {g["GroupName"] for g in iam.list_groups_for_user(UserName="alice-laptop")["Groups"]}
    assert {MFA_GROUP, "keyhygiene-mfa-strict", "admins"} <= groups

    # The AWS CLI, in a terminal: credential-process asks for one code there.
    clean = {
        k: v for k, v in env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    }
    whoami = [
        AWS_CLI,
        "sts",
        "get-caller-identity",
        "--profile",
        "alice-laptop",
        "--output",
        "json",
    ]
    time.sleep(max(0.0, 31 - (time.time() - now)))  # the enrolment's codes are spent
    pid, fd = _in_terminal(whoami, clean)
    try:
        seen = _read_until(fd, "MFA code for profile alice-laptop")
        os.write(fd, (totp(seed) + "\n").encode())
    finally:
        code, rest = _finish(pid, fd)
    assert code == 0, seen + rest
    assert '"Account": "123456789012"' in rest

    # Again without any terminal (as from cron or an IDE): the cached session.
    again = subprocess.run(
        whoami,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=clean,
        timeout=60,
        start_new_session=True,
    )
    assert again.returncode == 0, again.stderr
    assert "MFA code" not in again.stderr
    # The session's secrets never reached a file in the clear.
    keyring = (tmp_path / "keyring.json").read_text()
    assert "alice-laptop#mfa-session" in keyring
    for path in (credentials_file.credentials_path(), credentials_file.config_path()):
        assert "SessionToken" not in path.read_text() and seed not in path.read_text()


def test_an_admin_role_profile_with_mfa_runs_headless_with_mfa_code(account: str) -> None:
    """botocore's own AssumeRole prompt would end in EOFError under cron: the code
    comes from --mfa-code, or $KEYHYGIENE_MFA_CODE, and without one the message
    says how to give it (exit 2)."""
    iam = admin_client(account, "iam")
    iam.create_role(RoleName="admin-role", AssumeRolePolicyDocument="{}")
    credentials_file.set_config_values(
        credentials_file.config_path(),
        "admin-role",
        {
            "role_arn": "arn:aws:iam::123456789012:role/admin-role",
            "source_profile": "admin",
            "mfa_serial": "arn:aws:iam::123456789012:mfa/admin",
            "region": REGION,
        },
    )

    def inventory(*extra: str, env: dict[str, str] | None = None) -> Any:
        return subprocess.run(
            argv(account, "inventory", "--json", "--profile", "admin-role", *extra),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
            cwd=ROOT,
            env={**os.environ, "AWS_ACCESS_KEY_ID": "", **(env or {})},
            start_new_session=True,
        )

    given = inventory("--mfa-code", "123456")
    assert given.returncode == 0, given.stdout + given.stderr
    assert '"caller_arn": "arn:aws:sts::123456789012:assumed-role/admin-role/' in given.stdout
    from_env = inventory(env={"KEYHYGIENE_MFA_CODE": "654321"})
    assert from_env.returncode == 0, from_env.stderr
    missing = inventory()
    assert missing.returncode == 2, missing.stdout + missing.stderr
    assert "--mfa-code" in missing.stderr and "EOFError" not in missing.stderr
