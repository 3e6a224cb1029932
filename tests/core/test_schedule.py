"""Rotation on a schedule: what each platform gets, read back as the platform
would read it, and install / status / remove with the platform's tools faked."""

from __future__ import annotations

import configparser
import plistlib
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from keyhygiene.core.errors import BadInput
from keyhygiene.local import notices
from keyhygiene.local.schedule import (
    Schedule,
    carried_environment,
    cron_line,
    detect_platform,
    install,
    launchd_plist,
    parse_every,
    recorded,
    remove,
    rotate_argv,
    schtasks_create,
    systemd_units,
)

ARGV = rotate_argv("work laptop", 30, program=("/opt/kh/bin/python", "-m", "keyhygiene"))


def schedule(platform: str = "systemd", **changes: object) -> Schedule:
    values: dict[str, object] = {
        "profile": "work laptop",
        "every_days": 30,
        "argv": ARGV,
        "platform": platform,
        "environment": (("AWS_CONFIG_FILE", "/home/c/my aws/config"),),
    }
    values.update(changes)
    return Schedule(**values)  # type: ignore[arg-type]


class FakeTools:
    def __init__(self, answers: dict[str, tuple[int, str]] | None = None) -> None:
        self.calls: list[tuple[list[str], str | None]] = []
        self.answers = answers or {}
        self.crontab = ""

    def __call__(self, argv: Sequence[str], given: str | None) -> tuple[int, str]:
        self.calls.append((list(argv), given))
        if list(argv[:2]) == ["crontab", "-"]:
            self.crontab = given or ""
            return 0, ""
        if list(argv[:2]) == ["crontab", "-l"]:
            return (0, self.crontab) if self.crontab else (1, "no crontab for c")
        return self.answers.get(argv[0], (0, ""))


def test_every_is_a_number_of_days() -> None:
    assert parse_every("30d") == 30 and parse_every("7 days") == 7 and parse_every("90") == 90
    for bad in ("0d", "1000d", "2w", "soon"):
        with pytest.raises(BadInput):
            parse_every(bad)


def test_the_command_is_a_headless_rotation_past_the_age() -> None:
    assert ARGV[3:] == (
        "rotate",
        "--profile",
        "work laptop",
        "--yes",
        "--if-older-than",
        "30d",
        "--scheduled",
    )


