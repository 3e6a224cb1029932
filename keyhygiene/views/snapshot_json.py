"""The snapshot as plain JSON for scripts (`keyhygiene inventory --json`).

The model holds no secret by construction (key ids and metadata only), so
this is a faithful dump.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from keyhygiene.core.accounts import AccountView, match_computers
from keyhygiene.core.model import Snapshot


def to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    return value


def snapshot_dict(snapshot: Snapshot) -> dict[str, Any]:
    data = to_jsonable(snapshot)
    data["applications"] = [
        {
            "name": app.name,
            "group": app.group.name if app.group else None,
            "roles": [r.name for r in app.roles],
            "kms_keys": [k.label for k in app.kms_keys],
            "buckets": [b.name for b in app.buckets],
        }
        for app in snapshot.applications()
    ]
    return data


def snapshot_json(snapshot: Snapshot) -> str:
    return json.dumps(snapshot_dict(snapshot), indent=2, sort_keys=False)


def accounts_dict(views: Sequence[AccountView]) -> dict[str, Any]:
    """Several accounts for scripts: each account (its snapshot or its error)
    and the computers matched across them."""
    return {
        "accounts": [
            {
                "name": view.spec.name,
                "account_id": view.account_id,
                "source": view.spec.source,
                "error": view.error,
                "snapshot": snapshot_dict(view.snapshot) if view.snapshot else None,
            }
            for view in views
        ],
        "computers": [
            {
                "person": computer.person,
                "device": computer.device,
                "hostname": computer.hostname,
                "users": [
                    {"account": p.account, "account_id": p.account_id, "user": p.user.name}
                    for p in computer.presences
                ],
            }
            for computer in match_computers(views)
        ],
    }
