"""Names of applications and new buckets, checked as AWS would."""

from __future__ import annotations

from keyhygiene.core.aws_limits import (
    check_iam_name,
)
from keyhygiene.core.errors import BadInput
from keyhygiene.workflows.application.model import (
    _APP_NAME,
    _BUCKET_PREFIXES_RESERVED,
    _BUCKET_SUFFIXES_RESERVED,
    _IP_ADDRESS,
    _NEW_BUCKET,
)


def validate_application_name(name: str) -> str:
    """The name, stripped; `BadInput` when IAM or KMS would refuse it."""
    name = (name or "").strip()
    if not name:
        raise BadInput("The application needs a name.")
    check_iam_name("application", name)
    if not _APP_NAME.match(name):
        raise BadInput(
            f"{name!r} cannot name an application: it also names a KMS alias and a role, "
            "which allow only letters, digits, '_' and '-', 64 characters at most.",
        )
    return name


def validate_new_bucket_name(name: str) -> str:
    """`BadInput` unless S3 accepts `name` for a new bucket (the current naming rules)."""
    problem = _bucket_name_problem(name)
    if problem:
        raise BadInput(f"{name!r} is not a valid name for a new bucket: {problem}.")
    return name


def _bucket_name_problem(name: str) -> str | None:
    if not 3 <= len(name) <= 63:
        return "a bucket name has 3 to 63 characters"
    if not _NEW_BUCKET.match(name):
        return (
            "use lowercase letters, digits, '.' and '-', starting and ending with a letter or digit"
        )
    if ".." in name or ".-" in name or "-." in name:
        return "a dot may not be next to another dot or a dash"
    if _IP_ADDRESS.match(name):
        return "a bucket name may not look like an IP address"
    if name.startswith(_BUCKET_PREFIXES_RESERVED):
        return "that prefix is reserved by AWS"
    if name.endswith(_BUCKET_SUFFIXES_RESERVED):
        return "that suffix is reserved by AWS"
    return None
