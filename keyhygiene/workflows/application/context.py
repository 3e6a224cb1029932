"""What every part of an application plan reads: the snapshot, the names, the members."""

from __future__ import annotations

from dataclasses import dataclass

from keyhygiene.core.model import (
    Snapshot,
)


@dataclass(frozen=True)
class _Context:
    """What every part of the create plan needs to know."""

    snapshot: Snapshot
    name: str  # the group's exact spelling
    actor: str
    region: str
    partition: str
    role_arn: str
    members_after: frozenset[str]  # user names in group NAME once the plan ran
    new_role: bool  # the plan creates the role that the policies name

    @property
    def waiting_for(self) -> list[str]:
        """The principals a policy step must wait for: the role, when this plan creates it."""
        return [self.role_arn] if self.new_role else []
