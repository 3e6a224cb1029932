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


def test_no_module_imports_itself_through_others() -> None:
    """No import cycle, type-checking and function-level imports included:
    every module's imports lead only to modules that do not lead back."""
    import grimp

    graph = grimp.build_graph("keyhygiene")
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:  # Tarjan's strongly connected components
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    assert cycles == []


def test_no_module_passes_a_thousand_lines() -> None:
    """A module that long hides its parts: split it along its sections."""
    root = Path(keyhygiene.__file__).parent
    long = {
        str(path.relative_to(root)): count
        for path in root.rglob("*.py")
        if (count := len(path.read_text().splitlines())) > 1000
    }
    assert long == {}
