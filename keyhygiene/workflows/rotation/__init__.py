"""Rotate this computer's one access key, straight into ~/.aws/credentials.

The rotation is a `Plan` (keyhygiene.plans), reviewed before it runs:

1. (if the user has a second key) delete it: an inactive one always, an active
   one only when asked (`delete_other`), since two active keys break
   one-key-per-computer;
2. create the new key (the journal keeps its id, the secret stays in memory);
3. write it where the profile keeps its key: the credentials file, or the OS
   keyring plus `credential_process` in the config file. The old bytes stay in
   memory so that a failure can put them back;
4. verify it: several `sts:GetCallerIdentity` successes in a row, made with
   the key *as written* (read back from the file or keyring), retrying with
   exponential backoff up to a bound (60 s by default): AWS is eventually
   consistent and one success proves little (rhyeal/aws-rotate-iam-keys#81);
5. deactivate the old key; 6. verify again; 7. delete the old key.

If the new key never verifies, the run is rolled back, with one rule above all:
the profile ends holding a working, *active* key. The old key is switched back
on (retried with backoff), and the previous content is put back only once the
old key is proven Active (its status) and answering `sts:GetCallerIdentity`
with its own secret; otherwise the profile keeps the new key, the run stays
open and the next run finishes it. Only the profile's own lines are put back,
unless the files are byte for byte what this run wrote (then their old bytes
return). Nothing is ever deleted that the profile still holds.

One rotation of a profile at a time: `execute_rotation` and
`finish_or_roll_back` hold an flock on `<state dir>/rotate-<profile>.lock`;
a second one is refused (`RotationBusy`, exit 2, nothing changed).

Which key signs the calls. Every call goes through `HeldKeyClients`, which
signs with the key the profile holds *now*: the old key until step 3, the new
one after. So the steps after the deactivation run with the new key (on real
AWS an inactive key cannot sign; moto would not notice), and a rollback that
restores the file goes back to the old key by itself.

A crash. The journal (no secret) lets the next run decide from what the
profile actually holds:
- the profile holds the new key: the write took effect; finish the run
  (verify, deactivate, delete the old key). The old secret was replaced, so
  going forward is the only way that keeps a working key;
- the profile still holds the old key: the new key's secret is lost (it was
  in memory only); roll back, deleting the new key, and the key an interrupted
  CreateAccessKey may have made (created after that step started, never used).
`pending_rotations()` describes that choice; `finish_or_roll_back()` makes it.

Secrets travel only in `Secret` objects (repr `****`), in the plan engine's
sealed results, and in the `_BACKUPS` and `_NEW_SECRETS` kept in memory for a
rollback (dropped when the run ends).

The parts, in the order they build on each other: `model` (step names, exit
codes, bounds, errors), `crash_hook` (the tests' kill switch), `facts` (what a
plan is made from), `hints`, `plan` (inspect and plan: pure once the facts are
in), `actions` (apply-time create, write, switch, restore, delete),
`verification`, `pending` (what the journals left unfinished), `run` (a
reviewed rotation under the lock) and `recovery` (finish or roll back). This
module re-exports what the front ends call.
"""

from __future__ import annotations

from keyhygiene.aws.held_key_clients import HeldKeyClients
from keyhygiene.local.key_location import HeldKey, KeyLocation, Store, held_key
from keyhygiene.local.vault import Secret, credential_process_command

