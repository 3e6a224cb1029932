"""The credentials-file editor against writers that take no lock (issue 12, "Nothing lost").

aws-cli (`aws configure set`) rewrites the file in place: open('w') truncates,
then the whole new content is written. A keyhygiene edit that read in that
moment used to write back only its own profile. These tests imitate that writer
(in child processes, as aws-cli is one) and drive the edit's compare-and-swap,
settling, nothing-lost guard and post-rename check, and the wait for the lock.
"""

from __future__ import annotations

import configparser
import fcntl
import logging
import multiprocessing
import os
import random
import re
import string
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from keyhygiene.core.errors import BadInput
from keyhygiene.local import credentials_file as cf

FORK = multiprocessing.get_context("fork")  # no interpreter start per writer
SECRET_CHARS = string.ascii_letters + string.digits + "+/"


def write_idle(path: Path, text: str) -> None:
    """Write a file as if nobody had touched it for an hour."""
    path.write_bytes(text.encode())
    an_hour_ago = time.time() - 3600
    os.utime(path, (an_hour_ago, an_hour_ago))


def rewrite_in_place(path: Path, text: str) -> None:
    """What aws-cli does: truncate the file it opens, then write it whole."""
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)


def names_in(text: str) -> dict[str, set[str]]:
    """Sections and their keys as botocore sees them (configparser, [DEFAULT]
    inherited): what a wiped profile or key would be missing from."""
    parser = configparser.RawConfigParser()
    parser.read_string(text)
    names = {section: set(parser.options(section)) for section in parser.sections()}
    names[configparser.DEFAULTSECT] = set(parser.defaults())
    return names


def missing_from(text: str, expected: dict[str, set[str]]) -> list[str]:
    try:
        present = names_in(text)
    except configparser.Error:
        return ["(unreadable)"]
    missing = []
    for section, keys in expected.items():
        if section not in present:
            missing.append(section)
            continue
        missing += [f"{section}.{key}" for key in sorted(keys - present[section])]
    return missing


# ---------------------------------------------------------------------------
# 1,000 edits against an aws-cli-like writer

FILES = 5  # files edited at once, one keyhygiene thread and one writer process each
EDITS_PER_FILE = 210
WRITER_IDLE_SECONDS = 0.04  # the writer sleeps a random 0 to this between rewrites
PROFILE_NAMES = ["default", "work", "home", "ci runner", "prod-eu", "x.y", "lab_2"]
CLI_VALUE = re.compile(r"(?m)^cli_write = \d+")


@dataclass
class Sample:
    """One generated file and what must always be in it."""

    path: Path
    targets: list[str]
    expected: dict[str, set[str]]
    last_key: dict[str, str] = field(default_factory=dict)
    refusals: list[str] = field(default_factory=list)
    crashes: list[BaseException] = field(default_factory=list)


def make_sample(folder: Path, rng: random.Random) -> Sample:
    folder.mkdir()
    newline = rng.choice(["\n", "\r\n"])
    lines: list[str] = []
    if rng.random() < 0.5:
        # A stale token every profile inherits: each key write also overrides it.
        lines += ["[DEFAULT]", "region = eu-west-3", "aws_session_token = STALE", ""]
    targets = rng.sample(PROFILE_NAMES, rng.randint(4, 5))
    for name in targets:
        lines += [f"# {name}'s key", f"[{name}]"]
        lines += [f"aws_access_key_id = AKIA{rng.randrange(10**12):012d}"]
        lines += [f"aws_secret_access_key = {secret(rng)}"]
        if rng.random() < 0.5:
            lines.append("output = json")
        lines.append("")
    lines += ["[aws-cli]", "cli_write = 0", "region = us-east-1"]  # the other writer's own
    text = newline.join(lines) + newline
    path = folder / "credentials"
    write_idle(path, text)
    return Sample(path, targets, names_in(text))


def secret(rng: random.Random) -> str:
    return "".join(rng.choice(SECRET_CHARS) for _ in range(40))


