# PYTHON_ARGCOMPLETE_OK
"""The command line: `keyhygiene [global options] [command] [options]`.

With no command it opens the TUI. Every command runs the same core workflows
as the TUI. Global options are accepted before or after the command, like the
`aws` CLI's (`keyhygiene audit --profile x`). This module imports no Textual
until the TUI is actually opened.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from keyhygiene import __version__
from keyhygiene.cli.commands import (
    app,
    audit,
    credential_process,
    demo,
    enroll,
    explain,
    grant,
    group,
    inventory,
    recover,
    revoke,
    rotate,
    schedule,
    sweep,
)
from keyhygiene.cli.options import connection_options, global_options, terminal_mfa_code_provider
from keyhygiene.core.errors import KeyHygieneError

# Each command module defines `add_parser(subparsers, parents)`; the parser it
# adds sets `handler=function(args) -> int`. Listed in the order `--help` shows.
COMMANDS = (
    inventory,
    audit,
    enroll,
    rotate,
    group,
    grant,
    sweep,
    app,
    revoke,
    explain,
    demo,
    credential_process,
    schedule,
    recover,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keyhygiene",
        description=(
            "Keep an AWS account's keys clean: one IAM user and one access key per computer, "
            "groups as whitelists, bucket and key policies that list every computer. "
            "Without a command, opens the terminal UI."
        ),
        parents=[global_options(suppress=False)],
        epilog=(
            "Changing commands print their plan and change nothing without --yes. "
            "Environment: AWS_PROFILE, AWS_ENDPOINT_URL, AWS_SHARED_CREDENTIALS_FILE and "
            "AWS_CONFIG_FILE as for the aws CLI; KEYHYGIENE_STATE_DIR for the journals of "
            "interrupted runs (default: the user state folder); KEYHYGIENE_MFA_CODE for "
            "--mfa-code; KEYHYGIENE_DEBUG=1 as --debug."
        ),
    )
    parser.add_argument("--version", action="version", version=f"keyhygiene {__version__}")
    parser.add_argument(
        "--demo",
        action="store_true",
        help="open the TUI on a built-in demo account (a local moto server; touches no real file)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    parents = [global_options(suppress=True)]
    for command in COMMANDS:
        command.add_parser(subparsers, parents)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    if "_ARGCOMPLETE" in os.environ:
        # Shell completion (`eval "$(register-python-argcomplete keyhygiene)"`):
        # argcomplete answers and exits. Imported only then: no cost otherwise.
        import argcomplete

        argcomplete.autocomplete(parser)
    args = parser.parse_args(argv)
    if getattr(args, "debug", False) or os.environ.get("KEYHYGIENE_DEBUG"):
        _log_debug()
    try:
        if args.command is None:
            return _run_tui(args)
        if args.command == "credential-process":
            # The AWS CLI runs it for every call: serving the keyring's key, or a
            # cached MFA session, needs neither boto3 nor keyhygiene's prompts
            # (it asks for a code on the terminal itself).
            return int(args.handler(args))
        # Imported for commands only: the TUI draws its first frame before boto3 loads.
        from keyhygiene.aws import connection as aws_connection
        from keyhygiene.aws.connection import set_mfa_code_provider
        from keyhygiene.local import credentials_file

        # Waits say so: an edit of ~/.aws/credentials on another keyhygiene's
        # lock, a second MFA code until the next one shows.
        credentials_file.tuning.lock_wait_notice = _say_on_stderr
        aws_connection.mfa_wait_notice = _say_on_stderr
        given = getattr(args, "mfa_code", None) or os.environ.get("KEYHYGIENE_MFA_CODE")
        set_mfa_code_provider(terminal_mfa_code_provider(given))
        return int(args.handler(args))
    except KeyHygieneError as exc:
        print(f"keyhygiene: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("keyhygiene: interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Whoever read our output stopped (`keyhygiene audit | head`): stop quietly,
        # as a command killed by SIGPIPE does, and keep Python from failing again
        # when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except Exception as exc:  # noqa: BLE001 - a person gets a sentence, not a traceback
        # Only the type: an unexpected exception's text could quote values.
        print(
            f"keyhygiene: unexpected error ({type(exc).__name__}). Nothing more was done; "
            "run again with --debug for the traceback and report it.",
            file=sys.stderr,
        )
        if os.environ.get("KEYHYGIENE_DEBUG") or getattr(args, "debug", False):
            raise
        return 3
    finally:
        # main() may be called again in the same process (tests).
        connection = sys.modules.get("keyhygiene.aws.connection")
        if connection is not None:
            connection.set_mfa_code_provider(None)


def _run_tui(args: argparse.Namespace) -> int:
    from keyhygiene.ui.app import make_app

    if args.demo:
        from keyhygiene.demo.server import require_demo_extra

        # Said on the terminal, before Textual takes it.
        require_demo_extra()
    # Textual owns the terminal: a credential-process botocore starts for a
    # strict computer's profile must not ask for a code over the screen.
    os.environ["KEYHYGIENE_CREDENTIAL_PROCESS_NO_PROMPT"] = "1"
    accounts = None
    if not args.demo:
        from keyhygiene.cli.accounts import account_specs

        specs = account_specs(args)
        accounts = specs if len(specs) > 1 else None
        options = specs[0].options
    else:
        options = connection_options(args)
    app = make_app(options, demo=bool(args.demo), accounts=accounts)
    app.run()
    return int(app.return_code or 0)


def _log_debug() -> None:
    """--debug: keyhygiene's and botocore's DEBUG logs on stderr, secrets masked
    (keyhygiene.aws.connection.RedactSecretKeys, on the loggers and the handler)."""
    import logging

    from keyhygiene.aws.connection import RedactSecretKeys

    handler = logging.StreamHandler(sys.stderr)
    # On the handler too: whatever logger a record comes from, it is masked.
    handler.addFilter(RedactSecretKeys())
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    for name in ("keyhygiene", "botocore", "boto3"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)


def _say_on_stderr(text: str) -> None:
    print(f"keyhygiene: {text}", file=sys.stderr, flush=True)


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    # `python -m keyhygiene` (keyhygiene/__main__.py) is how the demo server is started as a child process.
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
