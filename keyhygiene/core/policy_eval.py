"""An offline evaluator of AWS's documented policy rules, for one account.

moto evaluates no condition and enforces no bucket or key policy, so nothing
that runs against it says what AWS will allow. This module answers that from
the documents alone: given the identity policies of a principal, the policy of
the resource (a bucket policy or a KMS key policy) and a request (who, which
action, on what, with which condition keys present or absent), it says
`allow`, `explicit-deny`, `implicit-deny` or `unknown`, and names the
statements that decided.

The rules modelled, each from the AWS documentation:

- Evaluation logic (IAM User Guide, "Policy evaluation logic",
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html):
  an explicit Deny in any policy wins; otherwise, within one account, an Allow
  in an identity policy *or* in the resource policy allows; nothing allowing
  is an implicit deny. Across accounts both sides must allow.
- KMS (Developer Guide, "Default key policy",
  https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html):
  the key policy is authoritative. IAM policies count only when the key policy
  allows the *account* (its root ARN or id): that is the delegation of the
  default statement "Enable IAM User Permissions". Another account needs both
  the key policy (naming it, or its user or role) and its own IAM policies
  (https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-modifying-external-accounts.html).
- Roles (IAM User Guide, "Roles terms and concepts", trust policy): a role's
  trust policy is the resource policy of `sts:AssumeRole` and must allow the
  caller, by name or through its account (whose IAM policies then decide), as
  a key policy must; it is evaluated like one here.
  Grants are not modelled.
- Principals in resource policies (IAM User Guide, "Principal",
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html):
  "*" is everyone, services and anonymous callers included; a role ARN
  covers its sessions; the account (root ARN or id) delegates to IAM for its
  own identities and names the root user itself. A Deny naming the account
  applies to every identity in it.
- Condition operators and absent keys (IAM User Guide, "Condition operators",
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html):
  a key absent from the request makes a condition false, except a negated
  operator (StringNotEquals, ArnNotLike, ...) which is then true, `...IfExists`
  which is then true, and `Null`, which tests exactly presence. Values listed
  for one key are ORed (a negated operator: the request matches none of them);
  keys and operators are ANDed
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-logic-multiple-context-keys-or-values.html).
  `ForAllValues` is true for an absent key, `ForAnyValue` false
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys.html).
  Arn operators compare each of the six colon-separated parts, wildcards
  allowed in each.
- Global condition keys (IAM User Guide, "AWS global condition context keys",
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html):
  `aws:PrincipalArn` is the user's, the role's (not the session's) or the
  root's ARN and is absent for a service principal; `aws:PrincipalIsAWSService`
  is present in every signed request, true only for a service principal;
  `aws:username` exists for IAM users only; `aws:MultiFactorAuthPresent` is
  absent for a request signed with a long-term access key.
- Policy variables (IAM User Guide, "Policy variables",
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html):
  `${aws:username}` and the like in Resource and in condition values, with a
  default (`${aws:username, 'x'}`) used when the key is absent; a variable
  with no value and no default makes its element match nothing.
- S3 (User Guide, "Bucket policies", "Protecting data with SSE-KMS"):
  the root user of the bucket's account can always get, put and delete the
  bucket policy, whatever it denies
  (https://docs.aws.amazon.com/AmazonS3/latest/userguide/example-bucket-policies.html).

Not modelled, reported as `unknown` (never as `allow`): operators and
elements this module does not know, a `NotPrincipal` naming the caller only
in part (without its account, or a role without its session),
principal types it cannot match (CanonicalUser, Federated), identity policies
whose document was not read. Not in the inputs at all, so not part of any
answer: SCPs and RCPs, permission boundaries, session policies, KMS grants,
S3 ACLs and S3 Block Public Access.

Pure: no AWS calls, no Textual; the request carries the time (now, unless given).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, Literal

from keyhygiene.core import arns

Outcome = Literal["allow", "explicit-deny", "implicit-deny", "unknown"]
PrincipalKind = Literal["user", "role", "root", "service", "anonymous"]
# Three-valued logic: True, False, or None for "cannot tell".
Tri = bool | None

ALLOW: Outcome = "allow"
EXPLICIT_DENY: Outcome = "explicit-deny"
IMPLICIT_DENY: Outcome = "implicit-deny"
UNKNOWN: Outcome = "unknown"

# Bucket-policy actions the owner account's root user can always call.
_ROOT_BUCKET_POLICY_ACTIONS = frozenset(
    {"s3:getbucketpolicy", "s3:putbucketpolicy", "s3:deletebucketpolicy"}
)


# ---- inputs ------------------------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    """Who makes the request, with what AWS puts in its request context."""

    kind: PrincipalKind
    # user, role or root ARN; for a service, its name (cloudtrail.amazonaws.com).
    arn: str
    account_id: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    # A role's session: arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION.
    session_arn: str | None = None
    user_id: str | None = None

    @staticmethod
    def user(arn: str, *, tags: Mapping[str, str] | None = None, user_id: str = "") -> Principal:
        return Principal("user", arn, _account(arn), dict(tags or {}), None, user_id or None)

    @staticmethod
    def role_session(
        role_arn: str, *, session: str = "session", tags: Mapping[str, str] | None = None
    ) -> Principal:
        parts = role_arn.split(":", 5)
        name = parts[-1].rsplit("/", 1)[-1]
        session_arn = f"arn:{parts[1]}:sts::{parts[4]}:assumed-role/{name}/{session}"
        return Principal("role", role_arn, _account(role_arn), dict(tags or {}), session_arn)

    @staticmethod
    def root(account_id: str, *, partition: str = "aws") -> Principal:
        return Principal("root", f"arn:{partition}:iam::{account_id}:root", account_id)

    @staticmethod
    def service(name: str) -> Principal:
        return Principal("service", name)

    @staticmethod
    def anonymous() -> Principal:
        return Principal("anonymous", "*")

    @property
    def name(self) -> str:
        if self.kind in ("service", "anonymous"):
            return self.arn
        return self.arn.split(":", 5)[-1].rsplit("/", 1)[-1]

    def identifiers(self) -> frozenset[str]:
        """The strings a Principal element may use to name exactly this caller."""
        found = {self.arn}
        if self.session_arn:
            found.add(self.session_arn)
        return frozenset(found)


@dataclass(frozen=True)
class Request:
    """One API request as the authorizer sees it.

    `context` holds the request's own condition keys (an S3 upload's SSE
    headers, `aws:SourceArn` of a service, `aws:MultiFactorAuthPresent`): a key
    not in it is absent. Keys about the principal and the time are filled in
    by `request_context`. `resource_account` is the account owning the
    resource (S3 ARNs carry none); by default the principal's.
    """

    principal: Principal
    action: str
    resource: str
    context: Mapping[str, Any] = field(default_factory=dict)
    # The request's time (aws:CurrentTime); callers that judge a snapshot pass its time.
    now: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    resource_account: str | None = None
    secure_transport: bool = True


@dataclass(frozen=True)
class PolicySource:
    """One policy document and where it comes from, for the decision's words.

    `document` None: the policy exists but was not read (an AWS managed policy
    keyhygiene does not know): it may allow or deny anything.
    """

    label: str
    document: Mapping[str, Any] | None


# ---- outputs -----------------------------------------------------------------------


@dataclass(frozen=True)
class StatementRef:
    """A statement that took part in the decision."""

    source: str
    index: int
    sid: str | None
    effect: str

    def __str__(self) -> str:
        named = f"statement {self.sid!r}" if self.sid else f"statement #{self.index + 1}"
        return f"{self.effect} {named} of {self.source}"


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    deciding: tuple[StatementRef, ...] = ()
    # Why the answer is unknown, or what could not be told on the way.
    unknowns: tuple[str, ...] = ()
    reason: str = ""

    @property
    def allowed(self) -> bool:
        return self.outcome == ALLOW

    @property
    def denied(self) -> bool:
        return self.outcome in (EXPLICIT_DENY, IMPLICIT_DENY)

    def summary(self) -> str:
        """One line: the outcome and its reason."""
        return f"{self.outcome}: {self.reason}" if self.reason else self.outcome


# ---- request context ---------------------------------------------------------------


def request_context(request: Request) -> dict[str, tuple[str, ...]]:
    """The request's condition keys, lower-cased names, values as strings.

    What AWS adds for the principal and the time is added here; whatever the
    request's own `context` says wins (a test may remove a key with None).
    """
    principal = request.principal
    found: dict[str, tuple[str, ...]] = {
        "aws:currenttime": (_iso(request.now),),
        "aws:epochtime": (str(int(request.now.timestamp())),),
        "aws:securetransport": (_text(request.secure_transport),),
        "aws:viaawsservice": ("false",),
    }
    if principal.kind == "service":
        found["aws:principalisawsservice"] = ("true",)
        found["aws:principalservicename"] = (principal.arn,)
    elif principal.kind != "anonymous":
        found["aws:principalisawsservice"] = ("false",)
        found["aws:principalarn"] = (principal.arn,)
        if principal.account_id:
            found["aws:principalaccount"] = (principal.account_id,)
        kind = {"user": "User", "role": "AssumedRole", "root": "Account"}[principal.kind]
        found["aws:principaltype"] = (kind,)
        for key, value in principal.tags.items():
            found[f"aws:principaltag/{key}".lower()] = (value,)
        if principal.kind == "user":
            found["aws:username"] = (principal.name,)
            if principal.user_id:
                found["aws:userid"] = (principal.user_id,)
        elif principal.kind == "root" and principal.account_id:
            found["aws:userid"] = (principal.account_id,)
        if principal.kind == "role" and principal.session_arn:
            found["aws:rolesessionname"] = (principal.session_arn.rsplit("/", 1)[-1],)
        if principal.kind == "root":
            found["aws:principaltype"] = ("Account",)
    if _service_of(request.action) == "kms" and principal.account_id:
        # Present in every KMS request: the caller's account.
        found["kms:calleraccount"] = (principal.account_id,)
    if request.resource_account or principal.account_id:
        found["aws:resourceaccount"] = (str(request.resource_account or principal.account_id),)
    for key, value in request.context.items():
        lowered = key.lower()
        if value is None:
            found.pop(lowered, None)
        else:
            found[lowered] = _values(value)
    return found


# ---- evaluation --------------------------------------------------------------------


def evaluate(
    request: Request,
    identity_policies: Sequence[PolicySource] = (),
    resource_policy: PolicySource | None = None,
) -> Decision:
    """AWS's decision for `request`, given the caller's identity policies and the
    resource's policy (a bucket policy, a KMS key policy, or None)."""
    context = request_context(request)
    principal = request.principal
    # Key policies and role trust policies decide alone (an IAM Allow without
    # them gives nothing); naming the account hands the decision to IAM.
    kms = _service_of(request.action) == "kms" or _assumes_role(request)
    resource_account = (
        request.resource_account or _account(request.resource) or (principal.account_id)
    )
    same_account = principal.account_id is not None and principal.account_id == resource_account
    # Identity policies do not apply to the root user, services or anonymous callers.
    identity = list(identity_policies) if principal.kind in ("user", "role") else []

    results = [
        _evaluate_source(source, request, context, resource_side=False) for source in identity
    ]
    identity_allow = [ref for r in results for ref in r.allows]
    identity_unknown = any(r.unknown_allow for r in results)
    resource = (
        _evaluate_source(resource_policy, request, context, resource_side=True)
        if resource_policy is not None
        else _SourceResult()
    )
    results.append(resource)
    deny = [ref for r in results for ref in r.denies]
    deny_unknown = any(r.unknown_deny for r in results)
    unknowns = tuple(dict.fromkeys(why for r in results for why in r.unknowns))

    # The owner's root user is never bound by its bucket policy for these three.
    if (
        principal.kind == "root"
        and same_account
        and request.action.lower() in _ROOT_BUCKET_POLICY_ACTIONS
    ):
        return Decision(ALLOW, (), unknowns, "the root user can always manage its bucket policy")
    if deny:
        return Decision(EXPLICIT_DENY, tuple(deny), unknowns, f"denied by {_join(deny)}")

    direct = resource.allows  # the resource policy names this caller, or everyone
    delegating = resource.account_allows  # ... or the caller's account
    allow_refs: list[StatementRef] = []
    allowed: Tri
    no_allow = "no statement allows it"
    # The caller's own IAM side: the root user, services and anonymous callers
    # have no identity policies to consult (the root holds every right of its
    # account, so another account's resource policy naming it is enough).
    iam_side: Tri = (
        (True if identity_allow else (None if identity_unknown else False))
        if principal.kind in ("user", "role")
        else True
    )
    resource_direct: Tri = True if direct else (None if resource.unknown_allow else False)
    resource_delegates: Tri = True if delegating else (None if resource.unknown_account else False)
    if kms:
        # The key policy decides; naming the account hands the decision to IAM.
        # Another account needs the key policy *and* its own IAM policies, even
        # when the key policy names its user or role
        # (https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-modifying-external-accounts.html:
        # "Neither the key policy nor the IAM policy alone is sufficient").
        if same_account:
            allow_refs = [*direct] if direct else [*delegating, *identity_allow]
            allowed = _or([resource_direct, _and([resource_delegates, iam_side])])
        else:
            allow_refs = [*direct, *delegating, *identity_allow]
            allowed = _and([_or([resource_direct, resource_delegates]), iam_side])
        no_allow = (
            "the key (or trust) policy allows neither this caller nor, through IAM, its account"
        )
    elif principal.kind == "root" and same_account:
        allowed = True  # the root user holds every right of its own account
    elif same_account or principal.kind in ("service", "anonymous"):
        allow_refs = [*identity_allow, *direct]
        if allow_refs:
            allowed = True
        else:
            allowed = None if (identity_unknown or resource.unknown_allow) else False
    else:
        # Another account: its IAM policies and this resource policy must both allow.
        allow_refs = [*identity_allow, *direct, *delegating]
        allowed = _and([iam_side, _or([resource_direct, resource_delegates])])
        no_allow = "another account's request needs an Allow on both sides"
    if allowed is False:
        # Denied either way; an unreadable Deny could only make it explicit.
        return Decision(IMPLICIT_DENY, (), unknowns, no_allow)
    if allowed is None or deny_unknown:
        reason = "; ".join(unknowns) or "a policy could not be evaluated"
        return Decision(UNKNOWN, tuple(allow_refs), unknowns, reason)
    if not allow_refs:
        return Decision(ALLOW, (), unknowns, "the root user holds every right of its account")
    return Decision(ALLOW, tuple(allow_refs), unknowns, f"allowed by {_join(allow_refs)}")


