"""`keyhygiene inventory`: the account snapshot, as text or JSON."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "inventory",
        help="print the account: users, keys, groups, roles, buckets, KMS keys",
        description="Load the account (in a handful of calls) and print it. Never prints a secret.",
        parents=parents,
    )
    from keyhygiene.cli.output import add_output_options

    add_output_options(parser, what="the account")
    parser.set_defaults(handler=_inventory)


def _inventory(args: argparse.Namespace) -> int:
    from keyhygiene.aws.inventory import load_account
    from keyhygiene.cli.options import connection_options
    from keyhygiene.cli.output import check_query, print_json, wants_json
    from keyhygiene.views.snapshot_json import snapshot_dict
    from keyhygiene.views.snapshot_text import snapshot_text

    check_query(args)
    snapshot, _ = load_account(connection_options(args))
    if wants_json(args):
        print_json(snapshot_dict(snapshot), args)
    else:
        print(snapshot_text(snapshot))
    for problem in snapshot.problems:
        print(f"warning: could not read {problem.what}: {problem.message}", file=sys.stderr)
    return 0
