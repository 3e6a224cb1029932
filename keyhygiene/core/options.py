"""The connection options of a run: plain data, importable without boto3.

Kept apart from `keyhygiene.aws.connection` so that the command line and the TUI can
start (and draw their first frame) before boto3 is imported.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class ConnectionOptions:
    profile: str | None = None
    admin_profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None

    @property
    def profile_name(self) -> str:
        """The profile name people see: the flag, else AWS_PROFILE, else `default`."""
        return self.profile or os.environ.get("AWS_PROFILE") or "default"

    def for_admin(self) -> ConnectionOptions:
        """Options whose `profile` is the admin identity."""
        return replace(self, profile=self.admin_profile or self.profile)
