"""The hygiene audit: every departure from the practice, as findings.

The audit reads one `Snapshot` and makes no AWS call of its own, so auditing a
500-user account costs nothing beyond the inventory that was already loaded.
The rules live in `keyhygiene.audit.rules` (account) and `keyhygiene.audit.local_checks` (this
computer); this module holds the `Finding` model, the severities and what the
tree, the findings screen and `keyhygiene audit` need around them.

Severities, rule by rule (the "why" is in each rule's docstring):

| id                          | severity | what it means                                              |
|-----------------------------|----------|------------------------------------------------------------|
| root.access-keys            | critical | the root user has access keys                              |
| root.no-mfa                 | critical | the root user has no MFA                                   |
| user.several-active-keys    | high     | more than one active key on one user                       |
| user.key-too-old            | medium   | an active key older than the rotation age (90 days)        |
| user.key-unused             | medium   | an active key unused for the unused age (45 days; a key    |
|                             |          | never used counts from its creation)                       |
| user.not-person-device      | medium   | a user not named `<person>-<device>`                       |
| user.missing-device-tags    | low      | a person-device user lacking a device tag                  |
| user.direct-policy          | medium   | policies attached straight to a user (keyhygiene's own     |
|                             |          | `keyhygiene-expiry` and `keyhygiene-revoked` excepted)     |
| iam.admin-like-policy       | high     | `*` on `*` on a user, role or group other than `admins`    |
| user.expired-grant          | high     | an expired temporary grant, still a member; medium when    |
|                             |          | the `keyhygiene-expiry` deny is in place; low when only    |
|                             |          | the tag is left                                            |
| user.unreadable-grant       | low      | a grant tag whose expiry is not an ISO time                |
| user.revoked-still-listed   | high     | a revoked user still in a group or a whitelist             |
| user.revoked-active-key     | high     | a revoked user with an active key                          |
| whitelist.missing           | medium   | a group member or role missing from a resource's whitelist |
|                             |          | (a computer that cannot work: availability, not exposure)  |
| whitelist.extra             | high     | a whitelist naming someone outside the group and its roles |
| whitelist.reach-beyond      | high     | on AWS's rules, someone not whitelisted can use a tagged   |
|                             |          | bucket's data (and decrypt it) or its key                  |
| whitelist.reach-short       | medium   | a whitelisted principal is denied after all                |
| policy.upload-denied        | high     | a bucket policy denies plain or multipart uploads          |
| policy.bucket-deny-old      | high     | keyhygiene 0.1's deny of all S3 (services, other admins)   |
| policy.key-not-exclusive    | high     | a tagged key usable through IAM by anyone allowed          |
|                             |          | kms:Decrypt (medium while nobody is); see audit_policies   |
| policy.expiry-unguarded     | high     | a loan from before the expiry guard that its borrower's    |
|                             |          | IAM rights let it delete                                   |
| bucket.no-default-kms       | medium   | no default SSE-KMS (AWS still applies SSE-S3 since 2023)   |
| bucket.no-unencrypted-deny  | low      | no deny of uploads asking for another encryption           |
| bucket.public-access-block  | medium   | the public access block not fully on                       |
| bucket.public               | critical | public through its policy or ACL; medium when the public   |
|                             |          | access block neutralises it                                |
| bucket.foreign-account      | high     | the policy grants access to another account                |
| kms.public                  | critical | the key policy allows `*` without a restricting condition  |
| kms.foreign-account         | high     | the key policy allows another account                      |
| role.foreign-trust          | high     | another account may assume the role (medium: one named     |
|                             |          | principal there)                                           |
| account.device-not-allowed  | high     | a computer with a user in an account whose `devices` list  |
|                             |          | leaves it out (several accounts only)                      |
| local.credentials-mode      | high     | the credentials file is readable or writable by others;    |
|                             |          | low when only wider for its owner (an execute bit)         |
| local.shared-key-id         | medium   | one key id in several profiles of the credentials file     |
| local.other-computers-key   | high     | a key of a user whose `keyhygiene:hostname` is another     |
|                             |          | computer                                                   |
| local.secret-in-startup-file| high     | an AWS secret in a shell start-up file (low: a key id only)|
| local.secret-in-environment | medium   | a long-term AWS secret in the environment                  |

No Textual here: the core must import without it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, get_args

from keyhygiene.core.errors import BadInput

Severity = Literal["critical", "high", "medium", "low"]
# Worst first: the index is the rank used for sorting and thresholds.
SEVERITIES: tuple[Severity, ...] = get_args(Severity)
# "overdue": fail only on a key past its schedule (user.key-too-old), whatever
# else the audit finds: a script's gate on rotation alone.
FAIL_ON_OVERDUE = "overdue"
FAIL_ON_CHOICES: tuple[str, ...] = (*SEVERITIES, FAIL_ON_OVERDUE, "never")
DEFAULT_FAIL_ON = "high"

ResourceKind = Literal["root", "user", "group", "bucket", "kms-key", "role", "local"]
RESOURCE_KINDS: tuple[ResourceKind, ...] = get_args(ResourceKind)

DEFAULT_ROTATION_AGE_DAYS = 90
DEFAULT_UNUSED_AGE_DAYS = 45


@dataclass(frozen=True)
class Finding:
    """One departure from the practice, on one resource.

    `resource` is the resource's name as the tree knows it (user, group, role
    or bucket name, the KMS key id, "root", or a file path for this computer).
    `fix` is a sentence saying what to do; it never holds a secret, and
    neither does anything else here.
    """

    id: str
    severity: Severity
    title: str
    resource: str
    detail: str
    resource_kind: ResourceKind
    fix: str | None = None
    # The account's name when several accounts are audited together.
    account: str | None = None

    def __post_init__(self) -> None:
        # A wrong severity or kind would silently sort last or never reach the
        # tree: fail where the rule is written.
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r} in finding {self.id}")
        if self.resource_kind not in RESOURCE_KINDS:
            raise ValueError(f"unknown resource kind {self.resource_kind!r} in finding {self.id}")

    @property
    def rank(self) -> int:
        """0 for critical, 3 for low."""
        return severity_rank(self.severity)

    def to_json(self) -> dict[str, str | None]:
        """What `keyhygiene audit --format json` prints for this finding."""
        return {
            "id": self.id,
            "severity": self.severity,
            "title": self.title,
            "resource": self.resource,
            "detail": self.detail,
            "resource_kind": self.resource_kind,
            "fix": self.fix,
            **({"account": self.account} if self.account is not None else {}),
        }


@dataclass(frozen=True)
class AuditSettings:
    """The thresholds of the key rules, in days."""

    rotation_age_days: int = DEFAULT_ROTATION_AGE_DAYS
    unused_age_days: int = DEFAULT_UNUSED_AGE_DAYS

    def __post_init__(self) -> None:
        for name, value in (
            ("rotation age", self.rotation_age_days),
            ("unused age", self.unused_age_days),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise BadInput(f"The {name} must be a whole number of days, 1 or more.")


def severity_rank(severity: str) -> int:
    """0 for critical … 3 for low; raises BadInput for anything else."""
    try:
        return SEVERITIES.index(severity)  # type: ignore[arg-type]
    except ValueError:
        raise BadInput(
            f"Unknown severity {severity!r}.", hint=f"Use one of: {', '.join(SEVERITIES)}."
        ) from None


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Worst first, then by resource, so the same account always prints the same."""
    return sorted(findings, key=lambda f: (f.rank, f.resource_kind, f.resource, f.id, f.title))


