"""`keyhygiene credential-process --profile NAME`: the key from the OS keyring, for the AWS CLI.

`~/.aws/config` names this command as the profile's `credential_process`
(after `keyhygiene rotate --store keyring`). It prints exactly the JSON the
AWS CLI and SDKs expect, `{"Version": 1, "AccessKeyId": ..., "SecretAccessKey": ...}`,
and nothing else on stdout; problems go to stderr with a non-zero exit.

With `--mfa-session` (a strict computer's profile) it prints an MFA session
instead of the key: cached in the keyring while it has time left, else made
with one code asked on the terminal (see `keyhygiene.local.mfa_sessions`).

It prints the secret only into a pipe or a socket, which is what the AWS CLI
and the SDKs give it (botocore runs it with `stdout=PIPE`): never to a
terminal, and never into a file (`... > creds.json` would copy the key into
a plain file, the very thing the keyring is there to avoid).
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
from typing import Any, TextIO

from keyhygiene.core.errors import BadInput


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "credential-process",
        help="hand the profile's key from the OS keyring to the AWS CLI (credential_process)",
        description=(
            "Print the profile's access key from the OS keyring as the JSON that the AWS CLI "
            "and SDKs read from a credential_process. Not for people: it prints only into a "
            "pipe (as the AWS CLI runs it), never to a terminal or into a file."
        ),
        parents=parents,
    )
    parser.add_argument(
        "--mfa-session",
        action="store_true",
        help="print an MFA session made with the key (GetSessionToken with the profile's "
        "mfa_serial and a code asked on the terminal), cached in the keyring until it ends",
    )
    parser.add_argument(
        "--keyring",
        metavar="CHOICE",
        default=None,
        help="the keyring to read, as KEYHYGIENE_KEYRING says it (written by rotate and enroll "
        "for an encrypted keyring, whose file the AWS CLI's environment does not name)",
    )
    parser.add_argument(
        "--duration",
        default="12h",
        metavar="TIME",
        help="how long a new MFA session lasts, 15m to 36h (default: 12h)",
    )
    parser.set_defaults(handler=_credential_process)


def _credential_process(args: argparse.Namespace) -> int:
    from keyhygiene.cli.options import connection_options
    from keyhygiene.local import vault

    profile = connection_options(args).profile_name
    if args.keyring:
        os.environ[vault.ENV_VAR] = args.keyring
    if not is_pipe(sys.stdout):
        raise BadInput(
            "credential-process hands a secret to the AWS CLI through a pipe; it will not "
            "print it to a terminal or into a file. Nothing was printed.",
            hint=f"Use the profile instead: `aws sts get-caller-identity --profile {profile}`.",
        )
    if args.mfa_session:
        return _print_session(args, profile)
    key = vault.load_key(profile)
    if key is None:
        memory = " (KEYHYGIENE_KEYRING=memory keeps keys inside one process only)"
        raise BadInput(
            f"No key for profile {profile!r} in the keyring"
            f"{memory if os.environ.get(vault.ENV_VAR) == vault.MEMORY else ''}.",
            hint=f"Rotate it into the keyring: `keyhygiene rotate --profile {profile} --store keyring`.",
        )
    document = {
        "Version": 1,
        "AccessKeyId": key.access_key_id,
        "SecretAccessKey": key.secret.reveal(),
    }
    sys.stdout.write(json.dumps(document) + "\n")
    sys.stdout.flush()
    return 0


def _print_session(args: argparse.Namespace, profile: str) -> int:
    from keyhygiene.cli.options import connection_options
    from keyhygiene.local import credentials_file, mfa_sessions

    def session_for_key(*args: Any, **kwargs: Any) -> Any:
        # boto3 is loaded only when a new session is made: a cached one is
        # served without it (the AWS CLI runs this for every call).
        from keyhygiene.aws.connection import session_for_key as make

        return make(*args, **kwargs)

    options = connection_options(args)
    session = mfa_sessions.serve_session(
        mfa_sessions.SessionRequest(
            profile=profile,
            config_file=str(credentials_file.config_path()),
            region=options.region,
            endpoint_url=options.endpoint_url,
            duration_seconds=mfa_sessions.parse_duration(args.duration),
        ),
        ask_code=mfa_sessions.terminal_code_asker,
        make_session=session_for_key,
    )
    sys.stdout.write(
        json.dumps(
            {
                "Version": 1,
                "AccessKeyId": session.access_key_id,
                "SecretAccessKey": session.secret.reveal(),
                "SessionToken": session.token.reveal(),
                "Expiration": session.expiration.isoformat(),
            }
        )
        + "\n"
    )
    sys.stdout.flush()
    return 0


def is_pipe(stream: TextIO) -> bool:
    """True when `stream` is a pipe or a socket (what botocore's subprocess gives)."""
    try:
        mode = os.fstat(stream.fileno()).st_mode
    except (AttributeError, OSError, ValueError):
        return False  # no file descriptor (a StringIO): not a pipe
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)
