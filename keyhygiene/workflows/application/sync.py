"""Bring an existing application's whitelists in line with its group."""

from __future__ import annotations

from keyhygiene.core.errors import BadInput
from keyhygiene.core.model import (
    TAG_GROUPS,
    KmsKey,
    Snapshot,
)
from keyhygiene.plans import (
    Plan,
)
from keyhygiene.steps.whitelists import (
    check_whole_account,
    id_safe,
    whitelist_steps,
)
from keyhygiene.workflows.application.buckets import _encryption_steps, _public_access_steps
from keyhygiene.workflows.application.kms_key import _existing_key
from keyhygiene.workflows.application.validation import validate_application_name


def plan_sync_application(snapshot: Snapshot, name: str, actor_arn: str | None = None) -> Plan:
    """The plan that brings application NAME back in line. Pure; `BadInput` on a bad request.

    Every bucket and key policy tagged for NAME gets a whitelist equal to the
    group's members plus the roles tagged for it (keyhygiene/steps/whitelists.py does
    that for every workflow); the application's buckets get their public
    access fully blocked and SSE-KMS with the application's key by default.
    """
    check_whole_account(snapshot)
    name = validate_application_name(name)
    group = snapshot.group(name)
    name = group.name if group else name
    app = next((a for a in snapshot.applications() if a.name.lower() == name.lower()), None)
    if group is None and app is None:
        raise BadInput(
            f"There is no application {name}: no group of that name and nothing tagged "
            f"{TAG_GROUPS}={name}.",
            hint=f"Create it with `keyhygiene app create {name}`.",
        )
    actor = actor_arn or snapshot.caller_arn
    warnings: list[str] = []
    if group is None:
        warnings.append(
            f"Group {name} does not exist: the whitelists keep only the roles tagged for it."
        )
    members = {name: set(group.members if group else ())}
    steps = list(whitelist_steps(snapshot, members, actor))
    key = _application_key(snapshot, name, warnings)
    for bucket in snapshot.buckets_for_group(name):
        prefix = f"bucket-{id_safe(bucket.name)}"
        steps.extend(_public_access_steps(prefix, bucket.name, bucket))
        if key is not None:
            steps.extend(
                _encryption_steps(prefix, bucket.name, bucket, key, key.arn, key.label, warnings)
            )
    return Plan(
        kind="app_sync",
        title=f"Sync application {name}",
        steps=tuple(steps),
        warnings=tuple(warnings),
        subject=f"sync {name.lower()}",
    )


def _application_key(snapshot: Snapshot, name: str, warnings: list[str]) -> KmsKey | None:
    """alias/NAME, else the one key tagged for NAME; None (with a warning) when unclear."""
    key = _existing_key(snapshot, name)
    if key is not None:
        return key
    tagged = snapshot.kms_keys_for_group(name)
    if len(tagged) == 1:
        return tagged[0]
    if snapshot.buckets_for_group(name):
        found = ", ".join(k.label for k in tagged) if tagged else "none"
        warnings.append(
            f"Application {name} has no single KMS key (alias/{name}; tagged: {found}): "
            "its buckets' default encryption is left as it is."
        )
    return None
