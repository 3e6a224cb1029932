"""Editing one profile: compute the new text, check nothing else changed, compare and swap."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from keyhygiene.core.errors import BadInput
from keyhygiene.core.formatting import shown_path
from keyhygiene.local.credentials_file import tuning
from keyhygiene.local.credentials_file.model import (
    ACCOUNT_ID_KEY,
    FILE_MODE,
    SESSION_TOKEN_KEYS,
    CredentialsFileRefused,
    Fingerprint,
    WriteResult,
    _stat_key,
)
from keyhygiene.local.credentials_file.ownership import _check_target, _owner_for
from keyhygiene.local.credentials_file.parsing import (
    _ACCOUNT_ID_RE,
    _COMMENT_PREFIXES,
    _KEY_NAME_RE,
    _OPTION_RE,
    _decode,
    _Document,
    _name,
    _parse,
    _Section,
)
from keyhygiene.local.credentials_file.paths import _resolve
from keyhygiene.local.credentials_file.profiles import _section_name_for, _target_section
from keyhygiene.local.credentials_file.reading import _defaults
from keyhygiene.local.credentials_file.safe_write import _atomic_write, _chmod, _locked
from keyhygiene.local.credentials_file.settled_read import (
    _kept_rewriting,
    _missing,
    _recent,
    _remember,
    _remembered,
    _settled_read,
    _shape,
    _Snapshot,
)

# What an edit asks, computed from the version it starts from (so that a retry
# after another writer's change asks again): keys to set, keys to remove, and
# values the target must resolve to as botocore reads it ("" also for absent).
_Request = Callable[[_Document, _Section | None], tuple[dict[str, str], set[str], dict[str, str]]]


def set_access_key(
    path: str | os.PathLike[str],
    profile: str,
    access_key_id: str,
    secret_access_key: str,
    *,
    account_id: str | None = None,
) -> WriteResult:
    """Write a long-term key into a profile of the credentials file, so that
    botocore resolves exactly that key and no session token.

    A session token of the profile's own goes. One the profile inherits from
    [DEFAULT] (botocore reads the file with configparser, so every profile
    inherits [DEFAULT]) cannot be removed from the profile: it is overridden
    with an empty value (`aws_session_token =`), which botocore's signers do
    not send; [DEFAULT] itself and the other profiles are left as they are.

    `aws_account_id` (botocore passes it with the key, for account-based
    endpoints) is kept: a rotation does not change the account. Given
    `account_id`, a different one botocore would resolve for the profile (own
    or inherited) is replaced by it. An empty override is not an option there:
    botocore treats "" as a set account id, and DynamoDB's endpoint rules then
    fail ("Credentials-sourced account ID parameter is invalid")."""
    new = {"aws_access_key_id": access_key_id, "aws_secret_access_key": secret_access_key}
    _checked_request(new, ())
    if account_id is not None and not _ACCOUNT_ID_RE.match(account_id):
        raise BadInput("An AWS account id is 12 digits.")

    def request(
        doc: _Document, section: _Section | None
    ) -> tuple[dict[str, str], set[str], dict[str, str]]:
        defaults = _defaults(doc)
        own = {key: option.value for key, option in section.options.items()} if section else {}
        wanted = dict(new)
        unwanted: set[str] = set()
        for key in SESSION_TOKEN_KEYS:
            if key in defaults:
                wanted[key] = ""
            else:
                unwanted.add(key)
        resolved = {**new, **dict.fromkeys(SESSION_TOKEN_KEYS, "")}
        if account_id is not None:
            current = own.get(ACCOUNT_ID_KEY, defaults.get(ACCOUNT_ID_KEY))
            if current is not None and current != account_id:
                wanted[ACCOUNT_ID_KEY] = account_id
                resolved[ACCOUNT_ID_KEY] = account_id
        return wanted, unwanted, resolved

    return _edit(path, profile, request, config_style=False)


def set_config_values(
    path: str | os.PathLike[str],
    profile: str,
    values: Mapping[str, str],
    remove: Iterable[str] = (),
) -> WriteResult:
    """Edit a profile of the config file (`[profile NAME]`, or `[default]`),
    e.g. `region` or `credential_process`."""
    return write_profile_values(path, profile, values, remove, config_style=True)


def write_profile_values(
    path: str | os.PathLike[str],
    profile: str,
    set_values: Mapping[str, str],
    remove: Iterable[str] = (),
    *,
    config_style: bool = False,
) -> WriteResult:
    """Set and remove settings of one profile's own section, leaving every
    other byte as is. A missing profile is appended after a blank line (not
    created when there is nothing to set). Raises `CredentialsFileRefused` or
    `BadInput` with nothing written."""
    wanted, unwanted = _checked_request(set_values, remove)
    return _edit(
        path,
        profile,
        lambda doc, section: (wanted, unwanted, {}),
        config_style=config_style,
    )


def _edit(
    path: str | os.PathLike[str], profile: str, request: _Request, *, config_style: bool
) -> WriteResult:
    """Read, edit, verify, compare-and-swap, check: see the module docstring.
    Invariant: the file is replaced only by a verified edit of the version it
    holds at the moment of the rename (as far as a stat and a digest can tell),
    and never by a result missing a name this process saw in it."""
    section_name = _section_name_for(profile, config_style)
    file = Path(path).expanduser()
    shown = shown_path(file)
    target = _resolve(file)
    with _locked(target, shown):
        deadline = time.monotonic() + tuning.SETTLE_LIMIT_SECONDS
        active = False  # another writer seems to be at work
        written = created = False
        tightened: int | None = None  # from the first version that had wider bits
        for _ in range(tuning.MAX_ATTEMPTS):
            base, settled = _settled_read(target, shown, deadline, after_write=written)
            active = active or settled
            _check_target(base, shown)
            doc = _parse(_decode(base.data or b"", shown), shown)
            section = _target_section(doc, profile, config_style)
            wanted, unwanted, resolved = request(doc, section)
            name = section.name if section else section_name
            text = _edited_text(doc, section, section_name, wanted, unwanted)
            after = _verify(doc, text, name, wanted, unwanted, resolved, shown)
            _check_nothing_lost(target, base, doc, after, name, unwanted, shown)
            _remember(target, base.fingerprint, doc)
            if tuning.after_read is not None:
                tuning.after_read()
            data = text.encode("utf-8")
            if tightened is None and base.data is not None and base.mode & ~FILE_MODE:
                tightened = base.mode
            if base.data is None and not data:
                # Nothing to write into a file that does not exist: do not create it.
                return WriteResult(file, target, created=False, changed=False)
            if base.data == data:
                if tightened is not None:
                    _chmod(target, shown)
                return WriteResult(
                    file, target, created=created, changed=written, tightened_from=tightened
                )
            ours = _atomic_write(
                target, data, shown, owner=_owner_for(target, base), expected=base.fingerprint
            )
            if ours is None:
                active = True  # changed under us: start again from the new version
                continue
            written = True
            created = created or base.data is None
            _remember(target, ours, after)
            if _edit_stayed(
                target, ours, doc, after, name, wanted, unwanted, active, deadline, shown
            ):
                return WriteResult(
                    file, target, created=created, changed=True, tightened_from=tightened
                )
            active = True
        raise _kept_rewriting(shown, written)


def _edit_stayed(
    target: Path,
    ours: Fingerprint,
    base: _Document,
    after: _Document,
    section_name: str,
    wanted: dict[str, str],
    unwanted: set[str],
    active: bool,
    deadline: float,
    shown: str,
) -> bool:
    """After the rename: is the edit still in the file? An in-place writer that
    read the old version just before the rename writes it back just after. So
    when a writer seems active, watch the file: it is safe once another
    version holding the edit appears (that writer read after the rename, and
    its later writes start from there) or once it stayed ours for
    tuning.RECHECK_SECONDS; a version without the edit means redo.

    A version that lost the edit and nothing else (the older version written
    back) becomes what was seen, so that the redo can start from it; any other
    loss is left for the next edit's guard."""
    if tuning.after_replace is not None:
        tuning.after_replace()
    try:
        unchanged = _stat_key(os.stat(target)) == (ours.inode, ours.size, ours.mtime_ns)
    except FileNotFoundError:
        unchanged = False
    if unchanged and not active:
        return True
    watched_until = time.monotonic() + tuning.RECHECK_SECONDS
    while True:
        if active:
            time.sleep(tuning.SETTLE_SECONDS)
        snapshot, _ = _settled_read(target, shown, deadline, after_write=True, doubt=False)
        if snapshot.fingerprint != ours:
            break
        if time.monotonic() >= watched_until:
            return True
        active = True
    try:
        doc = _parse(_decode(snapshot.data or b"", shown), shown)
    except CredentialsFileRefused:
        return False  # the next attempt reports it
    own = doc.values().get(section_name)
    kept = own is not None and all(own.get(k) == v for k, v in wanted.items())
    kept = kept and own is not None and not unwanted & set(own)
    lost = set(_missing(_shape(after), _shape(doc)))
    added = set(_missing(_shape(after), _shape(base)))  # what the edit itself added
    if not lost or (not kept and lost <= added):
        _remember(target, snapshot.fingerprint, doc)
    return kept


