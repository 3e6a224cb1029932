"""`core.options.key_in_use` against botocore itself, in every combination of
--profile, AWS_PROFILE, AWS_DEFAULT_PROFILE and keys in the environment."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import botocore.session
import pytest

from keyhygiene.core.options import ConnectionOptions, key_in_use

FILE_KEYS = {
    "default": "AKIADEFAULTDEFAULT00",
    "flagged": "AKIAFLAGGEDFLAGGED00",
    "named": "AKIANAMEDNAMEDNAMED0",
    "older": "AKIAOLDEROLDEROLDER0",
}
ENV_KEY = "AKIAENVIRONMENTKEY00"


@pytest.fixture
def credentials(isolated_aws: Path) -> Path:
    path = isolated_aws / ".aws" / "credentials"
    path.write_text(
        "".join(
            f"[{name}]\naws_access_key_id = {key}\naws_secret_access_key = s-{name}\n"
            for name, key in FILE_KEYS.items()
        )
    )
    return path


COMBINATIONS = list(
    itertools.product(
        (None, "flagged"),  # --profile
        (None, "named"),  # AWS_PROFILE
        (None, "older"),  # AWS_DEFAULT_PROFILE
        (False, True),  # AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
    )
)


@pytest.mark.parametrize(("flag", "aws_profile", "default_profile", "env_keys"), COMBINATIONS)
def test_the_profile_and_key_are_botocores(
    credentials: Path,
    monkeypatch: pytest.MonkeyPatch,
    flag: str | None,
    aws_profile: str | None,
    default_profile: str | None,
    env_keys: bool,
) -> None:
    env: dict[str, str] = {}
    if aws_profile:
        env["AWS_PROFILE"] = aws_profile
    if default_profile:
        env["AWS_DEFAULT_PROFILE"] = default_profile
    if env_keys:
        env |= {"AWS_ACCESS_KEY_ID": ENV_KEY, "AWS_SECRET_ACCESS_KEY": "s-env"}
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    # botocore's own answer, as boto3.Session(profile_name=flag) builds it.
    session = botocore.session.Session(profile=flag)
    resolved = session.get_credentials()
    assert resolved is not None
    botocore_profile = session.get_config_variable("profile") or "default"

    ours = key_in_use(flag, env)
    assert ours.profile == botocore_profile
    assert ConnectionOptions(profile=flag).profile_name == botocore_profile
    expected_key = ours.environment_key_id or FILE_KEYS[ours.profile]
    assert resolved.access_key == expected_key
    assert resolved.method == ("env" if ours.from_environment else "shared-credentials-file")
    # Rotation refuses exactly when botocore signs with the environment's key.
    assert (ours.rotation_refusal() is not None) == (resolved.method == "env")


def test_the_refusal_names_the_variable_and_never_the_secret() -> None:
    ours = key_in_use(None, {"AWS_ACCESS_KEY_ID": ENV_KEY, "AWS_SECRET_ACCESS_KEY": "s-env"})
    refusal = ours.rotation_refusal()
    assert refusal is not None
    assert "AWS_ACCESS_KEY_ID" in refusal and "…EY00" in refusal
    assert "s-env" not in refusal + ours.rotation_hint()
    assert key_in_use("laptop", {"AWS_ACCESS_KEY_ID": ENV_KEY}).rotation_refusal() is None


def test_the_demo_drops_the_shells_keys_so_its_profile_is_in_use(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A real account's keys in the shell would win over the demo's profile
    (and rotate would refuse): entering the demo drops them."""
    from keyhygiene.demo.server import DemoInfo, enter_demo_environment

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ENV_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s-env")
    monkeypatch.setenv("AWS_DEFAULT_PROFILE", "work")
    info = DemoInfo(
        endpoint_url="http://127.0.0.1:1",
        directory=str(tmp_path),
        credentials_file=str(tmp_path / "credentials"),
        config_file=str(tmp_path / "config"),
        profile="christopher-laptop",
        region="us-east-1",
    )
    for name in info.environment():
        monkeypatch.setenv(name, os.environ.get(name, ""))  # restored after the test
    enter_demo_environment(info)
    in_use = key_in_use(None)
    assert in_use.profile == "christopher-laptop" and not in_use.from_environment
    assert in_use.rotation_refusal() is None
