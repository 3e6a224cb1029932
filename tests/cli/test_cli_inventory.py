"""The command line against the demo account's moto server, in child processes."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import run_cli

from keyhygiene import __version__
from keyhygiene.demo.server import DemoInfo


def demo_env(info: DemoInfo) -> dict[str, str]:
    env = {k: v for k, v in info.environment().items() if k != "KEYHYGIENE_STATE_DIR"}
    env["AWS_ACCESS_KEY_ID"] = ""
    env["AWS_SECRET_ACCESS_KEY"] = ""
    return env


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0 and __version__ in result.stdout


def test_inventory_json_lists_the_demo(demo_session: DemoInfo) -> None:
    result = run_cli("inventory", "--json", env=demo_env(demo_session))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    users = {u["name"] for u in data["users"]}
    assert {
        "christopher-laptop",
        "christopher-phone",
        "christopher-vacation",
        "shared-cli",
    } <= users
    assert {g["name"] for g in data["groups"]} >= {"admins", "photos", "keyhygiene-devices"}
    assert [r["name"] for r in data["roles"]] == ["photos"]
    assert {b["name"] for b in data["buckets"]} >= {
        "christopher-photos",
        "christopher-public-share",
    }
    assert data["kms_keys"][0]["aliases"] == ["alias/photos"]
    assert data["this_user"] == "christopher-laptop"
    secret_line = next(
        line
        for line in Path(demo_session.credentials_file).read_text().splitlines()
        if "secret" in line.lower()
    )
    assert secret_line.split("=", 1)[1].strip() not in result.stdout


def test_global_options_after_the_command(demo_session: DemoInfo) -> None:
    env = demo_env(demo_session)
    endpoint = env.pop("AWS_ENDPOINT_URL")
    result = run_cli(
        "inventory", "--endpoint-url", endpoint, "--profile", "christopher-laptop", env=env
    )
    assert result.returncode == 0, result.stderr
    assert "laptop  (this computer" in result.stdout


def test_unknown_profile_is_a_clear_message(demo_session: DemoInfo) -> None:
    result = run_cli("inventory", "--profile", "nope", env=demo_env(demo_session))
    assert result.returncode == 2
    assert "'nope' is not in the AWS credentials or config file" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_endpoint_is_a_clear_message() -> None:
    result = run_cli("inventory", "--endpoint-url", "http://127.0.0.1:9")
    assert result.returncode == 2
    assert "Cannot reach the AWS endpoint" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_credentials_is_a_clear_message(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    }
    result = run_cli("inventory", env=env)
    assert result.returncode == 2
    assert "No AWS credentials found" in result.stderr


def test_an_endpoint_that_is_not_aws_is_a_clear_message() -> None:
    import http.server
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        result = run_cli("inventory", "--endpoint-url", url)
    finally:
        server.shutdown()
    assert result.returncode == 2
    assert "not an AWS response" in result.stderr
    assert "Traceback" not in result.stderr


def test_demo_serve_export_lines_keep_a_second_terminal_in_the_sandbox(
    fresh_demo: DemoInfo, tmp_path: Path
) -> None:
    """The lines `demo serve` prints: a shell that runs them rotates the demo's
    key into a sandbox keyring, keeps its journal in the sandbox, and the real
    aws CLI signs through credential_process; the real ~/.aws stays as it was."""
    import os
    import subprocess
    import sys

    home = Path(os.environ["HOME"])
    before = sorted(str(p) for p in home.rglob("*"))
    script = "\n".join(
        [
            *fresh_demo.export_lines(),
            f"{sys.executable} -m keyhygiene rotate --store keyring --yes --verify-interval 0",
            f"{Path(sys.executable).parent / 'aws'} sts get-caller-identity --output json",
        ]
    )
    # The test's own keys are in the environment, as a real account's may be.
    result = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=180, env=dict(os.environ)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"Arn": "arn:aws:iam::' in result.stdout and "christopher-laptop" in result.stdout
    sandbox = Path(fresh_demo.directory)
    assert (sandbox / "keyring.json").exists()
    assert "credential_process" in (sandbox / "config").read_text()
    assert list((sandbox / "state").rglob("*.json"))
    assert sorted(str(p) for p in home.rglob("*")) == before


# ---- --output json|text and --query, one spelling on every command that prints data


def test_inventory_output_json_and_query(demo_session: DemoInfo) -> None:
    env = demo_env(demo_session)
    full = run_cli("inventory", "--output", "json", env=env)
    assert full.returncode == 0, full.stderr
    names = sorted(user["name"] for user in json.loads(full.stdout)["users"])
    queried = run_cli("inventory", "--query", "users[].name", env=env)
    assert queried.returncode == 0, queried.stderr
    assert sorted(json.loads(queried.stdout)) == names
    # 0.2's spelling still works.
    old = run_cli("inventory", "--json", env=env)
    assert sorted(user["name"] for user in json.loads(old.stdout)["users"]) == names


def test_audit_takes_the_same_options(demo_session: DemoInfo) -> None:
    env = demo_env(demo_session)
    result = run_cli("audit", "-o", "json", "--query", "[].severity", "--fail-on", "never", env=env)
    assert result.returncode == 0, result.stderr
    severities = json.loads(result.stdout)
    assert severities and set(severities) <= {"critical", "high", "medium", "low", "info"}
    old = run_cli("audit", "--format", "json", "--fail-on", "never", env=env)
    assert len(json.loads(old.stdout)) == len(severities)


def test_a_bad_query_is_refused_before_aws() -> None:
    result = run_cli("inventory", "--query", "users[", "--endpoint-url", "http://127.0.0.1:9")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "is not a JMESPath expression" in result.stderr
    assert "Cannot reach" not in result.stderr


def test_a_dry_run_plan_as_json_with_a_query(demo_session: DemoInfo) -> None:
    env = demo_env(demo_session)
    result = run_cli(
        "revoke", "christopher-phone", "--dry-run", "--output", "json", "--query", "kind", env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == "revoke"
