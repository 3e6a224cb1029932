"""Windows and macOS: every module imports, and --version and --help run, where
POSIX-only modules are missing. CI runs on Linux, so the modules Windows lacks
are hidden from a child interpreter instead."""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import keyhygiene
from keyhygiene.local import file_lock

# Importing a name set to None in sys.modules raises ImportError, as on Windows.
HIDE_POSIX = (
    "import sys\nfor _name in ('fcntl', 'termios', 'pwd', 'grp'):\n    sys.modules[_name] = None\n"
)


def every_module() -> list[str]:
    root = str(Path(keyhygiene.__file__).parent)
    return sorted(
        info.name
        for info in pkgutil.walk_packages([root], prefix="keyhygiene.")
        if info.name != "keyhygiene.__main__"  # it runs the program
    )


def run_hidden(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", HIDE_POSIX + code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_COLOR": "1"},
    )


def test_every_module_imports_without_fcntl() -> None:
    names = every_module()
    assert len(names) > 100 and "keyhygiene.ui.app" in names
    result = run_hidden(
        "import importlib\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "print('ok')\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.parametrize("flag", ["--version", "--help"])
def test_version_and_help_run_without_fcntl(flag: str) -> None:
    result = run_hidden(
        f"import sys\nfrom keyhygiene.cli.main import main\nsys.exit(main([{flag!r}]))\n"
    )
    assert result.returncode == 0, result.stderr
    assert "keyhygiene" in result.stdout


def test_the_lock_is_exclusive_between_descriptors(tmp_path: Path) -> None:
    """flock locks belong to the open file: a second open of the same lock
    file in this process is refused, as another process would be."""
    path = tmp_path / "x.lock"
    first = os.open(path, os.O_RDWR | os.O_CREAT | file_lock.CLOEXEC, 0o600)
    second = os.open(path, os.O_RDWR | file_lock.CLOEXEC)
    try:
        assert file_lock.try_lock(first)
        assert not file_lock.try_lock(second)
        os.close(first)
        first = -1
        assert file_lock.try_lock(second)
    finally:
        for fd in (first, second):
            if fd >= 0:
                os.close(fd)


def test_without_the_demo_extra_the_demo_says_how_to_install_it() -> None:
    """moto is the demo extra's: without it, --demo and demo serve exit 2 with the
    pip line, and nothing starts."""
    for args in (["--demo"], ["demo", "serve"]):
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys\nsys.modules['moto'] = None\n"
                "import importlib.util\n"
                "real = importlib.util.find_spec\n"
                "importlib.util.find_spec = lambda n, *a: None if n == 'moto' else real(n, *a)\n"
                "from keyhygiene.cli.main import main\n"
                f"sys.exit(main({args!r}))\n",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert result.returncode == 2, result.stdout + result.stderr
        assert "pip install 'keyhygiene[demo]'" in result.stderr
        assert "missing: moto" in result.stderr


def test_the_version_is_written_once() -> None:
    """pyproject.toml reads it from keyhygiene/__init__.py: what pip shows is what
    --version prints."""
    from importlib.metadata import version

    assert version("keyhygiene") == keyhygiene.__version__
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    path = Path(keyhygiene.__file__).parent.parent / "pyproject.toml"
    project = tomllib.loads(path.read_text())["project"]
    assert "version" not in project and project["dynamic"] == ["version"]


def test_credential_process_serves_the_key_and_a_cached_session_without_botocore(
    tmp_path: Path,
) -> None:
    """The AWS CLI runs credential_process for every call: it must stay light.
    Neither serving the keyring's key nor a cached MFA session loads botocore."""
    from datetime import datetime, timedelta, timezone

    from keyhygiene.local import vault
    from keyhygiene.local.vault import Secret

    env = {
        **os.environ,
        vault.ENV_VAR: f"file:{tmp_path / 'keyring.json'}",
        "KEYHYGIENE_INSECURE_KEYRING": "1",
    }
    os.environ[vault.ENV_VAR] = env[vault.ENV_VAR]
    try:
        vault.store_key("laptop", "AKIAEXAMPLEEXAMPLE00", Secret("s" * 40))
        ends = datetime.now(timezone.utc) + timedelta(hours=6)
        vault.store_session(
            "laptop", "ASIAEXAMPLEEXAMPLE00", Secret("t" * 40), Secret("x" * 60), ends
        )
    finally:
        del os.environ[vault.ENV_VAR]
    code = (
        "import sys\n"
        "from keyhygiene.cli.main import main\n"
        "code = main(sys.argv[1:])\n"
        "loaded = sorted(n for n in sys.modules if n.split('.')[0] in ('botocore', 'boto3'))\n"
        "print('LOADED', loaded, file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    for extra, key_id in (
        ([], "AKIAEXAMPLEEXAMPLE00"),
        (["--mfa-session"], "ASIAEXAMPLEEXAMPLE00"),
    ):
        result = subprocess.run(
            [sys.executable, "-c", code, "credential-process", "--profile", "laptop", *extra],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["AccessKeyId"] == key_id
        assert "LOADED []" in result.stderr


def test_shell_completion_offers_the_commands_and_their_options(tmp_path: Path) -> None:
    """argcomplete's protocol, as bash runs it: COMP_LINE in, candidates out."""
    out = tmp_path / "candidates"

    def complete(line: str) -> list[str]:
        env = {
            **os.environ,
            "_ARGCOMPLETE": "1",
            "_ARGCOMPLETE_IFS": "\n",
            "_ARGCOMPLETE_STDOUT_FILENAME": str(out),
            "COMP_LINE": line,
            "COMP_POINT": str(len(line)),
        }
        subprocess.run(
            [sys.executable, "-m", "keyhygiene"], env=env, timeout=60, capture_output=True
        )
        return out.read_text().split("\n")

    assert {"rotate", "revoke", "recover"} <= {c.strip() for c in complete("keyhygiene re")} | {
        c.strip() for c in complete("keyhygiene ro")
    }
    assert "--insecure-keyring" in {c.strip() for c in complete("keyhygiene rotate --ins")}
