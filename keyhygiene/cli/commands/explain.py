"""`keyhygiene explain PRINCIPAL ACTION RESOURCE`: would AWS allow this request?

The account is loaded (the same inventory as `keyhygiene inventory`) and the
question is answered offline by `keyhygiene.core.access.explain`: AWS's documented policy
rules applied to the principal's identity policies and the bucket or key
policy. Nothing is called on the principal's behalf and nothing changes.

Exit codes: 0 allowed, 1 denied (explicitly or because nothing allows it),
2 bad input (an unknown principal or resource, a malformed --context) or no
usable connection, 3 an AWS error while loading the account, 4 the documents
do not tell (an unreadable policy, an operator not modelled).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

# Pure (no boto3): building the parser stays cheap.
from keyhygiene.core.arns import EXAMPLE_OBJECT

if TYPE_CHECKING:
    from keyhygiene.core.model import Snapshot
    from keyhygiene.core.policy_eval import Decision, Principal

EXIT_ALLOWED = 0
EXIT_DENIED = 1
EXIT_UNKNOWN = 4

OUTCOME_WORDS = {
    "allow": "ALLOWED",
    "explicit-deny": "DENIED (explicit)",
    "implicit-deny": "DENIED (nothing allows it)",
    "unknown": "UNKNOWN",
}
NOT_MODELLED = (
    "These answers follow AWS's documented policy evaluation rules, applied offline to the "
    "policies read from the account. Not modelled: SCPs and RCPs, permission boundaries, "
    "session policies, KMS grants, S3 ACLs and Block Public Access."
)
_ACTION = re.compile(r"^[A-Za-z0-9-]+:[A-Za-z0-9]+$")

_UPLOADS = ("plain", "kms-key", "kms-no-key", "other-key", "aes256", "sse-c")
_UPLOAD_HELP = {
    "plain": "`aws s3 cp` without flags: no SSE header (also every part of a multipart upload)",
    "kms-key": "--sse aws:kms --sse-kms-key-id with the bucket's application key",
    "kms-no-key": "--sse aws:kms alone (S3 would use aws/s3)",
    "other-key": "--sse aws:kms with another key's ARN",
    "aes256": "--sse AES256",
    "sse-c": "--sse-c (a customer-provided key)",
}


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "explain",
        help="say whether AWS would allow PRINCIPAL to call ACTION on RESOURCE, and why",
        description=(
            "Load the account and answer, offline, whether AWS would allow PRINCIPAL to call "
            "ACTION on RESOURCE: the outcome, the statements that decide it and what cannot be "
            "told. The answer follows AWS's documented evaluation rules applied to the "
            "identity policies and the bucket or key policy; SCPs and RCPs, permission "
            "boundaries, session policies, KMS grants and S3 ACLs are not modelled. Changes "
            f"nothing and never prints a secret. Exit status: {EXIT_ALLOWED} allowed, "
            f"{EXIT_DENIED} denied (explicitly or because nothing allows it), 2 bad input (an "
            "unknown principal or resource) or no usable connection, 3 an AWS error while "
            f"loading the account, {EXIT_UNKNOWN} the documents do not tell."
        ),
        epilog=(
            "Examples: keyhygiene explain alice-laptop s3:PutObject photos-data/a.jpg --upload "
            "plain; keyhygiene explain role/photos kms:Decrypt alias/photos; keyhygiene explain "
            "cloudtrail.amazonaws.com s3:PutObject arn:aws:s3:::trail-logs/AWSLogs/x --context "
            "aws:SourceAccount=123456789012"
        ),
        parents=parents,
    )
    parser.add_argument(
        "principal",
        metavar="PRINCIPAL",
        help="a user name, a role (role/NAME, or NAME), an ARN, root, or a service principal "
        "such as cloudtrail.amazonaws.com",
    )
    parser.add_argument("action", metavar="ACTION", help="an IAM action, e.g. s3:PutObject")
    parser.add_argument(
        "resource",
        metavar="RESOURCE",
        help="an ARN, a bucket name, BUCKET/KEY, a KMS key id, alias (alias/photos) or key "
        f"ARN; a bucket alone for an object action means the object {EXAMPLE_OBJECT!r}",
    )
    parser.add_argument(
        "--context",
        action="append",
        default=[],
        type=_context_item,
        metavar="KEY=VALUE",
        help="a condition key of the request, e.g. s3:x-amz-server-side-encryption=aws:kms "
        "(repeat for several keys, or for several values of one key); a key not given is absent",
    )
    parser.add_argument(
        "--upload",
        choices=_UPLOADS,
        help="the SSE condition keys of an `aws s3 cp` variant: "
        + "; ".join(f"{name}: {text}" for name, text in _UPLOAD_HELP.items())
        + "; a --context key overrides these",
    )
    from keyhygiene.cli.output import add_output_options

    add_output_options(parser, what="the decision")
    parser.set_defaults(handler=_explain)


def _context_item(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key.strip(), value


def _explain(args: argparse.Namespace) -> int:
    from keyhygiene.aws.inventory import load_account
    from keyhygiene.cli.options import connection_options
    from keyhygiene.cli.output import check_query, print_json, wants_json
    from keyhygiene.core.access import explain, upload_context

    check_query(args)
    snapshot, _ = load_account(connection_options(args))
    for problem in snapshot.problems:
        print(f"warning: could not read {problem.what}: {problem.message}", file=sys.stderr)

    if not _ACTION.match(args.action):
        raise _bad(
            f"{args.action!r} is not one IAM action.",
            hint="Give SERVICE:ACTION as a request names it, e.g. s3:PutObject (no wildcards).",
        )
    principal = _principal(snapshot, args.principal)
    resource, notes = _resource(snapshot, args.action, args.resource)
    context: dict[str, Any] = {}
    if args.upload:
        if not _is_bucket_resource(snapshot, resource):
            raise _bad(f"--upload is for S3 uploads; {args.resource!r} is no bucket or object.")
        key_arn = _application_key_arn(snapshot, resource) if args.upload == "kms-key" else None
        context.update(upload_context(args.upload, key_arn))
    context.update(_grouped(args.context))

    decision = explain(snapshot, principal, args.action, resource, context=context)
    if decision.allowed:
        notes += _kms_notes(snapshot, args.action, resource, context)
    if wants_json(args):
        print_json(_as_json(principal, args.action, resource, context, decision), args)
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
    else:
        print(_as_text(principal, args.action, resource, context, decision, notes))
    if decision.outcome == "allow":
        return EXIT_ALLOWED
    if decision.outcome == "unknown":
        return EXIT_UNKNOWN
    return EXIT_DENIED


# ---- the question's parts ------------------------------------------------------------


def _bad(message: str, hint: str | None = None) -> Exception:
    from keyhygiene.core.errors import BadInput

    return BadInput(message, hint=hint)


def _principal(snapshot: Snapshot, who: str) -> Principal:
    from keyhygiene.core.access import principal_of

    wanted = who.strip()
    if wanted.startswith("role "):  # the label the tree and the details use
        wanted = "role/" + wanted[len("role ") :].strip()
    try:
        return principal_of(snapshot, wanted)
    except LookupError:
        raise _bad(
            f"{who!r} is no user, role, service principal or root of account "
            f"{snapshot.account_id}.",
            hint="Give a user name, role/NAME, a user or role ARN, root, or a service "
            "principal such as cloudtrail.amazonaws.com (`keyhygiene inventory` lists the "
            "users and roles).",
        ) from None


def _resource(snapshot: Snapshot, action: str, typed: str) -> tuple[str, list[str]]:
    """The resource's ARN, refusing a bucket or key the account does not hold."""
    from keyhygiene.core.access import bucket_of, key_of, resource_arn_of

    text = typed.strip()
    if not text:
        raise _bad("RESOURCE is empty.")
    if text == "*":
        return text, ["resource *: only identity policies were evaluated."]
    arn = resource_arn_of(snapshot, text)
    notes: list[str] = []
    service = arn.split(":")[2] if arn.count(":") >= 5 else ""
    if service == "s3":
        bucket = bucket_of(snapshot, arn)
        if bucket is None:
            raise _bad(
                f"{typed!r} is no bucket or KMS key of account {snapshot.account_id}.",
                hint="Give a bucket name, BUCKET/KEY, a key id, alias/NAME or an ARN "
                "(`keyhygiene inventory` lists them).",
            )
        if "/" not in arn.split(":::", 1)[1] and _is_object_action(action):
            arn = f"{bucket.arn}/{EXAMPLE_OBJECT}"
            notes.append(
                f"{action} acts on objects: the answer is for object {bucket.name}/"
                f"{EXAMPLE_OBJECT} (give BUCKET/KEY for another)."
            )
    elif service == "kms" and key_of(snapshot, arn) is None:
        raise _bad(
            f"{typed!r} is no KMS key of account {snapshot.account_id} keyhygiene could read.",
            hint="Give a key id, alias/NAME or a key ARN (`keyhygiene inventory` lists them).",
        )
    elif service not in ("s3", "kms"):
        notes.append(
            f"{arn} is neither a bucket nor a KMS key: only identity policies were evaluated."
        )
    return arn, notes


