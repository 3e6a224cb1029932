"""Functions shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tui.demo import DemoInfo

ROOT = Path(__file__).resolve().parents[1]


def use_demo(monkeypatch: pytest.MonkeyPatch, info: DemoInfo) -> None:
    """Point this test at a demo account, as `keyhygiene --demo` does."""
    for name, value in info.environment().items():
        if name != "KEYHYGIENE_STATE_DIR":
            monkeypatch.setenv(name, value)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`keyhygiene ARGS` in a child process, as a user would run it."""
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        cwd=ROOT,
    )


def act_as_new_admin(iam: Any, monkeypatch: pytest.MonkeyPatch, name: str = "admin") -> None:
    """Create an IAM user and make its key the one this test's boto3 calls use.

    moto's default `testing` key answers as `arn:aws:sts::…:user/moto`, which a
    bucket policy cannot name: the lock-out check refuses plans made as it.
    """
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
