"""`keyhygiene enroll`: register this computer (user, groups, whitelists, key) in one plan.

Exit codes: 0 done (or nothing changed: dry run, declined); 2 bad input, with
nothing changed; 3 an AWS error, after saying what was done and undone.

An enrollment cut short (killed, power loss) leaves an open journal; the next
`keyhygiene enroll` finds it. The same command run again with --yes finishes
it, or, when it cannot be finished (the new key's secret died with it), rolls
it back and enrolls afresh, and says which. Otherwise it asks on a terminal,
and scripts say `--resume` / `--rollback`.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keyhygiene.aws.connection import Connection
    from keyhygiene.plans import ApplyReport
    from keyhygiene.plans.journal import Journal

EXIT_OK = 0
EXIT_FAILED = 3


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    from keyhygiene.cli.options import add_apply_options

    parser = subparsers.add_parser(
        "enroll",
        help="register this computer: its own IAM user, groups, whitelists and access key",
        description=(
            "Run on the new computer, with an admin identity (--admin-profile). Plans the "
            "whole checklist of adding a computer: the user <person>-<device> with its tags, "
            "its groups (and keyhygiene-devices, which lets it rotate its own key), the bucket "
            "and KMS key policies of those groups, and one access key written straight into "
            "this computer's credentials file (the secret is never shown). Shows the plan, "
            "then applies it with --yes or after you confirm. Exit status: 0 done, 2 bad "
            "input (nothing changed), 3 AWS error (what was done is rolled back)."
        ),
        parents=parents,
    )
    parser.add_argument("--person", help="whose computer this is, e.g. alice")
    parser.add_argument(
        "--device", help="the device name (default: a slug of this computer's host name)"
    )
    parser.add_argument(
        "--group",
        action="append",
        default=[],
        metavar="GROUP",
        help="a group to join (repeat for several); its buckets and KMS keys whitelist the user",
    )
    parser.add_argument(
        "--profile-name",
        help="the profile of ~/.aws/credentials that gets the key (default: the user name)",
    )
    mfa = parser.add_mutually_exclusive_group()
    mfa.add_argument(
        "--mfa",
        dest="mfa",
        action="store_const",
        const="on",
        default="auto",
        help="MFA-gate this computer: a virtual MFA device of its own (shown once here as a QR "
        "code), and without a code its key can make no lasting change (new keys, rights, "
        "policies). Default: on when a chosen group may allow IAM writes",
    )
    mfa.add_argument(
        "--mfa-strict",
        dest="mfa",
        action="store_const",
        const="strict",
        help="MFA-gate this computer strictly: without an MFA session its key can do nothing "
        "at all (no bucket, no key, no role). The key then lives in the OS keyring, and the "
        "AWS CLI gets MFA sessions of it from keyhygiene's credential_process, one code per "
        "12 hours",
    )
    mfa.add_argument(
        "--no-mfa",
        dest="mfa",
        action="store_const",
        const="off",
        help="do not MFA-gate this computer, even in a group that allows IAM writes",
    )
    parser.add_argument(
        "--store",
        choices=("file", "keyring"),
        help="where the key goes: the credentials file, or the OS keyring served to the AWS "
        "CLI through credential_process (default: the file; the keyring with --mfa-strict)",
    )
    parser.add_argument(
        "--insecure-keyring",
        action="store_true",
        help="allow the keyring even when it dies with the process or keeps the key in plain "
        "text (refused otherwise: the key would be lost or no safer than the file)",
    )
    parser.add_argument(
        "--rotate-every",
        metavar="DAYS",
        help="this computer's rotation schedule, like 30d: kept in its keyhygiene:rotate-every "
        "tag, which the audit and the tree hold its key age to (default: the audit's 90 days); "
        "`keyhygiene schedule rotate` then keeps it",
    )
    finish = parser.add_mutually_exclusive_group()
    finish.add_argument(
        "--resume", action="store_true", help="finish an enrollment that was interrupted"
    )
    finish.add_argument(
        "--rollback", action="store_true", help="undo an enrollment that was interrupted"
    )
    add_apply_options(parser)
    parser.set_defaults(handler=_enroll)


def _enroll(args: argparse.Namespace) -> int:
    from keyhygiene.cli.options import connection_options
    from keyhygiene.core.errors import BadInput
    from keyhygiene.workflows.enrollment import open_enrollments

    options = connection_options(args)
    journals = open_enrollments()
    if args.resume or args.rollback:
        if not journals:
            raise BadInput("There is no interrupted enrollment to resume or roll back.")
        return _finish_open(journals, "resume" if args.resume else "rollback", args, options)
    if journals and not args.dry_run:
        same = _same_enrollment(journals, args)
        if same is not None and args.yes:
            return _converge(same, args, options)
        choice = _ask_about_open(journals)
        if choice is None:
            print("Nothing was changed.")
            return EXIT_OK
        return _finish_open(journals, choice, args, options)
    return _new_enrollment(args, options)


def _new_enrollment(args: argparse.Namespace, options: Any) -> int:
    from keyhygiene.aws.inventory import load_snapshot
    from keyhygiene.cli.reviewed_apply import run_plan
    from keyhygiene.core.errors import BadInput
    from keyhygiene.local.schedule import parse_every
    from keyhygiene.workflows.enrollment import (
        EnrollmentRequest,
        plan_enrollment,
        with_local_files,
    )

    if not (args.person or "").strip():
        raise BadInput("Say whose computer this is: --person NAME (for example alice).")
    # Checked before AWS is touched, as every other bad input.
    every = parse_every(args.rotate_every) if args.rotate_every else None
    # Both files are checked before AWS is touched: a file botocore cannot
    # read would otherwise fail the plan after the user was created.
    files_checked = with_local_files(
        EnrollmentRequest(
            person=args.person,
            mfa=args.mfa,
            store=args.store,
            insecure_keyring=args.insecure_keyring,
        )
    )
    conn = _admin(args, options)
    snapshot = load_snapshot(conn)
    request = EnrollmentRequest(
        person=args.person,
        device=args.device,
        groups=tuple(args.group),
        profile_name=args.profile_name,
        region=args.region or conn.region,
        endpoint_url=conn.endpoint_url,
        profiles_in_use=files_checked.profiles_in_use,
        default_session_keys=files_checked.default_session_keys,
        mfa=args.mfa,
        store=args.store,
        rotate_every_days=every,
    )
    plan = plan_enrollment(snapshot, request)
    if _needs_mfa_prompt(plan) and not args.dry_run:
        _prompt_on_terminal()
    code, report = run_plan(plan, conn, args)
    if report is not None and report.ok:
        _print_next_steps(plan)
    return code


def _needs_mfa_prompt(plan: Any) -> bool:
    from keyhygiene.steps.mfa_device import MFA_DEVICE_STEP

    return any(step.id == MFA_DEVICE_STEP for step in plan.steps)


def _prompt_on_terminal() -> None:
    """Show a new MFA device on the terminal, refusing before AWS is touched
    when there is none: the seed must reach a person, not a log."""
    from keyhygiene.cli.mfa_terminal import TerminalMfaDevicePrompt
    from keyhygiene.core.errors import BadInput
    from keyhygiene.steps.mfa_device import set_mfa_device_prompt

    prompt = TerminalMfaDevicePrompt.open()
    if prompt is None:
        raise BadInput(
            "This enrollment is MFA-gated: it shows the new MFA device's secret once and asks "
            "for two codes, which needs a terminal. Nothing was changed.",
            hint="Run it in a terminal, or pass --no-mfa.",
        )
    set_mfa_device_prompt(prompt)


def _finish_open(
    journals: list[Journal], choice: str, args: argparse.Namespace, options: Any
) -> int:
    from keyhygiene.cli.reviewed_apply import print_event
    from keyhygiene.plans import resume, rollback

    conn = _admin(args, options)
    worst = EXIT_OK
    for journal in journals:
        print(f"Interrupted: {journal.summary()}")
        report: ApplyReport
        if choice == "resume":
            print("Resuming …")
            report = resume(journal, conn, on_event=print_event)
        else:
            print("Rolling back …")
            report = rollback(journal, conn, on_event=print_event)
        print(report.render_text())
        if not report.ok:
            worst = EXIT_FAILED
        elif choice == "resume":
            _print_next_steps(journal.plan)
    return worst


def _same_enrollment(journals: list[Journal], args: argparse.Namespace) -> Journal | None:
    """The open enrollment this command asks for again (same user, same groups),
    when it is the only one open; None otherwise."""
    from keyhygiene.core.model import DEVICES_GROUP
    from keyhygiene.workflows.enrollment import EnrollmentRequest, proposed_device, user_name_for

    person = (args.person or "").strip()
    if len(journals) != 1 or not person:
        return None
    journal = journals[0]
    device = (args.device or "").strip() or proposed_device(person, EnrollmentRequest("").hostname)
    wanted = {g.strip().lower() for g in args.group if g.strip()} - {DEVICES_GROUP}
    steps = journal.plan.steps
    users = {step.call.params.get("UserName") for step in steps if step.id == "create-user"}
    joined = {
        step.id.removeprefix("join.").lower() for step in steps if step.id.startswith("join.")
    } - {DEVICES_GROUP}
    return journal if users == {user_name_for(person, device)} and joined == wanted else None


def _converge(journal: Journal, args: argparse.Namespace, options: Any) -> int:
    """Finish the interrupted run of this very enrollment, or, when it cannot be
    finished, undo it and enroll again: either way the computer ends enrolled once."""
    from keyhygiene.cli.reviewed_apply import print_event
    from keyhygiene.plans import ResumeImpossible, check_resumable, resume, rollback

    conn = _admin(args, options)
    print(f"An earlier run of this enrollment was interrupted: {journal.summary()}.")
    try:
        if journal.state == "rollback_incomplete":
            raise ResumeImpossible("it was being rolled back")
        check_resumable(journal)
    except ResumeImpossible:
        print(
            "It cannot be finished (what it needs died with it): rolling it back, then enrolling again …"
        )
        undone = rollback(journal, conn, on_event=print_event)
        print(undone.render_text())
        if not undone.ok:
            return EXIT_FAILED
        return _new_enrollment(args, options)
    print("Finishing it …")
    report = resume(journal, conn, on_event=print_event)
    print(report.render_text())
    if not report.ok:
        return EXIT_FAILED
    _print_next_steps(journal.plan)
    return EXIT_OK


def _ask_about_open(journals: list[Journal]) -> str | None:
    """ "resume", "rollback" or None (leave it); refuses without a terminal."""
    from keyhygiene.core.errors import BadInput

    summaries = "; ".join(journal.summary() for journal in journals)
    if not sys.stdin.isatty():
        raise BadInput(
            f"An enrollment was interrupted: {summaries}.",
            hint="Run the same `keyhygiene enroll` again with --yes to finish it, or "
            "`keyhygiene enroll --resume` / `--rollback` to finish or undo it, then enroll "
            "again if needed.",
        )
    print(f"An enrollment was interrupted: {summaries}.")
    print("[r]esume it, roll it [b]ack, or [q]uit? ", end="", flush=True)
    answer = sys.stdin.readline().strip().lower()
    return {"r": "resume", "resume": "resume", "b": "rollback", "rollback": "rollback"}.get(answer)


def _admin(args: argparse.Namespace, options: Any) -> Connection:
    # An admin profile with mfa_serial gets its code from the global --mfa-code
    # (or the terminal prompt) that `keyhygiene.cli.main.main` installed.
    from keyhygiene.workflows.enrollment import admin_connection

    return admin_connection(options)


def _print_next_steps(plan: Any) -> None:
    from keyhygiene.workflows.enrollment import registered_sentence

    sentence = registered_sentence(plan)
    if sentence:
        print("\n" + sentence)
