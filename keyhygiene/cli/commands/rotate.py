"""`keyhygiene rotate`: rotate this computer's access key into ~/.aws/credentials.

Exit codes: 0 rotated (or nothing asked to change), 1 the new key never
verified and everything was rolled back, 2 bad input, a refused file or
another rotation of the profile running (nothing changed), 3 an AWS error
(the message says what was done and undone).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from keyhygiene.core.errors import BadInput


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    from keyhygiene.cli.options import add_apply_options
    from keyhygiene.workflows.rotation_defaults import (
        DEFAULT_VERIFY_INTERVAL,
        DEFAULT_VERIFY_SUCCESSES,
        DEFAULT_VERIFY_TIMEOUT,
    )

    parser = subparsers.add_parser(
        "rotate",
        help="rotate this computer's access key, verified, into ~/.aws/credentials",
        description=(
            "Create a new access key for this computer's IAM user, write it where the profile "
            "keeps its key, verify it with several calls made with it, then deactivate and "
            "delete the old key. A failure puts everything back; an interrupted run is "
            "finished or rolled back by the next one. The secret is never printed. "
            "Exit codes: 0 rotated, 1 verification failed and rolled back, 2 bad input, "
            "refused file or another rotation of the profile running (nothing changed), "
            "3 AWS error."
        ),
        parents=parents,
    )
    add_apply_options(parser)
    parser.add_argument(
        "--store",
        choices=("file", "keyring"),
        default=None,
        help=(
            "where the secret lives: the credentials file, or the OS keyring with "
            "credential_process in ~/.aws/config (default: where it is now, the file for a "
            "plain profile)"
        ),
    )
    parser.add_argument(
        "--insecure-keyring",
        action="store_true",
        help="allow --store keyring into a keyring that dies with the process or keeps the key "
        "in plain text (refused otherwise: the old key is deleted, so the key would be lost)",
    )
    parser.add_argument(
        "--delete-other",
        action="store_true",
        help="delete the user's second key even if it is active (it stops whatever uses it)",
    )
    parser.add_argument(
        "--verify-timeout",
        type=float,
        default=DEFAULT_VERIFY_TIMEOUT,
        metavar="SECONDS",
        help=f"how long to retry verifying the new key (default {DEFAULT_VERIFY_TIMEOUT:g})",
    )
    parser.add_argument(
        "--verify-successes",
        type=int,
        default=DEFAULT_VERIFY_SUCCESSES,
        metavar="N",
        help=f"successful checks in a row that prove the new key (default {DEFAULT_VERIFY_SUCCESSES})",
    )
    parser.add_argument(
        "--verify-interval",
        type=float,
        default=DEFAULT_VERIFY_INTERVAL,
        metavar="SECONDS",
        help=f"pause between successful checks (default {DEFAULT_VERIFY_INTERVAL:g})",
    )
    parser.add_argument(
        "--if-older-than",
        metavar="DAYS",
        help="rotate only when the key is at least this old (like 30d); what a schedule runs",
    )
    parser.add_argument(
        "--scheduled",
        action="store_true",
        help="run by a timer (`keyhygiene schedule`): a run that cannot finish (an MFA code "
        "is needed, AWS refused) leaves a notice that keyhygiene shows at its next start",
    )
    parser.set_defaults(handler=_rotate)


def _rotate(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from keyhygiene.cli.options import connection_options
    from keyhygiene.core.errors import KeyHygieneError
    from keyhygiene.local import notices

    profile = connection_options(args).profile_name
    if not args.scheduled:
        for notice in notices.pending():
            print(f"Notice from a scheduled run: {notice.line()}", file=out or sys.stdout)
    try:
        code = _rotate_now(args, out)
    except KeyHygieneError as exc:
        if args.scheduled:
            notices.leave(profile, f"the scheduled rotation did not run: {exc}")
        raise
    if args.scheduled and code != 0:
        notices.leave(
            profile,
            f"the scheduled rotation failed (exit {code}); run `keyhygiene rotate --profile "
            f"{profile}` to see why.",
        )
    elif code == 0:
        notices.clear(profile)
    return code


def _rotate_now(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from keyhygiene.cli.options import connection_options
    from keyhygiene.cli.reviewed_apply import approved, not_applied_code, print_event
    from keyhygiene.local import credentials_file
    from keyhygiene.local.schedule import parse_every
    from keyhygiene.workflows.rotation import (
        HeldKeyClients,
        KeyLocation,
        RotationRequest,
        check_key_in_use,
        check_store_usable,
        execute_rotation,
        held_key,
        inspect_rotation,
        plan_rotation,
    )

    out = out or sys.stdout
    options = connection_options(args)
    profile = options.profile_name
    min_age = parse_every(args.if_older_than) if args.if_older_than else None
    request = RotationRequest(
        profile=profile,
        store=args.store,
        delete_other=args.delete_other,
        verify_timeout=args.verify_timeout,
        verify_successes=args.verify_successes,
        verify_interval=args.verify_interval,
    )
    # The shell's environment keys win over the profile: refused before anything.
    check_key_in_use(options)
    location = KeyLocation.for_profile(profile)
    # A file botocore cannot parse is refused before anything else (exit 2).
    credentials_file.validate(location.credentials_file)
    credentials_file.validate(location.config_file)

    code = _handle_pending(args, options, profile, out)
    if code is not None:
        return code

    current = held_key(location)
    check_store_usable(
        args.store, current.store if current else None, allow_insecure=args.insecure_keyring
    )
    clients = HeldKeyClients(options, location)
    facts = inspect_rotation(clients)
    if min_age is not None:
        age = _age_days(facts.current_key.created)
        if age is not None and age < min_age:
            print(
                f"The key of profile {profile} is {age} days old; it is rotated at {min_age}: "
                "nothing to do.",
                file=out,
            )
            return 0
    plan = plan_rotation(facts, request)

    if not approved(plan, args, out):
        return not_applied_code(args)
    outcome = execute_rotation(plan, clients, on_event=lambda event: print_event(event, out))
    print("", file=out)
    print(outcome.render_text(details=not outcome.ok), file=out)
    if not outcome.ok:
        # One `keyhygiene: …` line on stderr, as every other failure gets.
        headline = " ".join(outcome.headline.split())
        print(f"keyhygiene: {headline}", file=sys.stderr)
    if outcome.ok:
        print(
            f"{len(plan.steps)} steps, {clients.api_calls} API calls in all "
            f"(2 to inspect), {outcome.elapsed:.1f} s to apply.",
            file=out,
        )
    return outcome.exit_code


def _age_days(created: Any) -> int | None:
    from datetime import datetime, timezone

    if created is None:
        return None
    return (datetime.now(timezone.utc) - created).days


def _handle_pending(
    args: argparse.Namespace, options: Any, profile: str, out: TextIO
) -> int | None:
    """Finish or roll back an interrupted rotation of this profile first.

    Returns an exit code to stop with, or None to go on with a new rotation
    (there was none, or it was rolled back).
    """
    from keyhygiene.cli.reviewed_apply import EXIT_NOT_APPLIED, agreed, print_event
    from keyhygiene.workflows.rotation import finish_or_roll_back, pending_rotations

    pending_all = pending_rotations()
    for other in pending_all:
        if other.profile != profile:
            print(
                f"Note: an interrupted rotation of profile {other.profile} is waiting: run "
                f"`keyhygiene rotate --profile {other.profile}` to deal with it.",
                file=out,
            )
    mine = [item for item in pending_all if item.profile == profile]
    for pending in mine:
        print(f"An earlier rotation was interrupted: {pending.description}", file=out)
        if pending.action in ("busy", "blocked"):
            raise BadInput("Nothing was changed: deal with the interrupted rotation first.")
        verb = "finish it" if pending.action == "finish" else "roll it back"
        if args.dry_run:
            print(f"Dry run: nothing was changed (a real run would {verb} first).", file=out)
            return 0
        if not agreed(
            args, f"{verb.capitalize()} now?", f"Nothing was changed: pass --yes to {verb}.", out
        ):
            return EXIT_NOT_APPLIED
        print(f"Going to {verb} …", file=out, flush=True)
        outcome = finish_or_roll_back(
            pending, options, on_event=lambda event: print_event(event, out)
        )
        print(outcome.render_text(details=not outcome.ok), file=out)
        if not outcome.ok:
            return outcome.exit_code
        if outcome.action == "finish":
            # The interrupted run was the rotation asked for: the key is new.
            return 0
        print("\nNow rotating afresh.", file=out)
    return None
