"""Several accounts: the config file, the flags, matching computers, loading in
parallel, the role of a member account, and the cross-account audit."""

from __future__ import annotations

import argparse
import json
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from keyhygiene.audit.across_accounts import DEVICE_NOT_ALLOWED, run_accounts_audit
from keyhygiene.aws.accounts import load_accounts, organization_accounts
from keyhygiene.aws.connection import Connection
from keyhygiene.cli.accounts import account_specs, one_account
from keyhygiene.core.accounts import (
    AccountSpec,
    AccountView,
    match_computers,
    organization_role_arn,
)
from keyhygiene.core.errors import BadInput, KeyHygieneError
from keyhygiene.core.model import TAG_DEVICE, TAG_PERSON, Role, Snapshot, User
from keyhygiene.core.options import ConnectionOptions
from keyhygiene.local.accounts_config import read_accounts_config

NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)


def _user(account: str, name: str, person: str | None = None, device: str | None = None) -> User:
    tags = {TAG_PERSON: person, TAG_DEVICE: device} if person and device else {}
    return User(name=name, arn=f"arn:aws:iam::{account}:user/{name}", tags=tags)


def _snapshot(account: str, *users: User, roles: tuple[Role, ...] = ()) -> Snapshot:
    return Snapshot(
        account_id=account,
        caller_arn=f"arn:aws:iam::{account}:user/admin",
        loaded_at=NOW,
        users=users,
        roles=roles,
    )


def _view(name: str, snapshot: Snapshot, devices: tuple[str, ...] | None = None) -> AccountView:
    return AccountView(AccountSpec(name, ConnectionOptions(), devices=devices), snapshot=snapshot)


# ---- matching computers -----------------------------------------------------------


def test_a_computer_is_matched_across_accounts_by_its_tags() -> None:
    personal = _snapshot("111111111111", _user("111111111111", "chris-work", "chris", "work"))
    # Named differently in the work account, tagged the same: one computer.
    work = _snapshot("222222222222", _user("222222222222", "cw", "chris", "work"))
    computers = match_computers([_view("personal", personal), _view("work", work)])
    assert len(computers) == 1
    assert computers[0].accounts == ("personal", "work")
    assert [p.user.name for p in computers[0].presences] == ["chris-work", "cw"]


def test_only_tagged_users_are_matched_as_computers() -> None:
    a = _snapshot(
        "111111111111",
        _user("111111111111", "ann-laptop", "ann", "laptop"),
        _user("111111111111", "keyhygiene-admin"),  # fits person-device, is no computer
    )
    b = _snapshot("222222222222", _user("222222222222", "ann-laptop", "ann", "laptop"))
    computers = match_computers([_view("a", a), _view("b", b)])
    assert [(c.person, c.device, c.accounts) for c in computers] == [("ann", "laptop", ("a", "b"))]


def test_a_failed_account_is_left_out_of_the_matching() -> None:
    failed = AccountView(AccountSpec("client", ConnectionOptions()), error="expired")
    ok = _snapshot("111111111111", _user("111111111111", "ann-laptop", "ann", "laptop"))
    assert [c.accounts for c in match_computers([failed, _view("a", ok)])] == [("a",)]


# ---- the audit across accounts --------------------------------------------------------


def test_a_computer_in_an_account_its_practice_forbids_is_a_finding() -> None:
    work = _snapshot(
        "222222222222",
        _user("222222222222", "chris-home", "chris", "home"),
        _user("222222222222", "chris-work", "chris", "work"),
        _user("222222222222", "ci"),  # not a computer: not judged here
    )
    findings = run_accounts_audit([_view("work", work, devices=("chris-work",))], now=NOW)
    flagged = [f for f in findings if f.id == DEVICE_NOT_ALLOWED]
    assert [(f.resource, f.account) for f in flagged] == [("chris-home", "work")]
    assert "keyhygiene revoke chris-home --account work" in (flagged[0].fix or "")