@dataclass
class _SourceResult:
    allows: list[StatementRef] = field(default_factory=list)
    # Resource side only: Allows that name the caller's account (delegation to IAM).
    account_allows: list[StatementRef] = field(default_factory=list)
    denies: list[StatementRef] = field(default_factory=list)
    unknowns: list[str] = field(default_factory=list)
    unknown_allow: bool = False
    unknown_deny: bool = False
    unknown_account: bool = False


def _evaluate_source(
    source: PolicySource,
    request: Request,
    context: Mapping[str, tuple[str, ...]],
    *,
    resource_side: bool,
) -> _SourceResult:
    result = _SourceResult()
    if source.document is None:
        result.unknown_allow = result.unknown_deny = True
        result.unknowns.append(f"{source.label} was not read (it may allow or deny anything)")
        return result
    for index, statement in enumerate(_statement_list(source.document)):
        if not isinstance(statement, Mapping):
            result.unknown_allow = result.unknown_deny = True
            result.unknowns.append(f"statement #{index + 1} of {source.label} is not an object")
            continue
        effect = statement.get("Effect")
        sid = statement.get("Sid") if isinstance(statement.get("Sid"), str) else None
        ref = StatementRef(source.label, index, sid, str(effect))
        if effect not in ("Allow", "Deny"):
            result.unknown_allow = result.unknown_deny = True
            result.unknowns.append(f"{ref} has no valid Effect")
            continue
        if resource_side:
            names = _principal_matches(statement, request.principal, effect == "Deny")
        else:
            names = "direct"
        if names is False:
            continue
        applies = _and(
            [
                _action_matches(statement, request.action),
                _resource_matches(statement, request.resource, context)
                if resource_side is False or "Resource" in statement or "NotResource" in statement
                # A role's trust policy names no Resource: it is about the role.
                else True,
            ]
        )
        if applies is False:
            continue
        condition = _condition_holds(statement.get("Condition"), context, request)
        verdict = _and([applies, condition.value])
        if verdict is False:
            continue
        if names is None or verdict is None:
            what = "whether its principal names the caller" if names is None else condition.why
            result.unknowns.append(f"{ref}: cannot tell {what or 'whether it applies'}")
            if effect == "Deny":
                result.unknown_deny = True
            elif names == "account":
                result.unknown_account = True
            else:
                result.unknown_allow = True
            continue
        if effect == "Deny":
            result.denies.append(ref)
        elif names == "account":
            result.account_allows.append(ref)
        else:
            result.allows.append(ref)
    return result


