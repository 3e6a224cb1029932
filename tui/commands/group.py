"""`keyhygiene group add|remove USER GROUP`: permanent membership, whitelists included.

Exit codes: 0 done (or nothing changed: dry run, declined); 2 bad input, with
nothing changed; 3 an AWS error, after saying what was done and undone.
The helpers at the bottom are shared with `grant` and `sweep`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tui.model import Snapshot
    from tui.plans import Plan

NOW_ENVIRONMENT = "KEYHYGIENE_NOW"


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    from tui.plan_cli import add_apply_options

    parser = subparsers.add_parser(
        "group",
        help="add a computer's user to a group for good, or take it out",
        description=(
            "Change a permanent group membership in one reviewed plan that also rewrites the "
            "bucket and KMS key policies tagged for the group, so that their whitelists stay "
            "equal to the members. For a limited time, use `keyhygiene grant` instead. "
            "Exit status: 0 done, 2 bad input (nothing changed), 3 AWS error (what was done "
            "is rolled back)."
        ),
        parents=parents,
    )
    actions = parser.add_subparsers(dest="group_action", metavar="ACTION", required=True)
    for name, text in (
        ("add", "make USER a permanent member of GROUP (a loan becomes permanent)"),
        ("remove", "take USER out of GROUP (a loan is ended with all it added)"),
    ):
        action = actions.add_parser(name, help=text, description=text, parents=parents)
        action.add_argument("user", metavar="USER", help="the computer's IAM user")
        action.add_argument("group", metavar="GROUP", help="the IAM group")
        add_apply_options(action)
        action.set_defaults(handler=_group_add if name == "add" else _group_remove)


def _group_add(args: argparse.Namespace) -> int:
    from tui.membership import plan_add_member

    return run_membership_plan(
        args, lambda snapshot: plan_add_member(snapshot, args.user, args.group)
    )


def _group_remove(args: argparse.Namespace) -> int:
    from tui.membership import plan_remove_member

    return run_membership_plan(
        args, lambda snapshot: plan_remove_member(snapshot, args.user, args.group)
    )


# ---- shared by group, grant and sweep ------------------------------------------


def add_now_option(parser: argparse.ArgumentParser) -> None:
    """A hidden clock for tests and rehearsals: `--now 2026-11-28T21:00:00Z`."""
    parser.add_argument("--now", help=argparse.SUPPRESS)


def now_from(args: argparse.Namespace) -> datetime:
    """--now, else $KEYHYGIENE_NOW, else the real clock (the only place it is read)."""
    from tui.membership import parse_now

    text = getattr(args, "now", None) or os.environ.get(NOW_ENVIRONMENT)
    return parse_now(text) if text else datetime.now(timezone.utc)


def run_membership_plan(args: argparse.Namespace, build: Callable[[Snapshot], Plan]) -> int:
    """Read the account with the admin identity, build the plan, review and apply it."""
    from tui.cli import connection_options
    from tui.connection import connect_pair
    from tui.inventory import load_snapshot
    from tui.plan_cli import run_plan

    _, admin = connect_pair(connection_options(args))
    plan = build(load_snapshot(admin))
    if getattr(args, "yes", False):
        # run_plan shows the plan (and its warnings) only when it asks first.
        for warning in plan.warnings:
            print(f"Warning: {warning}", flush=True)
    code, _ = run_plan(plan, admin, args)
    return code
