"""Below the UI nothing imports Textual: the core must run headless, in scripts
and in cron. The import-linter contracts in pyproject.toml check the same
direction statically; this test checks it at run time, where an import hidden
behind a string would show."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import keyhygiene

# `keyhygiene.__main__` runs the program when imported; it is started, not imported.
SKIPPED = {"keyhygiene.__main__"}


def headless_modules() -> list[str]:
    names = []
    root = str(Path(keyhygiene.__file__).parent)
    for info in pkgutil.walk_packages([root], prefix="keyhygiene."):
        if info.name.startswith("keyhygiene.ui") or info.name in SKIPPED:
            continue
        names.append(info.name)
    return sorted(names)


def test_headless_modules_are_found() -> None:
    names = headless_modules()
    assert {"keyhygiene.aws.inventory", "keyhygiene.core.model", "keyhygiene.cli.main"} <= set(
        names
    )
    assert not any(name.startswith("keyhygiene.ui") for name in names)


def test_headless_modules_import_without_textual() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {headless_modules()!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"a headless module imported Textual: {result.stdout}"


def test_python_dash_m_keyhygiene_runs_the_program() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "keyhygiene", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"keyhygiene {keyhygiene.__version__}"


def test_building_the_parser_loads_no_aws_sdk_nor_textual() -> None:
    """`keyhygiene --help`, `--version` and the parse before every command stay
    light: botocore, boto3 and Textual load only where a command needs them."""
    code = (
        "import sys\n"
        "from keyhygiene.cli.main import build_parser\n"
        "build_parser()\n"
        "heavy = ('botocore', 'boto3', 'textual', 'moto', 'keyring')\n"
        "print(','.join(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
