"""A new MFA device shown on the terminal (the command line's `MfaDevicePrompt`).

The seed goes to the controlling terminal only (`/dev/tty`), never to stdout
or stderr: a redirected `keyhygiene enroll > log` must not put it in the log.
"""

from __future__ import annotations

import os
import sys
from typing import IO

from keyhygiene.core.mfa_devices import grouped_seed, otpauth_uri, qr_lines, seconds_to_next_code
from keyhygiene.steps.mfa_device import NewMfaDevice


class TerminalMfaDevicePrompt:
    def __init__(self, reader: IO[str], writer: IO[str]) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    def open(cls) -> TerminalMfaDevicePrompt | None:
        """The prompt on this process's terminal, or None when it has none."""
        if os.name == "nt":
            if sys.stdin.isatty() and sys.stderr.isatty():
                return cls(sys.stdin, sys.stderr)
            return None
        # Two handles: "r+" would ask for a seekable file, which a terminal is not.
        try:
            reader = open("/dev/tty", encoding="utf-8", errors="replace")  # noqa: SIM115
        except OSError:
            return None
        try:
            writer = open("/dev/tty", "w", encoding="utf-8")  # noqa: SIM115
        except OSError:
            reader.close()
            return None
        return cls(reader, writer)

    def __call__(self, device: NewMfaDevice) -> tuple[str, str]:
        out = self._writer
        seed = device.seed.reveal()
        print(
            f"\nThe new MFA device of {device.user_name} ({device.serial}).\n"
            "Scan this QR code with your authenticator app (it is shown once, here only):\n",
            file=out,
        )
        for line in qr_lines(otpauth_uri(seed, device.user_name, device.account_id)):
            print("  " + line, file=out)
        print(f"\nOr type this secret into the app: {grouped_seed(seed)}\n", file=out)
        del seed
        first = self._ask("Code your app shows now: ")
        if not first:
            return "", ""
        wait = int(seconds_to_next_code()) + 1
        print(f"Now wait for the next code (about {wait} s).", file=out, flush=True)
        second = self._ask("Next code: ")
        # The QR code and the secret leave the screen and its scrollback
        # (ED 2 and ED 3, which xterm-like terminals and Windows Terminal know).
        print("\x1b[2J\x1b[3J\x1b[H", end="", file=out)
        print("MFA device read; its secret is off the screen.", file=out, flush=True)
        return first, second

    def _ask(self, question: str) -> str:
        print(question, end="", file=self._writer, flush=True)
        line = self._reader.readline()
        return line.strip()