def _is_object_action(action: str) -> bool:
    service, _, name = action.partition(":")
    if service.lower() != "s3":
        return False
    lowered = name.lower()
    # PutBucketObjectLockConfiguration and ListBucketMultipartUploads act on the bucket.
    return ("object" in lowered or "multipart" in lowered) and "bucket" not in lowered


def _is_bucket_resource(snapshot: Snapshot, arn: str) -> bool:
    from keyhygiene.core.access import bucket_of

    return arn.startswith("arn:") and ":s3:::" in arn and bucket_of(snapshot, arn) is not None


def _application_key_arn(snapshot: Snapshot, resource: str) -> str:
    """The key ARN an upload names with `--upload kms-key`: the one the bucket
    policy requires, else the bucket's default encryption key, else the one
    KMS key tagged for the bucket's groups."""
    from keyhygiene.core.access import bucket_of
    from keyhygiene.steps.whitelists import application_key_arn

    bucket = bucket_of(snapshot, resource)
    assert bucket is not None  # checked by the caller
    found = application_key_arn(snapshot, bucket)
    if found is None:
        raise _bad(
            f"No application key is known for bucket {bucket.name}: its policy names none, "
            "its default encryption uses none and no single KMS key is tagged for its groups.",
            hint="Name the key yourself: --upload kms-no-key --context "
            "s3:x-amz-server-side-encryption-aws-kms-key-id=KEY_ARN.",
        )
    return found


