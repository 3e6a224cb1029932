"""Rotation on a schedule: a per-user timer that runs `keyhygiene rotate` headless.

The timer runs once a day (and after a missed day, at the next start: a laptop
is often asleep at the hour), and the command it runs rotates only when the
key is older than the schedule (`rotate --if-older-than 30d`). That keeps one
rule for every platform, and a computer that was off for a month rotates the
next morning instead of waiting for a date that already passed.

One file or entry per profile, named after it, on each platform's own timer:
- Linux with a systemd user manager: `~/.config/systemd/user/keyhygiene-rotate-P.service`
  and `.timer` (`OnCalendar=daily`, `Persistent=true`); the output goes to
  the journal (`journalctl --user -u keyhygiene-rotate-P`).
- macOS: a launchd agent `~/Library/LaunchAgents/dev.keyhygiene.rotate.P.plist`
  (`StartCalendarInterval`; launchd runs a missed interval at wake), output in
  `~/Library/Logs/keyhygiene/`.
- Windows: a Task Scheduler task `keyhygiene rotate P` (`schtasks /SC DAILY`,
  run when missed), output in the state folder's log.
- Elsewhere, a crontab line marked `# keyhygiene rotate P`, output in the
  state folder's log.

The log never holds a secret: the rotate command prints key ids only.
What is installed is also recorded in the state folder, so that `schedule
status` and `schedule remove` find it whatever the platform says.

No AWS here; the platform tools run through `Runner` (tests give a fake).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from xml.sax.saxutils import escape

from keyhygiene.core.errors import BadInput
from keyhygiene.local.state_dir import private_dir, state_dir

Platform = Literal["systemd", "launchd", "schtasks", "cron"]
PLATFORMS: tuple[Platform, ...] = ("systemd", "launchd", "schtasks", "cron")
DEFAULT_HOUR = 10  # local time: when people are at their computers
_DURATION = re.compile(r"^\s*(\d+)\s*d(ays?)?\s*$", re.IGNORECASE)
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")
MIN_DAYS, MAX_DAYS = 1, 365

# (argv, text for its stdin or None) -> (exit code, output). The platform's
# tools, replaceable in tests.
Runner = Callable[[Sequence[str], "str | None"], tuple[int, str]]


def run_tool(argv: Sequence[str], given: str | None = None) -> tuple[int, str]:
    try:
        done = subprocess.run(
            list(argv),
            input=given,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL if given is None else None,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 127, f"{argv[0]}: {exc}"
    return done.returncode, (done.stdout + done.stderr).strip()


def parse_every(text: str) -> int:
    """'30d', '30 days', '30' -> 30; between 1 and 365 days."""
    value = text.strip()
    match = _DURATION.match(value) or re.match(r"^\s*(\d+)\s*$", value)
    if not match:
        raise BadInput(f"{text!r} is not a number of days (like 30d).")
    days = int(match.group(1))
    if not MIN_DAYS <= days <= MAX_DAYS:
        raise BadInput(f"Rotate every {MIN_DAYS} to {MAX_DAYS} days, not {days}.")
    return days


@dataclass(frozen=True)
class Schedule:
    """What runs: `argv` once a day, rotating profile `profile` past `every_days`."""

    profile: str
    every_days: int
    argv: tuple[str, ...]
    platform: Platform
    hour: int = DEFAULT_HOUR
    # Where the files are when not in the default places (AWS_CONFIG_FILE…):
    # a timer does not inherit the shell's environment.
    environment: tuple[tuple[str, str], ...] = ()

    @property
    def slug(self) -> str:
        return _SAFE_NAME.sub("_", self.profile)

    @property
    def command_line(self) -> str:
        return shlex.join(self.argv)

    @property
    def from_older_version(self) -> bool:
        """Written by keyhygiene 0.1, whose timers start `python -m tui.cli`: that
        module is gone since 0.2, so such a timer fails every day until the
        schedule is installed again."""
        return any(word == "tui.cli" or word.startswith("tui.") for word in self.argv)


# The settings of the person's shell a headless rotation needs to find the same files.
CARRIED_ENVIRONMENT = (
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "AWS_CA_BUNDLE",
    "KEYHYGIENE_STATE_DIR",
    "KEYHYGIENE_KEYRING",
)


def carried_environment(environ: dict[str, str] | None = None) -> tuple[tuple[str, str], ...]:
    source = os.environ if environ is None else environ
    return tuple((name, source[name]) for name in CARRIED_ENVIRONMENT if source.get(name))


def rotate_argv(
    profile: str, every_days: int, program: Sequence[str] | None = None
) -> tuple[str, ...]:
    """The headless rotation the timer runs. `program`: how to start keyhygiene
    (default: this Python with the module, which works in any virtualenv)."""
    start = tuple(program) if program else (sys.executable, "-m", "keyhygiene")
    return (
        *start,
        "rotate",
        "--profile",
        profile,
        "--yes",
        "--if-older-than",
        f"{every_days}d",
        "--scheduled",
    )


def detect_platform(runner: Runner = run_tool) -> Platform | None:
    """The timer this computer has: launchd on macOS, Task Scheduler on Windows,
    a systemd user manager on Linux when one answers, else cron when there is
    a crontab, else None."""
    if sys.platform == "darwin":
        return "launchd"
    if os.name == "nt":
        return "schtasks"
    if shutil.which("systemctl"):
        _, state = runner(["systemctl", "--user", "is-system-running"], None)
        # A manager that answers says its state ("degraded" exits 1 too); with
        # no user manager it says "offline" or cannot reach the bus.
        if state.strip().splitlines()[:1] in (["running"], ["degraded"], ["starting"]):
            return "systemd"
    if shutil.which("crontab"):
        return "cron"
    return None


# ---- what each platform gets --------------------------------------------------------


def systemd_units(schedule: Schedule) -> dict[str, str]:
    """File name -> text of the service and the timer."""
    name = f"keyhygiene-rotate-{schedule.slug}"
    service = (
        "[Unit]\n"
        f"Description=keyhygiene: rotate the access key of profile {schedule.profile} "
        f"when older than {schedule.every_days} days\n"
        "After=network-online.target\n"
        "Wants=network-online.target\n"
        "\n"
        "[Service]\n"
        "Type=oneshot\n"
        + "".join(
            f"Environment={_systemd_command([f'{name}={value}'])}\n"
            for name, value in schedule.environment
        )
        + f"ExecStart={_systemd_command(schedule.argv)}\n"
    )
    timer = (
        "[Unit]\n"
        f"Description=keyhygiene: daily check of profile {schedule.profile}'s key age\n"
        "\n"
        "[Timer]\n"
        f"OnCalendar=*-*-* {schedule.hour:02d}:00:00\n"
        # A day missed while the computer was off runs at the next start.
        "Persistent=true\n"
        "RandomizedDelaySec=30min\n"
        "\n"
        "[Install]\n"
        "WantedBy=timers.target\n"
    )
    return {f"{name}.service": service, f"{name}.timer": timer}


def _systemd_command(argv: Sequence[str]) -> str:
    # systemd splits ExecStart like a shell with double quotes; '%' and '$'
    # are its own specifiers and are doubled.
    def quoted(word: str) -> str:
        word = word.replace("%", "%%").replace("$", "$$")
        if re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]+", word):
            return word
        return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'

    return " ".join(quoted(word) for word in argv)


def launchd_plist(schedule: Schedule, log_dir: Path) -> str:
    label = f"dev.keyhygiene.rotate.{schedule.slug}"
    arguments = "".join(f"\n    <string>{escape(word)}</string>" for word in schedule.argv)
    log = escape(str(log_dir / f"rotate-{schedule.slug}.log"))
    environment = ""
    if schedule.environment:
        pairs = "".join(
            f"\n    <key>{escape(name)}</key>\n    <string>{escape(value)}</string>"
            for name, value in schedule.environment
        )
        environment = f"  <key>EnvironmentVariables</key>\n  <dict>{pairs}\n  </dict>\n"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" '
        '"http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n'
        '<plist version="1.0">\n'
        "<dict>\n"
        f"  <key>Label</key>\n  <string>{label}</string>\n"
        f"  <key>ProgramArguments</key>\n  <array>{arguments}\n  </array>\n"
        "  <key>StartCalendarInterval</key>\n"
        f"  <dict>\n    <key>Hour</key>\n    <integer>{schedule.hour}</integer>\n"
        "    <key>Minute</key>\n    <integer>0</integer>\n  </dict>\n"
        f"  <key>StandardOutPath</key>\n  <string>{log}</string>\n"
        f"  <key>StandardErrorPath</key>\n  <string>{log}</string>\n" + environment + "</dict>\n"
        "</plist>\n"
    )


def cron_line(schedule: Schedule, log: Path) -> str:
    # cron's shell is sh; `%` ends a command in crontab, so it is escaped.
    settings = "".join(f"{name}={shlex.quote(value)} " for name, value in schedule.environment)
    command = f"{settings}{schedule.command_line} >> {shlex.quote(str(log))} 2>&1"
    command = command.replace("%", "\\%")
    return f"0 {schedule.hour} * * * {command} {cron_marker(schedule.profile)}"


def cron_marker(profile: str) -> str:
    return f"# keyhygiene rotate {profile}"


def schtasks_create(schedule: Schedule, log: Path) -> list[str]:
    task = f"keyhygiene rotate {schedule.slug}"
    # Task Scheduler runs one command line; cmd's redirection keeps the log.
    command = subprocess.list2cmdline(list(schedule.argv)) + f' >> "{log}" 2>&1'
    return [
        "schtasks",
        "/Create",
        "/TN",
        task,
        "/SC",
        "DAILY",
        "/ST",
        f"{schedule.hour:02d}:00",
        "/TR",
        f'cmd /c "{command}"',
        "/F",
    ]


# ---- install, status, remove --------------------------------------------------------


@dataclass(frozen=True)
class Installed:
    """What `install` did, for the person and for `status`."""

    schedule: Schedule
    files: tuple[Path, ...]
    active: bool  # the platform's timer took it (else: written, to enable by hand)
    message: str
    log_hint: str


def _record_path(profile: str) -> Path:
    return private_dir(state_dir() / "schedules") / f"{_SAFE_NAME.sub('_', profile)}.json"


def log_dir() -> Path:
    return private_dir(state_dir() / "logs")


def install(
    schedule: Schedule,
    *,
    home: Path | None = None,
    runner: Runner = run_tool,
) -> Installed:
    """Write the schedule for its platform and turn it on; idempotent (the same
    profile's earlier schedule is replaced)."""
    home = home or Path.home()
    kind = schedule.platform
    files: list[Path] = []
    active = True
    message = ""
    log = log_dir() / f"rotate-{schedule.slug}.log"
    if kind == "systemd":
        folder = home / ".config" / "systemd" / "user"
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in systemd_units(schedule).items():
            files.append(_write(folder / name, text))
        timer = f"keyhygiene-rotate-{schedule.slug}.timer"
        steps = (
            ["systemctl", "--user", "daemon-reload"],
            ["systemctl", "--user", "enable", "--now", timer],
        )
        for argv in steps:
            code, output = runner(argv, None)
            if code != 0:
                active = False
                message = (
                    f"The units are written, but systemd's user manager did not take them "
                    f"({_first_line(output)}). Log in to a session and run: "
                    f"systemctl --user enable --now {timer}"
                )
                break
        log_hint = f"journalctl --user -u keyhygiene-rotate-{schedule.slug}"
    elif kind == "launchd":
        folder = home / "Library" / "LaunchAgents"
        folder.mkdir(parents=True, exist_ok=True)
        logs = home / "Library" / "Logs" / "keyhygiene"
        logs.mkdir(parents=True, exist_ok=True)
        plist = _write(
            folder / f"dev.keyhygiene.rotate.{schedule.slug}.plist", launchd_plist(schedule, logs)
        )
        files.append(plist)
        runner(["launchctl", "bootout", f"gui/{os.getuid()}", str(plist)], None)
        code, output = runner(["launchctl", "bootstrap", f"gui/{os.getuid()}", str(plist)], None)
        if code != 0:
            active = False
            message = f"launchctl did not load the agent ({_first_line(output)})."
        log_hint = str(logs / f"rotate-{schedule.slug}.log")
    elif kind == "schtasks":
        code, output = runner(schtasks_create(schedule, log), None)
        if code != 0:
            active = False
            message = f"schtasks did not create the task ({_first_line(output)})."
        log_hint = str(log)
    else:
        code, current = runner(["crontab", "-l"], None)
        lines = [] if code != 0 else current.splitlines()
        marker = cron_marker(schedule.profile)
        kept = [line for line in lines if not line.endswith(marker)]
        text = "\n".join([*kept, cron_line(schedule, log)]) + "\n"
        code, output = runner(["crontab", "-"], text)
        if code != 0:
            active = False
            message = f"crontab refused the line ({_first_line(output)})."
        log_hint = str(log)
    record = {
        "profile": schedule.profile,
        "every_days": schedule.every_days,
        "argv": list(schedule.argv),
        "environment": [list(pair) for pair in schedule.environment],
        "platform": kind,
        "hour": schedule.hour,
        "files": [str(path) for path in files],
        "active": active,
        "log": log_hint,
    }
    _write(_record_path(schedule.profile), json.dumps(record, indent=2) + "\n")
    return Installed(schedule, tuple(files), active, message, log_hint)


def recorded(profile: str | None = None) -> list[Installed]:
    """The schedules installed from this computer (one profile, or all)."""
    folder = private_dir(state_dir() / "schedules")
    paths = [_record_path(profile)] if profile else sorted(folder.glob("*.json"))
    found = []
    for path in paths:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        schedule = Schedule(
            data["profile"],
            int(data["every_days"]),
            tuple(data["argv"]),
            data["platform"],
            int(data.get("hour", DEFAULT_HOUR)),
            tuple((str(n), str(v)) for n, v in data.get("environment", [])),
        )
        files = tuple(Path(p) for p in data.get("files", []))
        found.append(Installed(schedule, files, bool(data.get("active")), "", data.get("log", "")))
    return found


def remove(profile: str, *, runner: Runner = run_tool) -> Installed | None:
    """Turn the profile's schedule off and delete what `install` wrote; None
    when there was none."""
    known = recorded(profile)
    if not known:
        return None
    installed = known[0]
    schedule = installed.schedule
    if schedule.platform == "systemd":
        timer = f"keyhygiene-rotate-{schedule.slug}.timer"
        runner(["systemctl", "--user", "disable", "--now", timer], None)
    elif schedule.platform == "launchd":
        for path in installed.files:
            runner(["launchctl", "bootout", f"gui/{os.getuid()}", str(path)], None)
    elif schedule.platform == "schtasks":
        runner(["schtasks", "/Delete", "/TN", f"keyhygiene rotate {schedule.slug}", "/F"], None)
    else:
        code, current = runner(["crontab", "-l"], None)
        if code == 0:
            marker = cron_marker(schedule.profile)
            kept = [line for line in current.splitlines() if not line.endswith(marker)]
            runner(["crontab", "-"], "\n".join(kept) + ("\n" if kept else ""))
    for path in installed.files:
        path.unlink(missing_ok=True)
    if schedule.platform == "systemd":
        runner(["systemctl", "--user", "daemon-reload"], None)
    _record_path(profile).unlink(missing_ok=True)
    return installed


def _write(path: Path, text: str) -> Path:
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text)
    os.replace(temp, path)
    return path


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "no message"
    return line[:200]
