"""Functions shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
