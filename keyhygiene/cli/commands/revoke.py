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
    parser.add_argument(
        "--all-accounts",
        action="store_true",
        help="revoke USER in every account named (repeated --profile/--admin-profile, the config "
        "file's accounts or --organization) that has it: each account's plan is shown, then "
        "all run side by side, containment first in each",
    )
    parser.set_defaults(handler=_revoke)


def _revoke(args: argparse.Namespace) -> int:
    from concurrent.futures import ThreadPoolExecutor
    from dataclasses import replace

    from keyhygiene.aws.connection import Identity, connect_pair
    from keyhygiene.cli.commands.group import check_json_option
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
    from keyhygiene.cli.accounts import account_specs, one_account

    if args.all_accounts:
        return _revoke_everywhere(args, account_specs(args))
    own, admin = connect_pair(one_account(args).options)
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


def _revoke_everywhere(args: argparse.Namespace, specs: list[Any]) -> int:
    """The same computer cut out of every account at once (workflows.revoke.everywhere)."""
    from concurrent.futures import ThreadPoolExecutor

    from keyhygiene.aws.connection import connect_pair
    from keyhygiene.cli.options import not_applied_code
    from keyhygiene.cli.output import print_json, wants_json
    from keyhygiene.cli.reviewed_apply import agreed
    from keyhygiene.core.errors import BadInput, KeyHygieneError
    from keyhygiene.workflows.revoke import (
        RevokeTarget,
        apply_revoke_everywhere,
        plan_revoke_everywhere,
    )

    def target(spec: Any) -> RevokeTarget:
        own, admin = connect_pair(spec.options)
        here = None
        if own is not admin and spec.options.computer_key:
            try:
                here = own.whoami()
            except KeyHygieneError:
                here = None  # no key of this computer there: it cannot be a self-revoke
        return RevokeTarget(spec.name, admin, args.user, this_computer=here)

    with ThreadPoolExecutor(max_workers=max(1, min(8, len(specs)))) as pool:
        targets = list(pool.map(target, specs))
    plans = plan_revoke_everywhere(
        targets, delete_keys=args.delete_keys, delete_user=args.delete_user
    )
    for account, message in plans.unreadable:
        print(f"keyhygiene: account {account} could not be read: {message}", file=sys.stderr)
    if not plans.revokes:
        if plans.unreadable:
            return EXIT_FAILED
        raise BadInput(
            f"No account has a user {args.user!r} ({', '.join(s.name for s in specs)}).",
            hint="Check the name with `keyhygiene inventory`.",
        )
    absent = f" It has no user in {', '.join(plans.absent)}." if plans.absent else ""
    header = (
        f"Revoke {args.user} in {len(plans.revokes)} account(s): "
        + ", ".join(r.account for r in plans.revokes)
        + "."
        + absent
    )
    if args.dry_run and wants_json(args):
        print_json({r.account: r.plan.to_json() for r in plans.revokes}, args)
        return EXIT_OK
    print(header)
    for revoke in plans.revokes:
        print()
        print(revoke.plan.render_text())
    if args.dry_run:
        print("\nDry run: nothing was changed.")
        return EXIT_OK
    if not agreed(
        args,
        f"\nApply these {plans.steps} changes in {len(plans.revokes)} accounts at once?",
        "\nNothing was changed: pass --yes to apply these plans.",
        sys.stdout,
    ):
        return not_applied_code(args)

    def on_event(account: str, event: Any) -> None:
        if event.kind == "step_started":
            print(f"[{account} {event.index}/{event.total}] {event.description} …", flush=True)
        elif event.kind == "step_failed":
            print(f"    {account} failed: {event.message}", flush=True)

    outcomes = apply_revoke_everywhere(plans, on_event=on_event)
    ok = True
    for outcome in outcomes:
        print()
        print(f"== account {outcome.account} ==")
        if outcome.revoke is None:
            ok = False
            print(f"keyhygiene: {outcome.error}")
            continue
        print(outcome.revoke.render_text())
        if not outcome.contained:
            print(
                f"keyhygiene: {args.user} is NOT contained in {outcome.account}.", file=sys.stderr
            )
        ok = ok and outcome.report is not None and outcome.report.ok
    return EXIT_OK if ok and not plans.unreadable else EXIT_FAILED


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