def may_apply(statement: Mapping[str, Any], action: str, resource: str) -> bool:
    """Whether a statement could apply to `action` on `resource` at all: its
    Action and Resource only, conditions ignored, policy variables and anything
    not understood taken as matching. False is certain; True means "evaluate"."""
    matches = _action_matches(statement, action)
    if matches is False:
        return False
    patterns = _values(statement.get("Resource", statement.get("NotResource", ())))
    if any("${" in p for p in patterns):
        return True
    return _resource_matches(statement, resource, {}) is not False


def may_cover_action(statement: Mapping[str, Any], action: str) -> bool:
    """Whether a statement's Action (or NotAction) could name `action`, whatever
    its resources and conditions; a statement with neither may."""
    return _action_matches(statement, action) is not False


# ---- statement parts ---------------------------------------------------------------


def _principal_matches(
    statement: Mapping[str, Any], principal: Principal, deny: bool
) -> Literal["direct", "account", False] | None:
    """Whether a resource policy statement names the caller: "direct" (the caller
    itself, or everyone), "account" (its account: delegation to IAM), False, or
    None (cannot tell)."""
    if "NotPrincipal" in statement:
        listed = _principal_values(statement["NotPrincipal"])
        if listed is None:
            return None
        mine = _named_in(listed, principal)
        if mine is False:
            return "direct"  # anyone not named at all is covered
        # With a Deny, AWS asks to name the caller *and* its account ("you must
        # also specify the account ARN of the not-denied principal"), a role's
        # session ARN as well as the role:
        # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notprincipal.html
        # Named that way, the caller is spared; named only in part, not modelled.
        aws = listed.get("AWS", ())
        account_named = principal.account_id is not None and any(
            p
            in (
                principal.account_id,
                f"arn:{_partition(principal.arn)}:iam::{principal.account_id}:root",
            )
            for p in aws
        )
        if principal.kind == "root" and account_named:
            return False
        itself = principal.session_arn or principal.arn
        if itself in aws and account_named:
            return False
        if itself not in aws and principal.kind != "root" and mine == "account":
            # AWS's own example: [Bob, Bob's account] denies everyone but Bob.
            return "direct"
        return None
    if "Principal" not in statement:
        return None
    listed = _principal_values(statement["Principal"])
    if listed is None:
        return None
    named = _named_in(listed, principal)
    if named == "direct":
        return "direct"
    if named == "account":
        # A Deny to the account reaches everyone in it; an Allow delegates.
        return "direct" if deny or principal.kind == "root" else "account"
    return named


