"""Applications: one group, one EC2 role, one KMS key and its buckets, as plans.

An application is named by its group. `plan_create_application` creates what
is missing and adopts what exists: group NAME with its first members, role
NAME trusted by EC2 with instance profile NAME, a KMS key named `alias/NAME`,
and buckets with default SSE-KMS under that key, public access fully blocked
and keyhygiene's whitelist statements. The role, the key and the buckets are
tagged `keyhygiene:groups=NAME`, which is how keyhygiene finds them again.
`plan_sync_application` recomputes the application's whitelists and repairs
drift.

Both are pure: they read a snapshot and return a plan. What the snapshot
cannot know (is a bucket name free? does an instance profile NAME exist?)
is read beforehand by `preflight_application`, with a few read-only calls.

Every computed policy passes `ensure_within_limit` and `check_lockout`
before it goes into a plan, so an invalid request fails with a clear
`BadInput` and nothing changed. The whitelist rules (who is listed, which
admins stay excepted, what earlier runs chose) are keyhygiene/steps/whitelists.py's,
shared with every other workflow; so is the apply-time check that a bucket
or key policy adopted from the snapshot did not change before it is
rewritten (`policy.put_if_unchanged`).

The parts: `model`, `validation`, `preflight`, `context` (what every part of a
plan reads), `plan`, then the steps of each resource (`role`, `tags`,
`kms_key`, `buckets`, `helpers`), `actions` (apply time) and `sync`. This
module re-exports what the front ends and the audit call.
"""

from __future__ import annotations

# The plans name their apply-time actions; importing `actions` registers them.
from keyhygiene.workflows.application import actions as actions
from keyhygiene.workflows.application.actions import (
    PUT_POLICY_WITH_NEW_KEY,
    RETRY_UNTIL_VISIBLE,
)
from keyhygiene.workflows.application.buckets import encrypts_with
from keyhygiene.workflows.application.model import (
    CREATE_KEY,
    EC2_SERVICE,
    FIND_ALIAS,
    FIND_UNNAMED_KEY,
    KEY_DELETION_DAYS,
    PUBLIC_ACCESS_BLOCK_ALL,
    SID_TRUST_EC2,
    new_key_marker,
)
from keyhygiene.workflows.application.plan import plan_create_application
from keyhygiene.workflows.application.preflight import Preflight, preflight_application
from keyhygiene.workflows.application.role import trusts_ec2
from keyhygiene.workflows.application.sync import plan_sync_application
from keyhygiene.workflows.application.validation import (
    validate_application_name,
    validate_new_bucket_name,
)

__all__ = [
    "CREATE_KEY",
    "EC2_SERVICE",
    "FIND_ALIAS",
    "FIND_UNNAMED_KEY",
    "KEY_DELETION_DAYS",
    "PUBLIC_ACCESS_BLOCK_ALL",
    "PUT_POLICY_WITH_NEW_KEY",
    "Preflight",
    "RETRY_UNTIL_VISIBLE",
    "SID_TRUST_EC2",
    "encrypts_with",
    "new_key_marker",
    "plan_create_application",
    "plan_sync_application",
    "preflight_application",
    "trusts_ec2",
    "validate_application_name",
    "validate_new_bucket_name",
]
