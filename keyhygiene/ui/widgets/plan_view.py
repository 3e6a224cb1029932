"""PlanView: a plan as a person reviews it, with live status while it runs."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from keyhygiene.plans import Plan, PlanEvent

_MARKS = {
    "pending": ("○", "dim"),
    "running": ("▶", "bold yellow"),
    "done": ("✔", "bold green"),
    "failed": ("✘", "bold red"),
    "skipped": ("–", "dim"),
    "undone": ("↶", "bold cyan"),
}


def step_text(plan: Plan, step_id: str, status: str = "pending", note: str = "") -> Text:
    """The step's sentence with its status mark, then its exact call, undo and diff."""
    mark, style = _MARKS.get(status, _MARKS["pending"])
    lines = plan.step_lines(step_id)
    text = Text()
    text.append(f"{mark} ", style=style)
    text.append(lines[0], style="bold")
    if note:
        text.append(f"  {note}", style=style)
    for line in lines[1:]:
        stripped = line.strip()
        if stripped.startswith("+") and not stripped.startswith("+++"):
            line_style = "green"
        elif stripped.startswith("-") and not stripped.startswith("---"):
            line_style = "red"
        else:
            line_style = "dim"
        text.append("\n" + line, style=line_style)
    return text


class PlanView(VerticalScroll):
    """Every step of a plan: sentence, exact call, undo and policy diff.

    `mark(event)` updates a step's status from the plan engine's events (call
    it on the UI thread)."""

    DEFAULT_CSS = """
    PlanView { height: 1fr; border: round $primary-background; padding: 0 1; }
    PlanView > .plan-warning { color: $warning; }
    PlanView > .plan-step { margin-bottom: 1; }
    """

    def __init__(self, plan: Plan, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.plan = plan
        self.statuses: dict[str, str] = {step.id: "pending" for step in plan.steps}

    def compose(self) -> ComposeResult:
        title = Text(self.plan.title, style="bold")
        count = len(self.plan.steps)
        title.append(f"  ({count} step{'s' if count != 1 else ''})", style="dim")
        yield Static(title)
        for warning in self.plan.warnings:
            yield Static(f"⚠ {warning}", classes="plan-warning")
        if not self.plan.steps:
            yield Static(Text("Nothing to change.", style="dim"))
        for index, step in enumerate(self.plan.steps):
            yield Static(
                step_text(self.plan, step.id), classes="plan-step", id=f"plan-step-{index}"
            )

    def mark(self, event: PlanEvent) -> None:
        if event.step_id is None or event.step_id not in self.statuses:
            return
        status = {
            "step_started": "running",
            "step_done": "undone" if event.undo else "done",
            "step_failed": "failed",
            "step_skipped": "skipped",
        }.get(event.kind)
        if status is None:
            return
        self.statuses[event.step_id] = status
        note = ""
        if status in ("done", "undone"):
            note = f"{event.seconds:.1f} s"
        elif status == "failed":
            note = event.message
        index = self.plan.number(event.step_id) - 1
        widget = self.query_one(f"#plan-step-{index}", Static)
        widget.update(step_text(self.plan, event.step_id, status, note))
        widget.scroll_visible(animate=False)