def _principal_values(value: Any) -> dict[str, tuple[str, ...]] | None:
    if value == "*":
        return {"AWS": ("*",)}
    if isinstance(value, Mapping):
        return {str(kind): _values(items) for kind, items in value.items()}
    return None


def _named_in(
    listed: Mapping[str, tuple[str, ...]], principal: Principal
) -> Literal["direct", "account", False] | None:
    aws = listed.get("AWS", ())
    if "*" in aws:
        return "direct"
    if principal.kind == "service":
        return "direct" if principal.arn in listed.get("Service", ()) else False
    if principal.kind == "anonymous":
        return False
    if principal.identifiers().intersection(aws):
        return "direct"
    account = principal.account_id
    if account and any(
        p in (account, f"arn:{_partition(principal.arn)}:iam::{account}:root") for p in aws
    ):
        return "account"
    if any(kind not in ("AWS", "Service", "Federated") for kind in listed):
        # A CanonicalUser may be this account's canonical id: not modelled.
        return None
    return False


def _action_matches(statement: Mapping[str, Any], action: str) -> Tri:
    if "Action" in statement:
        return any(_glob(p, action, ignore_case=True) for p in _values(statement["Action"]))
    if "NotAction" in statement:
        return not any(_glob(p, action, ignore_case=True) for p in _values(statement["NotAction"]))
    return None


