"""What the user asks (person, device, groups, profile, store, MFA) and what it
resolves to, checked against the account."""

from __future__ import annotations

import re
import socket
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

from keyhygiene.aws.sessions import (
    DEFAULT_REGION,
)
from keyhygiene.core.aws_limits import (
    MAX_GROUPS_PER_USER,
    MAX_TAG_VALUE,
    MAX_USER_NAME,
    check_iam_name,
)
from keyhygiene.core.errors import BadInput
from keyhygiene.core.mfa_devices import groups_wanting_mfa
from keyhygiene.core.model import (
    DEVICES_GROUP,
    TAG_DEVICE,
    TAG_ENROLLED,
    TAG_HOSTNAME,
    TAG_PERSON,
    TAG_ROTATE_EVERY,
    Snapshot,
)
from keyhygiene.local import credentials_file
from keyhygiene.steps.whitelists import (
    check_whole_account,
    user_arn,
)
from keyhygiene.workflows.enrollment.model import (
    _PERSON,
    _PROFILE,
    _REGION,
    _TAG_VALUE_UNSAFE,
    DEFAULT_DEVICE,
)


@dataclass(frozen=True)
class EnrollmentRequest:
    """What the person asked for. Unset fields get their defaults in `resolve`."""

    person: str
    device: str | None = None  # default: a slug of the host name
    groups: tuple[str, ...] = ()
    profile_name: str | None = None  # default: the user name
    region: str | None = None  # default: us-east-1
    hostname: str = field(default_factory=socket.gethostname)
    enrolled_on: date | None = None  # default: today (UTC)
    credentials_file: str | None = None  # default: the file botocore reads
    config_file: str | None = None
    endpoint_url: str | None = None  # for the key check (moto, LocalStack)
    # Profiles of this computer's credentials file that hold a key already.
    profiles_in_use: frozenset[str] = frozenset()
    # Session-token keys of the file's [DEFAULT], which the new profile would
    # inherit: the write overrides them there, and the plan says so.
    default_session_keys: tuple[str, ...] = ()
    # "on", "strict", "off", or "auto": on when a chosen group's policies allow
    # IAM writes. Strict: the key does nothing at all without an MFA session.
    mfa: str = "auto"
    # Allow a keyring that loses the key at exit or keeps it in plain text
    # (`--insecure-keyring`); refused otherwise (vault.check_safe_for_the_only_key).
    insecure_keyring: bool = False
    # Where the key goes: "file" (the credentials file) or "keyring" (the OS
    # keyring, served by keyhygiene's credential_process). None: the file, or
    # the keyring for a strict computer (whose AWS CLI needs MFA sessions).
    store: str | None = None
    # The rotation schedule in days, kept in the user's keyhygiene:rotate-every
    # tag: the audit and the tree hold the computer to it (None: the default).
    rotate_every_days: int | None = None


MFA_CHOICES = ("auto", "on", "strict", "off")
STORES = ("file", "keyring")


@dataclass(frozen=True)
class Enrollment:
    """A request checked against the snapshot, every default filled in."""

    person: str
    device: str
    user_name: str
    user_arn: str
    groups: tuple[str, ...]  # chosen groups, IAM spelling, without keyhygiene-devices
    profile_name: str
    region: str
    hostname: str
    enrolled_on: str
    credentials_file: str
    config_file: str
    endpoint_url: str | None
    default_session_keys: tuple[str, ...] = ()
    mfa: bool = False
    # Why MFA is on when it was not asked for: the groups that allow IAM writes.
    mfa_because: tuple[str, ...] = ()
    rotate_every_days: int | None = None
    strict: bool = False  # nothing at all without an MFA session
    store: str = "file"

    @property
    def tags(self) -> dict[str, str]:
        tags = {
            TAG_PERSON: self.person,
            TAG_DEVICE: self.device,
            TAG_HOSTNAME: self.hostname,
            TAG_ENROLLED: self.enrolled_on,
        }
        if self.rotate_every_days:
            tags[TAG_ROTATE_EVERY] = f"{self.rotate_every_days}d"
        return tags


def device_slug(hostname: str, *, max_length: int = MAX_USER_NAME) -> str:
    """`Alice's MacBook-Pro.local` -> `alice-s-macbook-pro`: the host's first
    label, lower case, runs of other characters turned into one dash."""
    first = hostname.strip().split(".", 1)[0].lower()
    slug = re.sub(r"[^a-z0-9]+", "-", first).strip("-")
    slug = slug[:max_length].rstrip("-")
    return slug or DEFAULT_DEVICE[:max_length]


def user_name_for(person: str, device: str) -> str:
    return f"{person}-{device}"


def proposed_device(person: str, hostname: str) -> str:
    """The default device name: the host name's slug, cut so that the user name fits."""
    room = max(1, MAX_USER_NAME - len(person) - 1)
    return device_slug(hostname, max_length=room)


