"""Benchmark: one key rotation end to end against a local moto server.

Run:  /work/venv/bin/python tests/bench_rotation.py [--runs 5]

Each run makes a fresh IAM user with one key in a sandbox credentials file,
then rotates it. Figures (median of the runs):
- in-process: inspect (2 calls) + plan + apply + proof, verification pauses 0
  (the cost of keyhygiene and moto themselves);
- in-process with the default verification (3 successes in a row, 1 s apart,
  twice): what a person waits for, by design;
- `keyhygiene rotate --yes` as a child process (interpreter start included).
Not collected by pytest (its name does not start with `test_`).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    sandbox = Path(tempfile.mkdtemp(prefix="keyhygiene-bench-"))
    os.environ.update(
        {
            "HOME": str(sandbox),
            "AWS_SHARED_CREDENTIALS_FILE": str(sandbox / ".aws" / "credentials"),
            "AWS_CONFIG_FILE": str(sandbox / ".aws" / "config"),
            "AWS_DEFAULT_REGION": "us-east-1",
            "KEYHYGIENE_STATE_DIR": str(sandbox / "state"),
            "KEYHYGIENE_KEYRING": "memory",
        }
    )
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    (sandbox / ".aws").mkdir(mode=0o700)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        fast = [rotate_in_process(endpoint, run, interval=0.0) for run in range(args.runs)]
        default = [rotate_in_process(endpoint, 100 + run, interval=1.0) for run in range(3)]
        cli = [rotate_cli(endpoint, 200 + run) for run in range(args.runs)]
    finally:
        server.stop()

    print(f"Key rotation against moto {endpoint} (median of {args.runs} runs, 3 for the default):")
    report("in-process, verification pauses 0", fast)
    report("in-process, default verification (3 in a row, 1 s apart, twice)", default)
    report("`keyhygiene rotate --yes --verify-interval 0`, child process", cli)
    return 0


def report(label: str, runs: list[tuple[float, int]]) -> None:
    seconds = statistics.median(run[0] for run in runs)
    calls = statistics.median(run[1] for run in runs)
    print(f"  {label}: {seconds:.3f} s wall, {calls:g} API calls")


def new_computer(endpoint: str, run: int) -> str:
    """A user with one key, written into a fresh credentials file; returns the profile."""
    import boto3

    iam = boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    user = f"bench-{run}"
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    path = Path(os.environ["AWS_SHARED_CREDENTIALS_FILE"])
    path.write_text(
        "# benchmark\n[other]\naws_access_key_id = AKIAOTHER\naws_secret_access_key = x\n\n"
        f"[{user}]\naws_access_key_id = {key['AccessKeyId']}\n"
        f"aws_secret_access_key = {key['SecretAccessKey']}\n"
    )
    path.chmod(0o600)
    return user


def rotate_in_process(endpoint: str, run: int, *, interval: float) -> tuple[float, int]:
    from keyhygiene.aws.connection import ConnectionOptions
    from keyhygiene.workflows.rotation import (
        HeldKeyClients,
        KeyLocation,
        RotationRequest,
        execute_rotation,
        inspect_rotation,
        plan_rotation,
    )

    profile = new_computer(endpoint, run)
    started = time.perf_counter()
    clients = HeldKeyClients(
        ConnectionOptions(profile=profile, endpoint_url=endpoint), KeyLocation.for_profile(profile)
    )
    plan = plan_rotation(
        inspect_rotation(clients), RotationRequest(profile=profile, verify_interval=interval)
    )
    outcome = execute_rotation(plan, clients)
    elapsed = time.perf_counter() - started
    if not outcome.ok:
        raise SystemExit(outcome.render_text())
    return elapsed, clients.api_calls


def rotate_cli(endpoint: str, run: int) -> tuple[float, int]:
    profile = new_computer(endpoint, run)
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "keyhygiene",
            "rotate",
            "--profile",
            profile,
            "--endpoint-url",
            endpoint,
            "--yes",
            "--verify-interval",
            "0",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(result.stdout + result.stderr)
    calls = re.search(r"(\d+) API calls", result.stdout)
    return elapsed, int(calls.group(1)) if calls else -1


if __name__ == "__main__":
    sys.exit(main())