def test_systemd_units_read_back_and_verify(tmp_path: Path) -> None:
    units = systemd_units(schedule())
    service = configparser.ConfigParser(interpolation=None, strict=False)
    service.read_string(units["keyhygiene-rotate-work_laptop.service"])
    assert service["Service"]["Type"] == "oneshot"
    assert shlex.split(service["Service"]["ExecStart"]) == list(ARGV)
    assert shlex.split(service["Service"]["Environment"]) == [
        "AWS_CONFIG_FILE=/home/c/my aws/config"
    ]
    timer = configparser.ConfigParser(interpolation=None)
    timer.read_string(units["keyhygiene-rotate-work_laptop.timer"])
    assert timer["Timer"]["OnCalendar"] == "*-*-* 10:00:00"
    assert timer["Timer"]["Persistent"] == "true"
    assert timer["Install"]["WantedBy"] == "timers.target"
    if shutil.which("systemd-analyze") is None:
        return
    # systemd's own parser on the files, with a program that exists.
    real = schedule(argv=rotate_argv("work laptop", 30, program=(shutil.which("true") or "",)))
    paths = []
    for name, text in systemd_units(real).items():
        path = tmp_path / name
        path.write_text(text)
        paths.append(str(path))
    done = subprocess.run(
        ["systemd-analyze", "verify", *paths], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def test_a_percent_and_a_dollar_reach_the_program_unchanged() -> None:
    odd = schedule(argv=("/opt/k h/python", "rotate", "--profile", "50%$HOME"))
    line = configparser.ConfigParser(interpolation=None)
    line.read_string(systemd_units(odd)["keyhygiene-rotate-work_laptop.service"])
    # systemd doubles % and $; undoing that gives the words back.
    exec_start = line["Service"]["ExecStart"].replace("%%", "%").replace("$$", "$")
    assert shlex.split(exec_start) == ["/opt/k h/python", "rotate", "--profile", "50%$HOME"]


def test_the_launchd_agent_is_a_valid_plist(tmp_path: Path) -> None:
    data = plistlib.loads(launchd_plist(schedule("launchd"), tmp_path).encode())
    assert data["Label"] == "dev.keyhygiene.rotate.work_laptop"
    assert data["ProgramArguments"] == list(ARGV)
    assert data["StartCalendarInterval"] == {"Hour": 10, "Minute": 0}
    assert data["EnvironmentVariables"] == {"AWS_CONFIG_FILE": "/home/c/my aws/config"}
    assert data["StandardOutPath"].endswith("rotate-work_laptop.log")


def test_the_cron_line_runs_the_same_words(tmp_path: Path) -> None:
    line = cron_line(schedule("cron"), tmp_path / "rotate.log")
    fields = line.split(" ", 5)
    assert fields[:5] == ["0", "10", "*", "*", "*"]
    command, marker = fields[5].rsplit(" # ", 1)
    assert marker == "keyhygiene rotate work laptop"
    words = shlex.split(command)
    assert words[0] == "AWS_CONFIG_FILE=/home/c/my aws/config"
    assert words[1 : 1 + len(ARGV)] == list(ARGV)
    assert words[-3:] == [">>", str(tmp_path / "rotate.log"), "2>&1"]


def test_the_windows_task_runs_daily() -> None:
    argv = schtasks_create(schedule("schtasks"), Path("C:/state/rotate.log"))
    assert argv[:4] == ["schtasks", "/Create", "/TN", "keyhygiene rotate work_laptop"]
    assert argv[argv.index("/SC") + 1] == "DAILY" and argv[argv.index("/ST") + 1] == "10:00"
    assert "--if-older-than 30d" in argv[argv.index("/TR") + 1]


def test_install_status_and_remove_with_systemd(isolated_aws: Path) -> None:
    tools = FakeTools()
    done = install(schedule(), home=isolated_aws, runner=tools)
    assert done.active and len(done.files) == 2 and all(p.exists() for p in done.files)
    assert [argv for argv, _ in tools.calls] == [
        ["systemctl", "--user", "daemon-reload"],
        ["systemctl", "--user", "enable", "--now", "keyhygiene-rotate-work_laptop.timer"],
    ]
    [found] = recorded()
    assert found.schedule == schedule() and found.active
    # Installing again replaces it; removing turns it off and deletes the files.
    install(schedule(every_days=7), home=isolated_aws, runner=tools)
    assert [item.schedule.every_days for item in recorded()] == [7]
    gone = remove("work laptop", runner=tools)
    assert gone is not None and not any(p.exists() for p in done.files)
    assert ["systemctl", "--user", "disable", "--now", "keyhygiene-rotate-work_laptop.timer"] in [
        argv for argv, _ in tools.calls
    ]
    assert recorded() == [] and remove("work laptop", runner=tools) is None


def test_a_manager_that_refuses_leaves_the_files_and_says_how(isolated_aws: Path) -> None:
    tools = FakeTools({"systemctl": (1, "Failed to connect to bus: No medium found")})
    done = install(schedule(), home=isolated_aws, runner=tools)
    assert not done.active
    assert "No medium found" in done.message
    assert "systemctl --user enable --now keyhygiene-rotate-work_laptop.timer" in done.message


def test_cron_keeps_the_other_lines(isolated_aws: Path) -> None:
    tools = FakeTools()
    tools.crontab = "MAILTO=c\n5 4 * * * backup\n"
    install(schedule("cron"), home=isolated_aws, runner=tools)
    install(schedule("cron"), home=isolated_aws, runner=tools)
    lines = tools.crontab.splitlines()
    assert lines[:2] == ["MAILTO=c", "5 4 * * * backup"]
    assert sum(line.endswith("# keyhygiene rotate work laptop") for line in lines) == 1
    remove("work laptop", runner=tools)
    assert tools.crontab.splitlines() == ["MAILTO=c", "5 4 * * * backup"]


def test_the_platform_is_the_one_that_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    import keyhygiene.local.schedule as module

    monkeypatch.setattr(module.sys, "platform", "linux")
    monkeypatch.setattr(module.shutil, "which", lambda name: f"/usr/bin/{name}")
    assert detect_platform(FakeTools({"systemctl": (1, "degraded")})) == "systemd"
    assert detect_platform(FakeTools({"systemctl": (1, "offline")})) == "cron"
    monkeypatch.setattr(module.shutil, "which", lambda name: None)
    assert detect_platform(FakeTools()) is None
    monkeypatch.setattr(module.sys, "platform", "darwin")
    assert detect_platform(FakeTools()) == "launchd"


def test_carried_environment_names_only_what_is_set() -> None:
    assert carried_environment(
        {"AWS_CONFIG_FILE": "/c", "HOME": "/h", "KEYHYGIENE_KEYRING": ""}
    ) == (("AWS_CONFIG_FILE", "/c"),)


def test_notices_are_kept_per_profile_and_cleared(isolated_aws: Path) -> None:
    notices.leave("work", "the scheduled rotation did not run: MFA needed", desktop=False)
    notices.leave("work", "again", desktop=False)
    notices.leave("home", "AWS refused", desktop=False)
    assert sorted((n.profile, n.text) for n in notices.pending()) == [
        ("home", "AWS refused"),
        ("work", "again"),
    ]
    notices.clear("work")
    assert [n.profile for n in notices.pending()] == ["home"]


def test_status_flags_a_timer_written_by_keyhygiene_0_1(
    isolated_aws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from keyhygiene.cli.main import main

    old_argv = ("/opt/kh/bin/python", "-m", "tui.cli", "rotate", "--profile", "work laptop")
    install(schedule(argv=old_argv), home=isolated_aws, runner=FakeTools())
    install(schedule(profile="home"), home=isolated_aws, runner=FakeTools())
    assert [item.schedule.from_older_version for item in recorded()] == [False, True]
    assert main(["schedule", "status"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert not any("BROKEN" in line for line in lines if line.startswith("home:"))
    [old] = [line for line in lines if line.startswith("work laptop:")]
    assert "BROKEN: written by keyhygiene 0.1" in old
    assert "keyhygiene schedule rotate --profile 'work laptop' --every 30d" in old
