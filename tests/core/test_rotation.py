"""Key rotation against moto's IAM and STS, in-process: plan, apply, verify, faults, crashes, recovery."""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from keyhygiene.aws.connection import ConnectionOptions
from keyhygiene.aws.sessions import shared_loader
from keyhygiene.core.errors import BadInput, KeyHygieneError
from keyhygiene.local import credentials_file, vault
from keyhygiene.local.credentials_file import CredentialsFileRefused
from keyhygiene.local.state_dir import state_dir
from keyhygiene.plans import PlanEvent
from keyhygiene.plans.journal import open_journals
from keyhygiene.workflows import rotation
from keyhygiene.workflows.rotation import (
    EXIT_AWS,
    EXIT_ROTATED,
    EXIT_VERIFY_FAILED,
    HeldKey,
    HeldKeyClients,
    KeyInfo,
    KeyLocation,
    RotationFacts,
    RotationOutcome,
    RotationRequest,
    Secret,
    TwoActiveKeys,
    execute_rotation,
    finish_or_roll_back,
    held_key,
    inspect_rotation,
    pending_rotations,
    plan_rotation,
)

USER = "christopher-laptop"
PROFILE = "laptop"
ARN = f"arn:aws:iam::123456789012:user/{USER}"
ALL_STEPS = (
    "delete-other",
    "create",
    "write",
    "verify",
    "deactivate",
    "verify-again",
    "delete-old",
)


class SimulatedCrash(BaseException):
    """Stands for SIGKILL: neither the engine nor rotation code may catch it."""


