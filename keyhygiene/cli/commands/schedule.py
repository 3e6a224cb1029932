"""`keyhygiene schedule rotate|status|remove`: rotation on a per-user timer.

Exit codes: 0 done (`status`: a schedule exists, or none and none asked for),
1 the files are written but the platform's timer did not take them (the
message says how to enable it), 2 bad input or no timer on this computer.
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any

EXIT_OK = 0
EXIT_NOT_ACTIVE = 1


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "schedule",
        help="rotate this computer's key on a schedule (systemd, launchd, Task Scheduler, cron)",
        description=(
            "Install a per-user timer that checks once a day (and after a missed day, at the "
            "next start) whether the profile's key is older than the schedule, and rotates it "
            "headless if so. A run that cannot finish (an MFA code is needed, AWS refused) "
            "leaves a notice that keyhygiene shows at its next start."
        ),
        parents=parents,
    )
    actions = parser.add_subparsers(dest="schedule_action", metavar="ACTION", required=True)
    rotate = actions.add_parser(
        "rotate", help="install (or replace) the schedule of the profile", parents=parents
    )
    rotate.add_argument(
        "--every", default="90d", help="the longest a key may live, like 30d (default 90d)"
    )
    rotate.add_argument(
        "--platform",
        choices=("systemd", "launchd", "schtasks", "cron"),
        help="the timer to use (default: the one this computer has)",
    )
    rotate.add_argument(
        "--hour", type=int, default=10, help="the local hour of the daily check (default 10)"
    )
    rotate.set_defaults(handler=_install)
    status = actions.add_parser("status", help="show the installed schedules", parents=parents)
    status.set_defaults(handler=_status)
    remove = actions.add_parser(
        "remove", help="remove the schedule of the profile", parents=parents
    )
    remove.set_defaults(handler=_remove)


def _install(args: argparse.Namespace) -> int:
    from keyhygiene.cli.options import connection_options
    from keyhygiene.core.errors import BadInput
    from keyhygiene.local.schedule import (
        Schedule,
        carried_environment,
        detect_platform,
        install,
        parse_every,
        rotate_argv,
    )

    profile = connection_options(args).profile_name
    days = parse_every(args.every)
    if not 0 <= args.hour <= 23:
        raise BadInput(f"--hour is 0 to 23, not {args.hour}.")
    platform = args.platform or detect_platform()
    if platform is None:
        raise BadInput(
            "This computer has no timer keyhygiene knows: no systemd user manager, launchd, "
            "Task Scheduler or crontab. Nothing was installed.",
            hint="Run `keyhygiene rotate --profile PROFILE --yes --if-older-than "
            f"{days}d` from whatever runs jobs here.",
        )
    schedule = Schedule(
        profile,
        days,
        rotate_argv(profile, days),
        platform,
        hour=args.hour,
        environment=carried_environment(),
    )
    done = install(schedule)
    for path in done.files:
        print(f"Wrote {path}")
    print(
        f"Profile {profile}: checked daily at {args.hour:02d}:00 ({platform}), rotated when its "
        f"key is {days} days old. Runs: {schedule.command_line}"
    )
    print(f"Its output: {done.log_hint}")
    # The computer's key may not tag its own user (an MFA-gated one may not
    # even without a code): the audit's schedule is an admin's to set.
    print(
        "The audit and the tree hold this computer to its keyhygiene:rotate-every tag, "
        "which an admin sets (`keyhygiene enroll --rotate-every`), else to 90 days."
    )
    if not done.active:
        print(done.message)
        return EXIT_NOT_ACTIVE
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    from keyhygiene.local import notices
    from keyhygiene.local.schedule import recorded

    found = recorded()
    if not found:
        print("No schedule is installed: `keyhygiene schedule rotate --every 30d` adds one.")
    for item in found:
        schedule = item.schedule
        state = "active" if item.active else "written, not enabled"
        missing = [str(path) for path in item.files if not path.exists()]
        if missing:
            state = f"files missing: {', '.join(missing)}"
        if schedule.from_older_version:
            state = (
                "BROKEN: written by keyhygiene 0.1, it starts `python -m tui.cli`, which is gone; "
                f"run `keyhygiene schedule rotate --profile {shlex.quote(schedule.profile)} "
                f"--every {schedule.every_days}d` to install it again"
            )
        print(
            f"{schedule.profile}: every {schedule.every_days} days, checked daily at "
            f"{schedule.hour:02d}:00 by {schedule.platform} ({state}); output: {item.log_hint}"
        )
    for notice in notices.pending():
        print(f"Notice: {notice.line()}")
    return EXIT_OK


def _remove(args: argparse.Namespace) -> int:
    from keyhygiene.cli.options import connection_options
    from keyhygiene.local.schedule import remove

    profile = connection_options(args).profile_name
    gone = remove(profile)
    if gone is None:
        print(f"Profile {profile} has no schedule; nothing was changed.")
        return EXIT_OK
    for path in gone.files:
        print(f"Removed {path}")
    print(f"Profile {profile}: no longer rotated on a schedule ({gone.schedule.platform}).")
    return EXIT_OK
