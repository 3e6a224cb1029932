"""Several accounts in one run, against a moto server holding two accounts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run_cli
from two_accounts import BUCKET, PERSONAL, WORK, TwoAccounts, seed_two_accounts

from keyhygiene.core.model import REVOKED_POLICY_NAME


@pytest.fixture
def two(moto_endpoint: str, isolated_aws: Path) -> tuple[TwoAccounts, dict[str, str]]:
    accounts = seed_two_accounts(moto_endpoint)
    config = accounts.write_profiles(isolated_aws)
    # Only the profiles sign: the suite's `testing` keys must not stand in for them.
    env = {"KEYHYGIENE_CONFIG": str(config), "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}
    return accounts, env


def test_inventory_shows_both_accounts_and_the_computers_they_share(two) -> None:  # type: ignore[no-untyped-def]
    _, env = two
    result = run_cli("inventory", env=env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"Account personal ({PERSONAL})" in out
    assert f"Account work ({WORK})" in out
    assert "Computers across accounts" in out
    # The work computer is one computer with a user in both accounts.
    assert "work  (in personal, work, host ws-0042)" in out
    assert "personal: christopher-work" in out and "work: christopher-work" in out


def test_inventory_json_matches_computers_across_accounts(two) -> None:  # type: ignore[no-untyped-def]
    _, env = two
    result = run_cli("inventory", "-o", "json", env=env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [(a["name"], a["account_id"]) for a in data["accounts"]] == [
        ("personal", PERSONAL),
        ("work", WORK),
    ]
    work = next(c for c in data["computers"] if c["device"] == "work")
    assert {u["account_id"] for u in work["users"]} == {PERSONAL, WORK}
    assert work["hostname"] == "ws-0042"


def test_repeated_admin_profiles_are_several_accounts(two, moto_endpoint: str) -> None:  # type: ignore[no-untyped-def]
    _, env = two
    env = {**env, "KEYHYGIENE_CONFIG": "/nonexistent/config.toml"}
    result = run_cli(
        "inventory",
        "--admin-profile",
        "personal-admin",
        "--admin-profile",
        "work-admin",
        "--endpoint-url",
        moto_endpoint,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert f"Account personal-admin ({PERSONAL})" in result.stdout
    assert f"Account work-admin ({WORK})" in result.stdout


def test_audit_finds_the_cross_account_grants_and_the_computer_out_of_place(two) -> None:  # type: ignore[no-untyped-def]
    _, env = two
    result = run_cli("audit", "-o", "json", "--no-local", "--fail-on", "never", env=env)
    assert result.returncode == 0, result.stderr
    findings = json.loads(result.stdout)
    by_id = {(f["id"], f["account"], f["resource"]): f for f in findings}
    grant = by_id[("bucket.foreign-account", "personal", BUCKET)]
    assert f"{WORK} (your account work)" in grant["detail"]
    trust = by_id[("role.foreign-trust", "work", "deploy")]
    assert trust["severity"] == "high" and f"{PERSONAL} (your account personal)" in trust["detail"]
    out_of_place = by_id[("account.device-not-allowed", "work", "christopher-laptop")]
    assert "--account work" in out_of_place["fix"]
    # The work computer belongs in both; the laptop in personal.
    assert ("account.device-not-allowed", "personal", "christopher-laptop") not in by_id
    assert ("account.device-not-allowed", "work", "christopher-work") not in by_id


def test_revoke_in_every_account_cuts_both(two) -> None:  # type: ignore[no-untyped-def]
    accounts, env = two
    result = run_cli("revoke", "christopher-work", "--all-accounts", "--yes", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Revoke christopher-work in 2 account(s): personal, work." in result.stdout
    for account in ("personal", "work"):
        iam = accounts.client(account, "iam")
        keys = iam.list_access_keys(UserName="christopher-work")["AccessKeyMetadata"]
        assert keys and all(k["Status"] == "Inactive" for k in keys), account
        assert (
            REVOKED_POLICY_NAME
            in iam.list_user_policies(UserName="christopher-work")["PolicyNames"]
        )
        # The other computer is untouched.
        other = iam.list_access_keys(UserName="christopher-laptop")["AccessKeyMetadata"]
        assert all(k["Status"] == "Active" for k in other)


def test_revoke_without_yes_changes_nothing_in_any_account(two) -> None:  # type: ignore[no-untyped-def]
    accounts, env = two
    result = run_cli("revoke", "christopher-work", "--all-accounts", env=env)
    assert result.returncode == 5, result.stdout + result.stderr
    assert "pass --yes" in result.stdout
    for account in ("personal", "work"):
        keys = accounts.client(account, "iam").list_access_keys(UserName="christopher-work")
        assert all(k["Status"] == "Active" for k in keys["AccessKeyMetadata"])


def test_a_changing_command_needs_one_account(two) -> None:  # type: ignore[no-untyped-def]
    accounts, env = two
    result = run_cli("revoke", "christopher-laptop", "--yes", env=env)
    assert result.returncode == 2
    assert "--account" in result.stderr and "personal | work" in result.stderr
    result = run_cli("revoke", "christopher-laptop", "--account", "work", "--yes", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    work = accounts.client("work", "iam").list_access_keys(UserName="christopher-laptop")
    personal = accounts.client("personal", "iam").list_access_keys(UserName="christopher-laptop")
    assert all(k["Status"] == "Inactive" for k in work["AccessKeyMetadata"])
    assert all(k["Status"] == "Active" for k in personal["AccessKeyMetadata"])


def test_an_account_that_fails_does_not_stop_the_others(two, isolated_aws: Path) -> None:  # type: ignore[no-untyped-def]
    _, env = two
    config = Path(env["KEYHYGIENE_CONFIG"])
    config.write_text(
        config.read_text() + '\n[[accounts]]\nname = "client"\nadmin_profile = "no-such-profile"\n'
    )
    result = run_cli("inventory", env=env)
    assert result.returncode == 2
    assert f"Account work ({WORK})" in result.stdout
    assert "Account client: could not load" in result.stdout
    assert "error: account client: The profile 'no-such-profile'" in result.stderr


def test_an_unknown_account_is_a_clear_message(two) -> None:  # type: ignore[no-untyped-def]
    _, env = two
    result = run_cli("inventory", "--account", "holiday", env=env)
    assert result.returncode == 2
    assert "There is no account 'holiday'" in result.stderr
    assert "Known accounts: personal, work." in result.stderr


def test_every_account_of_an_organization(moto_endpoint: str, isolated_aws: Path) -> None:
    accounts = seed_two_accounts(moto_endpoint)
    accounts.write_profiles(isolated_aws)
    org = accounts.client("personal", "organizations")
    org.create_organization(FeatureSet="ALL")
    member = org.create_account(AccountName="client", Email="client@example.com")[
        "CreateAccountStatus"
    ]["AccountId"]
    env = {
        "KEYHYGIENE_CONFIG": "/nonexistent",
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
    }
    result = run_cli(
        "inventory",
        "--organization",
        "--admin-profile",
        "personal-admin",
        "--endpoint-url",
        moto_endpoint,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert f"({PERSONAL})" in result.stdout
    # The member account is read through OrganizationAccountAccessRole, assumed in it.
    assert f"Account client ({member})" in result.stdout
