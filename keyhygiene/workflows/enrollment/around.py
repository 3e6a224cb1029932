"""Around the plan: the local files it reads, the journals it leaves, the admin
connection it runs on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from keyhygiene.aws.connection import (
    Connection,
    ConnectionOptions,
    MfaCodeProvider,
)
from keyhygiene.local import credentials_file, vault
from keyhygiene.plans.journal import Journal, open_journals
from keyhygiene.workflows.enrollment.model import PLAN_KIND
from keyhygiene.workflows.enrollment.request import EnrollmentRequest


def profiles_in_use(path: str | None = None) -> frozenset[str]:
    """Profiles of the credentials file that hold an access key.

    Also refuses (`CredentialsFileRefused`, a `BadInput`) a file botocore could
    not read, before anything is created in AWS.
    """
    file = path or str(credentials_file.credentials_path())
    return frozenset(
        name
        for name in credentials_file.list_profiles(file)
        if credentials_file.read_profile(file, name).get("aws_access_key_id")
    )


def check_config_file(path: str | None = None) -> None:
    """Refuse a config file botocore could not read, before anything changes."""
    credentials_file.validate(path or credentials_file.config_path())


def with_local_files(request: EnrollmentRequest) -> EnrollmentRequest:
    """`request` with what this computer's AWS files say, read before AWS is
    touched: both files must be readable by botocore and the credentials file
    writable by keyhygiene (not a hard link, a folder it may write), else
    `BadInput` says why and nothing is created."""
    check_config_file(request.config_file)
    path = request.credentials_file or str(credentials_file.credentials_path())
    credentials_file.check_writable(path)
    if request.store == "keyring" or (request.store is None and request.mfa == "strict"):
        # KeyringUnavailable / KeyringNotSafe say why, nothing created.
        vault.check_safe_for_the_only_key(allow_insecure=request.insecure_keyring)
    return replace(
        request,
        profiles_in_use=profiles_in_use(path),
        default_session_keys=tuple(credentials_file.default_session_keys(path)),
    )


def open_enrollments(directory: Path | None = None) -> list[Journal]:
    """Enrollment runs that stopped half-way: to resume or roll back first."""
    return [journal for journal in open_journals(directory) if journal.plan.kind == PLAN_KIND]


def admin_connection(
    options: ConnectionOptions,
    *,
    mfa_code: str | None = None,
    ask_mfa_code: Callable[[str], str] | None = None,
) -> Connection:
    """The admin identity's connection (`options.admin_profile`, else `options.profile`).

    When its config has `mfa_serial`, Connection gets a GetSessionToken session
    on first use; the code comes from `mfa_code`, else `ask_mfa_code(serial)`,
    else the process-wide provider (`set_mfa_code_provider`).
    """
    provider: MfaCodeProvider | None = None
    if mfa_code or ask_mfa_code:

        def provider(_profile: str, serial: str) -> str:
            if mfa_code:
                return mfa_code
            return ask_mfa_code(serial) if ask_mfa_code else ""

    return Connection(options.for_admin(), mfa_code_provider=provider)