def test_a_role_trusted_by_another_account_names_it_when_it_is_ours() -> None:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "111111111111"}, "Action": "sts:AssumeRole"}
        ],
    }
    named = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::333333333333:role/ci"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    work = _snapshot(
        "222222222222",
        roles=(
            Role("deploy", "arn:aws:iam::222222222222:role/deploy", trust_policy=trust),
            Role("ci", "arn:aws:iam::222222222222:role/ci", trust_policy=named),
        ),
    )
    personal = _snapshot("111111111111")
    findings = run_accounts_audit([_view("personal", personal), _view("work", work)], now=NOW)
    trusts = {f.resource: f for f in findings if f.id == "role.foreign-trust"}
    assert trusts["deploy"].severity == "high"
    assert "111111111111 (your account personal)" in trusts["deploy"].detail
    assert trusts["ci"].severity == "medium"  # one named role, not the whole account
    assert "your account" not in trusts["ci"].detail


# ---- the config file ---------------------------------------------------------------------


def test_the_config_file_lists_accounts(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        """
[[accounts]]
name = "personal"
admin_profile = "personal-admin"
profile = "personal"
account_id = "111111111111"
devices = ["chris-laptop"]

[[accounts]]
name = "work"
admin_profile = "work-admin"
"""
    )
    config = read_accounts_config(path)
    personal, work = config.accounts
    assert personal.options.profile == "personal" and personal.options.computer_key
    assert personal.devices == ("chris-laptop",) and personal.account_id == "111111111111"
    # No profile of this computer for work: its user is not looked for there.
    assert work.options.profile is None and not work.options.computer_key
    assert work.devices is None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[[accounts]]\nname = 'a'\n", "names no profile"),
        ("[[accounts]]\nadmin_profile = 'x'\n", "has no name"),
        (
            "[[accounts]]\nname = 'a'\nadmin_profile = 'x'\nacount_id = '1'\n",
            "unknown keys: acount_id",
        ),
        ("[[accounts]]\nname = 'a'\nadmin_profile = 'x'\naccount_id = '12'\n", "12-digit"),
        (
            "[[accounts]]\nname = 'a'\nadmin_profile = 'x'\n[[accounts]]\nname = 'a'\nprofile = 'y'\n",
            "more than once",
        ),
        ("[[accounts]\n", "not valid TOML"),
        ("[account]\n", "unknown entries: account"),
        (
            "[[accounts]]\nname = 'a'\nadmin_profile = 'x'\ndevices = 'chris'\n",
            "list of user names",
        ),
    ],
)
def test_a_config_file_that_cannot_be_used_says_why(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(BadInput) as caught:
        read_accounts_config(path)
    assert says in str(caught.value) and str(path) in str(caught.value)


def test_no_config_file_is_no_accounts(tmp_path: Path) -> None:
    assert read_accounts_config(tmp_path / "missing.toml").empty


# ---- the flags ------------------------------------------------------------------------------


def _args(**values: Any) -> argparse.Namespace:
    return argparse.Namespace(**values)


@pytest.fixture
def no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYHYGIENE_CONFIG", str(tmp_path / "none.toml"))


def test_one_profile_is_one_account_as_before(no_config: None) -> None:
    specs = account_specs(_args(profile=["laptop"], admin_profile=None))
    assert [s.options for s in specs] == [ConnectionOptions(profile="laptop")]


def test_repeated_flags_pair_in_order(no_config: None) -> None:
    specs = account_specs(_args(profile=["p", "w"], admin_profile=["p-admin", "w-admin"]))
    assert [(s.name, s.options.profile, s.options.admin_profile) for s in specs] == [
        ("p-admin", "p", "p-admin"),
        ("w-admin", "w", "w-admin"),
    ]
    with pytest.raises(BadInput, match="in pairs"):
        account_specs(_args(profile=["a", "b", "c"], admin_profile=["x", "y"]))
    with pytest.raises(BadInput, match="One --admin-profile"):
        account_specs(_args(profile=["a", "b"], admin_profile=["x"]))


def test_a_changing_command_is_refused_several_accounts(no_config: None) -> None:
    with pytest.raises(BadInput) as caught:
        one_account(_args(admin_profile=["p-admin", "w-admin"]))
    assert "--account" in (caught.value.hint or "")
    chosen = one_account(_args(admin_profile=["p-admin", "w-admin"], account=["w-admin"]))
    assert chosen.options.admin_profile == "w-admin"


def test_region_and_endpoint_flags_reach_configured_accounts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[[accounts]]\nname='a'\nadmin_profile='x'\nregion='eu-west-1'\n")
    monkeypatch.setenv("KEYHYGIENE_CONFIG", str(path))
    (spec,) = account_specs(_args(endpoint_url="http://127.0.0.1:5000"))
    assert spec.options.endpoint_url == "http://127.0.0.1:5000"
    assert spec.options.region == "eu-west-1"


# ---- loading --------------------------------------------------------------------------------


def test_accounts_load_in_parallel_and_one_failure_stays_its_own() -> None:
    running, most = [0], [0]
    lock = threading.Lock()

    def loader(options: ConnectionOptions, *, on_progress: Any) -> Any:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.2)
        with lock:
            running[0] -= 1
        if options.admin_profile == "broken":
            raise KeyHygieneError("The profile 'broken' is not in the AWS credentials file.")
        if options.admin_profile == "crash":
            raise RuntimeError("secret AKIA... in a message")
        return _snapshot(options.region or "111111111111"), None

    specs = [
        AccountSpec("a", ConnectionOptions(admin_profile="ok", region="111111111111")),
        AccountSpec("b", ConnectionOptions(admin_profile="broken")),
        AccountSpec("c", ConnectionOptions(admin_profile="crash")),
        AccountSpec("d", ConnectionOptions(admin_profile="ok", region="444444444444")),
        AccountSpec(
            "e",
            ConnectionOptions(admin_profile="ok", region="555555555555"),
            account_id="999999999999",
        ),
    ]
    loaded = load_accounts(specs, loader=loader, max_accounts=4)
    assert most[0] == 4  # bounded, and parallel
    views = [item.view for item in loaded]
    assert [v.spec.name for v in views] == ["a", "b", "c", "d", "e"]
    assert views[0].snapshot and views[3].snapshot
    assert "broken" in (views[1].error or "")
    # An unexpected error names its type, never its message (it may hold a secret).
    assert views[2].error == "Unexpected error while loading (RuntimeError)."
    assert "not 999999999999 as configured" in (views[4].error or "")