def _check_nothing_lost(
    target: Path,
    base: _Snapshot,
    before: _Document,
    after: _Document,
    section_name: str,
    unwanted: set[str],
    shown: str,
) -> None:
    """The last guard against a torn base: the result keeps every section and
    key of the base and of the last version this process saw, except the keys
    the edit removes. On a refusal the base becomes what was seen, so that the
    same command run again, when the change was meant, goes through; but only
    a base nobody has written for tuning.RECENT_WRITE_SECONDS: one still being written
    could be torn, and the next run would take it as it is."""
    result = _shape(after)
    seen = _remembered(target)
    references = [_shape(before)] + ([seen.shape] if seen is not None else [])
    lost: dict[str, None] = {}
    for reference in references:
        for name, key in _missing(reference, result, section_name, unwanted):
            shown_name = _name(name, "[", "]")
            lost[shown_name if key is None else f"{_name(key)} in {shown_name}"] = None
    if not lost:
        return
    if base.fingerprint is None or not _recent(base.fingerprint.mtime_ns):
        _remember(target, base.fingerprint, before)
    names = list(lost)
    listed = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    raise BadInput(
        f"{shown} no longer holds {listed}, which keyhygiene saw in it earlier: another "
        "program may be rewriting it, or it was edited meanwhile; nothing was written.",
        hint=(
            "Check the file. If the change is intended, run the same command again: "
            "keyhygiene then takes the file as it is."
        ),
    )


