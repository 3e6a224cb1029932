"""What the account says before the plan: is the bucket name free, the instance profile taken."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from keyhygiene.aws.connection import error_code, translate_errors
from keyhygiene.aws.errors import ClientError
from keyhygiene.core.errors import BadInput
from keyhygiene.core.model import (
    Snapshot,
)
from keyhygiene.plans import (
    ClientProvider,
)
from keyhygiene.steps.whitelists import (
    check_whole_account,
)
from keyhygiene.workflows.application.validation import (
    validate_application_name,
    validate_new_bucket_name,
)


@dataclass(frozen=True)
class Preflight:
    """Facts the snapshot does not hold, read before planning.

    `instance_profile_roles` is None when no instance profile NAME exists,
    else the roles it holds (at most one).
    """

    instance_profile_roles: tuple[str, ...] | None = None


def preflight_application(
    clients: ClientProvider, snapshot: Snapshot, name: str, buckets: Iterable[str]
) -> Preflight:
    """Read-only checks before planning; `BadInput` when the request cannot work.

    A bucket name is global to all of S3: HeadBucket answers 403 when another
    account owns it. A bucket that answers but is not in the snapshot was made
    since the account was loaded (or lives where this identity cannot list it).
    """
    name = validate_application_name(name)
    wanted = list(dict.fromkeys(buckets))
    # What could not be read is said first: a 403 from HeadBucket would
    # otherwise read as "another account's bucket" when nothing may be read.
    check_whole_account(snapshot)
    unlisted = next((p for p in snapshot.problems if p.what == "S3 bucket list"), None)
    if unlisted is not None:
        raise BadInput(
            f"keyhygiene could not list this account's buckets ({unlisted.message}), so it "
            "cannot tell a new bucket name from one of yours. Nothing was changed.",
            hint="Reload the account with an identity allowed s3:ListAllMyBuckets.",
        )
    for bucket in wanted:
        if snapshot.bucket(bucket) is None:
            _check_bucket_free(clients, bucket)
    group = snapshot.group(name)
    profile = group.name if group else name
    return Preflight(instance_profile_roles=_instance_profile_roles(clients, profile))


def _check_bucket_free(clients: ClientProvider, bucket: str) -> None:
    validate_new_bucket_name(bucket)
    status = _head_bucket(clients, bucket)
    if status == 404:
        return
    if status == 403:
        raise BadInput(
            f"The bucket name {bucket!r} is taken by another AWS account (S3 answered "
            "HeadBucket with 403 Access Denied, and the bucket is not among this account's).",
            hint="Bucket names are global to all of S3: choose another name.",
        )
    if status == 301:
        raise BadInput(
            f"The bucket name {bucket!r} is taken (it exists in another region).",
            hint="Choose another name, or reload the account if the bucket is yours.",
        )
    raise BadInput(
        f"The bucket {bucket!r} exists but the loaded account does not list it.",
        hint="Reload the account (it may have just been created), then try again.",
    )


def _head_bucket(clients: ClientProvider, bucket: str) -> int:
    """HeadBucket's HTTP status: 200 ours, 404 free, 403 someone else's, 301 elsewhere."""
    with translate_errors(f"checking whether bucket {bucket} exists", service="s3"):
        try:
            clients.client("s3").head_bucket(Bucket=bucket)
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = error_code(exc)
            if status in (301, 403, 404):
                return int(status)
            if code in ("301", "403", "404"):
                return int(code)
            raise
    return 200


def _instance_profile_roles(clients: ClientProvider, name: str) -> tuple[str, ...] | None:
    with translate_errors(f"reading instance profile {name}", service="iam"):
        try:
            profile = clients.client("iam").get_instance_profile(InstanceProfileName=name)
        except ClientError as exc:
            if error_code(exc) == "NoSuchEntity":
                return None
            raise
    return tuple(role["RoleName"] for role in profile["InstanceProfile"].get("Roles", []))
