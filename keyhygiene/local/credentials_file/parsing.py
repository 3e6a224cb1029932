"""Parse exactly as botocore reads, keeping every byte, line by line."""

from __future__ import annotations

import configparser
import re
from dataclasses import dataclass, field

from keyhygiene.local.credentials_file.model import CredentialsFileRefused

# botocore reads both files with a default RawConfigParser: reuse its own
# patterns so that "what botocore accepts" is decided by the same code.
_SECTION_RE = configparser.RawConfigParser.SECTCRE
_OPTION_RE = configparser.RawConfigParser.OPTCRE
_NONSPACE_RE = configparser.RawConfigParser.NONSPACECRE
_COMMENT_PREFIXES = ("#", ";")
_DEFAULT_SECTION = configparser.DEFAULTSECT
_LINE_BREAK_RE = re.compile(r"\r\n|\r|\n")  # universal newlines, as open() reads
_KEY_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_ACCOUNT_ID_RE = re.compile(r"^[0-9]{12}$")
_UTF8_BOM = b"\xef\xbb\xbf"
_ENV_VAR_RE = re.compile(r"\$(\w+|\{[^}]*\})")


@dataclass(frozen=True)
class _Line:
    number: int  # 1-based, as a person counts
    text: str = field(repr=False)  # without its line break
    ending: str  # "\r\n", "\n", "\r" or "" (last line without one)


@dataclass(eq=False)
class _Option:
    key: str  # lower-cased, as botocore sees it
    first: int  # index of the `key = value` line
    last: int  # index of its last continuation line
    parts: list[str] = field(repr=False)
    part_lines: list[int] = field(repr=False)

    @property
    def value(self) -> str:
        return "\n".join(self.parts).rstrip()


@dataclass(eq=False)
class _Section:
    name: str
    header: int  # line index
    options: dict[str, _Option] = field(default_factory=dict)

    def end(self) -> int:
        """Index of the last line holding a setting of this section."""
        return max([self.header] + [option.last for option in self.options.values()])


@dataclass(eq=False)
class _Document:
    lines: list[_Line] = field(repr=False)
    sections: list[_Section]
    newline: str

    def text(self) -> str:
        return "".join(line.text + line.ending for line in self.lines)

    def values(self) -> dict[str, dict[str, str]]:
        """Own settings of every section; the [DEFAULT] blocks merged."""
        result: dict[str, dict[str, str]] = {}
        for section in self.sections:
            own = result.setdefault(section.name, {})
            own.update({key: option.value for key, option in section.options.items()})
        return result


def _split_lines(text: str) -> list[_Line]:
    lines: list[_Line] = []
    start = 0
    for match in _LINE_BREAK_RE.finditer(text):
        lines.append(_Line(len(lines) + 1, text[start : match.start()], match.group()))
        start = match.end()
    if start < len(text):
        lines.append(_Line(len(lines) + 1, text[start:], ""))
    return lines


def _decode(data: bytes, shown: str) -> str:
    if data.startswith(_UTF8_BOM):
        raise CredentialsFileRefused(shown, 1, "the file starts with a UTF-8 byte-order mark (BOM)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = len(_split_lines(data[: exc.start].decode("utf-8") + "x"))
        raise CredentialsFileRefused(shown, line, "the file is not valid UTF-8") from None


def _parse(text: str, shown: str) -> _Document:
    """Mirror `RawConfigParser._read` (strict, `=` and `:`, full-line comments,
    blank lines inside values) and refuse what it would refuse."""
    lines = _split_lines(text)
    sections: list[_Section] = []
    first_seen: dict[str, int] = {}
    keys_seen: dict[tuple[str, str], int] = {}
    section: _Section | None = None
    option: _Option | None = None
    indent_level = 0
    for index, line in enumerate(lines):
        stripped = line.text.strip()
        if stripped.startswith(_COMMENT_PREFIXES):
            continue
        if not stripped:
            if option is not None:
                option.parts.append("")
                option.part_lines.append(line.number)
            continue
        first = _NONSPACE_RE.search(line.text)
        level = first.start() if first else 0
        if option is not None and level > indent_level:
            option.parts.append(stripped)
            option.part_lines.append(line.number)
            option.last = index
            continue
        indent_level = level
        header = _SECTION_RE.match(stripped)
        if header:
            name = header.group("header")
            if name != _DEFAULT_SECTION and name in first_seen:
                raise CredentialsFileRefused(
                    shown,
                    line.number,
                    f"duplicate section {_name(name, '[', ']')} (first at line {first_seen[name]})",
                )
            first_seen.setdefault(name, line.number)
            section = _Section(name, index)
            sections.append(section)
            option = None
            continue
        if section is None:
            raise CredentialsFileRefused(
                shown, line.number, "a setting before any [section] header"
            )
        option = _parse_option(section, index, line, stripped, keys_seen, shown)
    # botocore parses nested values section by section; [DEFAULT]'s options reach
    # that parsing only through the sections that inherit them, so alone it passes.
    profiles = any(section.name != _DEFAULT_SECTION for section in sections)
    for section in sections:
        if section.name == _DEFAULT_SECTION and not profiles:
            continue
        for option in section.options.values():
            _check_nested(option, section, shown)
    return _Document(lines, sections, _newline_of(lines))


def _parse_option(
    section: _Section,
    index: int,
    line: _Line,
    stripped: str,
    keys_seen: dict[tuple[str, str], int],
    shown: str,
) -> _Option:
    match = _OPTION_RE.match(stripped)
    if not match:
        raise CredentialsFileRefused(
            shown,
            line.number,
            "a line that is not a [section], a comment or a 'key = value' setting",
        )
    if not match.group("option"):
        raise CredentialsFileRefused(shown, line.number, "a setting with no key name before '='")
    key = match.group("option").rstrip().lower()
    seen = keys_seen.get((section.name, key))
    if seen is not None:
        raise CredentialsFileRefused(
            shown,
            line.number,
            f"duplicate key {_name(key)} in {_name(section.name, '[', ']')} (first at line {seen})",
        )
    keys_seen[(section.name, key)] = line.number
    option = _Option(key, index, index, [match.group("value").strip()], [line.number])
    section.options[key] = option
    return option


def _check_nested(option: _Option, section: _Section, shown: str) -> None:
    """botocore reads a value that starts on the next, indented line as
    sub-settings and fails when one of those lines has no `=`."""
    if not option.value.startswith("\n"):
        return
    for part, number in zip(option.parts, option.part_lines, strict=True):
        for piece in part.splitlines():
            if piece.strip() and "=" not in piece:
                raise CredentialsFileRefused(
                    shown,
                    number,
                    f"an indented line under {_name(option.key)} in "
                    f"{_name(section.name, '[', ']')} has no '=' (botocore reads indented "
                    "lines as sub-settings)",
                )


def _name(name: str, left: str = "'", right: str = "'") -> str:
    """A key or section name for a message. A long one is not shown: a pasted
    secret (40 characters) must never reach a message, even as a key name."""
    if len(name) <= 32 and name.isprintable():
        return f"{left}{name}{right}"
    return "(a name too long to show)"


def _newline_of(lines: list[_Line]) -> str:
    for line in lines:
        if line.ending:
            return line.ending
    return "\n"
