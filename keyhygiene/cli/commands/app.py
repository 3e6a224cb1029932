"""`keyhygiene app create|sync`: an application's group, role, key and buckets, headless.

Exit codes, as for every changing command: 0 done (or nothing to do, or a dry
run), 2 bad input and nothing changed, 3 AWS failed a step (the report says
what was done and what was undone).
"""

from __future__ import annotations

import argparse
from typing import Any

from keyhygiene.cli.options import add_apply_options


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "app",
        help="add an application (group, EC2 role, KMS key, buckets) or repair its whitelists",
        description="An application is one group of computers, one role for its EC2 "
        "instances, one KMS key and its buckets, whitelisted and encrypted.",
        parents=parents,
    )
    actions = parser.add_subparsers(dest="app_command", metavar="ACTION", required=True)

    create = actions.add_parser(
        "create",
        help="create (or adopt) group NAME, role NAME, key alias/NAME and the buckets",
        description="Create what is missing of application NAME and adopt what exists: "
        "group NAME with its first members, role NAME trusted by EC2 with an instance "
        "profile, KMS key alias/NAME, and buckets encrypted by default with that key, "
        "public access blocked, whose policies whitelist the group's members and the role. "
        "Existing bucket and key policies keep their other statements.",
        parents=parents,
    )
    create.add_argument("name", metavar="NAME", help="the application's name (its group's name)")
    create.add_argument(
        "--bucket",
        action="append",
        default=[],
        metavar="B",
        help="a bucket of the application, new or existing (repeat for several)",
    )
    create.add_argument(
        "--member",
        action="append",
        default=[],
        metavar="USER",
        help="an IAM user (person-device) to put in the group (repeat for several)",
    )
    add_apply_options(create)
    create.set_defaults(handler=_create)

    sync = actions.add_parser(
        "sync",
        help="recompute the whitelists of application NAME and repair drift",
        description="Make every bucket and key policy tagged for NAME whitelist exactly "
        "the group's members and the roles tagged for it, as a plan.",
        parents=parents,
    )
    sync.add_argument("name", metavar="NAME", help="the application's name (its group's name)")
    add_apply_options(sync)
    sync.set_defaults(handler=_sync)


def _create(args: argparse.Namespace) -> int:
    from keyhygiene.aws.inventory import load_account
    from keyhygiene.cli.options import connection_options
    from keyhygiene.cli.reviewed_apply import run_plan
    from keyhygiene.workflows.application import (
        plan_create_application,
        preflight_application,
        validate_application_name,
    )

    # Refuse a bad name before any call: nothing to load, nothing changed.
    name = validate_application_name(args.name)
    snapshot, admin = load_account(connection_options(args))
    preflight = preflight_application(admin, snapshot, name, args.bucket)
    plan = plan_create_application(
        snapshot, name, args.bucket, args.member, preflight=preflight, region=admin.region
    )
    code, _ = run_plan(plan, admin, args)
    return code


def _sync(args: argparse.Namespace) -> int:
    from keyhygiene.aws.inventory import load_account
    from keyhygiene.cli.options import connection_options
    from keyhygiene.cli.reviewed_apply import run_plan
    from keyhygiene.workflows.application import plan_sync_application, validate_application_name

    name = validate_application_name(args.name)
    snapshot, admin = load_account(connection_options(args))
    plan = plan_sync_application(snapshot, name, snapshot.caller_arn)
    code, _ = run_plan(plan, admin, args)
    return code
