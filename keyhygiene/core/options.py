"""The connection options of a run, and which profile and key botocore will use.

Plain data, importable without boto3: the command line and the TUI can start
(and draw their first frame) before boto3 is imported.

"This computer's key" is decided here, once, the way botocore decides it
(`botocore.configprovider` and `botocore.credentials.create_credential_resolver`):

- the profile is `--profile`, else `AWS_DEFAULT_PROFILE`, else `AWS_PROFILE`,
  else `default` (botocore reads AWS_DEFAULT_PROFILE first);
- keys in `AWS_ACCESS_KEY_ID` win over any profile's unless the profile was
  given explicitly (an explicit profile removes botocore's environment
  provider; a profile named by AWS_PROFILE does not).

A test builds botocore sessions in every combination of the four inputs and
holds this module to botocore's answer.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

# botocore.configprovider's order for the `profile` variable.
PROFILE_VARIABLES = ("AWS_DEFAULT_PROFILE", "AWS_PROFILE")
ACCESS_KEY_VARIABLE = "AWS_ACCESS_KEY_ID"
SECRET_KEY_VARIABLE = "AWS_SECRET_ACCESS_KEY"


@dataclass(frozen=True)
class KeyInUse:
    """The profile and key botocore (and so the `aws` CLI) uses on this computer."""

    profile: str
    # Where the profile name came from: "--profile", an environment variable, or "default".
    profile_source: str
    # The access key id in AWS_ACCESS_KEY_ID when botocore signs with it
    # (no --profile given); None when the profile's own key is used.
    environment_key_id: str | None = None

    @property
    def from_environment(self) -> bool:
        return self.environment_key_id is not None

    def rotation_refusal(self) -> str | None:
        """Why keyhygiene cannot rotate the key in use, or None when it can.

        Rotation writes the new key where the old one was read from; a key in
        the shell's environment cannot be written back (a process cannot
        change its parent shell's environment), so rotating the profile's key
        instead would leave this shell signing with a key that is then deleted."""
        if self.environment_key_id is None:
            return None
        return (
            f"This shell signs with the key in {ACCESS_KEY_VARIABLE} "
            f"(…{self.environment_key_id[-4:]}), not with profile {self.profile!r}'s key: "
            "botocore and the aws CLI prefer environment keys to any profile they are not "
            "told to use. keyhygiene cannot write a new key back into the environment."
        )

    def rotation_hint(self) -> str:
        return (
            f"Unset {ACCESS_KEY_VARIABLE} and {SECRET_KEY_VARIABLE} (and AWS_SESSION_TOKEN) "
            "and keep this computer's key in its profile, or pass --profile NAME to rotate "
            "that profile's key."
        )


def key_in_use(profile_flag: str | None, env: Mapping[str, str] | None = None) -> KeyInUse:
    """botocore's choice of profile and key for `profile_flag` in `env`."""
    environ = os.environ if env is None else env
    if profile_flag:
        return KeyInUse(profile_flag, "--profile")
    profile, source = "default", "default"
    for variable in PROFILE_VARIABLES:
        if environ.get(variable):
            profile, source = environ[variable], variable
            break
    return KeyInUse(profile, source, environ.get(ACCESS_KEY_VARIABLE) or None)


@dataclass(frozen=True)
class ConnectionOptions:
    profile: str | None = None
    admin_profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    # An Organizations member account: the admin identity is this role,
    # assumed with the admin profile (keyhygiene.core.accounts).
    role_arn: str | None = None
    # False when no profile of this computer is meant for this account (a
    # configured account without `profile`): its user is then not looked for.
    computer_key: bool = True

    @property
    def profile_name(self) -> str:
        """The profile botocore reads: the flag, else AWS_DEFAULT_PROFILE, else
        AWS_PROFILE, else `default`."""
        return key_in_use(self.profile).profile

    def key_in_use(self, env: Mapping[str, str] | None = None) -> KeyInUse:
        return key_in_use(self.profile, env)

    def for_admin(self) -> ConnectionOptions:
        """Options whose `profile` is the admin identity (with its role, if any)."""
        return replace(self, profile=self.admin_profile or self.profile)

    def for_computer(self) -> ConnectionOptions:
        """Options of this computer's own key: never through the admin's role."""
        return replace(self, role_arn=None)