def _grouped(items: list[tuple[str, str]]) -> dict[str, Any]:
    """--context items by key: one value as a string, several as a list."""
    found: dict[str, list[str]] = {}
    for key, value in items:
        found.setdefault(key, []).append(value)
    return {key: values[0] if len(values) == 1 else values for key, values in found.items()}


def _kms_notes(
    snapshot: Snapshot, action: str, resource: str, context: Mapping[str, Any]
) -> list[str]:
    """S3 calls KMS as the caller for SSE-KMS objects: say which question follows."""
    from keyhygiene.core.access import bucket_of

    if action.lower() not in ("s3:getobject", "s3:putobject"):
        return []
    if not _is_bucket_resource(snapshot, resource):
        return []
    bucket = bucket_of(snapshot, resource)
    asked = str(context.get("s3:x-amz-server-side-encryption", "")).startswith("aws:kms")
    default = bucket is not None and bucket.encryption is not None and bucket.encryption.is_kms
    # With an SSE header of another kind, or a customer key (SSE-C), KMS is not involved.
    headers = any(k.startswith("s3:x-amz-server-side-encryption") for k in context)
    if not (asked or (default and not headers)):
        return []
    need = "kms:Decrypt" if action.lower() == "s3:getobject" else "kms:GenerateDataKey"
    key = context.get("s3:x-amz-server-side-encryption-aws-kms-key-id")
    if not key and bucket is not None and bucket.encryption is not None and not asked:
        key = bucket.encryption.kms_key_id
    named = snapshot.kms_key(str(key)) if key else None
    what = named.label if named is not None else (str(key) if key else "the object's KMS key")
    return [f"S3 also calls {need} on {what} as the caller: ask about that too."]


# ---- output --------------------------------------------------------------------------


def _who(principal: Principal) -> str:
    if principal.kind == "role":
        return f"role {principal.name}"
    if principal.kind == "root":
        return f"the root user of account {principal.account_id}"
    return principal.name


def _as_text(
    principal: Principal,
    action: str,
    resource: str,
    context: Mapping[str, Any],
    decision: Decision,
    notes: list[str],
) -> str:
    lines = [f"{OUTCOME_WORDS[decision.outcome]}: {_who(principal)} calling {action} on {resource}"]
    if context:
        given = ", ".join(f"{key}={_shown(value)}" for key, value in context.items())
        lines.append(f"  request keys: {given}")
    else:
        lines.append("  request keys: none beyond the principal's and the time")
    for ref in decision.deciding:
        lines.append(f"  decided by: {ref}")
    if not decision.deciding and decision.reason:
        lines.append(f"  why: {decision.reason}")
    for unknown in decision.unknowns:
        lines.append(f"  cannot tell: {unknown}")
    for note in notes:
        lines.append(f"  note: {note}")
    lines.append(NOT_MODELLED)
    return "\n".join(lines)


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)


def _as_json(
    principal: Principal,
    action: str,
    resource: str,
    context: Mapping[str, Any],
    decision: Decision,
) -> dict[str, Any]:
    return {
        "principal": principal.arn,
        "action": action,
        "resource": resource,
        "context": dict(context),
        "outcome": decision.outcome,
        "reason": decision.reason,
        "deciding": [
            {"source": ref.source, "sid": ref.sid, "effect": ref.effect, "index": ref.index}
            for ref in decision.deciding
        ],
        "unknowns": list(decision.unknowns),
    }
