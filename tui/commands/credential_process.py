"""`keyhygiene credential-process --profile NAME`: the key from the OS keyring, for the AWS CLI.

`~/.aws/config` names this command as the profile's `credential_process`
(after `keyhygiene rotate --store keyring`). It prints exactly the JSON the
AWS CLI and SDKs expect, `{"Version": 1, "AccessKeyId": ..., "SecretAccessKey": ...}`,
and nothing else on stdout; problems go to stderr with a non-zero exit.
It refuses to print the secret to a terminal: it is meant for a pipe.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from tui.errors import BadInput


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "credential-process",
        help="hand the profile's key from the OS keyring to the AWS CLI (credential_process)",
        description=(
            "Print the profile's access key from the OS keyring as the JSON that the AWS CLI "
            "and SDKs read from a credential_process. Not for people: it will not print to a "
            "terminal."
        ),
        parents=parents,
    )
    parser.set_defaults(handler=_credential_process)


def _credential_process(args: argparse.Namespace) -> int:
    from tui import vault
    from tui.cli import connection_options

    profile = connection_options(args).profile_name
    if sys.stdout.isatty():
        raise BadInput(
            "credential-process prints a secret for the AWS CLI; it will not print it to a terminal.",
            hint=f"Use the profile instead: `aws sts get-caller-identity --profile {profile}`.",
        )
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
