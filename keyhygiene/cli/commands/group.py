"""`keyhygiene group add|remove USER GROUP`: permanent membership, whitelists included.

Exit codes: 0 done (or nothing changed: dry run, declined); 2 bad input, with
nothing changed; 3 an AWS error, after saying what was done and undone.
The helpers at the bottom are shared with `grant` and `sweep`; among them the
injectable clock (hidden `--now`, or `KEYHYGIENE_NOW` with `KEYHYGIENE_TESTING=1`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keyhygiene.core.model import Snapshot
    from keyhygiene.plans import ApplyReport, Plan

NOW_ENVIRONMENT = "KEYHYGIENE_NOW"
TESTING_ENVIRONMENT = "KEYHYGIENE_TESTING"


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    from keyhygiene.cli.options import add_apply_options

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
    from keyhygiene.workflows.membership import plan_add_member

    return run_membership_plan(
        args, lambda snapshot: plan_add_member(snapshot, args.user, args.group)
    )


def _group_remove(args: argparse.Namespace) -> int:
    from keyhygiene.workflows.membership import plan_remove_member

    return run_membership_plan(
        args, lambda snapshot: plan_remove_member(snapshot, args.user, args.group)
    )


# ---- shared by group, grant and sweep ------------------------------------------


def add_now_option(parser: argparse.ArgumentParser) -> None:
    """A hidden clock for tests and rehearsals: `--now 2026-11-28T21:00:00Z`."""
    parser.add_argument("--now", help=argparse.SUPPRESS)


def now_from(args: argparse.Namespace) -> datetime:
    """--now, else $KEYHYGIENE_NOW under $KEYHYGIENE_TESTING=1, else the real clock.

    The variable alone does nothing: left in a production environment (a cron
    line copied from a test) it would silently shift every expiry and make the
    sweep remove loans early or never. This is the only place the clock is read.
    """
    from keyhygiene.workflows.membership import parse_now

    text = getattr(args, "now", None)
    if not text:
        text = os.environ.get(NOW_ENVIRONMENT)
        if text and os.environ.get(TESTING_ENVIRONMENT) != "1":
            print(
                f"keyhygiene: {NOW_ENVIRONMENT} is ignored (it counts only with "
                f"{TESTING_ENVIRONMENT}=1); using the real clock.",
                file=sys.stderr,
                flush=True,
            )
            text = None
    return parse_now(text) if text else datetime.now(timezone.utc)


def check_json_option(args: argparse.Namespace) -> None:
    """--output json only changes what --dry-run prints: alone it would be silently ignored."""
    from keyhygiene.cli.output import check_query, wants_json

    if wants_json(args) and not getattr(args, "dry_run", False):
        from keyhygiene.core.errors import BadInput

        raise BadInput(
            "--output json (or --json, --query) works only with --dry-run (it prints the plan "
            "as JSON). Nothing was changed.",
            hint="Add --dry-run to see the plan as JSON, or drop the option.",
        )
    check_query(args)


def run_membership_plan(
    args: argparse.Namespace,
    build: Callable[[Snapshot], Plan],
    *,
    roll_back_on_failure: bool = True,
) -> int:
    """Read the account with the admin identity, build the plan, review and apply it."""
    code, _ = review_and_apply(args, build, roll_back_on_failure=roll_back_on_failure)
    return code


def review_and_apply(
    args: argparse.Namespace,
    build: Callable[[Snapshot], Plan],
    *,
    roll_back_on_failure: bool = True,
) -> tuple[int, ApplyReport | None]:
    """`run_membership_plan`, also returning the report (None: nothing was applied)."""
    from keyhygiene.aws.connection import connect_pair
    from keyhygiene.aws.inventory import load_snapshot
    from keyhygiene.cli.options import connection_options
    from keyhygiene.cli.reviewed_apply import run_plan

    check_json_option(args)
    _, admin = connect_pair(connection_options(args))
    plan = build(load_snapshot(admin))
    if getattr(args, "yes", False):
        # run_plan shows the plan (and its warnings) only when it asks first.
        for warning in plan.warnings:
            print(f"Warning: {warning}", flush=True)
    return run_plan(plan, admin, args, roll_back_on_failure=roll_back_on_failure)