@mock_aws
def test_a_member_account_is_read_through_its_role() -> None:
    org = boto3.client("organizations", region_name="us-east-1")
    org.create_organization(FeatureSet="ALL")
    member = org.create_account(AccountName="client", Email="c@example.com")["CreateAccountStatus"][
        "AccountId"
    ]
    specs = organization_accounts(ConnectionOptions(region="us-east-1"))
    assert [(s.name, s.account_id) for s in specs][1] == ("client", member)
    management, client = specs
    assert management.options.role_arn is None
    assert client.options.role_arn == organization_role_arn(member, "OrganizationAccountAccessRole")
    identity = Connection(client.options.for_admin()).whoami()
    assert identity.account_id == member
    assert ":assumed-role/OrganizationAccountAccessRole/keyhygiene" in identity.arn
    # Clients made from that connection sign as the role too.
    iam = Connection(client.options.for_admin()).client("iam")
    iam.create_user(UserName="client-laptop")
    assert (
        json.dumps(boto3.client("iam", region_name="us-east-1").list_users()).count("client-laptop")
        == 0
    )


def test_a_profile_named_outright_never_reads_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """credential-process runs under the aws CLI with --profile: a broken
    keyhygiene config file must not break the aws CLI's every call."""
    broken = tmp_path / "config.toml"
    broken.write_text("[[accounts]\n")
    monkeypatch.setenv("KEYHYGIENE_CONFIG", str(broken))
    (spec,) = account_specs(_args(profile=["laptop"]))
    assert spec.options.profile == "laptop"
    with pytest.raises(BadInput, match="not valid TOML"):
        account_specs(_args())  # without a profile, the file is the answer, and it is broken
