"""Benchmark: keyhygiene's inventory at scale, side by side with the naive loader.

    python tests/bench_scale.py [--sizes 500,2000,5000] [--accounts 5] [--rounds 1]
    python tests/bench_scale.py --prowler      # the audit beside a recorded Prowler run

For each size, a fresh moto server (a child process on 127.0.0.1) is seeded
like tests/bench_inventory.py (users with tags, one key and 1-2 groups each;
20 groups, 50 buckets with policies, 20 KMS keys), then keyhygiene's loader
and the naive one (one call per user, key, bucket and key) read it in
alternating rounds. Then 5 accounts of 500 users on one server, read with
`keyhygiene.aws.accounts.load_accounts` (in parallel) against the naive loader
account after account. Printed per row: requests, median wall time, peak
traced memory (tracemalloc: Python's own allocations, the same for both) and
requests per user; the last lines give the requests each extra user costs.

`--prowler` runs `keyhygiene audit` in a child process on the 500-user
account (requests counted in-process on the same data, wall time and peak
RSS of the child) and prints it beside the Prowler run recorded in
tests/fixtures/prowler-run.json (Prowler cannot run here: it is measured on
a machine with its full install, same seed, same moto version).

Not a test: machines here are noisy; read the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from bench_inventory import count_calls, run_naive, seed  # noqa: E402
from moto_server import start_moto_server, stop_moto_server  # noqa: E402

from keyhygiene.aws.accounts import load_accounts  # noqa: E402
from keyhygiene.aws.connection import Connection, ConnectionOptions  # noqa: E402
from keyhygiene.aws.inventory import load_snapshot  # noqa: E402
from keyhygiene.core.accounts import AccountSpec, organization_role_arn  # noqa: E402

RECORDED_PROWLER = ROOT / "tests" / "fixtures" / "prowler-run.json"


def traced(func: Callable[[], Any]) -> tuple[float, float, Any]:
    """(seconds, peak MB of Python allocations, result)."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        result = func()
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()
    return seconds, peak, result


def row(
    label: str, users: int, calls: int, times: list[float], peaks: list[float]
) -> dict[str, Any]:
    return {
        "label": label,
        "users": users,
        "calls": calls,
        "seconds": statistics.median(times),
        "peak_mb": statistics.median(peaks),
    }


def bench_one_account(size: int, rounds: int) -> tuple[dict[str, Any], dict[str, Any]]:
    process, url = start_moto_server()
    try:
        started = time.perf_counter()
        seed(url, size)
        print(f"  seeded {size} users in {time.perf_counter() - started:.0f} s", flush=True)
        fast_t, fast_m, naive_t, naive_m = [], [], [], []
        fast_calls = naive_calls = 0
        for _ in range(rounds):
            conn = Connection(ConnectionOptions(endpoint_url=url, region="us-east-1"))
            calls = count_calls(conn)
            seconds, peak, snapshot = traced(lambda conn=conn: load_snapshot(conn))
            assert len(snapshot.users) == size, len(snapshot.users)
            fast_t.append(seconds)
            fast_m.append(peak)
            fast_calls = len(calls)
            seconds, peak, (_, naive_calls, _) = traced(lambda: run_naive(url))
            naive_t.append(seconds)
            naive_m.append(peak)
        return (
            row(f"{size} users", size, fast_calls, fast_t, fast_m),
            row(f"{size} users", size, naive_calls, naive_t, naive_m),
        )
    finally:
        stop_moto_server(process)


def bench_accounts(accounts: int, users: int, rounds: int) -> tuple[dict[str, Any], dict[str, Any]]:
    process, url = start_moto_server()
    try:
        base = boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        )
        ids = [f"{100000000000 + i * 11111111111:012d}" for i in range(1, accounts + 1)]
        started = time.perf_counter()
        for number, account_id in enumerate(ids):
            answer = base.client("sts", endpoint_url=url).assume_role(
                RoleArn=organization_role_arn(account_id, "OrganizationAccountAccessRole"),
                RoleSessionName="seed",
            )["Credentials"]
            session = boto3.Session(
                aws_access_key_id=answer["AccessKeyId"],
                aws_secret_access_key=answer["SecretAccessKey"],
                aws_session_token=answer["SessionToken"],
                region_name="us-east-1",
            )
            seed(url, users, session=session, prefix=f"acct{number}")
        print(
            f"  seeded {accounts} accounts of {users} users in "
            f"{time.perf_counter() - started:.0f} s",
            flush=True,
        )
        options = [
            ConnectionOptions(
                endpoint_url=url,
                region="us-east-1",
                computer_key=False,
                role_arn=organization_role_arn(account_id, "OrganizationAccountAccessRole"),
            )
            for account_id in ids
        ]
        specs = [
            AccountSpec(f"account-{i}", o, account_id=a)
            for i, (o, a) in enumerate(zip(options, ids, strict=True))
        ]
        fast_t, fast_m, naive_t, naive_m = [], [], [], []
        fast_calls = naive_calls = 0
        counted: list[list[str]] = []

        def loader(opts: ConnectionOptions, *, on_progress: Any = None) -> Any:
            conn = Connection(opts)
            counted.append(count_calls(conn))
            return load_snapshot(conn), conn

        for _ in range(rounds):
            counted.clear()

            seconds, peak, loaded = traced(lambda: load_accounts(specs, loader=loader))
            assert all(item.view.snapshot for item in loaded), [i.view.error for i in loaded]
            fast_t.append(seconds)
            fast_m.append(peak)
            fast_calls = sum(len(c) for c in counted)

            def naive_all() -> int:
                return sum(run_naive(url, Connection(o))[1] for o in options)

            seconds, peak, naive_calls = traced(naive_all)
            naive_t.append(seconds)
            naive_m.append(peak)
        label = f"{accounts} accounts x {users}"
        return (
            row(label, accounts * users, fast_calls, fast_t, fast_m),
            row(label, accounts * users, naive_calls, naive_t, naive_m),
        )
    finally:
        stop_moto_server(process)


