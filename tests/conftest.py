"""Shared fixtures.

Every test runs with its own AWS files, state folder and memory keyring, so no
test can read or write the real ~/.aws or the system keyring.

Core tests use moto in-process (`mock_aws`). Command-line and TUI tests use a
moto server in a child process: entering and leaving `mock_aws()` wipes a
moto server running in the same process, so the two must not share one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from moto_server import reset_moto_server, start_moto_server, stop_moto_server

from keyhygiene.demo.server import DemoInfo, DemoProcess
from keyhygiene.local import vault


@pytest.fixture(autouse=True)
def isolated_aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / ".aws" / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / ".aws" / "config"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("KEYHYGIENE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("KEYHYGIENE_KEYRING", "memory")
    # The memory keyring lives as long as the process: empty it for each test.
    vault.reset_memory_backend()
    return home


@pytest.fixture(scope="session")
def moto_server_url() -> Iterator[str]:
    """A plain moto server in a child process, for the whole session."""
    process, url = start_moto_server()
    yield url
    stop_moto_server(process)


@pytest.fixture
def moto_endpoint(moto_server_url: str) -> str:
    """The session's moto server, emptied for this test."""
    reset_moto_server(moto_server_url)
    return moto_server_url


@pytest.fixture(scope="session")
def demo_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoInfo]:
    """The demo account (seeded moto server in a child process), shared by
    read-only tests. Tests that change the account use `fresh_demo`."""
    with DemoProcess(tmp_path_factory.mktemp("demo")) as demo:
        assert demo.info is not None
        yield demo.info


@pytest.fixture
def fresh_demo(tmp_path: Path) -> Iterator[DemoInfo]:
    with DemoProcess(tmp_path / "demo") as demo:
        assert demo.info is not None
        yield demo.info