def _resource_matches(
    statement: Mapping[str, Any], resource: str, context: Mapping[str, tuple[str, ...]]
) -> Tri:
    if "Resource" in statement:
        patterns, negate = _values(statement["Resource"]), False
    elif "NotResource" in statement:
        patterns, negate = _values(statement["NotResource"]), True
    else:
        return None
    matched = False
    for pattern in patterns:
        expanded = _substitute(pattern, context, in_resource=True)
        if expanded is None:
            continue  # a variable without a value matches nothing
        if _glob(expanded, resource, ignore_case=False):
            matched = True
            break
    return not matched if negate else matched


@dataclass(frozen=True)
class _ConditionResult:
    value: Tri
    why: str = ""


def _condition_holds(
    condition: Any, context: Mapping[str, tuple[str, ...]], request: Request
) -> _ConditionResult:
    if condition is None:
        return _ConditionResult(True)
    if not isinstance(condition, Mapping):
        return _ConditionResult(None, "a Condition that is not an object")
    results: list[Tri] = []
    why = ""
    for operator, block in condition.items():
        if not isinstance(block, Mapping):
            results.append(None)
            why = f"the {operator} block"
            continue
        for key, wanted in block.items():
            value = _test(str(operator), str(key), _values(wanted), context)
            results.append(value)
            if value is None and not why:
                why = f"{operator} on {key}"
    return _ConditionResult(_and(results), why)


