"""The credentials-file editor: byte preservation, botocore agreement, refusals, safe writes."""

from __future__ import annotations

import configparser
import multiprocessing
import os
import stat
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.configloader
import botocore.exceptions
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from keyhygiene.core.errors import BadInput, KeyHygieneError
from keyhygiene.local import credentials_file as cf

SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYzEXAMPLEKEY"
FAST = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def botocore_reads(path: Path, *, nested: bool = True) -> dict[str, dict[str, object]]:
    """What botocore itself reads from the file."""
    return botocore.configloader.raw_config_parse(str(path), parse_subsections=nested)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def write_idle(path: Path, data: bytes) -> None:
    """Write a file as if nobody had touched it for an hour. A file written just
    now looks like another writer at work and costs an edit a short settle."""
    path.write_bytes(data)
    an_hour_ago = time.time() - 3600
    os.utime(path, (an_hour_ago, an_hour_ago))


# ---------------------------------------------------------------------------
# Generated valid files

KEYS = ["aws_access_key_id", "aws_secret_access_key", "aws_session_token", "region", "output"]
PROFILES = ["default", "work", "home", "a-b", "x.y", "prod_1", "profile ci"]
VALUES = st.text(alphabet="ABCXYZabc0189/+=_-.", min_size=0, max_size=12).map(str.strip)
NEW_VALUES = st.text(alphabet="ABCXYZabc0189/+=_-.", min_size=1, max_size=12)
COMMENTS = st.sampled_from(["# a comment", "; another", "   # indented comment", "#", "  "])


def spelled(key: str, variant: int) -> str:
    return [key, key.upper(), key.title(), key.swapcase()][variant]


@st.composite
def profile_blocks(draw: st.DrawFn, name: str) -> list[str]:
    """The lines of one profile, from its header to just before the next one."""
    lines = [draw(st.sampled_from([f"[{name}]", f"[{name}]   ", f"[{name}] ; note"]))]
    for key in draw(st.lists(st.sampled_from(KEYS), unique=True, max_size=4)):
        for _ in range(draw(st.integers(0, 1))):
            lines.append(draw(COMMENTS))
        separator = draw(st.sampled_from([" = ", "=", " =", "= ", ": ", " : "]))
        lines.append(f"{spelled(key, draw(st.integers(0, 3)))}{separator}{draw(VALUES)}")
    if draw(st.booleans()):
        lines += ["s3 =", "    addressing_style = path", "", "    signature_version = s3v4"]
    lines += [draw(COMMENTS) for _ in range(draw(st.integers(0, 2)))]
    return lines


@st.composite
def credential_files(draw: st.DrawFn) -> tuple[str, list[str], list[str], str]:
    """(prefix, blocks, names, text): blocks[i] holds the lines of profile names[i]."""
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    names = draw(st.lists(st.sampled_from(PROFILES), unique=True, min_size=1, max_size=4))
    prefix_lines = [draw(COMMENTS) for _ in range(draw(st.integers(0, 2)))]
    prefix = "".join(line + newline for line in prefix_lines)
    blocks = ["".join(line + newline for line in draw(profile_blocks(name))) for name in names]
    text = prefix + "".join(blocks)
    if draw(st.booleans()):
        text = text[: -len(newline)]  # no line break at the end of the file
        blocks[-1] = blocks[-1][: -len(newline)]
    return prefix, blocks, names, text


@FAST
@given(
    data=credential_files(),
    target=st.sampled_from(PROFILES + ["brand-new"]),
    to_set=st.dictionaries(st.sampled_from(KEYS), NEW_VALUES, max_size=3),
    to_remove=st.lists(st.sampled_from(KEYS), max_size=3),
)
def test_edit_changes_only_the_target_profile(
    tmp_path: Path,
    data: tuple[str, list[str], list[str], str],
    target: str,
    to_set: dict[str, str],
    to_remove: list[str],
) -> None:
    prefix, blocks, names, text = data
    cf.forget()  # each example writes a new file by hand at the same path
    remove = [key for key in to_remove if key not in to_set]
    path = tmp_path / "credentials"
    write_idle(path, text.encode())
    before = botocore_reads(path)

    cf.write_profile_values(path, target, to_set, remove)

    after_text = path.read_bytes().decode()
    after = botocore_reads(path)
    if target in names:
        index = names.index(target)
        assert after_text.startswith(prefix + "".join(blocks[:index]))
        assert after_text.endswith("".join(blocks[index + 1 :]))
    else:
        assert after_text.startswith(text)
    for name in names:
        if name != target:
            assert after[name] == before[name]
    expected = {k: v for k, v in before.get(target, {}).items() if k not in remove}
    expected.update(to_set)
    if target in names or to_set:
        assert after[target] == expected
    else:
        assert target not in after
    assert list(after) == list(before) + ([target] if target not in before and to_set else [])
    newline = "\r\n" if "\r\n" in text else "\n"
    if newline == "\r\n":
        assert "\n" not in after_text.replace("\r\n", "")