# The plans name their apply-time actions; importing `actions` registers them.
from keyhygiene.workflows.rotation import actions as actions
from keyhygiene.workflows.rotation.actions import (
    UNCHECKED_CREATE,
    delete_unused_keys,
    forget_backups,
    orphan_candidates,
)
from keyhygiene.workflows.rotation.crash_hook import crash_hook_armed, crash_point
from keyhygiene.workflows.rotation.facts import KeyInfo, RotationFacts, RotationRequest
from keyhygiene.workflows.rotation.hints import own_key_hint, reworded
from keyhygiene.workflows.rotation.model import (
    CRASH_ENV,
    CREDENTIAL_KEYS,
    EXIT_AWS,
    EXIT_BAD_INPUT,
    EXIT_ROTATED,
    EXIT_VERIFY_FAILED,
    FIRST_BACKOFF,
    MAX_BACKOFF,
    NEW_KEY_PATH,
    ORPHAN_CLOCK_SKEW,
    PLAN_KIND,
    REACTIVATE_TIMEOUT,
    RESTORE_CHECK_TIMEOUT,
    STEP_CREATE,
    STEP_DEACTIVATE,
    STEP_DELETE_OLD,
    STEP_DELETE_OTHER,
    STEP_VERIFY,
    STEP_VERIFY_AGAIN,
    STEP_WRITE,
    STORES,
    TESTING_ENV,
    VERIFY_STEPS,
    OldKeyNotRestored,
    RotationBusy,
    SecretLost,
    VerificationFailed,
    key_tail,
)
from keyhygiene.workflows.rotation.pending import (
    PendingRotation,
    RecoveryAction,
    pending_rotation,
    pending_rotations,
)
from keyhygiene.workflows.rotation.plan import (
    KeyNotRotatable,
    TwoActiveKeys,
    check_key_in_use,
    inspect_rotation,
    plan_rotation,
)
from keyhygiene.workflows.rotation.recovery import (
    check_store_usable,
    finish_or_roll_back,
    recover_rotation,
)
from keyhygiene.workflows.rotation.run import (
    RotationOutcome,
    execute_rotation,
    prove_identity,
    rotation_lock,
)
from keyhygiene.workflows.rotation.verification import verify_held_key
from keyhygiene.workflows.rotation_defaults import (
    DEFAULT_VERIFY_INTERVAL,
    DEFAULT_VERIFY_SUCCESSES,
    DEFAULT_VERIFY_TIMEOUT,
)

# The types a caller of the rotation needs, from where they live.
__all__ = [
    "KeyNotRotatable",
    "check_key_in_use",
    "HeldKeyClients",
    "HeldKey",
    "KeyLocation",
    "Store",
    "held_key",
    "Secret",
    "credential_process_command",
    "DEFAULT_VERIFY_INTERVAL",
    "DEFAULT_VERIFY_SUCCESSES",
    "DEFAULT_VERIFY_TIMEOUT",
    "CRASH_ENV",
    "CREDENTIAL_KEYS",
    "EXIT_AWS",
    "EXIT_BAD_INPUT",
    "EXIT_ROTATED",
    "EXIT_VERIFY_FAILED",
    "FIRST_BACKOFF",
    "KeyInfo",
    "MAX_BACKOFF",
    "NEW_KEY_PATH",
    "ORPHAN_CLOCK_SKEW",
    "OldKeyNotRestored",
    "PLAN_KIND",
    "PendingRotation",
    "REACTIVATE_TIMEOUT",
    "RESTORE_CHECK_TIMEOUT",
    "RecoveryAction",
    "RotationBusy",
    "RotationFacts",
    "RotationOutcome",
    "RotationRequest",
    "STEP_CREATE",
    "STEP_DEACTIVATE",
    "STEP_DELETE_OLD",
    "STEP_DELETE_OTHER",
    "STEP_VERIFY",
    "STEP_VERIFY_AGAIN",
    "STEP_WRITE",
    "STORES",
    "SecretLost",
    "TESTING_ENV",
    "TwoActiveKeys",
    "UNCHECKED_CREATE",
    "VERIFY_STEPS",
    "VerificationFailed",
    "check_store_usable",
    "crash_hook_armed",
    "crash_point",
    "delete_unused_keys",
    "execute_rotation",
    "finish_or_roll_back",
    "forget_backups",
    "inspect_rotation",
    "key_tail",
    "orphan_candidates",
    "own_key_hint",
    "pending_rotation",
    "pending_rotations",
    "plan_rotation",
    "prove_identity",
    "recover_rotation",
    "reworded",
    "rotation_lock",
    "verify_held_key",
]
