"""The demo: a moto server on 127.0.0.1 seeded with the demo account, and a
sandbox folder holding its credentials and config files.

`keyhygiene demo serve` runs the server in the foreground. `keyhygiene --demo`
starts the same command as a child process (so the first frame does not wait
for moto to import and seed) and points this process at the sandbox: the real
`~/.aws` files and the system keyring are never touched.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from keyhygiene.core.errors import BadInput, KeyHygieneError

READY_PREFIX = "KEYHYGIENE-DEMO-READY "
# What a shell may hold that would take the demo off its own profile: keys of a
# real account (botocore prefers them to a profile), or another default profile.
DEMO_UNSET = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_PROFILE",
)
# What the `demo` extra installs: moto's four services and its server's web stack.
DEMO_MODULES = ("moto", "flask", "flask_cors")


class DemoNotInstalled(BadInput):
    """The demo extra is not installed."""


def require_demo_extra() -> None:
    """Refuse (exit 2) before anything starts when the demo's moto is missing:
    it is an extra, so that an install for real accounts stays light."""
    import importlib.util

    missing = [name for name in DEMO_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise DemoNotInstalled(
            f"The demo needs the demo extra, which is not installed (missing: {', '.join(missing)}).",
            hint="Install it with `pip install 'keyhygiene[demo]'` (pipx: `pipx install "
            "'keyhygiene[demo]'`; uv: `uv tool install 'keyhygiene[demo]'`), then run "
            "`keyhygiene --demo` again.",
        )


@dataclass(frozen=True)
class DemoInfo:
    endpoint_url: str
    directory: str
    credentials_file: str
    config_file: str
    profile: str
    region: str

    def environment(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_SHARED_CREDENTIALS_FILE": self.credentials_file,
            "AWS_CONFIG_FILE": self.config_file,
            "AWS_PROFILE": self.profile,
            "AWS_DEFAULT_REGION": self.region,
            "KEYHYGIENE_STATE_DIR": str(Path(self.directory) / "state"),
            "KEYHYGIENE_KEYRING": "memory",
            "KEYHYGIENE_DEMO": "1",
        }

    def shell_environment(self) -> dict[str, str]:
        """What a second terminal needs to be inside the demo as `--demo` is:
        every variable, so that keyhygiene there keeps its state in the sandbox
        too, with a keyring in a sandbox file (a memory keyring would die with
        each command, and the OS keyring is not the demo's)."""
        env = self.environment()
        env["KEYHYGIENE_KEYRING"] = f"file:{Path(self.directory) / 'keyring.json'}"
        return env

    def export_lines(self) -> list[str]:
        """Shell lines for a second terminal. Keys already in that shell's
        environment would win over the demo's profile (and are a real
        account's): they are unset first."""
        return [
            "unset " + " ".join(DEMO_UNSET),
            *(
                f"export {name}={shlex.quote(value)}"
                for name, value in self.shell_environment().items()
            ),
        ]


def start_server(port: int, directory: Path) -> tuple[object, DemoInfo]:
    """Start moto on 127.0.0.1:port (0: a free port), seed it, write the sandbox files."""
    # Werkzeug logs every request to stderr; the demo is not a web server log.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from moto.server import ThreadedMotoServer

    from keyhygiene.demo.account import REGION, seed_demo_account

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, real_port = server.get_host_and_port()
    endpoint = f"http://{host}:{real_port}"
    key = seed_demo_account(endpoint)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    credentials = directory / "credentials"
    config = directory / "config"
    _write_private(
        credentials,
        f"[{key.user}]\naws_access_key_id = {key.access_key_id}\n"
        f"aws_secret_access_key = {key.secret_access_key}\n",
    )
    _write_private(config, f"[profile {key.user}]\nregion = {REGION}\n")
    (directory / "state").mkdir(exist_ok=True, mode=0o700)
    info = DemoInfo(
        endpoint_url=endpoint,
        directory=str(directory),
        credentials_file=str(credentials),
        config_file=str(config),
        profile=key.user,
        region=REGION,
    )
    return server, info


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def serve_forever(port: int, directory: Path | None, *, machine: bool = False) -> int:
    """`keyhygiene demo serve`: run until Ctrl-C (or SIGTERM)."""
    require_demo_extra()
    folder = directory or Path(tempfile.mkdtemp(prefix="keyhygiene-demo-"))
    server, info = start_server(port, folder)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    if machine:
        # Started by `keyhygiene --demo`: stop when that process goes away
        # (its end of our stdin closes), even if it was killed.
        threading.Thread(target=_stop_at_eof, args=(stop,), daemon=True).start()
        print(READY_PREFIX + json.dumps(asdict(info)), flush=True)
    else:
        print(f"keyhygiene demo account on {info.endpoint_url} (moto), sandbox {info.directory}")
        print("In another terminal, run these lines, then `keyhygiene` or `aws`:")
        for line in info.export_lines():
            print(f"  {line}")
        print("Press Ctrl-C to stop.", flush=True)
    # A polling wait so that signals are handled promptly on every platform.
    while not stop.wait(0.2):
        pass
    server.stop()  # type: ignore[attr-defined]
    if not machine:
        print("Demo server stopped.")
    return 0


def _stop_at_eof(stop: threading.Event) -> None:
    try:
        while sys.stdin.read(4096):
            pass
    except (OSError, ValueError):
        pass
    stop.set()


class DemoProcess:
    """The demo server as a child process, for `keyhygiene --demo` and tests."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or Path(tempfile.mkdtemp(prefix="keyhygiene-demo-"))
        self._process: subprocess.Popen[str] | None = None
        self.info: DemoInfo | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "keyhygiene",
                "demo",
                "serve",
                "--port",
                "0",
                "--dir",
                str(self.directory),
                "--machine",
            ],
            # Held open for the child's lifetime: when this process dies, the
            # pipe closes and the demo server stops.
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60.0) -> DemoInfo:
        """Block until the server is seeded (call from a worker thread)."""
        assert self._process is not None and self._process.stdout is not None
        timer = threading.Timer(timeout, self._process.kill)
        timer.start()
        try:
            for line in self._process.stdout:
                if line.startswith(READY_PREFIX):
                    self.info = DemoInfo(**json.loads(line[len(READY_PREFIX) :]))
                    return self.info
        finally:
            timer.cancel()
        error = self._process.stderr.read() if self._process.stderr else ""
        last = error.strip().splitlines()[-1:] or ["no output"]
        raise KeyHygieneError(f"The demo server did not start: {last[0]}")

    def stop(self) -> None:
        if self._process and self._process.stdin:
            with contextlib.suppress(OSError):
                self._process.stdin.close()
        if self._process and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()

    def __enter__(self) -> DemoProcess:
        self.start()
        self.wait_ready()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def enter_demo_environment(info: DemoInfo) -> None:
    """Point this process at the demo sandbox (files, endpoint, state, keyring).

    Keys in the shell's environment would win over the demo's profile (and
    they are a real account's): they are dropped for this process."""
    for name in DEMO_UNSET:
        os.environ.pop(name, None)
    os.environ.update(info.environment())