# Lines of every kind, good and bad, to check that the editor accepts exactly
# what botocore accepts and reads the same values.
ANY_LINE = st.sampled_from(
    [
        "[default]",
        "[work]",
        "  [work]",
        "[DEFAULT]",
        "[profile work]",
        "[a] trailing",
        "[]",
        "key = v",
        "KEY=w",
        "key: x",
        "other = y",
        "  indented = z",
        "    deeper",
        "\tno equals",
        "no equals",
        "= novalue",
        "# c",
        "  ; c",
        "",
        "   ",
        "s3 =",
        "    nested = 1",
        "\ufefflooks like a bom",
    ]
)


@FAST
@given(lines=st.lists(ANY_LINE, max_size=10), newline=st.sampled_from(["\n", "\r\n", "\r"]))
# Found by this test: botocore parses [DEFAULT]'s nested values only through a
# section that inherits them.
@example(lines=["[DEFAULT]", "s3 =", "    deeper"], newline="\n")
@example(lines=["[DEFAULT]", "s3 =", "    deeper", "[work]", "a = b"], newline="\n")
def test_validation_agrees_with_botocore(tmp_path: Path, lines: list[str], newline: str) -> None:
    cf.forget()  # each example writes a new file by hand at the same path
    path = tmp_path / "credentials"
    write_idle(path, newline.join(lines).encode())
    try:
        expected = botocore_reads(path)
    except botocore.exceptions.ConfigParseError:
        with pytest.raises(cf.CredentialsFileRefused):
            cf.validate(path)
        return
    cf.validate(path)
    raw = botocore_reads(path, nested=False)
    assert cf.list_profiles(path) == list(expected)
    for name in expected:
        assert dict(cf.read_profile(path, name)) == raw[name]


@FAST
@given(
    lines=st.lists(ANY_LINE.filter(lambda line: "DEFAULT" not in line), max_size=8),
    newline=st.sampled_from(["\n", "\r\n"]),
    target=st.sampled_from(["default", "work", "  [work]", "a", "new"]),
    to_set=st.dictionaries(
        st.sampled_from(["key", "other", "s3", "fresh"]), NEW_VALUES, max_size=2
    ),
    to_remove=st.lists(st.sampled_from(["key", "other", "s3", "indented"]), max_size=2),
)
def test_edit_of_any_valid_layout_keeps_the_other_sections(
    tmp_path: Path,
    lines: list[str],
    newline: str,
    target: str,
    to_set: dict[str, str],
    to_remove: list[str],
) -> None:
    """Odd layouts (indented headers and settings, continuation lines, `:`):
    whatever botocore reads, it reads the same after the edit, except the target."""
    cf.forget()  # each example writes a new file by hand at the same path
    path = tmp_path / "credentials"
    write_idle(path, newline.join(lines).encode())
    try:
        botocore_reads(path)
    except botocore.exceptions.ConfigParseError:
        return
    before = botocore_reads(path, nested=False)
    target = target.strip(" []")
    remove = [key for key in to_remove if key not in to_set]
    cf.write_profile_values(path, target, to_set, remove)
    after = botocore_reads(path, nested=False)
    for name in before:
        if name != target:
            assert after[name] == before[name]
    if target in before or to_set:
        expected = {k: v for k, v in before.get(target, {}).items() if k not in remove}
        assert after[target] == {**expected, **to_set}


# ---------------------------------------------------------------------------
# Refusals: nothing written, line number given, no value shown

REFUSED = [
    ("[a]\nk = 1\n\n[b]\nk = 2\n[a]\nk = 3\n", 6, "duplicate section [a] (first at line 1)"),
    (
        f"[work]\nAWS_ACCESS_KEY_ID = AKIAOLD\nregion = x\n# c\naws_access_key_id = {SECRET}\n",
        5,
        "duplicate key 'aws_access_key_id' in [work] (first at line 2)",
    ),
    ("\ufeff[default]\nregion = x\n", 1, "byte-order mark"),
    (f"[default]\nregion = x\n{SECRET}\n", 3, "not a [section], a comment or a 'key = value'"),
    (f"# top\naws_secret_access_key = {SECRET}\n[default]\n", 2, "before any [section]"),
    ("[default]\n= value\n", 2, "no key name"),
    ("[default]\ns3 =\n  addressing_style = path\n  bogus\n", 4, "has no '='"),
]


