"""`keyhygiene sweep`: remove every expired loan, of every group (for cron).

Removes, for each expired loan, the membership, the whitelist entries, the
loan's part of the inline policy `keyhygiene-expiry` and the tag
`keyhygiene:grant:<G>`. Idempotent: with nothing expired it changes nothing.
Safe while keyhygiene runs elsewhere: it checks the loans are still as read
before it removes anything, and accepts what another sweep removed already.

Forward only: nothing is rolled back, since that would give expired loans
back. A step that fails is reported, the others go on where that is safe (the
expiry policies and tags stay until every membership and whitelist entry is
gone, so AWS keeps denying the loans), and the next sweep finishes the job.
A cron line: `keyhygiene sweep --yes`.

Exit codes: 0 done or nothing to do; 2 bad input; 3 some step failed (or a
loan changed meanwhile), after saying what was done.
"""

from __future__ import annotations

import argparse
from typing import Any

from keyhygiene.cli.commands.group import add_now_option, now_from, review_and_apply


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    from keyhygiene.cli.options import add_apply_options

    parser = subparsers.add_parser(
        "sweep",
        help="remove every expired loan, in every group (run it from cron with --yes)",
        description=(
            "Remove every loan whose expiry is past, in every group: the membership, the "
            "whitelist entries in the group's bucket and KMS key policies, the loan's "
            "statement of keyhygiene-expiry and the keyhygiene:grant:<group> tag. Nothing to "
            "do is not an error. Nothing is ever rolled back (that would give expired loans "
            "back): a failed step is reported, AWS keeps denying the expired loan, and the "
            "next sweep finishes the job. Exit status: 0 done or nothing to do, 2 bad input, "
            "3 some step failed or a loan changed meanwhile (run the sweep again)."
        ),
        parents=parents,
    )
    add_apply_options(parser)
    add_now_option(parser)
    parser.set_defaults(handler=_sweep)


def _sweep(args: argparse.Namespace) -> int:
    from keyhygiene.workflows.membership import close_sweep_journal, plan_sweep

    now = now_from(args)
    code, report = review_and_apply(
        args, lambda snapshot: plan_sweep(snapshot, now=now), roll_back_on_failure=False
    )
    if report is not None and not report.ok:
        close_sweep_journal(report)
        if report.done:
            print(
                "\nNothing was rolled back (that would give expired loans back): AWS keeps "
                "denying them, and the next `keyhygiene sweep` finishes the job.",
                flush=True,
            )
    return code
