"""The snapshot as text for `keyhygiene inventory` (the same outline as the tree)."""

from __future__ import annotations

from datetime import datetime, timezone

from keyhygiene.core.model import Snapshot
from keyhygiene.views.outline import age_text, build_outline, outline_text


def snapshot_text(snapshot: Snapshot, now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    lines = outline_text(build_outline(snapshot, now))
    if snapshot.credential_report_generated:
        lines.append(
            f"(key status and last use from the credential report made "
            f"{age_text(snapshot.credential_report_generated, now)} ago)"
        )
    return "\n".join(lines)
