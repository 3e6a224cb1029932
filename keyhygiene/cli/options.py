"""Options every command shares: the connection options, accepted before or
after the command, and the terminal's MFA code provider."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TYPE_CHECKING

from keyhygiene.core.options import ConnectionOptions

if TYPE_CHECKING:
    from keyhygiene.aws.connection import MfaCodeProvider


def global_options(*, suppress: bool) -> argparse.ArgumentParser:
    """The connection options. On subcommands their defaults are suppressed so
    that a value given before the command is not reset after it."""
    default = argparse.SUPPRESS if suppress else None
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--profile",
        action="append",
        default=default,
        help="this computer's AWS profile; it also reads and changes the account when "
        "--admin-profile is not given (default, as botocore: $AWS_DEFAULT_PROFILE, else "
        "$AWS_PROFILE, else 'default'; without --profile, keys in $AWS_ACCESS_KEY_ID win). "
        "Repeat it to see several accounts at once",
    )
    group.add_argument(
        "--admin-profile",
        action="append",
        default=default,
        help="profile used to change other users, groups and policies (default: --profile); "
        "repeat it for several accounts (paired in order with repeated --profile)",
    )
    group.add_argument(
        "--account",
        action="append",
        default=default,
        metavar="NAME",
        help="an account of keyhygiene's config file (its name or id; $KEYHYGIENE_CONFIG, "
        "default ~/.config/keyhygiene/config.toml) or of the organization; repeat for several. "
        "Without it every configured account is shown; a changing command needs one",
    )
    group.add_argument(
        "--organization",
        action="store_true",
        default=default,
        help="every active account of the AWS Organization, read with --admin-profile "
        "(the management or a delegated-administrator profile) through a role in each",
    )
    group.add_argument(
        "--org-role",
        default=default,
        metavar="ROLE",
        help="the role assumed in each member account (default: OrganizationAccountAccessRole)",
    )
    group.add_argument("--region", default=default, help="AWS region (default: the profile's)")
    group.add_argument(
        "--endpoint-url",
        default=default,
        help="AWS endpoint, e.g. a moto server or LocalStack (default: $AWS_ENDPOINT_URL)",
    )
    group.add_argument(
        "--mfa-code",
        default=default,
        metavar="CODE",
        help="the 6 digits of your MFA device, for a profile whose config has mfa_serial "
        "(default: $KEYHYGIENE_MFA_CODE, else asked for on a terminal; the TUI asks in a dialog)",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        default=default,
        help="log keyhygiene's and botocore's steps on stderr (secrets masked) and show the "
        "traceback of an unexpected error (also: KEYHYGIENE_DEBUG=1)",
    )
    return parser


def connection_options(args: argparse.Namespace) -> ConnectionOptions:
    """The options of the one account a command works on (keyhygiene.cli.accounts)."""
    from keyhygiene.cli.accounts import one_account

    return one_account(args).options


def terminal_mfa_code_provider(given: str | None) -> MfaCodeProvider:
    """MFA codes for commands: the one given, else asked on the terminal, else none
    (Connection then says to pass --mfa-code)."""

    def provide(profile: str, serial: str) -> str:
        if given:
            return given
        if not sys.stdin.isatty():
            return ""
        # getpass: the code is not echoed, nor left in the terminal's scrollback.
        return getpass.getpass(f"MFA code for profile {profile}: ")

    return provide


# Exit codes of the changing commands (keyhygiene.cli.reviewed_apply).
EXIT_OK = 0
EXIT_FAILED = 3
# A plan was shown and not applied: no --yes and no terminal to ask on, or the
# person said no. Not 0, so that a cron job that forgot --yes does not pass
# for one that did its work (a --dry-run still exits 0: it was asked for).
EXIT_NOT_APPLIED = 5


def not_applied_code(args: argparse.Namespace) -> int:
    """The exit code of a command that did not apply its plan."""
    return EXIT_OK if getattr(args, "dry_run", False) else EXIT_NOT_APPLIED


def add_apply_options(parser: argparse.ArgumentParser) -> None:
    """The options every changing command shares."""
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--yes", "-y", action="store_true", help="apply the plan without asking")
    mode.add_argument("--dry-run", action="store_true", help="print the plan and change nothing")
    from keyhygiene.cli.output import add_output_options

    add_output_options(parser, what="the plan, with --dry-run,")