def _checked_request(
    set_values: Mapping[str, str], remove: Iterable[str]
) -> tuple[dict[str, str], set[str]]:
    wanted: dict[str, str] = {}
    for key, value in set_values.items():
        _check_key(key)
        if not isinstance(value, str) or value != value.strip() or not value.isprintable():
            # Never the value itself in the message: it may be a secret.
            raise BadInput(
                f"The value for {_name(key)} has surrounding spaces or a control "
                "character (such as a line break); it cannot be written as one line."
            )
        wanted[key.lower()] = value
    unwanted = set()
    for key in remove:
        _check_key(key)
        unwanted.add(key.lower())
    both = sorted(unwanted & set(wanted))
    if both:
        raise BadInput(f"{_name(both[0])} is both set and removed in one edit.")
    return wanted, unwanted


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not _KEY_NAME_RE.match(key):
        raise BadInput(
            f"{_name(str(key))} is not a key name keyhygiene writes "
            "(letters, digits, '_', '.', '-')."
        )


def _edited_text(
    doc: _Document,
    section: _Section | None,
    section_name: str,
    wanted: dict[str, str],
    unwanted: set[str],
) -> str:
    if section is None:
        return _appended(doc, section_name, wanted)
    lines: list[tuple[str, str]] = [(line.text, line.ending) for line in doc.lines]
    dropped: set[int] = set()
    new_keys = dict(wanted)
    for key, option in section.options.items():
        if key in wanted:
            lines[option.first] = (
                _with_value(lines[option.first][0], wanted[key]),
                lines[option.first][1],
            )
            dropped.update(_value_lines(doc, option.first + 1, option.last))
            del new_keys[key]
        elif key in unwanted:
            dropped.update(_value_lines(doc, option.first, option.last))
    indent = _indent_for(doc, section)
    inserted = [(indent + _setting(k, v), doc.newline) for k, v in new_keys.items()]
    after = section.end()
    output: list[tuple[str, str]] = []
    for index, line in enumerate(lines):
        if index not in dropped:
            output.append(line)
        if index == after:
            output.extend(inserted)
    return _joined(output, doc.newline)


