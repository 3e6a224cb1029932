"""`keyhygiene revoke USER`: emergency revoke of a lost or stolen computer.

Exit codes: 0 all done (or nothing to do, or a dry run), 3 some step failed
(each is listed with the permission it needed), 2 bad input (an unknown user,
--json without --dry-run; nothing changed).

After the run it prints the revoke report (`keyhygiene.workflows.revoke.RevokeReport`) in place
of the generic plan report: containment is *requested* when AWS accepted the
calls, and IAM applies them everywhere only after a delay.
"""

from __future__ import annotations

import argparse
import io
import sys
from typing import Any

from keyhygiene.cli.options import EXIT_FAILED, EXIT_OK, add_apply_options


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "revoke",
        help="emergency: cut a lost or stolen computer's user out of the account",
        description=(
            "Containment first: deactivate every access key of USER at once, attach the "
            "inline policy keyhygiene-revoked (deny everything, sessions included; the AWS "
            "managed policy AWSDenyAll when its inline policies leave no room), tag it "
            "keyhygiene:revoked. Then remove it from its groups, from every bucket and KMS key "
            "policy that names it, and delete its console password and MFA devices. The report "
            "says when containment was requested: IAM applies changes everywhere after a delay. "
            "A failed step does not stop the others and nothing is rolled back; run the command "
            "again to finish what is missing. Exit status: 0 all done (or nothing to do, or a dry "
            "run), 2 bad input (an unknown user, --json without --dry-run; nothing changed), "
            "3 some step failed (each is listed with the permission it needed)."
        ),
        parents=parents,
    )
    parser.add_argument("user", metavar="USER", help="the computer's IAM user, e.g. alice-phone")
    add_apply_options(parser)
    parser.add_argument(
        "--delete-keys",
        action="store_true",
        help="delete the keys too (by default they stay inactive, for forensics)",
    )
    parser.add_argument(
        "--delete-user",
        action="store_true",
        help="delete the user once everything else is done (implies --delete-keys)",
    )
    parser.set_defaults(handler=_revoke)


def _revoke(args: argparse.Namespace) -> int:
    from concurrent.futures import ThreadPoolExecutor
    from dataclasses import replace

    from keyhygiene.aws.connection import Identity, connect_pair
    from keyhygiene.cli.commands.group import check_json_option
    from keyhygiene.cli.options import connection_options
    from keyhygiene.cli.reviewed_apply import print_event, run_plan
    from keyhygiene.workflows.revoke import (
        ContainmentTimer,
        find_user,
        load_for_revoke,
        plan_revoke,
        revoke_report,
        this_user_name,
    )

    check_json_option(args)
    own, admin = connect_pair(connection_options(args))
    with ThreadPoolExecutor(max_workers=1) as pool:
        # Who this computer is only matters for a warning: ask while loading.
        own_name = pool.submit(this_user_name, own) if own is not admin else None
        snapshot, extras = load_for_revoke(admin, args.user)
    here = (
        own_name.result()
        if own_name is not None
        else Identity(snapshot.account_id, snapshot.caller_arn).user_name
    )
    snapshot = replace(snapshot, this_user=here)
    plan = plan_revoke(
        snapshot,
        args.user,
        delete_keys=args.delete_keys,
        delete_user=args.delete_user,
        extras=extras,
    )
    if args.yes:
        # run_plan shows the plan (and its warnings) only when it asks first.
        for warning in plan.warnings:
            print(f"Warning: {warning}", flush=True)
    timer = ContainmentTimer(plan)
    review = _ReviewOnly()

    def on_event(event: Any) -> None:
        if event.kind == "plan_started":
            review.applying = True
        timer(event)
        print_event(event)

    code, report = run_plan(
        plan,
        admin,
        args,
        roll_back_on_failure=False,
        stop_on_failure=False,
        on_event=on_event,
        out=review,
    )
    if report is None:
        return code
    revoke = revoke_report(report, find_user(snapshot, args.user), timer=timer, snapshot=snapshot)
    print()
    print(revoke.render_text())
    if not revoke.containment_requested:
        print(f"keyhygiene: {args.user} is NOT contained.", file=sys.stderr)
    if report.ok and snapshot.problems:
        # Containment ran, but what could not be read may still name the user.
        unread = "; ".join(f"{p.what} ({p.message})" for p in snapshot.problems)
        print(
            f"keyhygiene: the revoke of {args.user} is incomplete: could not read {unread}. "
            "Fix that and run the same command again to finish.",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK if report.ok else EXIT_FAILED


class _ReviewOnly(io.StringIO):
    """`run_plan`'s output: the review (plan, dry run, question) goes to stdout;
    once the plan runs, its generic report ("done, all N steps") is left out,
    replaced by the revoke report, which says containment was requested."""

    applying = False

    def write(self, text: str) -> int:
        if not self.applying:
            sys.stdout.write(text)
        return len(text)

    def flush(self) -> None:
        sys.stdout.flush()