_NEGATED = {
    "StringNotEquals",
    "StringNotEqualsIgnoreCase",
    "StringNotLike",
    "NumericNotEquals",
    "DateNotEquals",
    "ArnNotEquals",
    "ArnNotLike",
    "NotIpAddress",
}


def _test(
    operator: str, key: str, wanted: tuple[str, ...], context: Mapping[str, tuple[str, ...]]
) -> Tri:
    """One operator on one key (AWS's absent-key rules included)."""
    qualifier = ""
    base = operator
    for prefix in ("ForAnyValue:", "ForAllValues:"):
        if base.startswith(prefix):
            qualifier, base = prefix[:-1], base[len(prefix) :]
    if_exists = base.endswith("IfExists") and base != "IfExists"
    if if_exists:
        base = base[: -len("IfExists")]
    present = context.get(key.lower())
    if base == "Null":
        if qualifier or if_exists or len(wanted) != 1 or wanted[0].lower() not in ("true", "false"):
            return None
        return (present is None) == (wanted[0].lower() == "true")
    matcher = _MATCHERS.get(base.removeprefix("Not") if base == "NotIpAddress" else _positive(base))
    if matcher is None:
        return None
    negated = base in _NEGATED
    if present is None or (qualifier and not present):
        if if_exists:
            return True
        if qualifier == "ForAllValues":
            return True
        if qualifier == "ForAnyValue":
            return False
        return negated
    # ${*} and ${?} stand for a literal * and ?; only the Like operators (and
    # the Arn ones, which take wildcards) must keep them apart from wildcards.
    wildcards = _positive(base) in ("StringLike", "ArnLike", "ArnEquals")
    values = []
    for item in wanted:
        expanded = _substitute(item, context, in_resource=False)
        if expanded is not None:
            if not wildcards:
                expanded = expanded.replace("\x00", "*").replace("\x01", "?")
            values.append(expanded)
    if len(values) != len(wanted) and not values:
        return None if negated else False

    def one(actual: str) -> Tri:
        hits = [matcher(actual, w) for w in values]
        if any(h is True for h in hits):
            hit: Tri = True
        elif any(h is None for h in hits):
            hit = None
        else:
            hit = False
        if hit is None:
            return None
        return (not hit) if negated else hit

    results = [one(actual) for actual in present]
    if qualifier == "ForAllValues":
        return _and(results)
    if qualifier == "ForAnyValue" or len(present) == 1:
        return _or(results)
    # A multivalued key without a set operator: AWS's answer is not defined.
    return None