def at_or_above(findings: Iterable[Finding], threshold: str) -> list[Finding]:
    """The findings at `threshold` or worse; none for "never"."""
    if threshold == "never":
        return []
    if threshold == FAIL_ON_OVERDUE:
        return [f for f in findings if f.id == "user.key-too-old"]
    limit = severity_rank(threshold)
    return [f for f in findings if f.rank <= limit]


def should_fail(findings: Iterable[Finding], fail_on: str = DEFAULT_FAIL_ON) -> bool:
    """True when some finding is at or above `fail_on` (never for "never")."""
    if fail_on not in FAIL_ON_CHOICES:
        raise BadInput(
            f"Unknown --fail-on value {fail_on!r}.",
            hint=f"Use one of: {', '.join(FAIL_ON_CHOICES)}.",
        )
    return bool(at_or_above(findings, fail_on))


def findings_by_resource(findings: Iterable[Finding]) -> dict[tuple[str, str], list[Finding]]:
    """(resource_kind, resource) -> its findings, worst first: the tree's badges."""
    grouped: dict[tuple[str, str], list[Finding]] = {}
    for finding in sort_findings(findings):
        grouped.setdefault((finding.resource_kind, finding.resource), []).append(finding)
    return grouped


def worst(findings: Iterable[Finding]) -> Severity | None:
    """The worst severity among `findings`; None when there is none."""
    ranks = [f.rank for f in findings]
    return SEVERITIES[min(ranks)] if ranks else None


def count_by_severity(findings: Iterable[Finding]) -> dict[Severity, int]:
    """How many findings of each severity, every severity present (0 when none)."""
    counts: dict[Severity, int] = dict.fromkeys(SEVERITIES, 0)
    for finding in findings:
        counts[finding.severity] += 1
    return counts


def summary_line(findings: Iterable[Finding]) -> str:
    """ "3 findings: 1 critical, 2 high" or "No findings."."""
    items = list(findings)
    if not items:
        return "No findings."
    counts = count_by_severity(items)
    parts = [f"{count} {severity}" for severity, count in counts.items() if count]
    noun = "finding" if len(items) == 1 else "findings"
    return f"{len(items)} {noun}: " + ", ".join(parts)
