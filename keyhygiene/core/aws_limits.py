"""The limits and naming rules AWS enforces, in one place.

Plans check them before anything changes, so that a request AWS would refuse
half-way fails at once with a clear `BadInput` (the design's "policy size
limits" and "IAM names" rules). The numbers are IAM's and S3's documented
quotas; those AWS lets an account raise are the defaults.
"""

from __future__ import annotations

import re

from keyhygiene.core.errors import BadInput

MAX_USER_NAME = 64  # users and roles; groups and policies allow 128
MAX_GROUPS_PER_USER = 10
MAX_TAGS_PER_RESOURCE = 50  # IAM users and roles, S3 buckets, KMS keys
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256
# IAM counts the characters of all of a user's inline policies together, not
# counting white space; compact JSON without white space is what we measure.
USER_INLINE_POLICIES_LIMIT = 2_048
TRUST_POLICY_LIMIT = 2_048  # a role's trust policy, by default

# Tag keys and values: letters, digits, spaces and _.:/=+-@ (no comma, unlike names).
TAG_TEXT = re.compile(r"^[\w.:/=+\-@ ]+$")

IAM_NAME_CHARACTERS = "letters, digits and _+=,.@-"
# Users, groups, roles, policies, instance profiles.
IAM_NAME = re.compile(r"^[A-Za-z0-9_+=,.@-]+$")


def check_iam_name(kind: str, name: str) -> str:
    """`name` when IAM accepts its characters for the name of a `kind` ("user",
    "group", "device", ...); else `BadInput` saying which characters are allowed.

    Lengths differ by kind and are checked by the caller, which knows them.
    """
    if not IAM_NAME.match(name):
        article = "an" if kind[:1].lower() in ("a", "e", "i", "o", "u") else "a"
        raise BadInput(
            f"{name!r} is not a valid IAM name for {article} {kind}: use "
            f"{IAM_NAME_CHARACTERS} only (no spaces).",
        )
    return name
