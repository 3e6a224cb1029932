"""Emergency revoke: cut one lost or stolen computer out of the account, containment first.

One IAM user per computer exists so that a stolen laptop or phone can be
revoked alone. `plan_revoke` turns a snapshot into a plan that first stops the
damage and then undoes the enrolment checklist:

1. deactivate every access key of the user, all at once (one step, parallel calls);
2. attach the inline policy `keyhygiene-revoked`, an unconditional Deny of
   everything: AWS evaluates it on every request, so it also kills temporary
   sessions made from the keys before they were deactivated. When the user's
   inline policies leave no room for it (IAM allows 2,048 characters for all
   of a user's inline policies), the AWS managed policy `AWSDenyAll` (the same
   Deny of everything) is attached instead; IAM refusing one for its quota
   makes the step try the other. With no room for either (the default quota
   is 10 managed policies per user) the step fails with a clear message, after
   the keys were deactivated;
3. tag the user `keyhygiene:revoked` with the time (UTC);

then remove it from its groups, from every bucket and KMS key policy that
names it (any bucket or key, not only the ones tagged for its groups; our own
statements only, the DenyOthers exception list included), delete its console
password and its MFA devices; optionally delete its keys and the user.

Every step may fail without stopping the others (containment matters most),
nothing is rolled back, and no step carries an undo: a revoke that is rolled
back by accident would give a thief access again. A second run is computed
from the account as it is then, so it does only what is still missing.

`load_for_revoke` reads just what the plan needs (the user, its keys, groups and
policies, every bucket and key policy) in parallel, without the credential
report, whose generation can take seconds on AWS. `RevokeReport` reads an
`ApplyReport` for people: when containment was requested, what failed and the
permission it needed, and what to check next.

Containment is *requested*, never reported as done: IAM is eventually
consistent, so a change takes time to reach every AWS endpoint (IAM User
Guide, https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency).
A call that returned means AWS accepted the change, not that every endpoint
refuses the keys yet.

Not covered: sessions of roles the user assumed. A user policy applies to
requests signed with the user's credentials (its keys, and sessions made from
them with GetSessionToken, which act as the user); a role session acts as the
role, so neither deny policy reaches it. The deny does stop the user assuming
roles from now on; sessions it made before last until they expire.

The parts: `model` (step and policy names, limits), `plan`, `actions` (apply
time), `loading` (the revoke's own fast read), `reach` (what the key could
reach), `report` (what happened and what to do next) and `helpers`. This
module re-exports what the front ends call.
"""

from __future__ import annotations

# The plans name their apply-time actions; importing `actions` registers them.
from keyhygiene.workflows.revoke import actions as actions
from keyhygiene.workflows.revoke.everywhere import (
    AccountOutcome,
    RevokePlans,
    RevokeTarget,
    apply_revoke_everywhere,
    plan_revoke_everywhere,
)
from keyhygiene.workflows.revoke.loading import (
    load_for_revoke,
    this_user_name,
)
from keyhygiene.workflows.revoke.model import (
    CONTAINMENT_STEPS,
    DENY_ALL_DOCUMENT,
    DENY_ALL_POLICY_NAME,
    DENY_INLINE,
    DENY_MANAGED,
    MANAGED_POLICIES_PER_USER,
    MAX_PARALLEL,
    NO_ROOM,
    PLAN_KIND,
    REVOKED_DOCUMENT,
    STEP_DELETE_KEYS,
    STEP_DELETE_REVOKED_POLICY,
    STEP_DELETE_USER,
    STEP_DENY,
    STEP_KEYS,
    STEP_LOGIN,
    STEP_MFA,
    STEP_TAG,
    AccountReader,
    T,
    UserExtras,
)
from keyhygiene.workflows.revoke.plan import (
    DenyRoom,
    deny_all_arn,
    deny_order,
    deny_room,
    find_user,
    plan_revoke,
    unknown_user,
)
from keyhygiene.workflows.revoke.reach import describe_reach
from keyhygiene.workflows.revoke.report import (
    EVENTUAL_CONSISTENCY_URL,
    PROPAGATION,
    ContainmentTimer,
    FailedStep,
    RevokeReport,
    containment_step,
    needed_permission,
    revoke_advice,
    revoke_report,
)

__all__ = [
    "AccountOutcome",
    "AccountReader",
    "CONTAINMENT_STEPS",
    "ContainmentTimer",
    "DENY_ALL_DOCUMENT",
    "DENY_ALL_POLICY_NAME",
    "DENY_INLINE",
    "DENY_MANAGED",
    "DenyRoom",
    "EVENTUAL_CONSISTENCY_URL",
    "FailedStep",
    "MANAGED_POLICIES_PER_USER",
    "MAX_PARALLEL",
    "NO_ROOM",
    "PLAN_KIND",
    "PROPAGATION",
    "REVOKED_DOCUMENT",
    "RevokePlans",
    "RevokeReport",
    "RevokeTarget",
    "STEP_DELETE_KEYS",
    "STEP_DELETE_REVOKED_POLICY",
    "STEP_DELETE_USER",
    "STEP_DENY",
    "STEP_KEYS",
    "STEP_LOGIN",
    "STEP_MFA",
    "STEP_TAG",
    "T",
    "UserExtras",
    "apply_revoke_everywhere",
    "containment_step",
    "deny_all_arn",
    "deny_order",
    "deny_room",
    "describe_reach",
    "find_user",
    "load_for_revoke",
    "needed_permission",
    "plan_revoke",
    "plan_revoke_everywhere",
    "revoke_advice",
    "revoke_report",
    "this_user_name",
    "unknown_user",
]
