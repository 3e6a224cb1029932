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
    from keyhygiene.cli.output import check_query, print_json, wants_json
    from keyhygiene.views.snapshot_json import snapshot_dict
    from keyhygiene.views.snapshot_text import snapshot_text

    check_query(args)
    from keyhygiene.cli.accounts import account_specs

    specs = account_specs(args)
    if len(specs) > 1:
        return _several(args, specs)
    snapshot, _ = load_account(specs[0].options)
    if wants_json(args):
        print_json(snapshot_dict(snapshot), args)
    else:
        print(snapshot_text(snapshot))
    for problem in snapshot.problems:
        print(f"warning: could not read {problem.what}: {problem.message}", file=sys.stderr)
    return 0


def _several(args: argparse.Namespace, specs: list[Any]) -> int:
    """Every account, loaded in parallel; exit 2 when one could not be loaded."""
    from keyhygiene.aws.accounts import load_accounts
    from keyhygiene.cli.output import print_json, wants_json
    from keyhygiene.views.accounts_outline import accounts_text
    from keyhygiene.views.snapshot_json import accounts_dict

    views = [loaded.view for loaded in load_accounts(specs)]
    if wants_json(args):
        print_json(accounts_dict(views), args)
    else:
        print(accounts_text(views))
    failed = 0
    for view in views:
        if view.error:
            failed += 1
            print(f"error: account {view.spec.name}: {view.error}", file=sys.stderr)
        for problem in view.snapshot.problems if view.snapshot else ():
            print(
                f"warning: {view.spec.name}: could not read {problem.what}: {problem.message}",
                file=sys.stderr,
            )
    return 2 if failed else 0
