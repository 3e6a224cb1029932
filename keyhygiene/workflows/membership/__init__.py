"""Group membership: permanent, lent for a limited time that AWS itself enforces, and swept.

The practice keeps only the computers used often in a group; a rarely used one
(the phone, the vacation laptop) is added for a limited time. Every function
here turns a snapshot and a request into a `Plan` (no AWS call, no clock: the
caller passes `now`), and every plan also brings the whitelists of the buckets
and KMS keys tagged for the group in line with its members after the change
(`keyhygiene.steps.whitelists`).

A loan ("grant") of group G to user U adds four things: the membership, U's
entries in the whitelists of G's buckets and keys, the tag
`keyhygiene:grant:<G>` holding the expiry (ISO 8601, UTC; it is how keyhygiene
knows a membership is temporary), and the inline policy `keyhygiene-expiry`, a
Deny that AWS evaluates itself after the expiry (`DateGreaterThan
aws:CurrentTime`), so that the loan ends even if keyhygiene never runs again.
Lending again moves the expiry; ending early or the sweep (once the expiry is
past) removes all four. The sweep is safe to run twice and while another
keyhygiene runs: its first step re-reads the tags and stops if a loan changed
since the snapshot, and its removals accept what another sweep already did.
It runs forward only: undoing a sweep would give expired loans back, so a
failure is reported and the next sweep finishes the job (see `plan_sweep`).

What the expiry policy denies. A user may hold several loans and permanent
groups at once, and one inline policy must end each loan at its own time
without taking away what stays. IAM cannot say "deny what group G allows";
it can deny actions on resources. So for each loan we deny every action on
the resources the group gives access to: the buckets (and their objects) and
KMS keys tagged for it, and every resource its own IAM policies name. That
ends the loan soundly: whatever G allowed, it allowed on those resources.
Two cases need care, and both fail closed (deny more, never less):
- a group whose policies allow something on every resource ("*", a
  NotResource, or an attached policy whose document we cannot read, such as an
  AWS managed one) cannot be ended by a resource list: the user is denied
  every action after that loan's expiry, until the sweep removes the loan;
- a resource reached by two loans is denied at the earlier expiry, and one
  also reached by a permanent group is denied anyway: the user loses that
  resource from the expiry until the next sweep (the TUI sweeps at every
  start, cron with `keyhygiene sweep --yes`). The plan warns about both.
Lending to the identity that runs keyhygiene is refused: its own expiry
policy could deny it the rights it needs to sweep (the lock-out rule).

What the expiry policy guards. Before the expiry a borrower has all its
group's rights, IAM ones included: it could delete its own `keyhygiene-expiry`,
untag its loan, rename itself or join groups for good. So the same policy also
carries an unconditional Deny of exactly that (`guard_statements`) for as long
as the user holds any loan; the sweep, run by an admin, removes it with the
last loan. What no policy on the borrower can stop is the users, keys and
rights it could create for others, which no expiry covers: a group whose
policies allow such IAM writes (`IAM_WRITE_RIGHTS`, decided on AWS's rules by
`keyhygiene.core.policy_eval`, see `loan_risks`), or one of whose policies cannot be read,
is not lent unless forced, and a forced loan says so in the plan. A group that
may assume roles is lent with a warning: a role session outlives the loan.

The parts: `model` (actions, plan kinds, names), `durations`, `grants` (the
loans a snapshot shows), `expiry` (the expiry policy and its guard), `risks`
(what a loan gives away), `checks`, `offers` (what the forms offer), `plans`,
`steps` and `actions` (apply time). This module re-exports what the front ends
and the audit call.
"""

from __future__ import annotations

# The plans name their apply-time actions; importing `actions` registers them.
from keyhygiene.workflows.membership import actions as actions
from keyhygiene.workflows.membership.actions import GrantChanged, StepsNotDone
from keyhygiene.workflows.membership.checks import IAM_READ
from keyhygiene.workflows.membership.durations import (
    format_expiry,
    parse_duration,
    parse_expiry,
    parse_now,
    utc,
)
from keyhygiene.workflows.membership.expiry import (
    GUARD_GROUPS_SID,
    GUARD_SID,
    GUARDED_GROUP_ACTION,
    GUARDED_SELF_ACTIONS,
    ExpiryPolicy,
    GroupReach,
    ensure_inline_policies_fit,
    expiry_policy,
    group_reach,
    guard_statements,
    inline_policies_size,
)
from keyhygiene.workflows.membership.grants import Grant, expired_grants, grants_of
from keyhygiene.workflows.membership.model import (
    DEFAULT_MAX_DURATION,
    EXPIRY_SID_PREFIX,
    MEMBERSHIP_ACTIONS,
    SWEEP_KIND,
    SWEEP_SUBJECT,
    MembershipAction,
)
from keyhygiene.workflows.membership.offers import Candidates, candidates, eligible, loan_of
from keyhygiene.workflows.membership.plans import (
    SweepOutcome,
    apply_sweep,
    close_sweep_journal,
    plan_add_member,
    plan_end_grant,
    plan_grant,
    plan_guard_loans,
    plan_remove_member,
    plan_sweep,
    sweep_summary,
)
from keyhygiene.workflows.membership.risks import (
    IAM_WRITE_RIGHTS,
    STAND_IN_NAME,
    LoanRefused,
    LoanRisks,
    loan_risks,
)

__all__ = [
    "Candidates",
    "DEFAULT_MAX_DURATION",
    "EXPIRY_SID_PREFIX",
    "ExpiryPolicy",
    "GUARDED_GROUP_ACTION",
    "GUARDED_SELF_ACTIONS",
    "GUARD_GROUPS_SID",
    "GUARD_SID",
    "Grant",
    "GrantChanged",
    "GroupReach",
    "IAM_READ",
    "IAM_WRITE_RIGHTS",
    "LoanRefused",
    "LoanRisks",
    "MEMBERSHIP_ACTIONS",
    "MembershipAction",
    "STAND_IN_NAME",
    "SWEEP_KIND",
    "SWEEP_SUBJECT",
    "StepsNotDone",
    "SweepOutcome",
    "apply_sweep",
    "candidates",
    "close_sweep_journal",
    "eligible",
    "ensure_inline_policies_fit",
    "expired_grants",
    "expiry_policy",
    "format_expiry",
    "grants_of",
    "group_reach",
    "guard_statements",
    "inline_policies_size",
    "loan_of",
    "loan_risks",
    "parse_duration",
    "parse_expiry",
    "parse_now",
    "plan_add_member",
    "plan_end_grant",
    "plan_grant",
    "plan_guard_loans",
    "plan_remove_member",
    "plan_sweep",
    "sweep_summary",
    "utc",
]