def print_table(rows: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
    print()
    print(
        "| account | keyhygiene requests | naive requests | requests/user (kh) | "
        "keyhygiene s | naive s | speed-up | keyhygiene MB | naive MB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for fast, naive in rows:
        print(
            f"| {fast['label']} | {fast['calls']} | {naive['calls']} | "
            f"{fast['calls'] / fast['users']:.3f} | {fast['seconds']:.2f} | {naive['seconds']:.2f} | "
            f"x{naive['seconds'] / fast['seconds']:.1f} | {fast['peak_mb']:.0f} | {naive['peak_mb']:.0f} |"
        )
    singles = [fast for fast, _ in rows if "accounts" not in fast["label"]]
    if len(singles) > 1:
        first, last = singles[0], singles[-1]
        extra = (last["calls"] - first["calls"]) / (last["users"] - first["users"])
        print(
            f"\nrequests per extra user, {first['users']} -> {last['users']} users: {extra:.4f} "
            "(target: 0; requests grow with buckets and keys only)"
        )


def bench_prowler(rounds: int) -> None:
    recorded = json.loads(RECORDED_PROWLER.read_text())
    process, url = start_moto_server()
    try:
        seed(url, recorded["users"])
        conn = Connection(ConnectionOptions(endpoint_url=url, region="us-east-1"))
        calls = count_calls(conn)
        load_snapshot(conn)
        requests = len(calls)
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
        times, peaks = [], []
        for _ in range(rounds):
            start = time.perf_counter()
            child = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "keyhygiene",
                    "audit",
                    "--endpoint-url",
                    url,
                    "--no-local",
                    "--fail-on",
                    "never",
                    "-o",
                    "json",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
            )
            _, status, usage = os.wait4(child.pid, 0)
            times.append(time.perf_counter() - start)
            peaks.append(usage.ru_maxrss / 1024)  # KiB on Linux
            assert os.waitstatus_to_exitcode(status) == 0
    finally:
        stop_moto_server(process)
    seconds, peak = statistics.median(times), statistics.median(peaks)
    print(
        f"\nthe same seeded account: {recorded['users']} users, 20 groups, 50 buckets, 20 KMS keys"
    )
    print("| tool | requests | wall s | peak RSS MB |")
    print("|---|---:|---:|---:|")
    print(f"| keyhygiene audit | {requests} | {seconds:.1f} | {peak:.0f} |")
    print(
        f"| Prowler {recorded['version']} (recorded {recorded['recorded']}) | "
        f"{recorded['requests']} | {recorded['seconds_min']:.0f}-{recorded['seconds_max']:.0f} | "
        f"{recorded['peak_rss_mb']:.0f} |"
    )
    print(
        f"ratios: requests 1/{recorded['requests'] / requests:.1f} (goal 1/20), memory "
        f"1/{recorded['peak_rss_mb'] / peak:.1f} (goal 1/10), wall 1/{recorded['seconds_min'] / seconds:.0f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="500,2000,5000")
    parser.add_argument("--accounts", type=int, default=5)
    parser.add_argument("--account-users", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--prowler", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
    if args.prowler:
        bench_prowler(max(args.rounds, 3))
        return 0
    rows = []
    for size in (int(s) for s in args.sizes.split(",") if s):
        print(f"one account, {size} users", flush=True)
        rows.append(bench_one_account(size, args.rounds))
    if args.accounts:
        print(f"{args.accounts} accounts of {args.account_users} users", flush=True)
        rows.append(bench_accounts(args.accounts, args.account_users, args.rounds))
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