@pytest.mark.parametrize(("content", "line", "reason"), REFUSED)
def test_refused_file_is_left_untouched(
    tmp_path: Path, content: str, line: int, reason: str
) -> None:
    path = tmp_path / "credentials"
    path.write_bytes(content.encode())
    path.chmod(0o644)
    with pytest.raises(botocore.exceptions.ConfigParseError):
        botocore_reads(path)  # botocore refuses it too

    with pytest.raises(cf.CredentialsFileRefused) as caught:
        cf.set_access_key(path, "work", "AKIANEW", "NEWSECRET")

    assert path.read_bytes() == content.encode()
    assert mode_of(path) == 0o644
    message = str(caught.value)
    assert f"line {line}: " in message and reason in message
    assert "botocore would refuse this file" in message
    assert SECRET not in message and "AKIAOLD" not in message and "NEWSECRET" not in message
    assert caught.value.line == line
    assert isinstance(caught.value, BadInput)
    with pytest.raises(cf.CredentialsFileRefused):
        cf.validate(path)
    assert sorted(name for name in os.listdir(tmp_path) if "credentials" in name) == [
        "credentials",
        "credentials.keyhygiene.lock",
    ]


def test_a_long_key_name_is_not_shown(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    path.write_text(f"[work]\n{SECRET} = 1\n{SECRET.lower()} = 2\n")
    with pytest.raises(cf.CredentialsFileRefused, match="line 3: duplicate key") as caught:
        cf.validate(path)
    assert SECRET.lower() not in str(caught.value).lower()


def test_an_edit_that_would_not_read_back_is_not_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "credentials"
    content = "[work]\nregion = x\n\n[home]\nregion = y\n"
    path.write_text(content)
    # Simulate an editing bug that damages another profile.
    monkeypatch.setattr(cf.editing, "_edited_text", lambda *args: content.replace("= y", "= z"))
    with pytest.raises(BadInput, match="did not read back as intended; nothing was written"):
        cf.set_access_key(path, "work", "AKIA", SECRET)
    assert path.read_text() == content


def test_invalid_utf8_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    content = b"[default]\nregion = x\nname = caf\xe9\n"
    path.write_bytes(content)
    with pytest.raises(cf.CredentialsFileRefused, match="line 3: the file is not valid UTF-8"):
        cf.set_access_key(path, "default", "AKIA", "S")
    assert path.read_bytes() == content


def test_continuation_lines_are_accepted_like_botocore(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("[profile work]\ns3 =\n  addressing_style = path\nregion = a\n")
    cf.set_config_values(path, "work", {"region": "eu-west-3"})
    assert (
        path.read_text() == "[profile work]\ns3 =\n  addressing_style = path\nregion = eu-west-3\n"
    )
    assert botocore_reads(path)["profile work"]["s3"] == {"addressing_style": "path"}


def test_bad_values_and_names_are_refused_without_showing_them(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    for value in (f"{SECRET}\n[evil]", f" {SECRET}", f"{SECRET}\r"):
        with pytest.raises(BadInput) as caught:
            cf.set_access_key(path, "work", "AKIA", value)
        assert SECRET not in str(caught.value)
    for profile in ("", "a]b", "DEFAULT", " x", "new\nline"):
        with pytest.raises(BadInput):
            cf.set_access_key(path, profile, "AKIA", "S")
    for profile in ("", "a]b", "[x", " x", "x ", "tab\tinside"):
        with pytest.raises(BadInput):
            cf.set_config_values(path, profile, {"region": "x"})
    with pytest.raises(BadInput):
        cf.write_profile_values(path, "work", {"bad key": "x"})
    with pytest.raises(BadInput):
        cf.write_profile_values(path, "work", {"region": "x"}, remove=["REGION"])
    assert not path.exists()


# ---------------------------------------------------------------------------
# Edits


def test_key_case_insensitive_replace_keeps_spelling_and_drops_session_token(
    tmp_path: Path,
) -> None:
    path = tmp_path / "credentials"
    path.write_text(
        "# mine\n[work]\nAWS_ACCESS_KEY_ID = AKIAOLD\nAws_Secret_Access_Key=old\n"
        "aws_session_token = tok\nAWS_SECURITY_TOKEN = tok\nregion = x\n\n[home]\nregion = y\n"
    )
    cf.set_access_key(path, "work", "AKIANEW", SECRET)
    assert path.read_text() == (
        f"# mine\n[work]\nAWS_ACCESS_KEY_ID = AKIANEW\nAws_Secret_Access_Key={SECRET}\n"
        "region = x\n\n[home]\nregion = y\n"
    )
    values = cf.read_profile(path, "work")
    assert values == {
        "aws_access_key_id": "AKIANEW",
        "aws_secret_access_key": SECRET,
        "region": "x",
    }
    assert SECRET not in repr(values) and SECRET not in str(values)


def test_new_key_goes_after_the_last_setting_of_its_profile(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    path.write_text("[work]\nregion = x\n# trailing note\n\n[home]\n")
    cf.set_access_key(path, "work", "AKIA", "S")
    assert path.read_text() == (
        "[work]\nregion = x\naws_access_key_id = AKIA\naws_secret_access_key = S\n"
        "# trailing note\n\n[home]\n"
    )


def test_crlf_is_kept_and_used_for_new_lines(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    path.write_bytes(b"[default]\r\nregion = x\r\n")
    cf.set_access_key(path, "default", "AKIA", "S")
    cf.set_access_key(path, "other", "AKIB", "T")
    assert path.read_bytes() == (
        b"[default]\r\nregion = x\r\naws_access_key_id = AKIA\r\naws_secret_access_key = S\r\n"
        b"\r\n[other]\r\naws_access_key_id = AKIB\r\naws_secret_access_key = T\r\n"
    )


def test_new_profile_is_appended_after_a_blank_line(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    write_idle(path, b"[default]\nregion = x")  # no final line break
    result = cf.set_access_key(path, "laptop", "AKIA", "S")
    assert path.read_text() == (
        "[default]\nregion = x\n\n[laptop]\naws_access_key_id = AKIA\naws_secret_access_key = S\n"
    )
    assert (result.created, result.changed) == (False, True)


def test_removing_keys_and_removing_from_nothing(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    path.write_text("[work]\naws_access_key_id = A\naws_secret_access_key = S\n; keep me\n")
    cf.write_profile_values(path, "work", {}, remove=["AWS_SECRET_ACCESS_KEY"])
    assert path.read_text() == "[work]\naws_access_key_id = A\n; keep me\n"
    result = cf.write_profile_values(path, "absent", {}, remove=["aws_access_key_id"])
    assert result.changed is False
    missing = tmp_path / "missing"
    result = cf.write_profile_values(missing, "work", {}, remove=["region"])
    assert (result.created, result.changed) == (False, False)
    assert not missing.exists()


def test_config_file_profile_sections(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("[default]\nregion = us-east-1\n\n[profile work]\noutput = json\n")
    cf.set_config_values(path, "default", {"region": "eu-west-3"})
    cf.set_config_values(path, "work", {"credential_process": "keyhygiene credential-process"})
    cf.set_config_values(path, "laptop", {"region": "eu-west-1"})
    assert path.read_text() == (
        "[default]\nregion = eu-west-3\n\n[profile work]\noutput = json\n"
        "credential_process = keyhygiene credential-process\n\n[profile laptop]\nregion = eu-west-1\n"
    )
    cf.set_config_values(path, "work", {}, remove=["credential_process"])
    assert "credential_process" not in path.read_text()
    assert cf.list_profiles(path, config_style=True) == ["default", "work", "laptop"]
    assert cf.read_profile(path, "laptop", config_style=True) == {"region": "eu-west-1"}
    profiles = botocore.configloader.load_config(str(path))["profiles"]
    assert profiles["laptop"] == {"region": "eu-west-1"}
    assert profiles["default"] == {"region": "eu-west-3"}


def test_config_profile_defined_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config"
    content = "[profile work]\nregion = a\n[profile  work]\nregion = b\n"
    path.write_text(content)
    with pytest.raises(BadInput, match="several sections"):
        cf.set_config_values(path, "work", {"region": "c"})
    assert path.read_text() == content


def test_boto3_uses_the_written_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "credentials"
    path.write_text("[laptop]\nAWS_ACCESS_KEY_ID = AKIAOLD\naws_session_token = stale\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(path))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    cf.set_access_key(cf.credentials_path(), "laptop", "AKIANEW", SECRET)
    credentials = boto3.Session(profile_name="laptop").get_credentials()
    assert credentials.access_key == "AKIANEW"
    assert credentials.secret_key == SECRET
    assert credentials.token is None


# ---------------------------------------------------------------------------
# Paths


def test_environment_variables_choose_the_files(tmp_path: Path) -> None:
    env = {"AWS_SHARED_CREDENTIALS_FILE": "~/k/creds", "AWS_CONFIG_FILE": "$BASE/cfg", "HOME": "/h"}
    env["BASE"] = str(tmp_path)
    assert cf.credentials_path(env) == Path("/h/k/creds")
    assert cf.config_path(env) == tmp_path / "cfg"
    assert cf.credentials_path({"HOME": "/h"}) == Path("/h/.aws/credentials")
    assert cf.config_path({"HOME": "/h", "AWS_CONFIG_FILE": ""}) == Path("/h/.aws/config")


# ---------------------------------------------------------------------------
# Safe writing


def test_new_file_is_0600_in_a_new_0700_folder(tmp_path: Path) -> None:
    # (tmp_path/home/.aws is made by the shared conftest; use another folder)
    path = tmp_path / "elsewhere" / ".aws" / "credentials"
    result = cf.set_access_key(path, "default", "AKIA", "S")
    assert result == cf.WriteResult(path, path, created=True, changed=True, tightened_from=None)
    assert mode_of(path) == 0o600
    assert mode_of(path.parent) == 0o700
    assert mode_of(path.parent.parent) == 0o700
    assert sorted(os.listdir(path.parent)) == ["credentials", "credentials.keyhygiene.lock"]


def test_wide_mode_is_tightened_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    path.write_text("[default]\nregion = x\n")
    path.chmod(0o644)
    result = cf.set_access_key(path, "default", "AKIA", "S")
    assert result.tightened_from == 0o644
    assert mode_of(path) == 0o600
    assert cf.set_access_key(path, "default", "AKIA", "S").tightened_from is None


def test_unchanged_content_is_not_rewritten_but_mode_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    path.write_text("[default]\naws_access_key_id = AKIA\naws_secret_access_key = S\n")
    path.chmod(0o664)
    inode = path.stat().st_ino
    result = cf.set_access_key(path, "default", "AKIA", "S")
    assert (result.changed, result.tightened_from) == (False, 0o664)
    assert path.stat().st_ino == inode
    assert mode_of(path) == 0o600


def test_symlink_stays_a_link_and_its_target_is_written(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "aws-credentials"
    real.parent.mkdir()
    real.write_text("[default]\nregion = x\n")
    link = tmp_path / "credentials"
    link.symlink_to(real)
    result = cf.set_access_key(link, "default", "AKIA", "S")
    assert link.is_symlink() and link.resolve() == real
    assert result.target == real and result.path == link
    assert "aws_access_key_id = AKIA" in real.read_text()
    assert (real.parent / "aws-credentials.keyhygiene.lock").exists()


def test_backup_and_restore(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    assert cf.backup_bytes(path) is None
    cf.set_access_key(path, "default", "AKIA", "S")
    cf.restore_bytes(path, None)
    assert not path.exists()
    path.write_bytes(b"[a]\r\nk = v\r\n")
    saved = cf.backup_bytes(path)
    cf.set_access_key(path, "a", "AKIA", "S")
    cf.restore_bytes(path, saved)
    assert path.read_bytes() == b"[a]\r\nk = v\r\n"
    assert mode_of(path) == 0o600


def test_secrets_stay_out_of_reprs(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    result = cf.set_access_key(path, "default", "AKIA", SECRET)
    assert SECRET not in repr(result)
    assert SECRET not in repr(cf.read_profile(path, "default"))
    assert issubclass(cf.CredentialsFileRefused, KeyHygieneError)


def _edit_in_child(path: str, profile: str) -> None:
    cf.set_access_key(path, profile, f"AKIA{profile}", f"secret-{profile}")


def test_concurrent_processes_do_not_lose_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "credentials"
    path.write_text("[default]\nregion = x\n")
    # A slow writer: without the lock every child would read the same file
    # and the last rename would erase the others' profiles.
    monkeypatch.setattr(cf.tuning, "after_read", lambda: time.sleep(0.05))
    context = multiprocessing.get_context("fork")
    children = [context.Process(target=_edit_in_child, args=(str(path), f"p{i}")) for i in range(4)]
    for child in children:
        child.start()
    for child in children:
        child.join(10)
        assert child.exitcode == 0
    assert sorted(cf.list_profiles(path)) == ["default", "p0", "p1", "p2", "p3"]
    for i in range(4):
        assert cf.read_profile(path, f"p{i}")["aws_access_key_id"] == f"AKIAp{i}"


def test_concurrent_threads_do_not_interleave(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "credentials"
    path.write_text("[a]\nregion = x\n\n[b]\nregion = y\n")
    monkeypatch.setattr(cf.tuning, "after_read", lambda: time.sleep(0.1))
    threads = [
        threading.Thread(target=cf.set_access_key, args=(path, name, f"AKIA{name}", "S"))
        for name in ("a", "b")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cf.read_profile(path, "a")["aws_access_key_id"] == "AKIAa"
    assert cf.read_profile(path, "b")["aws_access_key_id"] == "AKIAb"


# ---------------------------------------------------------------------------
# The profile as botocore resolves it: [DEFAULT] is inherited


def boto3_credentials(path: Path, profile: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(path))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(path.parent / "no-config"))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    return boto3.Session(profile_name=profile).get_credentials()


def test_a_stale_token_in_default_is_overridden_in_the_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "credentials"
    before = "[DEFAULT]\naws_session_token = STALE\n\n[work]\naws_access_key_id = AKIAOLD\n"
    write_idle(path, before.encode())
    assert cf.inherited_overrides(path, "work") == ["aws_session_token"]

    cf.set_access_key(path, "work", "AKIANEW", SECRET)

    assert path.read_text() == (
        "[DEFAULT]\naws_session_token = STALE\n\n[work]\naws_access_key_id = AKIANEW\n"
        f"aws_secret_access_key = {SECRET}\naws_session_token =\n"
    )
    credentials = boto3_credentials(path, "work", monkeypatch)
    assert (credentials.access_key, credentials.secret_key) == ("AKIANEW", SECRET)
    assert not credentials.token
    # SigV4 sends X-Amz-Security-Token only for a truthy token.
    request = botocore.awsrequest.AWSRequest(method="GET", url="https://sts.amazonaws.com/")
    frozen = credentials.get_frozen_credentials()
    botocore.auth.SigV4Auth(frozen, "sts", "us-east-1").add_auth(request)
    assert "X-Amz-Security-Token" not in request.headers
    assert cf.read_profile(path, "work")["aws_session_token"] == ""
    assert cf.inherited_overrides(path, "work") == ["aws_session_token"]  # still overridden


def test_other_profiles_still_inherit_default_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    write_idle(
        path,
        b"[DEFAULT]\naws_security_token = STALE\nregion = eu-west-3\n\n"
        b"[work]\naws_session_token = OWN\nregion = x\n\n[home]\naws_access_key_id = AKIAHOME\n",
    )
    before = botocore_reads(path)
    cf.set_access_key(path, "work", "AKIANEW", "S")
    after = botocore_reads(path)
    assert after["home"] == before["home"]
    assert after["home"]["aws_security_token"] == "STALE"
    assert after["work"] == {
        "aws_security_token": "",  # botocore looks at this name first
        "region": "x",
        "aws_access_key_id": "AKIANEW",
        "aws_secret_access_key": "S",
    }
    assert after["home"]["region"] == "eu-west-3"  # inherited, as before


def test_an_own_token_shadowing_default_becomes_the_override_in_place(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    write_idle(
        path,
        b"[DEFAULT]\naws_session_token = STALE\n\n[work]\naws_session_token = OWN\nregion = x\n",
    )
    cf.set_access_key(path, "work", "AKIANEW", "S")
    assert path.read_text() == (
        "[DEFAULT]\naws_session_token = STALE\n\n[work]\naws_session_token =\nregion = x\n"
        "aws_access_key_id = AKIANEW\naws_secret_access_key = S\n"
    )


def test_without_default_the_session_tokens_just_go(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    write_idle(path, b"[work]\naws_session_token = OLD\naws_access_key_id = A\n")
    assert cf.inherited_overrides(path, "work") == []
    cf.set_access_key(path, "work", "AKIANEW", "S")
    assert "token" not in path.read_text()


def test_a_different_account_id_is_replaced_only_when_given(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    write_idle(path, b"[DEFAULT]\naws_account_id = 111111111111\n\n[work]\naws_access_key_id = A\n")
    cf.set_access_key(path, "work", "AKIANEW", "S")  # a rotation keeps the account
    assert botocore_reads(path)["work"]["aws_account_id"] == "111111111111"
    assert "aws_account_id" not in path.read_text().split("[work]")[1]
    assert cf.inherited_overrides(path, "work", account_id="111111111111") == []
    assert cf.inherited_overrides(path, "work", account_id="222222222222") == ["aws_account_id"]

    cf.set_access_key(path, "work", "AKIANEW", "S", account_id="222222222222")

    assert botocore_reads(path)["work"]["aws_account_id"] == "222222222222"
    assert path.read_text().startswith("[DEFAULT]\naws_account_id = 111111111111\n")
    with pytest.raises(BadInput, match="12 digits"):
        cf.set_access_key(path, "work", "AKIANEW", "S", account_id="22")


# ---------------------------------------------------------------------------
# Owner, group, links


@pytest.fixture
def as_root(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, int]]:
    """Pretend to be root; record fchown and chown calls instead of making them.
    Each call: (what the fd or path names, uid, gid)."""
    calls: list[tuple[str, int, int]] = []

    def fchown(fd: int, uid: int, gid: int) -> None:
        calls.append((os.readlink(f"/proc/self/fd/{fd}"), uid, gid))

    def chown(path: str | os.PathLike[str], uid: int, gid: int) -> None:
        calls.append((os.fspath(path), uid, gid))

    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(os, "fchown", fchown)
    monkeypatch.setattr(os, "chown", chown)
    return calls


def test_root_keeps_the_owner_and_group_of_the_file_and_gives_them_to_the_lock(
    tmp_path: Path, as_root: list[tuple[str, int, int]]
) -> None:
    path = tmp_path / "credentials"
    write_idle(path, b"[work]\nregion = x\n")
    owner = (path.stat().st_uid, path.stat().st_gid)
    cf.set_access_key(path, "work", "AKIA", "S")
    lock = f"{path}{cf.LOCK_SUFFIX}"
    assert (lock, *owner) in as_root
    temps = [call for call in as_root if call[0].endswith(".keyhygiene.tmp")]
    assert [(uid, gid) for _, uid, gid in temps] == [owner]
    assert temps[0][0].startswith(f"{tmp_path}/.credentials.")


def test_a_new_file_written_by_root_takes_its_folders_owner(
    tmp_path: Path, as_root: list[tuple[str, int, int]]
) -> None:
    home = tmp_path / "someone"
    home.mkdir()
    owner = (home.stat().st_uid, home.stat().st_gid)
    path = home / ".aws" / "credentials"
    cf.set_access_key(path, "work", "AKIA", "S")
    assert (str(home / ".aws"), *owner) in as_root  # the new folder
    assert (f"{path}{cf.LOCK_SUFFIX}", *owner) in as_root
    assert [(u, g) for name, u, g in as_root if name.endswith(".keyhygiene.tmp")] == [owner]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand files to another user")
def test_really_as_root_the_rewritten_file_keeps_a_foreign_owner(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    write_idle(path, b"[work]\nregion = x\n")
    os.chown(path, 1234, 4321)
    cf.set_access_key(path, "work", "AKIA", "S")
    assert (path.stat().st_uid, path.stat().st_gid) == (1234, 4321)
    lock = path.with_name(path.name + cf.LOCK_SUFFIX).stat()
    assert (lock.st_uid, lock.st_gid) == (1234, 4321)
    assert mode_of(path) == 0o600


def test_a_file_of_another_user_is_refused_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "credentials"
    content = b"[work]\nregion = x\n"
    write_idle(path, content)
    owner = path.stat().st_uid
    monkeypatch.setattr(os, "geteuid", lambda: owner + 1)
    for attempt in (
        lambda: cf.set_access_key(path, "work", "AKIA", "S"),
        lambda: cf.check_writable(path),
    ):
        with pytest.raises(BadInput, match=f"belongs to another user \\(uid {owner}\\)"):
            attempt()
    assert path.read_bytes() == content
    assert [name for name in os.listdir(tmp_path) if name.endswith(".tmp")] == []


def test_a_group_that_cannot_be_kept_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "credentials"
    write_idle(path, b"[work]\nregion = x\n")
    if os.geteuid() == 0:
        os.chown(path, 1234, 4321)  # so that "not root and the owner" can be pretended
    uid, gid = path.stat().st_uid, path.stat().st_gid
    monkeypatch.setattr(os, "geteuid", lambda: uid)
    monkeypatch.setattr(os, "getegid", lambda: gid + 1)
    monkeypatch.setattr(os, "getgroups", lambda: [gid + 1])
    with pytest.raises(BadInput, match=f"has group {gid}"):
        cf.check_writable(path)
    with pytest.raises(BadInput, match=f"has group {gid}"):
        cf.set_access_key(path, "work", "AKIA", "S")


def test_a_hard_linked_file_is_refused_with_a_way_forward(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    content = b"[work]\nregion = x\n"
    write_idle(path, content)
    other = tmp_path / "dotfiles-credentials"
    os.link(path, other)
    for attempt in (
        lambda: cf.set_access_key(path, "work", "AKIA", "S"),
        lambda: cf.check_writable(path),
        lambda: cf.restore_bytes(path, b"[work]\n"),
    ):
        with pytest.raises(BadInput) as caught:
            attempt()
        assert str(caught.value) == (
            f"{path} has another hard link (2 names); keyhygiene replaces the file "
            "atomically, which would leave the other name with the old key.\n"
            "Replace the hard link by a symlink (ln -sf) and retry."
        )
    assert path.read_bytes() == other.read_bytes() == content
    assert path.stat().st_ino == other.stat().st_ino


def test_check_writable_refuses_what_a_write_would_meet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cf.check_writable(tmp_path / "new" / "folder" / "credentials")  # fine, and nothing made
    assert not (tmp_path / "new").exists()
    folder = tmp_path / "credentials"
    folder.mkdir()
    with pytest.raises(BadInput, match="is not a regular file"):
        cf.check_writable(folder)
    path = tmp_path / "config"
    write_idle(path, b"[default]\n")
    cf.check_writable(path)
    monkeypatch.setattr(os, "access", lambda *args, **kwargs: False)
    with pytest.raises(BadInput, match=f"Could not read {path}"):
        cf.check_writable(path)
    with pytest.raises(BadInput, match="may not create files in"):
        cf.check_writable(tmp_path / "absent")


# ---------------------------------------------------------------------------
# Every profile name botocore accepts, in both files


def refused_name(name: str, config_style: bool) -> bool:
    """What no header can carry back through configparser as that very name."""
    return (
        not name
        or name != name.strip()
        or not name.isprintable()
        or "[" in name
        or "]" in name
        or (not config_style and name == "DEFAULT")
    )


PROFILE_NAME = st.one_of(
    st.text(alphabet=" '\"\\ab#;=:$*\t", max_size=8),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=8),
    st.sampled_from(["two  spaces", "my profile", "it's", 'say "hi"', "DEFAULT", "default"]),
)


@FAST
@given(name=PROFILE_NAME)
@example(name="profile")
@example(name="a\\b")
@example(name="-x")
def test_any_name_botocore_reads_back_is_written_under_that_name(tmp_path: Path, name: str) -> None:
    cf.forget()
    config = tmp_path / "config"
    credentials = tmp_path / "credentials"
    for path in (config, credentials):
        path.unlink(missing_ok=True)

    if refused_name(name, config_style=True):
        with pytest.raises(BadInput):
            cf.set_config_values(config, name, {"region": "eu-west-3"})
        assert not config.exists()
    else:
        cf.set_config_values(config, name, {"region": "eu-west-3"})
        profiles = botocore.configloader.build_profile_map(botocore_reads(config))["profiles"]
        assert profiles == {name: {"region": "eu-west-3"}}
        header = config.read_bytes().split(b"\n")[0]
        cf.set_config_values(config, name, {"output": "json"})  # found again by its name
        assert config.read_bytes().split(b"\n")[0] == header
        assert cf.read_profile(config, name, config_style=True) == {
            "region": "eu-west-3",
            "output": "json",
        }

    if refused_name(name, config_style=False):
        with pytest.raises(BadInput):
            cf.set_access_key(credentials, name, "AKIA", "S")
        assert not credentials.exists()
    else:
        cf.set_access_key(credentials, name, "AKIA", "S")
        parser = configparser.RawConfigParser()
        assert parser.read(credentials, encoding="utf-8") == [str(credentials)]
        assert dict(parser[name]) == {"aws_access_key_id": "AKIA", "aws_secret_access_key": "S"}
        assert botocore_reads(credentials)[name]["aws_access_key_id"] == "AKIA"
        assert cf.list_profiles(credentials) == [name]


@pytest.mark.parametrize(
    ("header", "profile"),
    [
        ('[profile "two  spaces"]', "two  spaces"),
        ("[profile 'my profile']", "my profile"),
        ("[profile  work]", "work"),
        ("[profile it\\'s]", "it's"),
    ],
)
def test_an_existing_section_is_found_by_its_botocore_name_and_keeps_its_header(
    tmp_path: Path, header: str, profile: str
) -> None:
    path = tmp_path / "config"
    write_idle(path, f"{header}\nregion = a\n".encode())
    cf.set_config_values(path, profile, {"region": "b"})
    assert path.read_text() == f"{header}\nregion = b\n"
    profiles = botocore.configloader.load_config(str(path))["profiles"]
    assert profiles == {profile: {"region": "b"}}


def test_three_words_are_no_profile_so_a_quoted_one_is_added(tmp_path: Path) -> None:
    path = tmp_path / "config"
    write_idle(path, b"[profile my profile]\nregion = a\n")  # botocore: not a profile
    cf.set_config_values(path, "my profile", {"region": "b"})
    assert path.read_text() == (
        "[profile my profile]\nregion = a\n\n[profile 'my profile']\nregion = b\n"
    )
    assert botocore.configloader.load_config(str(path))["profiles"] == {
        "my profile": {"region": "b"}
    }


def test_a_credentials_profile_with_inner_spaces_works_with_boto3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "credentials"
    cf.set_access_key(path, "ci  runner", "AKIACI", SECRET)
    assert path.read_text().startswith("[ci  runner]\n")
    assert boto3_credentials(path, "ci  runner", monkeypatch).access_key == "AKIACI"