def aws_cli_writer(
    path: str, expected: dict[str, set[str]], stop: Any, stats: Any, seed: int
) -> None:
    """In a child process: rewrite the file the way aws-cli does, changing one
    of its own values each time, until told to stop. stats: [rewrites, reads
    that found something missing]."""
    rng = random.Random(seed)
    count = 0
    while not stop.is_set():
        with open(path, encoding="utf-8", newline="") as handle:
            text = handle.read()
        if missing_from(text, expected):
            stats[1] += 1
        count += 1
        text = CLI_VALUE.sub(f"cli_write = {count}", text, count=1)
        with open(path, "w", encoding="utf-8", newline="") as handle:  # truncates now
            time.sleep(rng.uniform(0, 0.002))
            handle.write(text)
        stats[0] += 1
        time.sleep(rng.uniform(0, WRITER_IDLE_SECONDS))


def keyhygiene_edits(sample: Sample, rng: random.Random) -> None:
    try:
        edit_many(sample, rng)
    except BaseException as crash:  # a thread's exception would go unseen
        sample.crashes.append(crash)


def edit_many(sample: Sample, rng: random.Random) -> None:
    for number in range(EDITS_PER_FILE):
        profile = rng.choice(sample.targets)
        key_id = f"AKIA{number:04d}{rng.randrange(10**8):08d}"
        try:
            cf.set_access_key(sample.path, profile, key_id, secret(rng))
        except BadInput as refusal:
            sample.refusals.append(str(refusal).split(";")[0])
            continue
        sample.last_key[profile] = key_id


def test_aws_cli_rewriting_in_place_never_wipes_a_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(20240612)
    samples = [make_sample(tmp_path / f"computer{i}", rng) for i in range(FILES)]
    by_folder = {sample.path.parent: sample for sample in samples}
    counts = {"attempts": 0, "renames": 0}
    wiped: list[str] = []
    guard = threading.Lock()

    def count(name: str) -> Callable[[], None]:
        def hook() -> None:
            with guard:
                counts[name] += 1

        return hook

    def check_before_rename(temp: Path) -> None:
        # Every version keyhygiene puts in place must hold every profile and key.
        lost = missing_from(temp.read_text(encoding="utf-8"), by_folder[temp.parent].expected)
        if lost:
            with guard:
                wiped.extend(lost)

    monkeypatch.setattr(cf.tuning, "after_read", count("attempts"))
    monkeypatch.setattr(cf.tuning, "after_replace", count("renames"))
    monkeypatch.setattr(cf.tuning, "before_replace", check_before_rename)

    stop = FORK.Event()
    stats = [FORK.Array("l", 2) for _ in samples]
    writers = [
        FORK.Process(
            target=aws_cli_writer,
            args=(str(sample.path), sample.expected, stop, stats[i], rng.randrange(10**9)),
        )
        for i, sample in enumerate(samples)
    ]
    for writer in writers:
        writer.start()
    started = time.monotonic()
    try:
        editors = [
            threading.Thread(target=keyhygiene_edits, args=(s, random.Random(rng.random())))
            for s in samples
        ]
        for editor in editors:
            editor.start()
        for editor in editors:
            editor.join()
    finally:
        stop.set()
        for writer in writers:
            writer.join(10)
    elapsed = time.monotonic() - started

    edits = FILES * EDITS_PER_FILE
    refusals = [text for sample in samples for text in sample.refusals]
    successes = edits - len(refusals)
    rewrites = sum(s[0] for s in stats)
    seen_wiped = sum(s[1] for s in stats)
    print(
        f"\n{edits} edits in {elapsed:.1f} s against {rewrites} in-place rewrites: "
        f"{len(wiped)} wiped names, {seen_wiped} wiped versions seen by the writers, "
        f"{len(refusals)} refusals, {counts['attempts'] - successes} extra attempts, "
        f"{counts['renames'] - successes} renames redone; refusals: {sorted(set(refusals))}"
    )
    assert [crash for sample in samples for crash in sample.crashes] == []
    assert all(writer.exitcode == 0 for writer in writers)
    assert rewrites > edits / 2  # the writers did race the edits
    assert wiped == [] and seen_wiped == 0
    assert len(refusals) <= edits // 100  # rare
    for sample in samples:
        text = sample.path.read_text(encoding="utf-8")
        assert missing_from(text, sample.expected) == []
        parser = configparser.RawConfigParser()
        parser.read_string(text)
        for profile, key_id in sample.last_key.items():
            assert parser.get(profile, "aws_access_key_id") == key_id
            assert parser.get(profile, "aws_session_token", fallback="") == ""


