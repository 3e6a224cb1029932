"""Benchmark: loading a large account, against a naive loader, in one run.

    python tests/bench_inventory.py [--users 500] [--rounds 3]

Seeds a moto server (a child process on 127.0.0.1) with 500 users (1 key
each, tags, 1-2 groups), 20 groups, 50 buckets with policies and 20 KMS keys.
Then, alternating in each round so that machine noise hits both alike:
- keyhygiene's inventory (`keyhygiene.aws.inventory.load_snapshot`);
- a naive sequential loader that gathers the same information one call per
  item (per user: groups, attached and inline policies, tags, access keys,
  each key's last use; per bucket: policy, encryption, public access block,
  tags; per KMS key: policy, tags, aliases).
It prints both call counts, the median wall times and their ratios, the audit
of the loaded snapshot (time, calls: none), and the time from start to the
first frame of `keyhygiene --demo` next to a bare Textual app's.
Not a test: run it by hand; machines here are noisy, so read the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import select
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from moto_server import start_moto_server  # noqa: E402

from keyhygiene.aws.connection import Connection, ConnectionOptions  # noqa: E402
from keyhygiene.aws.inventory import load_snapshot  # noqa: E402
from keyhygiene.core.model import TAG_DEVICE, TAG_GROUPS, TAG_PERSON  # noqa: E402
from keyhygiene.core.policy_documents import bucket_policy_with_whitelist  # noqa: E402

ACCOUNT = "123456789012"


def clients(url: str, session: Any = None) -> dict[str, Any]:
    config = Config(max_pool_connections=16, retries={"mode": "standard"})
    maker = session or boto3
    return {
        name: maker.client(name, endpoint_url=url, region_name="us-east-1", config=config)
        for name in ("iam", "s3", "kms")
    }


def seed(url: str, users: int, *, session: Any = None, prefix: str = "bench") -> None:
    """`users` users, 20 groups, 50 buckets and 20 KMS keys; `session` signs
    in another account (bucket names are `prefix`-bucket-NN: S3 names are global)."""
    c = clients(url, session)
    iam, s3, kms = c["iam"], c["s3"], c["kms"]
    groups = [f"group-{i:02d}" for i in range(20)]
    for group in groups:
        iam.create_group(GroupName=group)

    def make_user(i: int) -> None:
        name = f"person{i // 5:03d}-device{i % 5}"
        iam.create_user(
            UserName=name,
            Tags=[
                {"Key": TAG_PERSON, "Value": f"person{i // 5:03d}"},
                {"Key": TAG_DEVICE, "Value": f"device{i % 5}"},
            ],
        )
        iam.create_access_key(UserName=name)
        for group in {groups[i % 20], groups[(i * 7) % 20]}:
            iam.add_user_to_group(UserName=name, GroupName=group)

    def make_bucket(i: int) -> None:
        name = f"{prefix}-bucket-{i:02d}"
        s3.create_bucket(Bucket=name)
        s3.put_bucket_tagging(
            Bucket=name, Tagging={"TagSet": [{"Key": TAG_GROUPS, "Value": groups[i % 20]}]}
        )
        principals = [f"arn:aws:iam::{ACCOUNT}:user/person{j:03d}-device0" for j in range(i, i + 5)]
        s3.put_bucket_policy(
            Bucket=name,
            Policy=json.dumps(
                bucket_policy_with_whitelist(
                    None,
                    bucket=name,
                    principals=principals,
                    keep_admin_arns=[f"arn:aws:iam::{ACCOUNT}:root"],
                )
            ),
        )

    def make_key(i: int) -> None:
        key = kms.create_key(Tags=[{"TagKey": TAG_GROUPS, "TagValue": groups[i]}])["KeyMetadata"]
        kms.create_alias(AliasName=f"alias/bench-{i:02d}", TargetKeyId=key["KeyId"])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(make_user, range(users)))
        list(pool.map(make_bucket, range(50)))
        list(pool.map(make_key, range(20)))


def count_calls(conn: Connection) -> list[str]:
    calls: list[str] = []
    for service in ("iam", "s3", "kms", "sts"):
        conn.client(service).meta.events.register(
            "before-call", lambda model, **_: calls.append(model.name)
        )
    return calls


def run_inventory(url: str, conn: Connection | None = None) -> tuple[float, int, Any]:
    conn = conn or Connection(ConnectionOptions(endpoint_url=url, region="us-east-1"))
    calls = count_calls(conn)
    start = time.perf_counter()
    snapshot = load_snapshot(conn)
    return time.perf_counter() - start, len(calls), snapshot


def run_naive(url: str, conn: Connection | None = None) -> tuple[float, int, Any]:
    """One call per item, sequentially: what a straightforward script does."""
    conn = conn or Connection(ConnectionOptions(endpoint_url=url, region="us-east-1"))
    calls = count_calls(conn)
    iam, s3, kms = conn.client("iam"), conn.client("s3"), conn.client("kms")
    start = time.perf_counter()
    result: dict[str, Any] = {"users": {}, "buckets": {}, "keys": {}}
    users = [u for page in iam.get_paginator("list_users").paginate() for u in page["Users"]]
    for user in users:
        name = user["UserName"]
        keys = iam.list_access_keys(UserName=name)["AccessKeyMetadata"]
        result["users"][name] = {
            "groups": iam.list_groups_for_user(UserName=name)["Groups"],
            "attached": iam.list_attached_user_policies(UserName=name)["AttachedPolicies"],
            "inline": iam.list_user_policies(UserName=name)["PolicyNames"],
            "tags": iam.list_user_tags(UserName=name)["Tags"],
            "keys": [(k, iam.get_access_key_last_used(AccessKeyId=k["AccessKeyId"])) for k in keys],
        }
    for bucket in s3.list_buckets()["Buckets"]:
        name = bucket["Name"]
        info = {}
        for label, func in (
            ("policy", lambda n=name: s3.get_bucket_policy(Bucket=n)),
            ("encryption", lambda n=name: s3.get_bucket_encryption(Bucket=n)),
            ("block", lambda n=name: s3.get_public_access_block(Bucket=n)),
            ("tags", lambda n=name: s3.get_bucket_tagging(Bucket=n)),
        ):
            try:
                info[label] = func()
            except s3.exceptions.ClientError:
                info[label] = None
        result["buckets"][name] = info
    for key in kms.list_keys()["Keys"]:
        key_id = key["KeyId"]
        result["keys"][key_id] = (
            kms.get_key_policy(KeyId=key_id, PolicyName="default"),
            kms.list_resource_tags(KeyId=key_id),
            kms.list_aliases(KeyId=key_id),
        )
    return time.perf_counter() - start, len(calls), result


def first_frame_seconds(argv: list[str], marker: bytes, env: dict[str, str]) -> float:
    """Seconds from spawning `argv` in a terminal until `marker` is drawn."""
    master, slave = pty.openpty()
    start = time.perf_counter()
    process = subprocess.Popen(
        argv,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**env, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"},
        cwd=ROOT,
        start_new_session=True,
    )
    os.close(slave)
    seen = b""
    try:
        while time.perf_counter() - start < 30:
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    seen += os.read(master, 65536)
                except OSError:
                    break
                if marker in seen:
                    return time.perf_counter() - start
        raise RuntimeError(f"{argv} drew no {marker!r} in 30 s")
    finally:
        process.kill()
        process.wait()
        os.close(master)


BARE_APP = (
    "from textual.app import App\n"
    "from textual.widgets import Header, Tree\n"
    "class Bare(App):\n"
    "    TITLE = 'baseline'\n"
    "    def compose(self):\n"
    "        yield Header()\n"
    "        yield Tree('Account')\n"
    "Bare().run()\n"
)


def median_of(rounds: int, func: Callable[[], float]) -> float:
    return statistics.median(func() for _ in range(rounds))


def bench_audit(snapshot: Any, rounds: int) -> None:
    """The audit with and without the rules that ask the policy evaluator, side
    by side in alternating rounds, and the details pane's evaluator lines."""
    from keyhygiene.audit import policy_rules as audit_policies
    from keyhygiene.audit.findings import AuditSettings
    from keyhygiene.audit.rules import RULES
    from keyhygiene.views.details import describe
    from keyhygiene.views.outline import OutlineNode

    settings = AuditSettings()
    shape_rules = [rule for rule in RULES if rule not in audit_policies.RULES]

    def audit(rules: list[Any]) -> tuple[float, int]:
        start = time.perf_counter()
        found = sum(len(list(rule(snapshot, snapshot.loaded_at, settings))) for rule in rules)
        return time.perf_counter() - start, found

    full, shape = [], []
    findings = 0
    for _ in range(rounds):
        seconds, findings = audit(list(RULES))
        full.append(seconds)
        shape.append(audit(shape_rules)[0])
    with_eval, without = statistics.median(full), statistics.median(shape)
    print(
        f"audit of the loaded snapshot, 0 API calls: {findings} findings, median "
        f"{with_eval:.3f} s with the evaluator's rules, {without:.3f} s without "
        f"(x{with_eval / without:.1f})"
    )
    nodes = [
        OutlineNode("bucket", "bucket", snapshot.buckets[0].name),
        OutlineNode("key", "kms-key", snapshot.kms_keys[0].key_id),
        OutlineNode("device", "device", snapshot.users[0].name),
    ]
    for node in nodes:
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            describe(snapshot, node)
            times.append(time.perf_counter() - start)
        print(
            f"details pane of a {node.kind} node: median {statistics.median(times) * 1000:.1f} ms"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    process, url = start_moto_server()
    try:
        started = time.perf_counter()
        seed(url, args.users)
        print(
            f"seeded {args.users} users, 20 groups, 50 buckets, 20 KMS keys "
            f"in {time.perf_counter() - started:.1f} s"
        )
        fast_times, naive_times = [], []
        fast_calls = naive_calls = 0
        snapshot = None
        for _ in range(args.rounds):
            seconds, fast_calls, snapshot = run_inventory(url)
            fast_times.append(seconds)
            seconds, naive_calls, _ = run_naive(url)
            naive_times.append(seconds)
        fast, naive = statistics.median(fast_times), statistics.median(naive_times)
        print(
            f"inventory: {fast_calls:5d} calls, median {fast:6.2f} s  (runs: "
            + ", ".join(f"{t:.2f}" for t in fast_times)
            + ")"
        )
        print(
            f"naive:     {naive_calls:5d} calls, median {naive:6.2f} s  (runs: "
            + ", ".join(f"{t:.2f}" for t in naive_times)
            + ")"
        )
        print(
            f"ratio: calls {fast_calls / naive_calls:.3f} of naive (target <= 0.100), "
            f"speed-up x{naive / fast:.1f} (target >= 4)"
        )
        assert snapshot is not None and len(snapshot.users) == args.users
        bench_audit(snapshot, args.rounds)
    finally:
        process.terminate()
        process.wait()

    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["KEYHYGIENE_STATE_DIR"] = "/tmp/keyhygiene-bench-state"
    demo = [sys.executable, "-m", "keyhygiene", "--demo"]
    bare = [sys.executable, "-c", BARE_APP]
    demo_times, bare_times = [], []
    for _ in range(args.rounds):
        demo_times.append(first_frame_seconds(demo, b"keyhygiene", env))
        bare_times.append(first_frame_seconds(bare, b"baseline", env))
    demo_first, bare_first = statistics.median(demo_times), statistics.median(bare_times)
    print(
        f"first frame: keyhygiene --demo median {demo_first:.2f} s (target < 1.5 s), "
        f"bare Textual app {bare_first:.2f} s, ratio x{demo_first / bare_first:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
