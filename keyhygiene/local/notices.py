"""Notices a headless run leaves for the person: a scheduled rotation that could
not run (it needed an MFA code, AWS refused, the file was locked) must not fail
silently. One file per profile in the state folder; `keyhygiene` shows them at
its next start (the TUI as notifications, `rotate` and `schedule status` as
lines), and a desktop notification is sent where the platform has one.

A notice holds what happened and what to do, never a secret: its text is a
KeyHygieneError's message (written for people, already scrubbed) or a sentence
made here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from keyhygiene.local.state_dir import private_dir, state_dir

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class Notice:
    profile: str
    text: str
    at: datetime

    def line(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} UTC, profile {self.profile}: {self.text}"


def _folder() -> Path:
    return private_dir(state_dir() / "notices")


def _path(profile: str) -> Path:
    return _folder() / f"{_SAFE.sub('_', profile)}.json"


def leave(profile: str, text: str, *, desktop: bool = True) -> Notice:
    """Record `text` for `profile` (replacing its earlier notice), and tell the desktop."""
    notice = Notice(profile, text, datetime.now(timezone.utc).replace(microsecond=0))
    path = _path(profile)
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(
        json.dumps({"profile": profile, "text": text, "at": notice.at.isoformat()}) + "\n"
    )
    os.replace(temp, path)
    if desktop:
        notify_desktop("keyhygiene", f"{profile}: {text}")
    return notice


def pending() -> list[Notice]:
    found = []
    for path in sorted(_folder().glob("*.json")):
        try:
            data = json.loads(path.read_text())
            found.append(
                Notice(str(data["profile"]), str(data["text"]), datetime.fromisoformat(data["at"]))
            )
        except (OSError, ValueError, KeyError):
            continue
    return found


def clear(profile: str) -> None:
    _path(profile).unlink(missing_ok=True)


def notify_desktop(title: str, text: str) -> bool:
    """Best effort: notify-send on Linux desktops, osascript on macOS; False when none."""
    if sys.platform == "darwin" and shutil.which("osascript"):
        script = f"display notification {json.dumps(text)} with title {json.dumps(title)}"
        argv = ["osascript", "-e", script]
    elif shutil.which("notify-send") and (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        argv = ["notify-send", "--app-name=keyhygiene", title, text]
    else:
        return False
    try:
        subprocess.run(argv, capture_output=True, timeout=10, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return True
