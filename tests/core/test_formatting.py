"""How paths, key ids and times are shown."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from keyhygiene.core.formatting import key_tail, parse_utc, shown_path, utc_z


def test_shown_path_abbreviates_the_home_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/alice")
    assert shown_path("/home/alice/.aws/credentials") == "~/.aws/credentials"
    assert shown_path(Path("/home/alice/.aws/config")) == "~/.aws/config"
    assert shown_path("/home/alice") == "~"
    assert shown_path("/home/alicia/.aws/credentials") == "/home/alicia/.aws/credentials"
    assert shown_path("/etc/aws") == "/etc/aws"
    monkeypatch.setenv("HOME", "/")
    assert shown_path("/etc/aws") == "/etc/aws"  # a home of / abbreviates nothing


def test_shown_path_with_another_home(tmp_path: Path) -> None:
    assert shown_path(tmp_path / ".aws" / "credentials", tmp_path) == "~/.aws/credentials"
    assert shown_path("/elsewhere/file", tmp_path) == "/elsewhere/file"


def test_key_tail() -> None:
    assert key_tail("AKIAIOSFODNN7EXAMPLE") == "…MPLE"


def test_utc_z() -> None:
    paris = timezone(timedelta(hours=1))
    assert utc_z(datetime(2026, 11, 28, 22, 0, 0, 999, tzinfo=paris)) == "2026-11-28T21:00:00Z"
    with pytest.raises(ValueError, match="time zone"):
        utc_z(datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-28T21:00:00Z", datetime(2026, 11, 28, 21, tzinfo=timezone.utc)),
        (" 2026-11-28T21:00:00+00:00 ", datetime(2026, 11, 28, 21, tzinfo=timezone.utc)),
        ("2026-11-28T21:00:00", datetime(2026, 11, 28, 21, tzinfo=timezone.utc)),
        ("2026-11-28", datetime(2026, 11, 28, tzinfo=timezone.utc)),
        ("tomorrow", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_utc(text: str | None, expected: datetime | None) -> None:
    assert parse_utc(text) == expected


def test_parse_utc_keeps_an_offset() -> None:
    moment = parse_utc("2026-11-28T22:00:00+01:00")
    assert moment is not None and moment.utcoffset() == timedelta(hours=1)
    assert utc_z(moment) == "2026-11-28T21:00:00Z"
