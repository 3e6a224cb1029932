"""The findings screen: the audit as a table, sortable by severity or resource.

Choosing a finding (Enter or a click) dismisses the screen with it, so the
screen that pushed this one can select the finding's node in the tree and
offer its fix. Escape closes with None.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static

from keyhygiene.audit.findings import Finding, summary_line

SortKey = Literal["severity", "resource"]

SEVERITY_STYLES = {
    "critical": "bold white on red",
    "high": "bold red",
    "medium": "yellow",
    "low": "dim",
}


class FindingsScreen(ModalScreen[Finding | None]):
    """A table of findings; dismisses with the chosen one, or None on Escape."""

    DEFAULT_CSS = """
    FindingsScreen {
        align: center middle;
    }
    FindingsScreen > #findings-box {
        width: 95%;
        height: 90%;
        border: thick $primary;
        background: $surface;
        padding: 0 1;
    }
    FindingsScreen #findings-summary {
        height: 1;
        color: $text-muted;
    }
    FindingsScreen #findings-table {
        height: 1fr;
    }
    FindingsScreen #finding-detail {
        height: auto;
        max-height: 8;
        padding: 1 0 0 0;
    }
    """

    BINDINGS = [
        Binding("escape", "close", "Close", tooltip="Close without choosing a finding"),
        Binding(
            "s",
            "sort('severity')",
            "Sort by severity",
            tooltip="Worst first (again: reversed)",
            id="findings.sort-severity",
        ),
        Binding(
            "r",
            "sort('resource')",
            "Sort by resource",
            tooltip="By resource name (again: reversed)",
            id="findings.sort-resource",
        ),
    ]

    def __init__(self, findings: Sequence[Finding], *, title: str = "Audit findings") -> None:
        super().__init__()
        self.findings: tuple[Finding, ...] = tuple(findings)
        # Rows are keyed by position: two findings can be equal (same rule, same resource).
        self._entries = tuple((str(index), f) for index, f in enumerate(self.findings))
        self.title_text = title
        self.sort_key: SortKey = "severity"
        self.sort_reverse = False

    def compose(self) -> ComposeResult:
        with Vertical(id="findings-box"):
            yield Static(
                f"{self.title_text} — {summary_line(self.findings)}", id="findings-summary"
            )
            yield DataTable(id="findings-table", cursor_type="row", zebra_stripes=True)
            yield Static("", id="finding-detail")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("Severity", key="severity")
        if self._several_accounts:
            table.add_column("Account", key="account")
        table.add_column("Resource", key="resource")
        table.add_column("Kind", key="kind")
        table.add_column("Finding", key="title")
        self._fill()
        table.focus()
        if not self.findings:
            self._show_detail(None)

    @property
    def _several_accounts(self) -> bool:
        return any(finding.account for finding in self.findings)

    # ---- sorting ---------------------------------------------------------------
    def ordered(self) -> list[Finding]:
        """The findings in the table's current order."""
        return [finding for _, finding in self._ordered_entries()]

    def _ordered_entries(self) -> list[tuple[str, Finding]]:
        def by_severity(entry: tuple[str, Finding]) -> tuple[object, ...]:
            f = entry[1]
            return (f.rank, f.account or "", f.resource.lower(), f.id, int(entry[0]))

        def by_resource(entry: tuple[str, Finding]) -> tuple[object, ...]:
            f = entry[1]
            return (f.resource.lower(), f.resource_kind, f.rank, f.id, int(entry[0]))

        chosen = by_severity if self.sort_key == "severity" else by_resource
        return sorted(self._entries, key=chosen, reverse=self.sort_reverse)

    def action_sort(self, key: SortKey) -> None:
        # Asking again for the same order reverses it, as clicking a header does.
        self.sort_reverse = not self.sort_reverse if key == self.sort_key else False
        self.sort_key = key
        self._fill()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        column = event.column_key.value
        if column in ("severity", "resource"):
            self.action_sort(column)  # type: ignore[arg-type]

    def _fill(self) -> None:
        """(Re)build the rows in the current order, keeping the cursor on its finding."""
        table = self.query_one(DataTable)
        current = self._highlighted_key()
        table.clear()
        for key, finding in self._ordered_entries():
            cells: list[str | Text] = [
                Text(finding.severity.upper(), style=SEVERITY_STYLES[finding.severity])
            ]
            if self._several_accounts:
                cells.append(finding.account or "")
            cells += [finding.resource, finding.resource_kind, finding.title]
            table.add_row(*cells, key=key)
        if current is not None:
            table.move_cursor(row=table.get_row_index(current))

    # ---- choosing ----------------------------------------------------------------
    def highlighted(self) -> Finding | None:
        """The finding under the cursor, if any."""
        return self._finding(self._highlighted_key())

    def _highlighted_key(self) -> str | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return row_key.value

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail(self._finding(event.row_key.value))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        finding = self._finding(event.row_key.value)
        if finding is not None:
            self.dismiss(finding)

    def action_close(self) -> None:
        self.dismiss(None)

    def _finding(self, key: str | None) -> Finding | None:
        if key is None:
            return None
        return self.findings[int(key)]

    def _show_detail(self, finding: Finding | None) -> None:
        detail = self.query_one("#finding-detail", Static)
        if finding is None:
            detail.update("No findings: the account and this computer follow the practice.")
            return
        text = Text()
        text.append(finding.title, style="bold")
        text.append(f"  [{finding.id}]\n", style="dim")
        text.append(finding.detail)
        if finding.fix:
            text.append("\nFix: ", style="bold")
            text.append(finding.fix)
        detail.update(text)
