"""Benchmark: emergency revoke against a moto server.

    python tests/bench_revoke.py [--rounds 5]

Each round resets a moto server (a child process on 127.0.0.1) and seeds a
user `stolen-phone` with 2 active keys, a console password and a virtual MFA
device, member of 5 groups, named in 10 bucket policies and 5 KMS key
policies (next to 5 buckets and 2 keys that do not name it). Then:
- read what the revoke needs (`load_for_revoke`) and plan it;
- apply the plan as `keyhygiene revoke --yes` does (journal, all steps even
  if one fails), timing containment (keys deactivated) and the whole run;
- for comparison, the full inventory (`load_account`) on the same account;
- once more on a fresh seed, `keyhygiene revoke stolen-phone --yes` end to end
  in a child process (Python start-up and imports included).
API calls are counted with botocore's before-call event. Prints medians.
Not a test: run it by hand; machines here are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from moto_server import start_moto_server  # noqa: E402

from keyhygiene.aws.connection import Connection, ConnectionOptions  # noqa: E402
from keyhygiene.aws.inventory import load_snapshot  # noqa: E402
from keyhygiene.core.model import TAG_DEVICE, TAG_GROUPS, TAG_PERSON  # noqa: E402
from keyhygiene.core.policy_documents import bucket_policy_with_whitelist, key_policy_with_whitelist  # noqa: E402
from keyhygiene.plans import apply_plan  # noqa: E402
from keyhygiene.plans.journal import Journal  # noqa: E402
from keyhygiene.workflows.revoke import (  # noqa: E402
    ContainmentTimer,
    load_for_revoke,
    plan_revoke,
    revoke_report,
)

ACCOUNT = "123456789012"
USER = "stolen-phone"
ARN = f"arn:aws:iam::{ACCOUNT}:user/{USER}"
OTHERS = [f"arn:aws:iam::{ACCOUNT}:user/person{i}-laptop" for i in range(3)]
ROOT_ARN = f"arn:aws:iam::{ACCOUNT}:root"
GROUPS, BUCKETS, KEYS = 5, 10, 5


def reset(url: str) -> None:
    request = urllib.request.Request(url + "/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10)


def seed(url: str) -> None:
    session = boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    iam, s3, kms = (session.client(s, endpoint_url=url) for s in ("iam", "s3", "kms"))
    iam.create_user(
        UserName=USER,
        Tags=[{"Key": TAG_PERSON, "Value": "stolen"}, {"Key": TAG_DEVICE, "Value": "phone"}],
    )
    for arn in OTHERS:
        iam.create_user(UserName=arn.rsplit("/", 1)[1])
    for index in range(GROUPS):
        iam.create_group(GroupName=f"app-{index}")
        iam.add_user_to_group(GroupName=f"app-{index}", UserName=USER)
    for _ in range(2):
        iam.create_access_key(UserName=USER)
    iam.create_login_profile(UserName=USER, Password="Correct-Horse-9!")
    serial = iam.create_virtual_mfa_device(VirtualMFADeviceName=USER)["VirtualMFADevice"][
        "SerialNumber"
    ]
    iam.enable_mfa_device(
        UserName=USER,
        SerialNumber=serial,
        AuthenticationCode1="111111",
        AuthenticationCode2="222222",
    )

    def make_bucket(index: int) -> None:
        name = f"bench-data-{index:02d}"
        named = index < BUCKETS
        s3.create_bucket(Bucket=name)
        s3.put_bucket_tagging(
            Bucket=name, Tagging={"TagSet": [{"Key": TAG_GROUPS, "Value": f"app-{index % GROUPS}"}]}
        )
        policy = bucket_policy_with_whitelist(
            None,
            bucket=name,
            principals=[*OTHERS, *([ARN] if named else [])],
            keep_admin_arns=[ROOT_ARN],
        )
        s3.put_bucket_policy(Bucket=name, Policy=json.dumps(policy))

    def make_key(index: int) -> None:
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName=f"alias/bench-{index}", TargetKeyId=key_id)
        default = json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
        principals = [*OTHERS, *([ARN] if index < KEYS else [])]
        policy = key_policy_with_whitelist(default, principals=principals)
        kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=json.dumps(policy))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(make_bucket, range(BUCKETS + 5)))
        list(pool.map(make_key, range(KEYS + 2)))


def counted_connection(url: str) -> tuple[Connection, list[str]]:
    conn = Connection(ConnectionOptions(endpoint_url=url, region="us-east-1"))
    calls: list[str] = []
    for service in ("iam", "s3", "kms", "sts"):
        conn.client(service).meta.events.register(
            "before-call", lambda model, **_: calls.append(model.name)
        )
    return conn, calls


def timed(func: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = func()
    return time.perf_counter() - start, result


def one_round(url: str) -> dict[str, float]:
    reset(url)
    seed(url)
    figures: dict[str, float] = {}

    conn, calls = counted_connection(url)
    figures["inventory_s"], _ = timed(lambda: load_snapshot(conn))
    figures["inventory_calls"] = len(calls)

    conn, calls = counted_connection(url)
    figures["load_s"], (snapshot, extras) = timed(lambda: load_for_revoke(conn, USER))
    figures["load_calls"] = len(calls)
    figures["plan_s"], plan = timed(lambda: plan_revoke(snapshot, USER, extras=extras))
    figures["steps"] = len(plan.steps)
    calls.clear()
    timer = ContainmentTimer(plan)
    figures["apply_s"], report = timed(
        lambda: apply_plan(
            plan, conn, journal=Journal.create(plan), on_event=timer, stop_on_failure=False
        )
    )
    if not report.ok:
        raise RuntimeError(report.render_text())
    summary = revoke_report(report, snapshot.users[0], timer=timer, snapshot=snapshot)
    figures["containment_s"] = summary.containment_seconds or float("nan")
    figures["apply_calls"] = len(calls)

    reset(url)
    seed(url)
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    command = [sys.executable, "-m", "keyhygiene", "revoke", USER, "--yes", "--endpoint-url", url]
    figures["command_s"], result = timed(
        lambda: subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    )
    if result.returncode != 0:
        raise RuntimeError(result.stdout + result.stderr)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        KEYHYGIENE_STATE_DIR=os.environ.get("KEYHYGIENE_STATE_DIR", "/tmp/keyhygiene-bench-state"),
    )
    process, url = start_moto_server()
    try:
        rounds = [one_round(url) for _ in range(args.rounds)]
    finally:
        process.terminate()
        process.wait(timeout=10)

    def median(name: str) -> float:
        return statistics.median(r[name] for r in rounds)

    print(
        f"Emergency revoke of a user in {GROUPS} groups, named in {BUCKETS} bucket policies "
        f"and {KEYS} KMS key policies (moto server, median of {args.rounds} rounds):"
    )
    print(f"  plan steps                      {median('steps'):.0f}")
    print(
        f"  read what revoke needs          {median('load_s') * 1000:7.0f} ms  "
        f"{median('load_calls'):.0f} API calls"
    )
    print(f"  compute the plan                {median('plan_s') * 1000:7.1f} ms")
    print(
        f"  time to containment             {median('containment_s') * 1000:7.1f} ms  (keys inactive)"
    )
    print(
        f"  apply, all steps                {median('apply_s') * 1000:7.0f} ms  "
        f"{median('apply_calls'):.0f} API calls"
    )
    print(
        f"  read + apply                    {(median('load_s') + median('apply_s')) * 1000:7.0f} ms  "
        f"{median('load_calls') + median('apply_calls'):.0f} API calls"
    )
    print(
        f"  `keyhygiene revoke --yes`       {median('command_s') * 1000:7.0f} ms  (child process)"
    )
    print(
        f"  for comparison, full inventory  {median('inventory_s') * 1000:7.0f} ms  "
        f"{median('inventory_calls'):.0f} API calls"
    )


if __name__ == "__main__":
    main()
