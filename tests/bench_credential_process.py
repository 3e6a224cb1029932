"""Benchmark: `keyhygiene credential-process`, which the AWS CLI runs for every call.

Run:  python tests/bench_credential_process.py [--runs 15]

Side by side in one run, interleaved so that the machine's noise hits both:
- keyhygiene: `keyhygiene credential-process --profile bench` serving the
  keyring's key (a sandbox file keyring), then a cached MFA session;
- baseline: the same command with boto3 and the AWS edge imported first, which
  is what every call paid before the command skipped them (0.2: 0.32 s).
Prints the medians and their ratio. Not collected by pytest.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RUN = "import sys\n{pre}from keyhygiene.cli.main import main\nsys.exit(main(sys.argv[1:]))\n"
BASELINE_IMPORTS = "import boto3, keyhygiene.aws.connection\n"


def timed(pre: str, args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", RUN.format(pre=pre), *args],
        check=True,
        stdout=subprocess.PIPE,
        env=env,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    folder = Path(tempfile.mkdtemp(prefix="kh-bench-cp-"))
    env = {
        **os.environ,
        "KEYHYGIENE_KEYRING": f"file:{folder / 'keyring.json'}",
        "KEYHYGIENE_INSECURE_KEYRING": "1",
    }
    os.environ.update(env)
    from keyhygiene.local import vault
    from keyhygiene.local.vault import Secret

    vault.store_key("bench", "AKIAEXAMPLEEXAMPLE00", Secret("s" * 40))
    ends = datetime.now(timezone.utc) + timedelta(hours=6)
    vault.store_session("bench", "ASIAEXAMPLEEXAMPLE00", Secret("t" * 40), Secret("x" * 60), ends)

    print(f"{'case':<28} {'keyhygiene':>11} {'baseline':>10} {'ratio':>6}")
    for name, extra in (("the keyring's key", []), ("a cached MFA session", ["--mfa-session"])):
        args = ["credential-process", "--profile", "bench", *extra]
        ours, theirs = [], []
        for _ in range(runs):
            ours.append(timed("", args, env))
            theirs.append(timed(BASELINE_IMPORTS, args, env))
        mine, base = statistics.median(ours), statistics.median(theirs)
        print(f"{name:<28} {mine:>10.3f}s {base:>9.3f}s {mine / base:>6.2f}")
    print(f"(medians of {runs} interleaved runs each, interpreter start included)")


if __name__ == "__main__":
    main()
