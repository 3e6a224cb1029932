"""The core imports no Textual: it must run headless, in scripts and in cron."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import tui

UI_MODULES = {"tui.app", "tui.messages"}


def core_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages([str(Path(tui.__file__).parent)], prefix="tui."):
        if info.name in UI_MODULES or info.name.startswith("tui.widgets"):
            continue
        names.append(info.name)
    return sorted(names)


def test_core_modules_are_found() -> None:
    names = core_modules()
    assert "tui.inventory" in names and "tui.model" in names and "tui.cli" in names


def test_core_imports_without_textual() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {core_modules()!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"core imported Textual: {result.stdout}"
