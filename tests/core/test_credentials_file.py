"""The credentials-file editor: byte preservation, botocore agreement, refusals, safe writes."""

from __future__ import annotations

import multiprocessing
import os
import stat
import threading
import time
from pathlib import Path

import boto3
import botocore.configloader
import botocore.exceptions
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tui import credentials_file as cf
from tui.errors import BadInput, KeyHygieneError

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
    remove = [key for key in to_remove if key not in to_set]
    path = tmp_path / "credentials"
    path.write_bytes(text.encode())
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
    path = tmp_path / "credentials"
    path.write_bytes(newline.join(lines).encode())
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
    path = tmp_path / "credentials"
    path.write_bytes(newline.join(lines).encode())
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
    monkeypatch.setattr(cf, "_edited_text", lambda *args: content.replace("= y", "= z"))
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
    with pytest.raises(BadInput):
        cf.set_config_values(path, "two words", {"region": "x"})
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
    path.write_text("[default]\nregion = x")  # no final line break
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
    monkeypatch.setattr(cf, "_after_read", lambda: time.sleep(0.05))
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
    monkeypatch.setattr(cf, "_after_read", lambda: time.sleep(0.1))
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
