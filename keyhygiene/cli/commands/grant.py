"""`keyhygiene grant USER --group G --for DURATION | --end`: lend a group for a limited time.

The loan ends even if keyhygiene never runs again: besides the membership and
the whitelist entries, the user gets the tag `keyhygiene:grant:<G>` (the
expiry) and the inline policy `keyhygiene-expiry`, which AWS enforces after
the expiry. `keyhygiene sweep` removes what expired.

Exit codes: 0 done (or nothing changed: dry run, declined); 2 bad input, with
nothing changed; 3 an AWS error, after saying what was done and undone.
"""

from __future__ import annotations

import argparse
from typing import Any

from keyhygiene.cli.commands.group import add_now_option, now_from, run_membership_plan


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    from keyhygiene.cli.options import add_apply_options

    parser = subparsers.add_parser(
        "grant",
        help="lend a group to a computer's user for a limited time, or end the loan",
        description=(
            "Lend GROUP to USER for a duration (30m, 2h, 3d, 1w; at most 30 days unless "
            "--max-duration says otherwise): add it to the group, whitelist it in the group's "
            "buckets and KMS keys, tag the expiry and put the inline policy keyhygiene-expiry "
            "that AWS enforces after it. Lending again moves the expiry to now + DURATION; "
            "--end removes everything the loan added. A group that grants IAM rights is "
            "refused unless --force. Exit status: 0 done, 2 bad input "
            "(nothing changed), 3 AWS error (what was done is rolled back)."
        ),
        parents=parents,
    )
    parser.add_argument("user", metavar="USER", help="the computer's IAM user, e.g. alice-phone")
    parser.add_argument("--group", "-g", required=True, metavar="GROUP", help="the group to lend")
    length = parser.add_mutually_exclusive_group(required=True)
    length.add_argument(
        "--for", dest="duration", metavar="DURATION", help="how long: 30m, 2h, 3d, 1w, 1d12h"
    )
    length.add_argument("--end", action="store_true", help="end the loan now")
    parser.add_argument(
        "--max-duration",
        default="30d",
        metavar="DURATION",
        help="the longest loan accepted (default: 30d)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="lend GROUP even if its policies grant IAM rights (iam:CreateUser, "
        "iam:CreateAccessKey, iam:PutUserPolicy, iam:AddUserToGroup, iam:CreateRole ... or "
        "*:*) or one of them cannot be read (an AWS managed policy keyhygiene does not know): "
        "refused without it, because before the expiry the borrower could create users, keys "
        "or rights that no expiry covers. The plan then warns about it. The borrower still "
        "cannot change its own policies, tags, groups or name while the loan lasts",
    )
    add_apply_options(parser)
    add_now_option(parser)
    parser.set_defaults(handler=_grant)


def _grant(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from keyhygiene.workflows.membership import parse_duration, plan_end_grant, plan_grant

    if args.end:
        from keyhygiene.plans.journal import interrupted_runs_about

        # An earlier `grant --end` cut short after the tag went leaves no loan
        # to name: this run finishes what it left undone instead of refusing.
        finishing = bool(interrupted_runs_about(f"remove {args.user} {args.group}"))
        return run_membership_plan(
            args,
            lambda snapshot: plan_end_grant(snapshot, args.user, args.group, finishing=finishing),
        )
    # Checked before AWS is touched: a bad duration costs no call.
    maximum = parse_duration(args.max_duration, maximum=timedelta(days=3650))
    duration = parse_duration(args.duration, maximum=maximum)
    now = now_from(args)
    return run_membership_plan(
        args,
        lambda snapshot: plan_grant(
            snapshot,
            args.user,
            args.group,
            duration,
            now=now,
            max_duration=maximum,
            force=args.force,
        ),
    )
