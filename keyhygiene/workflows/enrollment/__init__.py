"""Register this computer: the whole "adding a computer" checklist as one plan.

The practice's checklist is: create a user, add it to a group, add it to the
bucket policies, add it to the encryption keys. Done by hand it goes wrong,
because groups cannot be principals in bucket or key policies. Here it is one
reviewed plan, run on the new computer with an admin identity:

1. the group `keyhygiene-devices` and the managed policy
   `keyhygiene-rotate-own-key` (so that every computer can rotate its own key
   and nothing else), created and attached when missing;
2. the user `<person>-<device>` with its keyhygiene tags;
3. its memberships: `keyhygiene-devices` and the chosen groups;
4. its single access key, written straight into this computer's credentials
   file (the secret never leaves memory otherwise), the region in the config
   file, and a check that AWS answers to the new key;
5. the bucket and KMS key policies of every chosen group, whitelisting it
   (last, so that IAM had time to learn the new user; S3 and KMS still refuse
   a principal they do not know yet for some seconds, so those steps retry
   while they answer MalformedPolicy, see keyhygiene/aws/propagation.py).

`plan_enrollment` is pure: it reads a snapshot and a request and returns a
plan. The local actions registered below do the file edits and the check.

Rolling back must leave nothing, even after a crash in the middle of
CreateAccessKey (a key may exist whose id was never journaled): the user is
new, so every key and membership it has came from this plan, and the undo
steps delete whatever they find rather than only what was journaled.

The parts: `model`, `request` (what the user asks, resolved and checked),
`plan`, `actions` (apply time) and `around` (local files, journals, the admin
connection). This module re-exports what the front ends call.
"""

from __future__ import annotations

# The plans name their apply-time actions; importing `actions` registers them.
from keyhygiene.workflows.enrollment import actions as actions
from keyhygiene.workflows.enrollment.around import (
    admin_connection,
    check_config_file,
    open_enrollments,
    profiles_in_use,
    with_local_files,
)
from keyhygiene.workflows.enrollment.model import (
    DEFAULT_DEVICE,
    PLAN_KIND,
    ROTATE_OWN_KEY_ACTIONS,
    ROTATE_OWN_KEY_POLICY,
)
from keyhygiene.workflows.enrollment.plan import (
    plan_enrollment,
    registered_sentence,
    rotate_own_key_document,
)
from keyhygiene.workflows.enrollment.request import (
    MFA_CHOICES,
    STORES,
    Enrollment,
    EnrollmentRequest,
    device_slug,
    proposed_device,
    resolve,
    user_name_for,
)

__all__ = [
    "DEFAULT_DEVICE",
    "Enrollment",
    "EnrollmentRequest",
    "MFA_CHOICES",
    "PLAN_KIND",
    "ROTATE_OWN_KEY_ACTIONS",
    "ROTATE_OWN_KEY_POLICY",
    "STORES",
    "admin_connection",
    "check_config_file",
    "device_slug",
    "open_enrollments",
    "plan_enrollment",
    "profiles_in_use",
    "proposed_device",
    "registered_sentence",
    "resolve",
    "rotate_own_key_document",
    "user_name_for",
    "with_local_files",
]
