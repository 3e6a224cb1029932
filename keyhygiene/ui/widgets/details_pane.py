"""The details pane: facts about the selected node and its policies as highlighted JSON."""

from __future__ import annotations

import json

from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from keyhygiene.views.details import Details


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
        table.add_column(overflow="fold")
        for name, value in details.facts:
            table.add_row(name, value)
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
