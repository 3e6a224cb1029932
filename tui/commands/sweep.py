"""`keyhygiene sweep`: remove every loan whose expiry is past (for cron).

Removes, for each expired loan, the membership, the whitelist entries, the tag
`keyhygiene:grant:<G>` and the loan's part of the inline policy
`keyhygiene-expiry`. Idempotent: with nothing expired it changes nothing.
Safe while keyhygiene runs elsewhere: it checks the loans are still as read
before it removes anything. A cron line: `keyhygiene sweep --yes`.

Exit codes: 0 done or nothing to do; 3 an AWS error (or a loan that changed
meanwhile), after saying what was done and undone.
"""

from __future__ import annotations

import argparse
from typing import Any

from tui.commands.group import add_now_option, now_from, run_membership_plan


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    from tui.plan_cli import add_apply_options

    parser = subparsers.add_parser(
        "sweep",
        help="remove every expired loan of a group (run it from cron with --yes)",
        description=(
            "Remove every loan whose expiry is past: membership, whitelist entries in the "
            "group's bucket and KMS key policies, the keyhygiene:grant:<group> tag and the "
            "loan's statement of keyhygiene-expiry. Nothing to do is not an error. Exit "
            "status: 0 done, 3 AWS error (what was done is rolled back)."
        ),
        parents=parents,
    )
    add_apply_options(parser)
    add_now_option(parser)
    parser.set_defaults(handler=_sweep)


def _sweep(args: argparse.Namespace) -> int:
    from tui.membership import plan_sweep

    now = now_from(args)
    return run_membership_plan(args, lambda snapshot: plan_sweep(snapshot, now=now))