class FakeClock:
    """Time that passes only when the code sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def client(service: str, **credentials: str) -> Any:
    """A client sharing rotation's model loader: parsing the IAM model again
    for every test would cost more than the tests themselves."""
    session = botocore.session.get_session()
    session.register_component("data_loader", shared_loader())
    return session.create_client(service, region_name="us-east-1", **credentials)


@dataclass
class Account:
    iam: Any
    location: KeyLocation
    old_key_id: str
    old_secret: str
    before: bytes  # the credentials file as set up

    def keys(self) -> list[dict[str, Any]]:
        return self.iam.list_access_keys(UserName=USER)["AccessKeyMetadata"]

    def statuses(self) -> dict[str, str]:
        return {key["AccessKeyId"]: key["Status"] for key in self.keys()}


def credentials_text(key_id: str, secret: str, newline: str = "\n") -> str:
    lines = [
        "# This computer's keys. Do not share.",
        "[work]",
        "aws_access_key_id = AKIAWORKWORKWORKWORK",
        "aws_secret_access_key = not-a-real-secret-for-work",
        "",
        f"[{PROFILE}]",
        "; rotated by keyhygiene",
        f"AWS_ACCESS_KEY_ID = {key_id}",
        f"aws_secret_access_key={secret}",
        "region = us-east-1",
        "",
        "[zeta]",
        "output = json",
    ]
    return newline.join(lines) + newline


@pytest.fixture
def account(isolated_aws: Path) -> Iterator[Account]:
    vault.reset_memory_backend()
    rotation.forget_backups()
    with mock_aws():
        iam = client("iam")
        iam.create_user(UserName=USER)
        key = iam.create_access_key(UserName=USER)["AccessKey"]
        location = KeyLocation.for_profile(PROFILE)
        text = credentials_text(key["AccessKeyId"], key["SecretAccessKey"], newline="\r\n")
        location.credentials_file.write_bytes(text.encode())
        os.chmod(location.credentials_file, 0o600)
        location.config_file.write_text(f"[profile {PROFILE}]\nregion = us-east-1\n")
        yield Account(iam, location, key["AccessKeyId"], key["SecretAccessKey"], text.encode())
    rotation.forget_backups()


@pytest.fixture
def fake() -> FakeClock:
    return FakeClock()


def request(**changes: Any) -> RotationRequest:
    values: dict[str, Any] = {"profile": PROFILE, "verify_interval": 0.2, "verify_timeout": 5.0}
    values.update(changes)
    return RotationRequest(**values)


def clients_for(account: Account, cls: type[HeldKeyClients] = HeldKeyClients) -> HeldKeyClients:
    return cls(ConnectionOptions(profile=PROFILE, region="us-east-1"), account.location)


def rotate(
    account: Account,
    fake: FakeClock,
    *,
    clients: HeldKeyClients | None = None,
    on_event: Callable[[PlanEvent], None] | None = None,
    **changes: Any,
) -> RotationOutcome:
    clients = clients or clients_for(account)
    plan = plan_rotation(inspect_rotation(clients), request(**changes))
    return execute_rotation(plan, clients, on_event=on_event, clock=fake.clock, sleep=fake.sleep)


def normal_run(account: Account, fake: FakeClock, **changes: Any) -> None:
    """What `keyhygiene rotate --yes` does: deal with an interrupted run, then rotate if needed."""
    for pending in pending_rotations(profile=PROFILE):
        outcome = finish_or_roll_back(
            pending, clients=clients_for(account), clock=fake.clock, sleep=fake.sleep
        )
        assert outcome.ok, outcome.render_text()
        if outcome.action == "finish":
            return
    outcome = rotate(account, fake, **changes)
    assert outcome.ok, outcome.render_text()


def assert_one_working_key(account: Account) -> str:
    """Exactly one key on the user, active, held by the profile, signing as the user."""
    keys = account.keys()
    assert len(keys) == 1, keys
    held = held_key(account.location)
    assert held is not None
    assert keys[0]["AccessKeyId"] == held.access_key_id
    assert keys[0]["Status"] == "Active"
    sts = client(
        "sts", aws_access_key_id=held.access_key_id, aws_secret_access_key=held.secret.reveal()
    )
    assert sts.get_caller_identity()["Arn"] == ARN
    assert open_journals() == []
    return held.access_key_id


def file_secret(account: Account) -> str:
    values = credentials_file.read_profile(account.location.credentials_file, PROFILE)
    return values["aws_secret_access_key"]


def all_journal_text() -> str:
    return "\n".join(path.read_text() for path in sorted(state_dir().rglob("*.json")))


Selector = Callable[[str, dict[str, Any]], bool]  # (signing key id, API params) -> fail?


class FaultyClients(HeldKeyClients):
    """Clients on which one API operation fails, as AWS would make it fail."""

    fault: tuple[str, str, str] | None = None  # (service, Operation, error code)
    selector: Selector = staticmethod(lambda key_id, params: True)  # type: ignore[assignment]

    def client_for_key(self, service: str, key: HeldKey) -> Any:
        client = super().client_for_key(service, key)
        if self.fault and self.fault[0] == service and not getattr(client, "_faulty", False):
            client._faulty = True
            client.meta.events.register(
                f"before-parameter-build.{service}.{self.fault[1]}",
                self._raiser(key.access_key_id),
            )
        return client

    def _raiser(self, key_id: str) -> Callable[..., None]:
        def raise_fault(params: dict[str, Any], **_: Any) -> None:
            if self.fault is None or not self.selector(key_id, params):
                return
            code = self.fault[2]
            status = {"InternalError": 500, "Throttling": 400, "AccessDenied": 403}[code]
            raise ClientError(
                {
                    "Error": {"Code": code, "Message": f"injected {code}"},
                    "ResponseMetadata": {"HTTPStatusCode": status},
                },
                self.fault[1],
            )

        return raise_fault


# --------------------------------------------------------------------------- plan


def facts(**changes: Any) -> RotationFacts:
    location = KeyLocation(PROFILE, Path("/home/c/.aws/credentials"), Path("/home/c/.aws/config"))
    values: dict[str, Any] = {
        "location": location,
        "store": "file",
        "account_id": "123456789012",
        "user_name": USER,
        "user_arn": ARN,
        "current_key_id": "AKIAOLDOLDOLDOLDOLD1",
        "keys": (KeyInfo("AKIAOLDOLDOLDOLDOLD1", "Active"),),
        "file_mode": 0o600,
    }
    values.update(changes)
    return RotationFacts(**values)


def test_plan_reads_as_the_steps_it_runs() -> None:
    plan = plan_rotation(facts(), request(verify_timeout=60, verify_successes=3))
    assert [step.id for step in plan.steps] == list(ALL_STEPS[1:])
    text = plan.render_text()
    assert text.startswith(f"Plan (rotate): Rotate the access key of {USER} (profile {PROFILE})")
    assert f"1. Create a new access key for {USER}" in text
    assert f'do:   local:rotation.create_key {{"UserName": "{USER}"}}' in text
    assert "journal keeps: AccessKey.AccessKeyId" in text
    assert (
        f"2. Write the new key into /home/c/.aws/credentials, profile [{PROFILE}], "
        "in place of AKIAOLDOLDOLDOLDOLD1; every other line stays as it is"
    ) in text
    assert f"must answer {ARN} 3 times in a row" in text
    assert "retrying with backoff for up to 60 s" in text
    assert "4. Deactivate the old key AKIAOLDOLDOLDOLDOLD1" in text
    assert 'do:   local:rotation.set_key_status {"UserName"' in text
    assert '"Status": "Inactive"' in text and '"Status": "Active"' in text
    assert "6. Delete the old key AKIAOLDOLDOLDOLDOLD1" in text
    assert "Secret" not in text
    # No secret can be in a plan: it is data about names and ids only.
    assert "SecretAccessKey" not in json.dumps(plan.to_json())


def test_a_second_active_key_stops_the_plan_unless_asked() -> None:
    two = (KeyInfo("AKIAOLDOLDOLDOLDOLD1", "Active"), KeyInfo("AKIAOTHEROTHEROTHER2", "Active"))
    with pytest.raises(TwoActiveKeys) as caught:
        plan_rotation(facts(keys=two), request())
    message = str(caught.value)
    assert "second active access key, AKIAOTHEROTHEROTHER2" in message
    assert "One computer keeps one key" in message and "--delete-other" in message
    plan = plan_rotation(facts(keys=two), request(delete_other=True))
    assert plan.steps[0].id == "delete-other"
    assert "ACTIVE" in plan.steps[0].description
    assert any("whatever uses it stops working" in warning for warning in plan.warnings)


def test_an_inactive_second_key_is_deleted_as_part_of_the_plan() -> None:
    two = (KeyInfo("AKIAOLDOLDOLDOLDOLD1", "Active"), KeyInfo("AKIAOTHEROTHEROTHER2", "Inactive"))
    plan = plan_rotation(facts(keys=two), request())
    assert [step.id for step in plan.steps] == list(ALL_STEPS)
    assert "other access key AKIAOTHEROTHEROTHER2 (inactive" in plan.steps[0].description


def test_plan_warnings_for_a_wide_file_and_a_move_to_the_keyring() -> None:
    plan = plan_rotation(facts(file_mode=0o644), request())
    assert any("mode 0644" in warning for warning in plan.warnings)
    plan = plan_rotation(facts(), request(store="keyring", credential_process="kh cp"))
    assert any("credential_process = kh cp" in warning for warning in plan.warnings)
    write = plan.step("write").call.params
    assert write["store"] == "keyring" and write["credential_process"] == "kh cp"


def test_requests_are_checked() -> None:
    with pytest.raises(BadInput):
        RotationRequest(profile=PROFILE, verify_timeout=0)
    with pytest.raises(BadInput):
        RotationRequest(profile=PROFILE, verify_successes=0)
    with pytest.raises(BadInput):
        RotationRequest(profile=PROFILE, store="pastebin")  # type: ignore[arg-type]


def test_secret_never_shows_in_its_wrapper() -> None:
    secret = Secret("wJalrXUtnFEMI/K7MDENG+bPxRfiCYzEXAMPLEKEY")
    shown = [repr(secret), str(secret), f"{secret}", f"{secret!r}", repr([secret])]
    assert all("EXAMPLEKEY" not in text for text in shown)
    assert secret.reveal().endswith("EXAMPLEKEY")
    key = HeldKey("AKIA1", secret, "file")
    assert "EXAMPLEKEY" not in repr(key)


# --------------------------------------------------------------------------- rotating


def test_rotation_leaves_one_verified_key_in_an_otherwise_identical_file(
    account: Account, fake: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    events: list[PlanEvent] = []
    outcome = rotate(account, fake, on_event=events.append)

    assert outcome.exit_code == EXIT_ROTATED, outcome.render_text()
    new_id = assert_one_working_key(account)
    assert new_id != account.old_key_id and outcome.new_key_id == new_id
    new_secret = file_secret(account)
    # Every other byte of the file is as it was: CRLF, comments, key spelling.
    after = account.location.credentials_file.read_bytes()
    expected = account.before.replace(account.old_key_id.encode(), new_id.encode()).replace(
        account.old_secret.encode(), new_secret.encode()
    )
    assert after == expected
    assert stat.S_IMODE(account.location.credentials_file.stat().st_mode) == 0o600
    # The proof was made with the new key, and the report says so.
    assert outcome.proof_arn == ARN
    text = outcome.render_text()
    assert f"now holds the new key …{new_id[-4:]}" in text
    assert "Proof, made with the new key" in text
    # 3 successes in a row, twice, 0.2 s apart; no failure, so no backoff.
    assert fake.sleeps == [0.2] * 4
    assert [event.kind for event in events].count("step_done") == 6
    # The secrets are nowhere: journal, report, events, logs (botocore logs bodies at DEBUG).
    places = {
        "journal": all_journal_text(),
        "report": text,
        "outcome": repr(outcome),
        "events": repr(events),
        "logs": caplog.text,
    }
    assert "SecretAccessKey" in caplog.text  # botocore did log the CreateAccessKey body
    for name, place in places.items():
        for secret in (new_secret, account.old_secret):
            assert secret not in place, f"a secret leaked into the {name}"


def test_rotation_into_the_keyring_and_back(account: Account, fake: FakeClock) -> None:
    outcome = rotate(account, fake, store="keyring", credential_process="kh credential-process")
    assert outcome.ok, outcome.render_text()
    first = assert_one_working_key(account)
    plaintext = credentials_file.read_profile(account.location.credentials_file, PROFILE)
    assert "aws_access_key_id" not in plaintext and "aws_secret_access_key" not in plaintext
    assert plaintext["region"] == "us-east-1"  # the rest of the profile stays
    assert account.old_secret.encode() not in account.location.credentials_file.read_bytes()
    config = credentials_file.read_profile(account.location.config_file, PROFILE, config_style=True)
    assert config["credential_process"] == "kh credential-process"
    stored = vault.load_key(PROFILE)
    assert stored is not None and stored.access_key_id == first
    assert held_key(account.location).store == "keyring"  # type: ignore[union-attr]

    # Keyring to keyring: the entry is replaced, the files stay.
    config_bytes = account.location.config_file.read_bytes()
    assert rotate(account, fake, credential_process="kh credential-process").ok
    second = assert_one_working_key(account)
    assert second != first and vault.load_key(PROFILE).access_key_id == second  # type: ignore[union-attr]
    assert account.location.config_file.read_bytes() == config_bytes

    # And back to the file: credential_process and the keyring entry go.
    assert rotate(account, fake, store="file").ok
    third = assert_one_working_key(account)
    assert held_key(account.location).store == "file"  # type: ignore[union-attr]
    assert third not in (first, second)
    assert vault.load_key(PROFILE) is None
    config = credentials_file.read_profile(account.location.config_file, PROFILE, config_style=True)
    assert "credential_process" not in config


def test_keyring_rollback_puts_everything_back(account: Account, fake: FakeClock) -> None:
    assert rotate(account, fake, store="keyring", credential_process="kh credential-process").ok
    held = held_key(account.location)
    files = (
        account.location.credentials_file.read_bytes(),
        account.location.config_file.read_bytes(),
    )

    def never(clients: Any, key: HeldKey) -> tuple[str, str]:
        return "", "InvalidClientTokenId"

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rotation.verification, "_who_am_i", never)
        outcome = rotate(account, fake, store="file")
    assert outcome.exit_code == EXIT_VERIFY_FAILED
    assert held_key(account.location) == held
    assert (
        account.location.credentials_file.read_bytes(),
        account.location.config_file.read_bytes(),
    ) == files
    assert_one_working_key(account)


def test_verification_retries_with_backoff_until_enough_successes(
    account: Account, fake: FakeClock
) -> None:
    answers = iter(["bad", "bad", "ok", "bad", "ok", "ok", "ok"])
    real = rotation.verification._who_am_i

    def flaky(clients: Any, key: HeldKey) -> tuple[str, str]:
        answer = next(answers, "ok")
        if answer == "bad" and key.access_key_id != account.old_key_id:
            return "", "InvalidClientTokenId"
        return real(clients, key)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rotation.verification, "_who_am_i", flaky)
        outcome = rotate(account, fake, verify_successes=3, verify_timeout=60)
    assert outcome.ok, outcome.render_text()
    # bad, bad (backoff 0.5, 1.0), ok (0.2), bad (2.0: a failure resets the run), ok, ok, ok.
    assert fake.sleeps[:6] == [0.5, 1.0, 0.2, 2.0, 0.2, 0.2]
    assert outcome.report is not None and outcome.report.kept["verify"]["Tries"] == 7
    assert_one_working_key(account)


def test_a_key_that_never_verifies_is_rolled_back(account: Account, fake: FakeClock) -> None:
    def never(clients: Any, key: HeldKey) -> tuple[str, str]:
        return "", "InvalidClientTokenId"

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rotation.verification, "_who_am_i", never)
        outcome = rotate(account, fake, verify_timeout=20)

    assert outcome.exit_code == EXIT_VERIFY_FAILED
    # Bounded: the waits add up to no more than the timeout, doubling to 8 s.
    assert sum(fake.sleeps) <= 20
    assert fake.sleeps[:5] == [0.5, 1.0, 2.0, 4.0, 8.0]
    text = outcome.render_text()
    assert "never verified" in text and "InvalidClientTokenId" in text
    assert "holds the old key" in text
    assert account.location.credentials_file.read_bytes() == account.before
    assert account.statuses() == {account.old_key_id: "Active"}
    assert open_journals() == []


def test_failing_after_the_deactivation_reactivates_the_old_key(
    account: Account, fake: FakeClock
) -> None:
    calls = {"n": 0}
    real = rotation.verification._who_am_i

    def fails_later(clients: Any, key: HeldKey) -> tuple[str, str]:
        calls["n"] += 1
        if calls["n"] > 3:  # the first verification passes, the second never does
            return "", "InvalidClientTokenId"
        return real(clients, key)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rotation.verification, "_who_am_i", fails_later)
        outcome = rotate(account, fake)

    assert outcome.exit_code == EXIT_VERIFY_FAILED, outcome.render_text()
    assert outcome.undo_report is not None
    assert {r.step_id for r in outcome.undo_report.undone} == {"deactivate", "write", "create"}
    # Moto authenticates an inactive key too: the status is the proof.
    assert account.statuses() == {account.old_key_id: "Active"}
    assert account.location.credentials_file.read_bytes() == account.before


def test_a_file_botocore_cannot_parse_is_refused_untouched(account: Account) -> None:
    broken = account.before + b"[work]\r\nregion = eu-west-1\r\n"
    account.location.credentials_file.write_bytes(broken)
    with pytest.raises(CredentialsFileRefused) as caught:
        inspect_rotation(clients_for(account))
    assert "duplicate section [work]" in str(caught.value)
    assert caught.value.exit_code == 2
    assert account.location.credentials_file.read_bytes() == broken
    assert account.statuses() == {account.old_key_id: "Active"}


def test_a_session_token_in_default_is_named_in_the_plan(account: Account) -> None:
    text = "[default]\r\naws_session_token = STALE\r\n" + account.before.decode()
    account.location.credentials_file.write_bytes(text.replace("[default]", "[DEFAULT]").encode())
    found = inspect_rotation(clients_for(account))
    assert found.inherited == ("aws_session_token",)
    described = plan_rotation(found, request()).step("write").description
    assert f"aws_session_token = (empty) in [{PROFILE}] to override [DEFAULT]'s" in described
    # Without one, the plan says nothing about [DEFAULT].
    assert "DEFAULT" not in plan_rotation(facts(), request()).step("write").description


def test_a_hard_linked_file_is_refused_before_any_key_is_made(account: Account) -> None:
    os.link(account.location.credentials_file, account.location.credentials_file.parent / "copy")
    with pytest.raises(BadInput, match="hard link"):
        inspect_rotation(clients_for(account))
    assert account.statuses() == {account.old_key_id: "Active"}


def test_a_profile_without_a_key_is_bad_input(account: Account) -> None:
    other = KeyLocation("zeta", account.location.credentials_file, account.location.config_file)
    clients = HeldKeyClients(ConnectionOptions(profile="zeta"), other)
    with pytest.raises(BadInput, match="holds no long-term access key"):
        inspect_rotation(clients)


# --------------------------------------------------------------------------- faults

# (name, service, operation, which call: a selector over (signing key, params))
API_CALLS = {
    "identify": ("sts", "GetCallerIdentity", lambda a: lambda key, p: key == a.old_key_id),
    "list": ("iam", "ListAccessKeys", lambda a: lambda key, p: True),
    "delete-other": (
        "iam",
        "DeleteAccessKey",
        lambda a: lambda key, p: p.get("AccessKeyId") != a.old_key_id,
    ),
    "create": ("iam", "CreateAccessKey", lambda a: lambda key, p: True),
    "verify": ("sts", "GetCallerIdentity", lambda a: lambda key, p: key != a.old_key_id),
    "deactivate": ("iam", "UpdateAccessKey", lambda a: lambda key, p: True),
    "delete-old": (
        "iam",
        "DeleteAccessKey",
        lambda a: lambda key, p: p.get("AccessKeyId") == a.old_key_id,
    ),
}
FAULTS = ["Throttling", "InternalError", "AccessDenied"]


@pytest.mark.parametrize("code", FAULTS)
@pytest.mark.parametrize("call", list(API_CALLS))
def test_a_fault_at_each_api_call_ends_clearly_and_consistently(
    account: Account, fake: FakeClock, call: str, code: str
) -> None:
    other = account.iam.create_access_key(UserName=USER)["AccessKey"]["AccessKeyId"]
    account.iam.update_access_key(UserName=USER, AccessKeyId=other, Status="Inactive")
    service, operation, selector = API_CALLS[call]
    clients = clients_for(account, FaultyClients)
    assert isinstance(clients, FaultyClients)
    clients.fault = (service, operation, code)
    clients.selector = selector(account)  # type: ignore[assignment]
    wording = {
        "Throttling": "kept throttling",
        "InternalError": "InternalError",
        "AccessDenied": f"lacks {service}:{operation}",
    }[code]

    if call in ("identify", "list"):
        with pytest.raises(KeyHygieneError) as caught:
            inspect_rotation(clients)
        assert caught.value.exit_code == EXIT_AWS and wording in str(caught.value)
        if code == "AccessDenied":
            assert "use --admin-profile" not in str(caught.value)
        assert account.location.credentials_file.read_bytes() == account.before
        assert account.statuses() == {account.old_key_id: "Active", other: "Inactive"}
        return
    plan = plan_rotation(inspect_rotation(clients), request(verify_timeout=3))
    outcome = execute_rotation(plan, clients, clock=fake.clock, sleep=fake.sleep)

    text = outcome.render_text()
    if call == "verify":
        assert outcome.exit_code == EXIT_VERIFY_FAILED, text
        assert f"last problem: {code}" in text
    else:
        assert outcome.exit_code == EXIT_AWS, text
        assert wording in text
        if code == "AccessDenied":
            # A rotation signs with the profile's own key: --admin-profile cannot help.
            assert "use --admin-profile" not in text
            assert "keyhygiene-rotate-own-key policy grants it" in text
    if call == "delete-other":
        assert outcome.headline.startswith("Nothing was changed")
    if call == "create":
        assert "failed at step 2" in text and "no new key was made" in text
    if call == "delete-old":
        assert "Run `keyhygiene rotate` again to finish" in text
    else:
        assert open_journals() == []
    for secret in (account.old_secret, file_secret(account)):
        assert secret not in text and secret not in all_journal_text()
    # A consistent state: one active key, the one the profile holds.
    active = [key for key, status in account.statuses().items() if status == "Active"]
    held = held_key(account.location)
    assert held is not None and active == [held.access_key_id]
    # The next normal run ends with one working key and nothing left over.
    normal_run(account, fake)
    assert_one_working_key(account)


def test_fault_messages_name_the_missing_permission(account: Account, fake: FakeClock) -> None:
    clients = clients_for(account, FaultyClients)
    assert isinstance(clients, FaultyClients)
    clients.fault = ("iam", "CreateAccessKey", "AccessDenied")
    outcome = rotate(account, fake, clients=clients)
    assert outcome.exit_code == EXIT_AWS
    assert outcome.headline.startswith("Nothing was changed: ")
    assert "lacks iam:CreateAccessKey" in outcome.headline
    assert account.statuses() == {account.old_key_id: "Active"}
    assert open_journals() == []


# --------------------------------------------------------------------------- crashes

CRASH_POINTS = [f"{step}:before" for step in ALL_STEPS] + list(ALL_STEPS)


def arm_crash(monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    """The crash hook needs both variables: one alone is inert."""
    monkeypatch.setenv(rotation.CRASH_ENV, where)
    monkeypatch.setenv(rotation.TESTING_ENV, "1")


def disarm_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(rotation.CRASH_ENV)
    monkeypatch.delenv(rotation.TESTING_ENV)
    rotation.forget_backups()


@pytest.mark.parametrize("where", CRASH_POINTS)
def test_a_run_killed_at_any_step_is_recovered_by_the_next_run(
    account: Account, fake: FakeClock, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    other = account.iam.create_access_key(UserName=USER)["AccessKey"]["AccessKeyId"]
    account.iam.update_access_key(UserName=USER, AccessKeyId=other, Status="Inactive")

    def die() -> None:
        raise SimulatedCrash(where)

    monkeypatch.setattr(rotation.crash_hook, "_die", die)
    arm_crash(monkeypatch, where)
    with pytest.raises(SimulatedCrash):
        rotate(account, fake)
    # The process is gone: so are its memory and its environment.
    disarm_crash(monkeypatch)

    pending = pending_rotations(profile=PROFILE)
    assert len(pending) == 1
    step = where.split(":")[0]
    written = step in ("verify", "deactivate", "verify-again", "delete-old") or where == "write"
    assert pending[0].action == ("finish" if written else "roll_back"), pending[0].description
    assert account.old_secret not in pending[0].description

    normal_run(account, fake)
    new_id = assert_one_working_key(account)
    assert new_id not in (account.old_key_id, other)
    for path in sorted(state_dir().rglob("*.json")):
        text = path.read_text()
        assert account.old_secret not in text and file_secret(account) not in text


def test_recovery_describes_what_it_will_do(
    account: Account, fake: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        rotation.crash_hook, "_die", lambda: (_ for _ in ()).throw(SimulatedCrash())
    )
    arm_crash(monkeypatch, "create")
    with pytest.raises(SimulatedCrash):
        rotate(account, fake)
    disarm_crash(monkeypatch)
    (pending,) = pending_rotations()
    assert pending.action == "roll_back"
    assert "A new key may have been created but never written" in pending.description
    assert "step 1 was interrupted" in pending.description
    outcome = finish_or_roll_back(pending, clients=clients_for(account))
    assert outcome.ok and outcome.action == "roll_back"
    assert "Deleted the key(s) the interrupted run created and never wrote" in outcome.headline
    assert account.statuses() == {account.old_key_id: "Active"}
    assert pending_rotations() == []


# --------------------------------------------------------------------------- vault


def test_memory_vault_round_trip_and_hidden_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    vault.reset_memory_backend()
    assert vault.load_key("p") is None
    vault.store_key("p", "AKIA1", Secret("s3cr3t-value-0123456789"))
    key = vault.load_key("p")
    assert key is not None and key.access_key_id == "AKIA1"
    assert key.secret.reveal() == "s3cr3t-value-0123456789"
    assert "s3cr3t" not in repr(key) and "s3cr3t" not in repr(vault.keyring_backend())
    assert vault.delete_key("p") and vault.load_key("p") is None and not vault.delete_key("p")


def test_file_vault_is_private(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "vault" / "keys.json"
    monkeypatch.setenv(vault.ENV_VAR, f"file:{path}")
    vault.store_key("p", "AKIA1", Secret("another-secret-0123456789"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert vault.load_key("p").secret.reveal() == "another-secret-0123456789"  # type: ignore[union-attr]


def test_no_usable_keyring_is_said_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    import keyring
    from keyring.backends import chainer, fail, null

    monkeypatch.delenv(vault.ENV_VAR)
    monkeypatch.setattr(keyring, "get_keyring", lambda: fail.Keyring())
    usable, sentence = vault.keyring_status()
    assert not usable and "No usable OS keyring" in sentence
    with pytest.raises(vault.KeyringUnavailable) as caught:
        rotation.check_store_usable("keyring")
    assert caught.value.exit_code == 2 and "stays in the credentials file" in str(caught.value)
    rotation.check_store_usable("file", "file")  # the file needs no keyring

    class Empty(chainer.ChainerBackend):
        backends: list[Any] = []

    assert "no backend to chain" in vault.unusable_reason(Empty())
    assert "disabled" in vault.unusable_reason(null.Keyring())
    monkeypatch.setenv(vault.ENV_VAR, "bogus")
    with pytest.raises(BadInput, match="not understood"):
        vault.keyring_backend()


# --------------------------------------------------------------------------- rollback safety (C1)


def fails_after(n: int) -> Callable[[Any, HeldKey], tuple[str, str]]:
    """A who-am-I that answers its first `n` checks, then never again: the
    first verification passes, the second (after the deactivation) fails."""
    calls = {"n": 0}
    real = rotation.verification._who_am_i

    def who(clients: Any, key: HeldKey) -> tuple[str, str]:
        calls["n"] += 1
        if calls["n"] > n:
            return "", "InvalidClientTokenId"
        return real(clients, key)

    return who


def reactivation_fails(account: Account, code: str, times: int | None = None) -> FaultyClients:
    """Clients on which UpdateAccessKey(Status=Active) fails (`times` times, or always)."""
    clients = clients_for(account, FaultyClients)
    assert isinstance(clients, FaultyClients)
    clients.fault = ("iam", "UpdateAccessKey", code)
    failures = {"n": 0}

    def selector(key_id: str, params: dict[str, Any]) -> bool:
        if params.get("Status") != "Active":
            return False
        failures["n"] += 1
        return times is None or failures["n"] <= times

    clients.selector = selector  # type: ignore[assignment]
    clients.reactivations = failures  # type: ignore[attr-defined]
    return clients


@pytest.mark.parametrize("code", ["AccessDenied", "InternalError"])
def test_a_rollback_never_leaves_the_profile_with_an_inactive_key(
    account: Account, fake: FakeClock, code: str
) -> None:
    clients = reactivation_fails(account, code)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rotation.verification, "_who_am_i", fails_after(3))
        outcome = rotate(account, fake, clients=clients)

    text = outcome.render_text()
    assert outcome.exit_code == EXIT_AWS, text
    new_id = outcome.new_key_id
    assert new_id is not None
    # The old key could not be switched back on (retried with backoff first),
    # so the profile keeps the new key, which stays active.
    # 0.5, 1, 2, 4, 8, 8 s apart: seven tries within REACTIVATE_TIMEOUT (30 s).
    assert clients.reactivations["n"] == 7  # type: ignore[attr-defined]
    assert f"Kept the new key {new_id}" in text
    assert f"the old key {account.old_key_id} is Inactive in AWS" in text
    assert f"Profile {PROFILE} keeps the new key" in outcome.headline
    assert "Run `keyhygiene rotate` again: it finishes this rotation" in outcome.headline
    assert account.statuses() == {account.old_key_id: "Inactive", new_id: "Active"}
    held = held_key(account.location)
    assert held is not None and held.access_key_id == new_id
    sts = client("sts", aws_access_key_id=new_id, aws_secret_access_key=held.secret.reveal())
    assert sts.get_caller_identity()["Arn"] == ARN
    for secret in (account.old_secret, held.secret.reveal()):
        assert secret not in text and secret not in all_journal_text()
    # The next run finishes the rotation with the new key instead of looping.
    (pending,) = pending_rotations(profile=PROFILE)
    assert pending.action == "finish"

    normal_run(account, fake)
    assert assert_one_working_key(account) == new_id


def test_the_reactivation_is_retried_and_then_the_rollback_completes(
    account: Account, fake: FakeClock
) -> None:
    clients = reactivation_fails(account, "InternalError", times=2)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rotation.verification, "_who_am_i", fails_after(3))
        outcome = rotate(account, fake, clients=clients)
    assert outcome.exit_code == EXIT_VERIFY_FAILED, outcome.render_text()
    assert outcome.undo_report is not None
    assert {r.step_id for r in outcome.undo_report.undone} == {"deactivate", "write", "create"}
    assert account.statuses() == {account.old_key_id: "Active"}
    assert account.location.credentials_file.read_bytes() == account.before
    assert_one_working_key(account)


def test_the_old_content_goes_back_only_if_the_old_key_answers(
    account: Account, fake: FakeClock
) -> None:
    """The old key is deleted behind keyhygiene's back during the verification:
    putting it back would leave a dead key in the file."""

    def never_and_lose_old(clients: Any, key: HeldKey) -> tuple[str, str]:
        if account.old_key_id in account.statuses():
            account.iam.delete_access_key(UserName=USER, AccessKeyId=account.old_key_id)
        return "", "InvalidClientTokenId"

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rotation.verification, "_who_am_i", never_and_lose_old)
        outcome = rotate(account, fake)
    text = outcome.render_text()
    assert outcome.exit_code == EXIT_AWS, text
    # (moto answers a deleted key as its default user "moto"; AWS refuses it.)
    assert f"Kept the new key {outcome.new_key_id}" in text
    assert f"the old key {account.old_key_id} signs as arn:aws:sts::123456789012:user/moto" in text
    assert held_key(account.location).access_key_id == outcome.new_key_id  # type: ignore[union-attr]
    assert account.statuses() == {outcome.new_key_id: "Active"}
    normal_run(account, fake)
    assert assert_one_working_key(account) == outcome.new_key_id


def test_the_new_key_signs_its_own_deletion_when_the_old_key_cannot(
    account: Account, fake: FakeClock
) -> None:
    clients = clients_for(account, FaultyClients)
    assert isinstance(clients, FaultyClients)
    clients.fault = ("iam", "DeleteAccessKey", "AccessDenied")
    old = account.old_key_id
    clients.selector = lambda key, p: key == old and p.get("AccessKeyId") != old  # type: ignore[assignment]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            rotation.verification, "_who_am_i", lambda clients, key: ("", "InvalidClientTokenId")
        )
        outcome = rotate(account, fake, clients=clients)
    assert outcome.exit_code == EXIT_VERIFY_FAILED, outcome.render_text()
    assert account.location.credentials_file.read_bytes() == account.before
    assert_one_working_key(account)


# --------------------------------------------------------------------------- restoring lines (C9)


def test_an_edit_made_during_the_verification_survives_the_rollback(
    account: Account, fake: FakeClock, tmp_path: Path
) -> None:
    path = account.location.credentials_file

    def edit_then_fail(clients: Any, key: HeldKey) -> tuple[str, str]:
        if "added-meanwhile" not in credentials_file.list_profiles(path):
            credentials_file.write_profile_values(path, "added-meanwhile", {"region": "eu-west-3"})
        return "", "InvalidClientTokenId"

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rotation.verification, "_who_am_i", edit_then_fail)
        outcome = rotate(account, fake)
    assert outcome.exit_code == EXIT_VERIFY_FAILED, outcome.render_text()
    assert outcome.undo_report is not None
    # What the file would be had only the other edit been made.
    expected = tmp_path / "expected"
    expected.write_bytes(account.before)
    credentials_file.write_profile_values(expected, "added-meanwhile", {"region": "eu-west-3"})
    assert path.read_bytes() == expected.read_bytes()
    assert_one_working_key(account)


def test_a_keyring_rollback_keeps_an_edit_of_the_config_file(
    account: Account, fake: FakeClock
) -> None:
    assert rotate(account, fake, store="keyring", credential_process="kh credential-process").ok
    held = held_key(account.location)
    config = account.location.config_file

    def edit_then_fail(clients: Any, key: HeldKey) -> tuple[str, str]:
        if "other" not in credentials_file.list_profiles(config, config_style=True):
            credentials_file.set_config_values(config, "other", {"region": "eu-west-3"})
        return "", "InvalidClientTokenId"

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rotation.verification, "_who_am_i", edit_then_fail)
        outcome = rotate(account, fake, store="file")
    assert outcome.exit_code == EXIT_VERIFY_FAILED, outcome.render_text()
    assert held_key(account.location) == held  # back in the keyring, through credential_process
    values = credentials_file.read_profile(config, PROFILE, config_style=True)
    assert values["credential_process"] == "kh credential-process"
    assert (
        credentials_file.read_profile(config, "other", config_style=True)["region"] == "eu-west-3"
    )
    assert_one_working_key(account)


# --------------------------------------------------------------------------- orphans (C7)


def test_orphan_candidates_are_recent_and_unknown() -> None:
    from datetime import datetime, timedelta, timezone

    started = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)
    keys = (
        KeyInfo("AKIAOLD", "Active", started - timedelta(days=90)),
        KeyInfo("AKIAHELD", "Active", started + timedelta(seconds=5)),
        KeyInfo("AKIAEARLIER", "Active", started - timedelta(minutes=3)),
        KeyInfo("AKIASKEWED", "Active", started - timedelta(seconds=20)),
        KeyInfo("AKIANEW", "Active", started + timedelta(seconds=1)),
        KeyInfo("AKIANODATE", "Active", None),
    )
    found = rotation.orphan_candidates(keys, known={"AKIAHELD"}, since=started)
    assert [key.access_key_id for key in found] == ["AKIASKEWED", "AKIANEW"]


def stranger_key(account: Account, *, used: bool) -> str:
    """A key of the user that the plan does not know, made just now."""
    key = account.iam.create_access_key(UserName=USER)["AccessKey"]
    if used:
        client(
            "sts",
            aws_access_key_id=key["AccessKeyId"],
            aws_secret_access_key=key["SecretAccessKey"],
        ).get_caller_identity()
    return str(key["AccessKeyId"])


@pytest.mark.parametrize(
    ("code", "used", "deleted"),
    [
        ("AccessDenied", False, False),  # a definite refusal made no key
        ("Throttling", False, False),
        ("InternalError", True, False),  # a used key is never taken for an orphan
        ("InternalError", False, True),  # unknown outcome, recent, never used
    ],
)
def test_keys_are_cleaned_up_only_after_an_uncertain_create(
    account: Account, fake: FakeClock, code: str, used: bool, deleted: bool
) -> None:
    clients = clients_for(account, FaultyClients)
    assert isinstance(clients, FaultyClients)
    clients.fault = ("iam", "CreateAccessKey", code)
    plan = plan_rotation(inspect_rotation(clients), request())
    stranger = stranger_key(account, used=used)  # made after the plan, as a lost answer would
    outcome = execute_rotation(plan, clients, clock=fake.clock, sleep=fake.sleep)
    assert outcome.exit_code == EXIT_AWS
    assert outcome.headline.startswith("Nothing was changed: ")
    assert (stranger not in account.statuses()) == deleted
    if deleted:
        assert f"had made a key after all: {stranger}, now deleted" in outcome.headline
    elif code == "InternalError":
        assert f"{stranger} was made about then but has been used: left" in outcome.headline
    else:
        assert "made a key" not in outcome.headline
    assert account.statuses()[account.old_key_id] == "Active"
    assert held_key(account.location).access_key_id == account.old_key_id  # type: ignore[union-attr]


def test_recovery_after_an_interrupted_create_spares_a_used_key(
    account: Account, fake: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        rotation.crash_hook, "_die", lambda: (_ for _ in ()).throw(SimulatedCrash())
    )
    arm_crash(monkeypatch, "create:before")
    with pytest.raises(SimulatedCrash):
        rotate(account, fake)
    disarm_crash(monkeypatch)
    used = stranger_key(account, used=True)  # made "meanwhile", and in use somewhere
    (pending,) = pending_rotations()
    outcome = finish_or_roll_back(pending, clients=clients_for(account))
    assert outcome.ok and outcome.action == "roll_back", outcome.render_text()
    assert f"{used} was made about then but has been used: left" in outcome.headline
    assert account.statuses() == {account.old_key_id: "Active", used: "Active"}


def test_a_create_that_botocore_retried_cleans_up_what_an_earlier_attempt_made(
    account: Account, fake: FakeClock
) -> None:
    """botocore retried CreateAccessKey: the first attempt had made a key whose
    answer was lost, so the retry met the two-key limit. That key is found and
    deleted, and the next run rotates normally."""
    clients = clients_for(account)
    plan = plan_rotation(inspect_rotation(clients), request())
    lost: list[str] = []

    def earlier_attempt(**_: Any) -> None:
        if not lost:
            lost.append(stranger_key(account, used=False))

    def retried(parsed: dict[str, Any], **_: Any) -> None:
        parsed.setdefault("ResponseMetadata", {})["RetryAttempts"] = 1

    iam = clients.client("iam")
    iam.meta.events.register("before-call.iam.CreateAccessKey", earlier_attempt)
    iam.meta.events.register("after-call.iam.CreateAccessKey", retried)
    outcome = execute_rotation(plan, clients, clock=fake.clock, sleep=fake.sleep)
    assert outcome.exit_code == EXIT_AWS
    assert "LimitExceeded" in outcome.headline
    assert f"had made a key after all: {lost[0]}, now deleted" in outcome.headline
    assert account.statuses() == {account.old_key_id: "Active"}
    normal_run(account, fake)
    assert_one_working_key(account)


# --------------------------------------------------------------------------- one at a time (C8)


def test_a_second_rotation_of_the_profile_is_refused_while_one_runs(
    account: Account, fake: FakeClock
) -> None:
    clients = clients_for(account)
    plan = plan_rotation(inspect_rotation(clients), request())
    with rotation.rotation_lock(PROFILE), pytest.raises(rotation.RotationBusy) as caught:
        execute_rotation(plan, clients, clock=fake.clock, sleep=fake.sleep)
    assert caught.value.exit_code == 2
    assert "Another rotation of profile 'laptop' is running" in str(caught.value)
    assert "Nothing was changed" in str(caught.value)
    assert account.statuses() == {account.old_key_id: "Active"}
    assert account.location.credentials_file.read_bytes() == account.before
    assert open_journals() == []
    # Released: the same plan runs now.
    assert execute_rotation(plan, clients, clock=fake.clock, sleep=fake.sleep).ok


def test_recovery_takes_the_lock_too(
    account: Account, fake: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        rotation.crash_hook, "_die", lambda: (_ for _ in ()).throw(SimulatedCrash())
    )
    arm_crash(monkeypatch, "create")
    with pytest.raises(SimulatedCrash):
        rotate(account, fake)
    disarm_crash(monkeypatch)
    (pending,) = pending_rotations()
    with rotation.rotation_lock(PROFILE), pytest.raises(rotation.RotationBusy):
        finish_or_roll_back(pending, clients=clients_for(account))
    assert len(account.statuses()) == 2  # nothing was rolled back under the lock
    assert finish_or_roll_back(pending, clients=clients_for(account)).ok
    # Dealt with: the same description cannot be acted on twice.
    with pytest.raises(BadInput, match="dealt with meanwhile"):
        finish_or_roll_back(pending, clients=clients_for(account))


def test_a_plan_the_profile_has_moved_past_does_not_run(account: Account, fake: FakeClock) -> None:
    clients = clients_for(account)
    stale = plan_rotation(inspect_rotation(clients), request())
    assert rotate(account, fake).ok
    before = account.location.credentials_file.read_bytes()
    with pytest.raises(BadInput, match="not the key .* this plan rotates"):
        execute_rotation(stale, clients, clock=fake.clock, sleep=fake.sleep)
    assert account.location.credentials_file.read_bytes() == before
    assert_one_working_key(account)


# --------------------------------------------------------------------------- crash hook (C14)


def test_the_crash_hook_is_inert_without_the_testing_switch(
    account: Account, fake: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        rotation.crash_hook, "_die", lambda: (_ for _ in ()).throw(SimulatedCrash())
    )
    monkeypatch.setenv(rotation.CRASH_ENV, "write")
    monkeypatch.delenv(rotation.TESTING_ENV, raising=False)
    assert rotate(account, fake).ok
    assert_one_working_key(account)


# --------------------------------------------------------------------------- hints (H1)


def test_access_denied_hints_name_the_own_key_policy_not_admin_profile(
    account: Account, fake: FakeClock
) -> None:
    clients = clients_for(account, FaultyClients)
    assert isinstance(clients, FaultyClients)
    clients.fault = ("iam", "ListAccessKeys", "AccessDenied")
    with pytest.raises(KeyHygieneError) as caught:
        inspect_rotation(clients)
    text = str(caught.value)
    assert "lacks iam:ListAccessKeys" in text
    assert "--admin-profile plays no part" in text and "keyhygiene-rotate-own-key" in text
    assert "use --admin-profile" not in text
    assert f"{USER} itself needs iam:ListAccessKeys" in text


def test_a_create_whose_key_no_one_could_look_for_is_found_by_the_next_run(
    account: Account, fake: FakeClock
) -> None:
    """CreateAccessKey made a key but its answer was lost, and AWS stopped
    answering before the key could be looked for: the journal stays open, and
    the next run deletes that key (never used) and rotates afresh."""
    from botocore.exceptions import ConnectionClosedError

    clients = clients_for(account)
    plan = plan_rotation(inspect_rotation(clients), request())
    down = {"on": True}

    def lost_answer(**_: Any) -> None:
        if down["on"]:
            raise ConnectionClosedError(endpoint_url="https://iam.amazonaws.com/")

    iam = clients.client("iam")
    iam.meta.events.register("after-call.iam.CreateAccessKey", lost_answer)
    iam.meta.events.register("before-call.iam.ListAccessKeys", lost_answer)
    outcome = execute_rotation(plan, clients, clock=fake.clock, sleep=fake.sleep)
    assert outcome.exit_code == EXIT_AWS
    assert "Run `keyhygiene rotate` again: it looks for that key first" in outcome.headline
    assert len(account.statuses()) == 2  # the lost key exists
    down["on"] = False
    normal_run(account, fake)
    assert_one_working_key(account)
    assert account.old_key_id not in account.statuses()


def test_a_keyring_that_would_lose_the_key_or_keeps_it_plain_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The memory keyring dies with the command, after the old key was deleted;
    a plaintext file claims a safety it does not have. Both need --insecure-keyring."""
    import keyring

    for choice, words in (
        ("memory", "memory keyring"),
        (f"file:{tmp_path / 'k.json'}", "plaintext"),
    ):
        monkeypatch.setenv(vault.ENV_VAR, choice)
        with pytest.raises(vault.KeyringNotSafe) as caught:
            rotation.check_store_usable("keyring")
        assert caught.value.exit_code == 2 and words in str(caught.value)
        assert "--insecure-keyring" in str(caught.value)
        assert not vault.keyring_status()[0]
        rotation.check_store_usable("keyring", allow_insecure=True)
        # A key already there can still be read, to move it back to the file.
        rotation.check_store_usable("file", "keyring")
    monkeypatch.setenv("KEYHYGIENE_DEMO", "1")
    rotation.check_store_usable("keyring")  # the demo's sandbox keyring, on purpose
    monkeypatch.delenv("KEYHYGIENE_DEMO")

    # keyrings.alt's plaintext backend, as the OS keyring `keyring` picked.
    plaintext = type("PlaintextKeyring", (), {"__module__": "keyrings.alt.file"})()
    monkeypatch.delenv(vault.ENV_VAR)
    monkeypatch.setattr(keyring, "get_keyring", lambda: plaintext)
    monkeypatch.setattr(vault, "unusable_reason", lambda backend: "")
    with pytest.raises(vault.KeyringNotSafe) as caught:
        rotation.check_store_usable("keyring")
    assert "keyrings.alt" in str(caught.value)
    monkeypatch.setenv(vault.INSECURE_VAR, "1")
    rotation.check_store_usable("keyring")
