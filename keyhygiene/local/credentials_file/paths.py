"""Where the two files are: botocore's environment variables, then ~/.aws."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from keyhygiene.core.errors import BadInput
from keyhygiene.local.credentials_file.parsing import _ENV_VAR_RE


def credentials_path(env: Mapping[str, str] = os.environ) -> Path:
    """The shared credentials file botocore reads (`AWS_SHARED_CREDENTIALS_FILE`)."""
    return _env_path(env, "AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials")


def config_path(env: Mapping[str, str] = os.environ) -> Path:
    """The config file botocore reads (`AWS_CONFIG_FILE`)."""
    return _env_path(env, "AWS_CONFIG_FILE", "~/.aws/config")


def _env_path(env: Mapping[str, str], variable: str, default: str) -> Path:
    # botocore expands variables, then `~` (configloader.raw_config_parse).
    raw = env.get(variable) or default
    raw = _ENV_VAR_RE.sub(lambda m: _env_value(env, m), raw)
    if raw == "~" or raw.startswith("~/"):
        home = env.get("HOME") or os.path.expanduser("~")
        raw = home + raw[1:]
    return Path(os.path.expanduser(raw))


def _env_value(env: Mapping[str, str], match: re.Match[str]) -> str:
    name = match.group(1).strip("{}")
    return env.get(name, match.group(0))


def _resolve(path: Path) -> Path:
    """Write through a symlink: the link stays, its target is replaced."""
    return Path(os.path.realpath(path))


def _os_problem(doing: str, shown: str, exc: OSError) -> BadInput:
    return BadInput(f"Could not {doing} {shown}: {exc.strerror or type(exc).__name__}.")