# ---------------------------------------------------------------------------
# Deterministic races, through the module's hooks

BEFORE = (
    "[work]\naws_access_key_id = AKIAOLD\naws_secret_access_key = OLD\n\n"
    "[home]\nregion = eu-west-1\n"
)


@pytest.fixture
def credentials(tmp_path: Path) -> Path:
    path = tmp_path / "credentials"
    write_idle(path, BEFORE)
    return path


def once(action: Callable[[], None]) -> Callable[[], None]:
    """A hook that acts on its first call only, and counts calls."""
    calls: list[None] = []

    def hook() -> None:
        calls.append(None)
        if len(calls) == 1:
            action()

    hook.calls = calls  # type: ignore[attr-defined]
    return hook


def test_a_rewrite_between_read_and_rename_is_seen_and_the_edit_redone(
    credentials: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = BEFORE.replace("eu-west-1", "us-west-2") + "\n[cli]\nregion = x\n"
    hook = once(lambda: rewrite_in_place(credentials, other))
    monkeypatch.setattr(cf.tuning, "after_read", hook)

    cf.set_access_key(credentials, "work", "AKIANEW", "NEW")

    assert len(hook.calls) == 2  # type: ignore[attr-defined]
    assert credentials.read_text() == other.replace("AKIAOLD", "AKIANEW").replace("= OLD", "= NEW")


def test_a_file_caught_empty_mid_rewrite_is_read_again_until_whole(
    credentials: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = BEFORE.replace("eu-west-1", "us-west-2")
    # aws-cli has truncated the file after keyhygiene read it ...
    monkeypatch.setattr(cf.tuning, "after_read", once(lambda: credentials.write_bytes(b"")))
    real_sleep = time.sleep
    sleeps: list[float] = []

    def settle(seconds: float) -> None:
        # ... and writes the new content while keyhygiene settles.
        if not sleeps:
            rewrite_in_place(credentials, other)
        sleeps.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", settle)

    cf.set_access_key(credentials, "work", "AKIANEW", "NEW")

    assert len(sleeps) >= 2  # empty, then whole, then the same whole again
    assert credentials.read_text() == other.replace("AKIAOLD", "AKIANEW").replace("= OLD", "= NEW")


def test_a_file_left_truncated_is_refused_then_taken_as_it_is_when_run_again(
    credentials: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An empty file is used only once nobody has written it for a while.
    monkeypatch.setattr(cf.tuning, "RECENT_WRITE_SECONDS", 0.1)
    monkeypatch.setattr(cf.tuning, "after_read", once(lambda: credentials.write_bytes(b"")))
    with pytest.raises(BadInput) as caught:
        cf.set_access_key(credentials, "work", "AKIANEW", "NEWSECRET")
    message = str(caught.value)
    assert "no longer holds [home]" in message and "nothing was written" in message
    assert "run the same command again" in message
    assert "AKIA" not in message and "SECRET" not in message and "OLD" not in message
    assert credentials.read_bytes() == b""

    monkeypatch.setattr(cf.tuning, "after_read", None)
    cf.set_access_key(credentials, "work", "AKIANEW", "NEWSECRET")  # the person's rerun
    assert credentials.read_text() == (
        "[work]\naws_access_key_id = AKIANEW\naws_secret_access_key = NEWSECRET\n"
    )


def test_a_profile_gone_since_the_last_read_is_not_written_away(
    credentials: Path,
) -> None:
    """The guard compares with the last version seen, not just with the base: a
    shortened file that looks whole (here, written long ago) cannot slip through."""
    assert cf.list_profiles(credentials) == ["work", "home"]
    write_idle(credentials, "[work]\naws_access_key_id = AKIAOLD\n")
    with pytest.raises(
        BadInput, match=r"no longer holds .aws_secret_access_key. in \[work\], .region. in \[home\]"
    ):
        cf.set_access_key(credentials, "home", "AKIANEW", "NEW")
    assert credentials.read_text() == "[work]\naws_access_key_id = AKIAOLD\n"


def test_an_edit_lost_to_a_late_in_place_write_is_redone(
    credentials: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # aws-cli read the file before the rename and writes it back just after.
    stale = BEFORE.replace("eu-west-1", "us-west-2")
    hook = once(lambda: rewrite_in_place(credentials, stale))
    monkeypatch.setattr(cf.tuning, "after_replace", hook)

    cf.set_access_key(credentials, "work", "AKIANEW", "NEW")

    assert len(hook.calls) == 2  # type: ignore[attr-defined]
    assert credentials.read_text() == stale.replace("AKIAOLD", "AKIANEW").replace("= OLD", "= NEW")


def test_a_truncation_just_before_the_rename_loses_nothing(
    credentials: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    descriptors: list[int] = []

    def truncate(temp: Path) -> None:
        # aws-cli opens (truncates) the old file after the compare-and-swap check ...
        descriptors.append(os.open(credentials, os.O_WRONLY | os.O_TRUNC))

    def finish() -> None:
        # ... and writes into it after the rename: into the replaced inode.
        os.write(descriptors[0], BEFORE.encode())
        os.close(descriptors[0])

    monkeypatch.setattr(cf.tuning, "before_replace", truncate)
    monkeypatch.setattr(cf.tuning, "after_replace", finish)

    cf.set_access_key(credentials, "work", "AKIANEW", "NEW")

    assert credentials.read_text() == BEFORE.replace("AKIAOLD", "AKIANEW").replace("= OLD", "= NEW")


def test_a_file_rewritten_at_every_attempt_is_refused_after_the_bound(
    credentials: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cf.tuning, "MAX_ATTEMPTS", 3)
    calls: list[None] = []

    def rewrite() -> None:
        calls.append(None)
        rewrite_in_place(credentials, BEFORE + f"\n[cli]\nwrite = {len(calls)}\n")

    monkeypatch.setattr(cf.tuning, "after_read", rewrite)
    with pytest.raises(BadInput) as caught:
        cf.set_access_key(credentials, "work", "AKIANEW", "NEW")
    assert str(caught.value).startswith(
        f"Another program kept rewriting {credentials} while keyhygiene tried to edit it; "
        "nothing was written."
    )
    assert "Retry when it has finished" in str(caught.value)
    assert len(calls) == 3
    assert credentials.read_text() == BEFORE + "\n[cli]\nwrite = 3\n"


def test_a_file_that_never_settles_is_refused_in_bounded_time(
    credentials: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cf.tuning, "SETTLE_LIMIT_SECONDS", 0.3)
    real_sleep = time.sleep
    writes: list[None] = []

    def busy_writer(seconds: float) -> None:
        writes.append(None)
        rewrite_in_place(credentials, BEFORE + "#" * len(writes))
        real_sleep(seconds)

    rewrite_in_place(credentials, BEFORE + "# just now")
    monkeypatch.setattr(time, "sleep", busy_writer)
    started = time.monotonic()
    with pytest.raises(BadInput, match="Another program kept rewriting .* nothing was written"):
        cf.set_access_key(credentials, "work", "AKIANEW", "NEW")
    assert 0.3 <= time.monotonic() - started < 2
    assert "AKIANEW" not in credentials.read_text()


def test_an_idle_file_and_our_own_last_write_are_edited_without_sleeping(
    credentials: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_sleep(seconds: float) -> None:
        raise AssertionError("an idle file must not wait")

    monkeypatch.setattr(time, "sleep", no_sleep)
    assert cf.read_profile(credentials, "home") == {"region": "eu-west-1"}
    cf.set_access_key(credentials, "work", "AKIA1", "S1")
    cf.set_access_key(credentials, "home", "AKIA2", "S2")  # written a moment ago, by us
    assert cf.list_profiles(credentials) == ["work", "home"]


def test_a_file_written_a_moment_ago_by_someone_else_is_read_twice(
    credentials: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_sleep = time.sleep
    sleeps: list[float] = []

    def counted(seconds: float) -> None:
        sleeps.append(seconds)
        real_sleep(seconds)

    rewrite_in_place(credentials, BEFORE)  # mtime: now
    monkeypatch.setattr(time, "sleep", counted)
    cf.set_access_key(credentials, "work", "AKIANEW", "NEW")
    # One settle before the read is trusted, then the file is watched a little
    # after the rename (RECHECK_SECONDS) in case the other writer comes back.
    assert set(sleeps) == {cf.tuning.SETTLE_SECONDS}
    assert 2 <= len(sleeps) <= 2 + cf.tuning.RECHECK_SECONDS / cf.tuning.SETTLE_SECONDS


# ---------------------------------------------------------------------------
# A lock held by another process


def hold_lock(lock: str, ready: Any, release: Any) -> None:
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    ready.set()
    release.wait(20)
    os.close(fd)


@pytest.fixture
def lock_holder(credentials: Path) -> Iterator[Any]:
    ready, release = FORK.Event(), FORK.Event()
    lock = str(credentials) + cf.LOCK_SUFFIX
    child = FORK.Process(target=hold_lock, args=(lock, ready, release))
    child.start()
    assert ready.wait(10)
    yield release
    release.set()
    child.join(10)


def test_a_held_lock_is_waited_for_with_one_notice_then_refused(
    credentials: Path,
    lock_holder: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(cf.tuning, "LOCK_NOTICE_SECONDS", 0.1)
    monkeypatch.setattr(cf.tuning, "LOCK_TIMEOUT_SECONDS", 0.6)
    notices: list[str] = []
    monkeypatch.setattr(cf.tuning, "lock_wait_notice", notices.append)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger=cf.__name__), pytest.raises(BadInput) as caught:
        cf.set_access_key(credentials, "work", "AKIANEW", "NEWSECRET")
    assert 0.6 <= time.monotonic() - started < 3
    lock = f"{credentials}{cf.LOCK_SUFFIX}"
    message = str(caught.value)
    assert message.startswith(f"{lock} stayed locked for 0.6 s: another keyhygiene seems to be")
    assert "nothing was written" in message
    assert f"If no keyhygiene is running, the lock is stale: delete {lock} and retry." in message
    assert "NEWSECRET" not in message
    assert notices == [
        f"Waiting for {lock}: another keyhygiene seems to be editing {credentials} "
        "(keyhygiene gives up after 0.6 s)."
    ]
    assert [record.getMessage() for record in caplog.records] == notices
    assert credentials.read_text() == BEFORE


def test_a_lock_released_while_waiting_lets_the_edit_through(
    credentials: Path, lock_holder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cf.tuning, "LOCK_NOTICE_SECONDS", 0.1)
    notices: list[str] = []
    monkeypatch.setattr(cf.tuning, "lock_wait_notice", notices.append)
    threading.Timer(0.4, lock_holder.set).start()
    started = time.monotonic()
    cf.set_access_key(credentials, "work", "AKIANEW", "NEW")
    assert time.monotonic() - started >= 0.3
    assert len(notices) == 1
    assert cf.read_profile(credentials, "work")["aws_access_key_id"] == "AKIANEW"
