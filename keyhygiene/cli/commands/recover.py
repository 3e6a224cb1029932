"""`keyhygiene recover`: every interrupted run, finished, rolled back or forgotten.

The same list and the same choices as the TUI's recovery screen, from the same
registry (`keyhygiene.workflows.registry`): a run of any workflow cut short by
a crash, a kill or a lost connection can be dealt with headless too. Without a
number it lists the runs; with one it does what is asked, if that is safe for
the run's kind (a revoke is never replayed nor undone, a sweep never undone,
an expired loan never finished). An interrupted rotation is finished or rolled
back as the key the profile holds decides.

Exit codes: 0 done or nothing to do, 2 bad input (no such run, a choice that
is not safe for it), 3 the recovery failed (the report says what was done).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from keyhygiene.core.errors import BadInput

CHOICES = ("finish", "roll-back", "forget")


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "recover",
        help="list interrupted runs of any command; finish, roll back or forget one",
        description=(
            "Without NUMBER: list every interrupted run (rotations, enrollments, loans, "
            "sweeps, revokes, applications) with what is safe to do about it. With NUMBER and "
            "a choice: do it. Only safe choices are accepted: a revoke is run again instead of "
            "being replayed or undone, a sweep is finished by a new sweep and never undone, "
            "an expired loan is not finished. Exit codes: 0 done or nothing to do, 2 bad "
            "input, 3 the recovery failed."
        ),
        parents=parents,
    )
    parser.add_argument("number", nargs="?", type=int, metavar="NUMBER", help="a run, as listed")
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument(
        "--finish", dest="choice", action="store_const", const="finish", help="finish the run"
    )
    choice.add_argument(
        "--roll-back",
        dest="choice",
        action="store_const",
        const="roll-back",
        help="undo what the run did",
    )
    choice.add_argument(
        "--forget",
        dest="choice",
        action="store_const",
        const="forget",
        help="stop offering it (you deal with it by hand)",
    )
    parser.add_argument("--yes", "-y", action="store_true", help="do it without asking")
    parser.set_defaults(handler=_recover)


def _recover(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from keyhygiene.workflows.registry import everything_interrupted

    out = out or sys.stdout
    interrupted = everything_interrupted()
    entries: list[Any] = [*interrupted.rotations, *interrupted.runs]
    if args.number is None:
        if args.choice:
            raise BadInput(f"Say which run to {args.choice}: `keyhygiene recover` lists them.")
        _list(entries, out)
        return 0
    if not 1 <= args.number <= len(entries):
        raise BadInput(
            f"There is no interrupted run {args.number}"
            + (f" (there are {len(entries)})." if entries else ": there is none."),
            hint="Run `keyhygiene recover` to list them.",
        )
    entry = entries[args.number - 1]
    if not args.choice:
        _describe(args.number, entry, out)
        print(f"\nChoose: keyhygiene recover {args.number} --{_choices(entry)[0]}", file=out)
        return 0
    if args.choice not in _choices(entry):
        safe = ", ".join(f"--{choice}" for choice in _choices(entry))
        raise BadInput(
            f"Run {args.number} cannot be handled with --{args.choice}.",
            hint=f"Safe for it: {safe}. {_advice(entry)}",
        )
    if not _confirmed(args, entry, out):
        from keyhygiene.cli.options import EXIT_NOT_APPLIED

        return EXIT_NOT_APPLIED
    return _do(args, entry, out)


def _list(entries: list[Any], out: TextIO) -> None:
    if not entries:
        print("No interrupted run: nothing to recover.", file=out)
        return
    for number, entry in enumerate(entries, start=1):
        _describe(number, entry, out)
        print(file=out)
    print("Choose one: keyhygiene recover NUMBER --finish | --roll-back | --forget", file=out)


def _describe(number: int, entry: Any, out: TextIO) -> None:
    from keyhygiene.workflows.rotation import PendingRotation

    if isinstance(entry, PendingRotation):
        print(f"{number}. rotation of profile {entry.profile}: {entry.description}", file=out)
    else:
        print(f"{number}. {entry.kind}: {entry.summary}", file=out)
    print(f"   {_advice(entry)}", file=out)
    choices = _choices(entry)
    print(
        "   choices: " + (", ".join(f"--{c}" for c in choices) if choices else "none now"),
        file=out,
    )


def _choices(entry: Any) -> tuple[str, ...]:
    from keyhygiene.workflows.rotation import PendingRotation

    if isinstance(entry, PendingRotation):
        # The key the profile holds decides; a busy or blocked one waits.
        if entry.action == "finish":
            return ("finish",)
        if entry.action == "roll_back":
            return ("roll-back",)
        return ()
    choices = []
    if entry.can_finish:
        choices.append("finish")
    if entry.can_roll_back:
        choices.append("roll-back")
    choices.append("forget")
    return tuple(choices)


def _advice(entry: Any) -> str:
    from keyhygiene.workflows.rotation import PendingRotation

    if isinstance(entry, PendingRotation):
        if entry.action == "finish":
            return "The profile holds the new key: finishing deletes the old one."
        if entry.action == "roll_back":
            return "The new key never reached the profile: rolling back deletes it."
        return "Nothing can be done about it now."
    return str(entry.advice)


def _confirmed(args: argparse.Namespace, entry: Any, out: TextIO) -> bool:
    from keyhygiene.cli.reviewed_apply import agreed

    verb = {"finish": "Finish", "roll-back": "Roll back", "forget": "Forget"}[args.choice]
    return agreed(
        args,
        f"{verb} run {args.number}?",
        f"Nothing was changed: pass --yes to {args.choice} run {args.number}.",
        out,
    )


def _do(args: argparse.Namespace, entry: Any, out: TextIO) -> int:
    from keyhygiene.aws.connection import connect_pair
    from keyhygiene.cli.options import connection_options
    from keyhygiene.cli.reviewed_apply import print_event
    from keyhygiene.workflows import registry
    from keyhygiene.workflows.rotation import PendingRotation, finish_or_roll_back

    options = connection_options(args)
    if isinstance(entry, PendingRotation):
        outcome = finish_or_roll_back(
            entry, options, on_event=lambda event: print_event(event, out)
        )
        print(outcome.render_text(details=not outcome.ok), file=out)
        return int(outcome.exit_code)
    if args.choice == "forget":
        registry.abandon(entry)
        print(f"Run {args.number} is forgotten: keyhygiene will not offer it again.", file=out)
        return 0
    # The run changed the account with the admin identity; so does its recovery.
    _, admin = connect_pair(options)
    if args.choice == "finish":
        result = registry.finish(entry, admin)
    else:
        result = registry.roll_back(entry, admin)
    print(result.text, file=out)
    return 0 if result.ok else 3
