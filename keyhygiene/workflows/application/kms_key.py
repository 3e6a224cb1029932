"""The application's KMS key: adopted when it exists, created when not, with a key
policy that lists every computer."""

from __future__ import annotations

import json

from keyhygiene.core.errors import BadInput
from keyhygiene.core.model import (
    TAG_GROUPS,
    KmsKey,
    Snapshot,
)
from keyhygiene.core.policy_documents import (
    default_key_policy,
    key_policy_with_whitelist,
)
from keyhygiene.plans import (
    LOCAL,
    Call,
    Ref,
    Step,
)
from keyhygiene.steps.whitelists import (
    RESTORE_IF_UNCHANGED,
    key_admins_to_keep,
    put_if_unchanged_call,
    readable_policy,
)
from keyhygiene.workflows.application.actions import _key_description
from keyhygiene.workflows.application.context import _Context
from keyhygiene.workflows.application.helpers import (
    _check_policy,
    _count,
    _principals,
    _refuse_unreadable,
)
from keyhygiene.workflows.application.model import (
    CREATE_KEY,
    FIND_ALIAS,
    FIND_UNNAMED_KEY,
    KEY_DELETION_DAYS,
)
from keyhygiene.workflows.application.tags import _adopt_tag_steps, _TagCalls

# ---- KMS key


def _existing_key(snapshot: Snapshot, name: str) -> KmsKey | None:
    alias = f"alias/{name}"
    return next((key for key in snapshot.kms_keys if alias in key.aliases), None)


def _key_steps(
    ctx: _Context, key: KmsKey | None, warnings: list[str]
) -> tuple[list[Step], str | Ref]:
    """The steps for the key, and its ARN (a Ref to the create step for a new key)."""
    if key is None:
        return _new_key_steps(ctx, warnings)
    _refuse_unreadable(ctx.snapshot, f"KMS key {key.label}:", f"KMS key {key.label}")
    principals = _principals(ctx, (*key.for_groups, ctx.name))
    steps = _adopt_tag_steps(
        "key",
        ctx.name,
        key.tags,
        _TagCalls(
            put=lambda value: Call(
                "kms",
                "tag_resource",
                {"KeyId": key.key_id, "Tags": [{"TagKey": TAG_GROUPS, "TagValue": value}]},
            ),
            remove=Call("kms", "untag_resource", {"KeyId": key.key_id, "TagKeys": [TAG_GROUPS]}),
        ),
        warnings,
        f"key {key.label}",
    )
    before = readable_policy(ctx.snapshot, key.policy, f"KMS key {key.label}", "key")
    if before is None:
        raise BadInput(f"Key {key.label} has no readable key policy; keyhygiene cannot adopt it.")
    after = key_policy_with_whitelist(
        before,
        principals=principals,
        keep_admin_arns=key_admins_to_keep(ctx.snapshot, ctx.actor, before),
    )
    _check_policy(ctx, after, "key", key.label, key.arn)
    target = {"KeyId": key.key_id, "PolicyName": "default"}
    if after != before:
        steps.append(
            Step(
                id="key-policy",
                description=f"Set the policy of key {key.label}: whitelist "
                f"{_count(principals, 'principal')} (its other statements kept)",
                # Written only if the policy is still the one read: a statement
                # added since the snapshot would otherwise be lost.
                call=put_if_unchanged_call(target, after, ctx.waiting_for),
                undo=Call(LOCAL, RESTORE_IF_UNCHANGED, target),
                before=before,
                after=after,
            )
        )
    return steps, key.arn


def _new_key_steps(ctx: _Context, warnings: list[str]) -> tuple[list[Step], Ref]:
    name = ctx.name
    others = ctx.snapshot.kms_keys_for_group(name)
    if others:
        warnings.append(
            f"Key(s) {', '.join(k.label for k in others)} are tagged for {name} but none is "
            f"named alias/{name}: a new key is created (unless one is the key an interrupted "
            f"run of this command created, which is then named instead)."
        )
    description = _key_description(name)
    principals = _principals(ctx, (name,))
    policy = key_policy_with_whitelist(
        default_key_policy(ctx.snapshot.account_id, partition=ctx.partition),
        principals=principals,
        keep_admin_arns=key_admins_to_keep(ctx.snapshot, ctx.actor, None),
    )
    _check_policy(ctx, policy, "key", f"the new key alias/{name}", None)
    steps = [
        Step(
            id="key",
            description=f"Create a KMS key for {name} that the account administers and "
            f"{_count(principals, 'whitelisted principal')} may use, "
            f"tagged {TAG_GROUPS}={name}",
            # CreateKey is not idempotent: a local action around it deletes
            # the key an attempt botocore retried had made unseen.
            call=Call(
                LOCAL,
                CREATE_KEY,
                {
                    "Params": {
                        "Description": description,
                        "KeyUsage": "ENCRYPT_DECRYPT",
                        "Policy": json.dumps(policy),
                        "Tags": [{"TagKey": TAG_GROUPS, "TagValue": name}],
                    },
                    "WaitForRole": bool(ctx.new_role),
                },
            ),
            # The key cannot be deleted at once: the shortest wait is 7 days,
            # during which it can be cancelled and nothing can use it.
            undo=Call(
                "kms",
                "schedule_key_deletion",
                {
                    "KeyId": Ref("key", "KeyMetadata.KeyId"),
                    "PendingWindowInDays": KEY_DELETION_DAYS,
                },
            ),
            after=policy,
            keep=("KeyMetadata.KeyId", "KeyMetadata.Arn"),
            # A run cut short between CreateKey and CreateAlias leaves a key
            # nothing names; the rerun names that key instead of making another.
            settle=Call(
                LOCAL,
                FIND_UNNAMED_KEY,
                {
                    "Description": description,
                    "Group": name,
                    "Candidates": [key.key_id for key in others if not key.aliases],
                },
            ),
        ),
        Step(
            id="key-alias",
            description=f"Name the new key alias/{name}",
            call=Call(
                "kms",
                "create_alias",
                {"AliasName": f"alias/{name}", "TargetKeyId": Ref("key", "KeyMetadata.KeyId")},
            ),
            undo=Call("kms", "delete_alias", {"AliasName": f"alias/{name}"}),
            # A CreateAlias whose answer was lost: the alias on this key is done.
            settle=Call(
                LOCAL,
                FIND_ALIAS,
                {"AliasName": f"alias/{name}", "TargetKeyId": Ref("key", "KeyMetadata.KeyId")},
            ),
        ),
    ]
    return steps, Ref("key", "KeyMetadata.Arn")
