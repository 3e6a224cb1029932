"""Plans: what a workflow will change, shown before it runs, applied step by step.

A `Plan` is an ordered list of `Step`s. Each step says in one sentence what it
changes, carries the exact call (a boto3 client method and its parameters, or
a registered *local action* such as a credentials-file edit), and, where that
is possible, the call that undoes it. Policy steps also carry the document
before and after, so that the review shows a diff.

Plans are plain data computed without side effects. `apply_plan` runs them in
order and reports progress through `PlanEvent`s; a `Journal` (`keyhygiene.plans.journal`)
records each step before and after it runs, so that a run cut short can be
resumed (`resume`) or undone (`rollback`) at the next start.

Secrets. A step's parameters never hold a secret; a later step that needs one
(the new key's secret, to write it into ~/.aws/credentials) names it with a
`Ref` or reads it from `ApplyContext.results`. Results live in memory only.
The journal gets just the values a step lists in `keep` (key ids, ARNs), so a
secret cannot outlive the process that created it, and a run that still needs
a lost secret can only be rolled back.

The modules: `model` (the plan as data, its rendering and its JSON form),
`engine` (apply, resume, roll back), `journal` (the record on disk, which
needs only the model), `values` and `scrub` (kept values, secrets kept out),
`reviewed` (the one review, apply, roll-back policy of both front ends). This
package re-exports what the workflows and the front ends use.
"""

from __future__ import annotations

from keyhygiene.core.sealed import Sealed
from keyhygiene.plans.engine import (
    ApplyContext,
    ApplyReport,
    ClientCache,
    ClientProvider,
    LocalAction,
    PlanEvent,
    Results,
    StepResult,
    apply_plan,
    check_resumable,
    local_action,
    register_local_action,
    resume,
    rollback,
)
from keyhygiene.plans.model import (
    LOCAL,
    Call,
    EventKind,
    Plan,
    PlanError,
    Ref,
    ResultNotAvailable,
    ResumeImpossible,
    Step,
    StepStatus,
)

__all__ = [
    "ApplyContext",
    "ApplyReport",
    "Call",
    "ClientCache",
    "ClientProvider",
    "EventKind",
    "LOCAL",
    "LocalAction",
    "Plan",
    "PlanError",
    "PlanEvent",
    "Ref",
    "ResultNotAvailable",
    "Results",
    "Sealed",
    "ResumeImpossible",
    "Step",
    "StepResult",
    "StepStatus",
    "apply_plan",
    "check_resumable",
    "local_action",
    "register_local_action",
    "resume",
    "rollback",
]