def _positive(base: str) -> str:
    for negated, positive in (
        ("StringNotEqualsIgnoreCase", "StringEqualsIgnoreCase"),
        ("StringNotEquals", "StringEquals"),
        ("StringNotLike", "StringLike"),
        ("NumericNotEquals", "NumericEquals"),
        ("DateNotEquals", "DateEquals"),
        ("ArnNotEquals", "ArnEquals"),
        ("ArnNotLike", "ArnLike"),
    ):
        if base == negated:
            return positive
    return base


def _string_equals(actual: str, wanted: str) -> Tri:
    return actual == wanted


def _string_equals_ignore_case(actual: str, wanted: str) -> Tri:
    return actual.casefold() == wanted.casefold()


def _string_like(actual: str, wanted: str) -> Tri:
    return _glob(wanted, actual, ignore_case=False)


def _arn_like(actual: str, wanted: str) -> Tri:
    got, want = actual.split(":", 5), wanted.split(":", 5)
    if len(want) != 6:
        return wanted == "*" or None
    if len(got) != 6:
        return False
    return all(_glob(w, g, ignore_case=False) for w, g in zip(want, got, strict=True))


def _bool(actual: str, wanted: str) -> Tri:
    if wanted.lower() not in ("true", "false"):
        return None
    return actual.lower() == wanted.lower()


def _numeric(compare: str) -> Any:
    def test(actual: str, wanted: str) -> Tri:
        try:
            a, w = float(actual), float(wanted)
        except ValueError:
            return None
        return _COMPARE[compare](a, w)

    return test


def _date(compare: str) -> Any:
    def test(actual: str, wanted: str) -> Tri:
        a, w = _moment(actual), _moment(wanted)
        if a is None or w is None:
            return None
        return _COMPARE[compare](a, w)

    return test


def _ip_address(actual: str, wanted: str) -> Tri:
    try:
        return ipaddress.ip_address(actual) in ipaddress.ip_network(wanted, strict=False)
    except ValueError:
        return None


