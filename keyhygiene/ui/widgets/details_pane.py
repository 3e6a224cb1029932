"""The details pane: facts about the selected node and its policies as highlighted JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator

from rich.console import Console, ConsoleOptions, Group, RenderableType
from rich.measure import Measurement
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from keyhygiene.views.details import Details

# Where a long value may break, best first: between words, then between an
# ARN's parts (after a slash, a colon or a comma), then inside an id (after a
# hyphen); only a part with none of these is folded mid-word.
_BREAKS = (frozenset(" "), frozenset("/:,"), frozenset("-"))


def wrap_at_boundaries(text: str, width: int) -> list[str]:
    """`text` in lines of at most `width`: broken between words where a word
    ends on the line, else after the best boundary past the line's first
    third, else folded at `width`."""
    width = max(width, 1)
    lines: list[str] = []
    for paragraph in text.split("\n"):
        while len(paragraph) > width:
            cut = width
            for tier, marks in enumerate(_BREAKS):
                # A space just past `width` still ends a full line (it is dropped).
                window = paragraph[: width + 1] if tier == 0 else paragraph[:width]
                best = min(
                    max((i + 1 for i, ch in enumerate(window) if ch in marks), default=0), width
                )
                # Between words always; inside a word only past its first third.
                if best > (0 if tier == 0 else width // 3):
                    cut = best
                    break
            lines.append(paragraph[:cut].rstrip(" "))
            paragraph = paragraph[cut:].lstrip(" ")
        lines.append(paragraph)
    return lines


class Wrapped:
    """A fact's value, wrapped at boundaries by whatever width the table gives it."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Text]:
        for line in wrap_at_boundaries(self.text, options.max_width):
            yield Text(line)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        longest = max((len(line) for line in self.text.split("\n")), default=0)
        return Measurement(min(longest, 12), longest)


class DetailsPane(VerticalScroll):
    DEFAULT_CSS = """
    DetailsPane { width: 1fr; padding: 0 1; border-left: solid $primary-background; }
    DetailsPane > Static { width: 100%; }
    """

    def compose(self):  # type: ignore[no-untyped-def]
        yield Static(Text("Select something in the tree.", style="dim"), id="details-body")

    details: Details | None = None

    def show(self, details: Details) -> None:
        self.details = details
        self.query_one("#details-body", Static).update(render_details(details))
        self.scroll_home(animate=False)

    def show_message(self, text: str, *, style: str = "") -> None:
        self.query_one("#details-body", Static).update(Text(text, style=style))


def render_details(details: Details) -> RenderableType:
    parts: list[RenderableType] = [Text(details.title, style="bold underline")]
    if details.facts:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="dim", no_wrap=True)
        table.add_column()
        for name, value in details.facts:
            table.add_row(name, Wrapped(value))
        parts.append(table)
    for hint in details.hints:
        parts.append(Text(hint, style="italic yellow"))
    for title, document in details.documents:
        parts.append(Text(""))
        parts.append(Text(title, style="bold"))
        parts.append(
            Syntax(
                json.dumps(document, indent=2, sort_keys=True),
                "json",
                theme="ansi_dark",
                word_wrap=True,
            )
        )
    return Group(*parts)