def resolve(snapshot: Snapshot, request: EnrollmentRequest) -> Enrollment:
    """Check the request against the account; raise `BadInput` saying what is wrong."""
    _check_account_readable(snapshot, request.groups)
    person = request.person.strip()
    _check_person(person)
    device = (request.device or "").strip() or proposed_device(person, request.hostname)
    _check_device(device)
    user_name = user_name_for(person, device)
    if len(user_name) > MAX_USER_NAME:
        raise BadInput(
            f"The user name {user_name!r} is {len(user_name)} characters; IAM allows "
            f"{MAX_USER_NAME}.",
            hint="Use a shorter --device.",
        )
    _check_user_is_new(snapshot, user_name)
    groups = _checked_groups(snapshot, request.groups)
    profile = (request.profile_name or "").strip() or user_name
    _check_profile(profile, request.profiles_in_use)
    region = (request.region or "").strip() or DEFAULT_REGION
    if not _REGION.match(region):
        raise BadInput(f"{region!r} is not an AWS region name (like eu-west-1).")
    enrolled = request.enrolled_on or datetime.now(timezone.utc).date()
    if request.mfa not in MFA_CHOICES:
        raise BadInput(f"MFA is one of {', '.join(MFA_CHOICES)}, not {request.mfa!r}.")
    wanting = tuple(groups_wanting_mfa(snapshot, groups))
    strict = request.mfa == "strict"
    mfa = strict or request.mfa == "on" or (request.mfa == "auto" and bool(wanting))
    store = _checked_store(request.store, strict=strict)
    return Enrollment(
        person=person,
        device=device,
        user_name=user_name,
        user_arn=user_arn(snapshot, user_name),
        groups=groups,
        profile_name=profile,
        region=region,
        hostname=_tag_value(request.hostname.strip() or "unknown"),
        enrolled_on=enrolled.isoformat(),
        credentials_file=str(request.credentials_file or credentials_file.credentials_path()),
        config_file=str(request.config_file or credentials_file.config_path()),
        endpoint_url=request.endpoint_url or None,
        default_session_keys=request.default_session_keys,
        mfa=mfa,
        mfa_because=wanting if request.mfa == "auto" else (),
        rotate_every_days=request.rotate_every_days,
        strict=strict,
        store=store,
    )


def _checked_store(store: str | None, *, strict: bool) -> str:
    if store is None:
        return "keyring" if strict else "file"
    if store not in STORES:
        raise BadInput(f"--store is one of {', '.join(STORES)}, not {store!r}.")
    if strict and store == "file":
        raise BadInput(
            "A strict computer's key does nothing without an MFA session, and the AWS CLI "
            "cannot make one from a key in the credentials file.",
            hint="Keep the key in the keyring (--store keyring, the default for --mfa-strict), "
            "whose credential_process serves MFA sessions; or use --mfa.",
        )
    return store


def _check_account_readable(snapshot: Snapshot, groups: Collection[str]) -> None:
    """Refuse to plan from a snapshot that missed what the plan depends on.

    Without IAM, "user exists?" and "unknown group" cannot be answered; without
    the bucket or key list, resources tagged for a group would be silently left
    out of the whitelist updates. The problem's message names the permission.
    """
    if any(name.strip() for name in groups):
        # Every bucket and key list, and their tags: one unread could be a
        # whitelist the new computer must join.
        check_whole_account(snapshot)
    for problem in snapshot.problems:
        if problem.what == "IAM users, groups and roles":
            raise BadInput(
                f"Could not read the {problem.what}: {problem.message}",
                hint="Enrollment needs to see the whole account; fix that and retry.",
            )


def _check_person(person: str) -> None:
    if not person:
        raise BadInput("Say whose computer this is: --person NAME (for example alice).")
    if not _PERSON.match(person):
        raise BadInput(
            f"{person!r} cannot be a person's name here: use letters, digits and _+=,.@ "
            "(no dash: the dash separates the person from the device in the user name).",
        )


def _check_device(device: str) -> None:
    # The device ends the user name, so it follows IAM's rule for names.
    check_iam_name("device", device)


def _check_user_is_new(snapshot: Snapshot, user_name: str) -> None:
    existing = snapshot.user(user_name)
    if existing is None:
        return
    same = "" if existing.name == user_name else f" (as {existing.name}: IAM ignores case)"
    enrolled = existing.tags.get(TAG_ENROLLED)
    since = f", enrolled {enrolled}" if enrolled else ""
    raise BadInput(
        f"The user {user_name} exists already{same}{since}: a computer is enrolled once, "
        "and keyhygiene will not take over another computer's user.",
        hint="Pick another --device for this computer; to give an enrolled computer a new "
        "key, rotate it from that computer.",
    )


def _checked_groups(snapshot: Snapshot, wanted: Collection[str]) -> tuple[str, ...]:
    names: dict[str, None] = {}
    unknown = []
    for raw in wanted:
        name = raw.strip()
        if not name:
            continue
        group = snapshot.group(name)
        if group is None:
            unknown.append(name)
        elif group.name != DEVICES_GROUP:
            names[group.name] = None
    if unknown:
        known = ", ".join(g.name for g in snapshot.groups if g.name != DEVICES_GROUP) or "none"
        raise BadInput(
            f"Unknown group{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}. "
            f"The account's groups: {known}.",
        )
    if len(names) + 1 > MAX_GROUPS_PER_USER:
        raise BadInput(
            f"A user can be in at most {MAX_GROUPS_PER_USER} groups; this asks for "
            f"{len(names)} plus {DEVICES_GROUP}."
        )
    return tuple(names)


def _check_profile(profile: str, in_use: Collection[str]) -> None:
    if not _PROFILE.match(profile):
        raise BadInput(
            f"{profile!r} cannot be a profile name here: use letters, digits and _+=,.@-."
        )
    if profile in in_use:
        raise BadInput(
            f"The profile {profile!r} in this computer's credentials file holds a key already; "
            "keyhygiene will not overwrite it.",
            hint="Choose another --profile-name, or remove that profile first.",
        )


def _tag_value(text: str) -> str:
    return _TAG_VALUE_UNSAFE.sub("-", text)[:MAX_TAG_VALUE]
