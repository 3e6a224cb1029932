"""`keyhygiene audit`: every departure from the practice, for people and scripts.

Exit codes: 0 when no finding is at or above `--fail-on` (default high), 1
otherwise, 2 on error, including an inventory that could not read part of the
account (the audit would then be silently incomplete).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

EXIT_CLEAN = 0
EXIT_FINDINGS = 1
EXIT_ERROR = 2


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    from keyhygiene.audit.findings import (
        DEFAULT_FAIL_ON,
        DEFAULT_ROTATION_AGE_DAYS,
        DEFAULT_UNUSED_AGE_DAYS,
        FAIL_ON_CHOICES,
    )

    parser = subparsers.add_parser(
        "audit",
        help="list every departure from the practice (keys, users, policies, buckets, this computer)",
        description=(
            "Audit the account and this computer. Reads the account in a handful of calls "
            "(the same inventory as `keyhygiene inventory`) and never changes anything. "
            f"Exit status: {EXIT_CLEAN} when no finding is at or above --fail-on, "
            f"{EXIT_FINDINGS} when one is, {EXIT_ERROR} on error or when part of the account "
            "could not be read."
        ),
        parents=parents,
    )
    from keyhygiene.cli.output import add_format_alias, add_output_options

    add_output_options(parser, what="the findings")
    add_format_alias(parser)
    parser.add_argument(
        "--fail-on",
        choices=FAIL_ON_CHOICES,
        default=DEFAULT_FAIL_ON,
        help=f"exit {EXIT_FINDINGS} when a finding is this severe or worse "
        f"(default: {DEFAULT_FAIL_ON}; never: only errors fail)",
    )
    parser.add_argument(
        "--rotation-age",
        type=_days,
        default=DEFAULT_ROTATION_AGE_DAYS,
        metavar="DAYS",
        help=f"report active keys older than this (default: {DEFAULT_ROTATION_AGE_DAYS})",
    )
    parser.add_argument(
        "--unused-age",
        type=_days,
        default=DEFAULT_UNUSED_AGE_DAYS,
        metavar="DAYS",
        help=f"report active keys unused for this long (default: {DEFAULT_UNUSED_AGE_DAYS})",
    )
    parser.add_argument(
        "--no-local",
        action="store_true",
        help="skip this computer's checks (credentials file, shell start-up files, environment)",
    )
    parser.set_defaults(handler=_audit)


def _days(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of days") from None
    if value < 1:
        raise argparse.ArgumentTypeError("the number of days must be 1 or more")
    return value


def _audit(args: argparse.Namespace) -> int:
    from keyhygiene.audit.findings import AuditSettings, should_fail, sort_findings
    from keyhygiene.audit.local_checks import run_local_audit
    from keyhygiene.audit.runner import run_audit
    from keyhygiene.aws.inventory import load_account
    from keyhygiene.cli.output import check_query, print_json, wants_json
    from keyhygiene.core.errors import KeyHygieneError

    check_query(args)
    try:
        settings = AuditSettings(args.rotation_age, args.unused_age)
        from keyhygiene.cli.accounts import account_specs

        specs = account_specs(args)
        if len(specs) > 1:
            return _audit_accounts(args, specs, settings)
        options = specs[0].options
        snapshot, _ = load_account(options)
        findings = run_audit(snapshot, settings=settings)
        if not args.no_local:
            findings = sort_findings(
                [*findings, *run_local_audit(snapshot, profile=options.profile)]
            )
    except KeyHygieneError as exc:
        # The CLI's own handler maps errors to other codes; scripts are promised 2.
        print(f"keyhygiene: {exc}", file=sys.stderr)
        return EXIT_ERROR

    if wants_json(args):
        print_json([finding.to_json() for finding in findings], args)
    else:
        print(_as_text(findings))
    for problem in snapshot.problems:
        print(f"warning: could not read {problem.what}: {problem.message}", file=sys.stderr)
    if should_fail(findings, args.fail_on):
        return EXIT_FINDINGS
    if snapshot.problems:
        print("keyhygiene: the audit is incomplete (see the warnings above).", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_CLEAN


def _audit_accounts(args: argparse.Namespace, specs: list[Any], settings: Any) -> int:
    """Every account in parallel, its findings marked with its name, and the
    cross-account ones (keyhygiene.audit.across_accounts)."""
    from keyhygiene.audit.across_accounts import run_accounts_audit
    from keyhygiene.audit.findings import should_fail, sort_findings
    from keyhygiene.audit.local_checks import run_local_audit
    from keyhygiene.aws.accounts import load_accounts
    from keyhygiene.cli.output import print_json, wants_json

    loaded = load_accounts(specs)
    views = [item.view for item in loaded]
    findings = run_accounts_audit(views, settings=settings)
    if not args.no_local:
        # This computer's files are checked once, against the account its key is in.
        mine = next(
            (v for v in views if v.snapshot is not None and v.snapshot.this_user),
            next((v for v in views if v.snapshot is not None), None),
        )
        if mine is not None and mine.snapshot is not None:
            findings = sort_findings(
                [*findings, *run_local_audit(mine.snapshot, profile=mine.spec.options.profile)]
            )
    if wants_json(args):
        print_json([finding.to_json() for finding in findings], args)
    else:
        print(_as_text(findings))
    incomplete = False
    for view in views:
        if view.error:
            incomplete = True
            print(f"error: account {view.spec.name} was not audited: {view.error}", file=sys.stderr)
        for problem in view.snapshot.problems if view.snapshot else ():
            incomplete = True
            print(
                f"warning: {view.spec.name}: could not read {problem.what}: {problem.message}",
                file=sys.stderr,
            )
    if should_fail(findings, args.fail_on):
        return EXIT_FINDINGS
    if incomplete:
        print("keyhygiene: the audit is incomplete (see the warnings above).", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_CLEAN


def _as_text(findings: list[Any]) -> str:
    from keyhygiene.audit.findings import summary_line

    lines: list[str] = []
    for finding in findings:
        lines.append(f"{finding.severity.upper():<9}{finding.title}  [{finding.id}]")
        where = f"account {finding.account}, " if finding.account else ""
        lines.append(f"         {where}{finding.resource_kind}: {finding.resource}")
        lines.append(f"         {finding.detail}")
        if finding.fix:
            lines.append(f"         fix: {finding.fix}")
        lines.append("")
    lines.append(summary_line(findings))
    return "\n".join(lines)
