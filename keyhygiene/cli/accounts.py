"""Which accounts a run is about: the connection flags, repeated or not, the
config file's accounts, or an organization.

- No repeated flag, no `--account`, no `--organization` and no config file:
  one account, as keyhygiene always did.
- `--profile` / `--admin-profile` repeated: one account per value (paired by
  position when both are repeated).
- Otherwise the config file's `[[accounts]]` (all of them, or those named by
  `--account`), or, with `--organization` or an `[organization]` table,
  every active member account through its role.

A command that changes one account (enroll, rotate, grant, app...) needs
exactly one; the views (the TUI, inventory, audit) and `revoke --all-accounts`
take them all.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from keyhygiene.core.accounts import DEFAULT_ORGANIZATION_ROLE, AccountSpec, choose_account
from keyhygiene.core.errors import BadInput
from keyhygiene.core.options import ConnectionOptions
from keyhygiene.local.accounts_config import OrganizationConfig, read_accounts_config


def _flag_list(args: argparse.Namespace, name: str) -> list[str]:
    value = getattr(args, name, None)
    if value is None:
        return []
    return [value] if isinstance(value, str) else [v for v in value if v]


def _overlay(options: ConnectionOptions, args: argparse.Namespace) -> ConnectionOptions:
    """--region and --endpoint-url given on the command line reach every account."""
    region = getattr(args, "region", None)
    endpoint = getattr(args, "endpoint_url", None)
    return replace(
        options,
        region=region or options.region,
        endpoint_url=endpoint or options.endpoint_url,
    )


def _single(args: argparse.Namespace, profile: str | None, admin: str | None) -> ConnectionOptions:
    return ConnectionOptions(
        profile=profile,
        admin_profile=admin,
        region=getattr(args, "region", None),
        endpoint_url=getattr(args, "endpoint_url", None),
    )


def _once(args: argparse.Namespace) -> AccountSpec:
    """The one account --profile / --admin-profile (each at most once) name."""
    profiles = _flag_list(args, "profile")
    admins = _flag_list(args, "admin_profile")
    options = _single(args, profiles[0] if profiles else None, admins[0] if admins else None)
    return AccountSpec(name=options.admin_profile or options.profile_name, options=options)


def _from_flags(args: argparse.Namespace) -> list[AccountSpec] | None:
    """The accounts the repeated flags name; None when they name at most one."""
    profiles = _flag_list(args, "profile")
    admins = _flag_list(args, "admin_profile")
    if len(profiles) <= 1 and len(admins) <= 1:
        return None
    if len(profiles) > 1 and len(admins) > 1:
        if len(profiles) != len(admins):
            raise BadInput(
                f"{len(profiles)} --profile and {len(admins)} --admin-profile were given.",
                hint="Give them in pairs (the n-th --admin-profile reads the account of the "
                "n-th --profile), or repeat only one of them.",
            )
        pairs: list[tuple[str | None, str | None]] = list(zip(profiles, admins, strict=True))
    elif len(admins) > 1:
        # This computer's one profile belongs to (at most) one of the accounts.
        pairs = [(profiles[0] if profiles else None, admin) for admin in admins]
    else:
        if admins:
            raise BadInput(
                "One --admin-profile was given for several --profile.",
                hint="Give one --admin-profile per --profile, in the same order.",
            )
        pairs = [(profile, None) for profile in profiles]
    names = [admin or profile or "default" for profile, admin in pairs]
    if len(set(names)) != len(names):
        raise BadInput("The same profile was given twice for two accounts.")
    return [
        AccountSpec(
            name=name,
            options=replace(_single(args, profile, admin), computer_key=profile is not None),
        )
        for name, (profile, admin) in zip(names, pairs, strict=True)
    ]


def _organization(
    args: argparse.Namespace, configured: OrganizationConfig | None
) -> OrganizationConfig | None:
    """The organization to list: --organization (its profile from the flags,
    else the config file's), or the config file's [organization] when no
    profile was named outright."""
    named = bool(_flag_list(args, "profile") or _flag_list(args, "admin_profile"))
    if getattr(args, "organization", False):
        if named or configured is None:
            options = _once(args).options
        else:
            options = _overlay(configured.options, args)
        role = getattr(args, "org_role", None) or (configured.role_name if configured else None)
        return OrganizationConfig(
            options,
            role_name=role or DEFAULT_ORGANIZATION_ROLE,
            devices=configured.devices if configured else None,
        )
    if configured is None or named:
        return None
    role = getattr(args, "org_role", None)
    return replace(
        configured,
        options=_overlay(configured.options, args),
        role_name=role or configured.role_name,
    )


def account_specs(args: argparse.Namespace) -> list[AccountSpec]:
    """Every account this run is about, in the order given (reads the config
    file; lists the organization's accounts, one AWS call, when asked to)."""
    wanted = _flag_list(args, "account")
    flagged = _from_flags(args)
    if flagged is not None:
        return _chosen(flagged, wanted, "the --profile/--admin-profile given")
    named = bool(_flag_list(args, "profile") or _flag_list(args, "admin_profile"))
    if named and not getattr(args, "organization", False):
        # One account named outright: the config file is not read at all, so
        # that a broken one never breaks `credential-process` under the aws CLI.
        return _chosen([_once(args)], wanted, "the --profile/--admin-profile given")
    config = read_accounts_config()
    organization = _organization(args, config.organization)
    if organization is not None:
        from keyhygiene.aws.accounts import organization_accounts

        members = organization_accounts(
            organization.options, role_name=organization.role_name, devices=organization.devices
        )
        return _chosen(members, wanted, "the organization")
    if config.accounts:
        specs = [replace(s, options=_overlay(s.options, args)) for s in config.accounts]
        return _chosen(specs, wanted, str(config.path))
    if wanted:
        raise BadInput(
            f"--account {wanted[0]} was given, but {config.path} lists no accounts.",
            hint="Add [[accounts]] to the config file (see the README, 'Several accounts'), "
            "or use --profile / --admin-profile.",
        )
    return [_once(args)]


def _chosen(specs: list[AccountSpec], wanted: list[str], where: str) -> list[AccountSpec]:
    if not wanted:
        return specs
    chosen = []
    for name in wanted:
        spec = choose_account(specs, name)
        if spec is None:
            known = ", ".join(s.name for s in specs) or "none"
            raise BadInput(
                f"There is no account {name!r} in {where}.",
                hint=f"Known accounts: {known}.",
            )
        if spec not in chosen:
            chosen.append(spec)
    return chosen


def one_account(args: argparse.Namespace) -> AccountSpec:
    """The one account a changing command works on."""
    specs = account_specs(args)
    if len(specs) == 1:
        return specs[0]
    names = " | ".join(s.name for s in specs)
    raise BadInput(
        f"This command changes one account, and {len(specs)} are named ({names}).",
        hint="Say which with --account NAME (or give --profile / --admin-profile once).",
    )