def _setting(key: str, value: str) -> str:
    # An empty value is written `key =`: no trailing space for editors to strip.
    return f"{key} = {value}" if value else f"{key} ="


def _appended(doc: _Document, section_name: str, wanted: dict[str, str]) -> str:
    if not wanted:
        return doc.text()
    output = [(line.text, line.ending) for line in doc.lines]
    if output and output[-1][0].strip():
        output.append(("", doc.newline))  # the blank line before a new profile
    output.append((f"[{section_name}]", doc.newline))
    output.extend((_setting(key, value), doc.newline) for key, value in wanted.items())
    return _joined(output, doc.newline)


def _joined(lines: list[tuple[str, str]], newline: str) -> str:
    # Only the file's last line can lack a break; it needs one if lines follow.
    last = len(lines) - 1
    return "".join(
        text + (ending or (newline if i < last else "")) for i, (text, ending) in enumerate(lines)
    )


def _value_lines(doc: _Document, first: int, last: int) -> set[int]:
    """The lines of a setting to drop: its lines except comments inside it,
    which are the person's own words."""
    return {
        index
        for index in range(first, last + 1)
        if not doc.lines[index].text.strip().startswith(_COMMENT_PREFIXES)
    }


def _with_value(text: str, value: str) -> str:
    """The same line with a new value: indentation, key spelling and the
    delimiter stay as they were."""
    lead = len(text) - len(text.lstrip())
    match = _OPTION_RE.match(text.strip())
    assert match is not None  # the line parsed as a setting
    prefix = text[: lead + match.start("value")]
    if not value:
        return prefix.rstrip()  # "key = old" becomes "key =", not "key = "
    if not prefix[-1].isspace() and len(prefix) > 1 and prefix[-2].isspace():
        prefix += " "  # "key =" becomes "key = value", not "key =value"
    return prefix + value


def _indent_for(doc: _Document, section: _Section) -> str:
    """Indentation for a new setting. A new line must not be read as the
    continuation of the setting before it, nor make the next section header a
    continuation of itself: the last setting's indentation satisfies both."""
    if section.options:
        last = max(section.options.values(), key=lambda option: option.first)
        return _leading_space(doc.lines[last.first].text)
    following = [s.header for s in doc.sections if s.header > section.header]
    return _leading_space(doc.lines[min(following)].text) if following else ""


def _leading_space(text: str) -> str:
    return text[: len(text) - len(text.lstrip())]


def _verify(
    before: _Document,
    text: str,
    section_name: str,
    wanted: dict[str, str],
    unwanted: set[str],
    resolved: Mapping[str, str],
    shown: str,
) -> _Document:
    """Re-read the result: every other section must read the same, the target
    exactly as asked, and the target as botocore resolves it ([DEFAULT]
    inherited, own settings first) must give `resolved` ("" standing for
    absent too). A failure here is a bug; the file stays untouched."""
    try:
        after = _parse(text, shown)
    except CredentialsFileRefused:
        after = None
    expected = before.values()
    own = {k: v for k, v in expected.get(section_name, {}).items() if k not in unwanted}
    if section_name in expected or wanted:
        expected[section_name] = {**own, **wanted}
    good = after is not None and after.values() == expected
    if after is not None and good and resolved:
        view = {**_defaults(after), **after.values().get(section_name, {})}
        good = all(view.get(key, "") == value for key, value in resolved.items())
    if after is None or not good:
        raise BadInput(
            f"keyhygiene's edit of {shown} did not read back as intended; nothing was written.",
            hint="Please report this with the file's layout (not its values).",
        )
    return after
