"""A moto server in a child process on 127.0.0.1, for tests and benchmarks.

A child process, not a thread: entering and leaving `mock_aws()` wipes a moto
server running in the same process.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request


def start_moto_server(timeout: float = 30.0) -> tuple[subprocess.Popen[bytes], str]:
    """Start `python -m moto.server` on a free port; return the process and its URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1)
            return process, url
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("the moto server did not start") from None
            time.sleep(0.1)


def reset_moto_server(url: str) -> None:
    """Empty every backend of the server."""
    request = urllib.request.Request(url + "/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10)


def stop_moto_server(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