_COMPARE: dict[str, Any] = {
    "Equals": lambda a, b: a == b,
    "LessThan": lambda a, b: a < b,
    "LessThanEquals": lambda a, b: a <= b,
    "GreaterThan": lambda a, b: a > b,
    "GreaterThanEquals": lambda a, b: a >= b,
}

_MATCHERS: dict[str, Any] = {
    "StringEquals": _string_equals,
    "StringEqualsIgnoreCase": _string_equals_ignore_case,
    "StringLike": _string_like,
    "ArnEquals": _arn_like,
    "ArnLike": _arn_like,
    "Bool": _bool,
    "BinaryEquals": _string_equals,
    "IpAddress": _ip_address,
    **{f"Numeric{name}": _numeric(name) for name in _COMPARE},
    **{f"Date{name}": _date(name) for name in _COMPARE},
}


# ---- small helpers -----------------------------------------------------------------

_VARIABLE = re.compile(r"\$\{([^}]*)\}")


def _substitute(
    text: str, context: Mapping[str, tuple[str, ...]], *, in_resource: bool
) -> str | None:
    """`text` with its policy variables replaced; None when one has no value."""
    if "${" not in text:
        return text
    missing = False

    def replace(match: re.Match[str]) -> str:
        nonlocal missing
        inner = match.group(1).strip()
        if inner in ("*", "?", "$"):
            # ${*} is a literal asterisk: escaped so the glob does not expand it.
            return {"*": "\x00", "?": "\x01", "$": "$"}[inner]
        name, _, default = inner.partition(",")
        values = context.get(name.strip().lower())
        if values and len(values) == 1:
            return values[0]
        default = default.strip()
        if len(default) >= 2 and default[0] == default[-1] == "'":
            return default[1:-1]
        missing = True
        return ""

    result = _VARIABLE.sub(replace, text)
    return None if missing else result


@lru_cache(maxsize=4096)
def _glob_regex(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    parts = []
    for char in pattern:
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        elif char == "\x00":
            parts.append(re.escape("*"))
        elif char == "\x01":
            parts.append(re.escape("?"))
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), (re.IGNORECASE if ignore_case else 0) | re.DOTALL)


def _glob(pattern: str, value: str, *, ignore_case: bool) -> bool:
    """IAM wildcards: `*` any run of characters, `?` exactly one."""
    if pattern == "*":
        return True
    return _glob_regex(pattern, ignore_case).fullmatch(value) is not None


def _and(values: Iterable[Tri]) -> Tri:
    result: Tri = True
    for value in values:
        if value is False:
            return False
        if value is None:
            result = None
    return result


def _or(values: Iterable[Tri]) -> Tri:
    result: Tri = False
    for value in values:
        if value is True:
            return True
        if value is None:
            result = None
    return result


def _values(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, (list, tuple)) else [value]
    return tuple(_text(item) for item in items if item is not None)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _statement_list(document: Mapping[str, Any]) -> list[Any]:
    raw = document.get("Statement")
    if raw is None:
        return []
    return [raw] if isinstance(raw, Mapping) else list(raw) if isinstance(raw, list) else [raw]


def _account(arn: str) -> str | None:
    """An ARN's account id; None for none (S3) or AWS's own (`iam::aws:policy`)."""
    account = arns.account_of(arn)
    return account if account.isdigit() else None


_partition = arns.partition_of


def _assumes_role(request: Request) -> bool:
    return (
        request.action.lower()
        in (
            "sts:assumerole",
            "sts:assumerolewithsaml",
            "sts:assumerolewithwebidentity",
            "sts:tagsession",
        )
        and ":role/" in request.resource
    )


def _service_of(action: str) -> str:
    return action.partition(":")[0].lower()


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _moment(text: str) -> datetime | None:
    try:
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return datetime.fromtimestamp(float(text), tz=timezone.utc)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _join(refs: Sequence[StatementRef]) -> str:
    return "; ".join(str(ref) for ref in refs)
