"""The account tree: the outline rendered as a Textual Tree, children added on expand."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from keyhygiene.views.outline import OutlineNode

# Icons say what a node is at a glance; plain characters render everywhere.
_ICONS = {
    "accounts": "◇",
    "account": "◆",
    "computer": "▣",
    "presence": "·",
    "root": "♛",
    "section": "",
    "person": "☺",
    "device": "▣",
    "user": "▢",
    "key": "⚿",
    "group": "◎",
    "member": "·",
    "application": "▤",
    "role": "⚙",
    "bucket": "◫",
    "kms-key": "⚷",
    "principal": "·",
}


_BADGE_STYLES = {
    "critical": "bold white on red",
    "high": "bold red",
    "medium": "yellow",
    "low": "dim",
}


class AccountTree(Tree[OutlineNode]):
    """Shows an `OutlineNode` tree. Large branches are filled only when opened,
    so 500 users cost nothing until someone looks at them."""

    DEFAULT_CSS = """
    AccountTree { width: 1fr; min-width: 30; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("Account", id=id)
        self.show_root = True
        self.guide_depth = 3

    def show_outline(self, outline: OutlineNode, *, expand_all: bool = False) -> None:
        """Replace the tree's content, keeping open branches open and the cursor
        on the same thing where possible."""
        selected = self.cursor_node.data if self.cursor_node else None
        opened = {
            (node.data.kind, node.data.ref)
            for node in self._walk(self.root)
            if node.is_expanded and node.data is not None
        }
        self.clear()
        self.root.set_label(self.render_label_for(outline))
        self.root.data = outline
        self._fill(self.root, outline, expand_all=expand_all)
        self.root.expand()
        if not expand_all:
            self._reopen(self.root, opened)
        if selected is not None:
            self.select_ref(selected.kind, selected.ref)

    def _reopen(self, parent: TreeNode[OutlineNode], opened: set[tuple[str, str | None]]) -> None:
        for node in parent.children:
            data = node.data
            if data is not None and (data.kind, data.ref) in opened and data.children:
                if not node.children:
                    self._fill(node, data, expand_all=False)
                node.expand()
                self._reopen(node, opened)

    def _fill(
        self, parent: TreeNode[OutlineNode], outline: OutlineNode, *, expand_all: bool
    ) -> None:
        for child in outline.children:
            node = parent.add(
                self.render_label_for(child), data=child, allow_expand=bool(child.children)
            )
            if expand_all and child.children:
                self._fill(node, child, expand_all=True)
                node.expand()

    def _on_tree_node_expanded(self, event: Tree.NodeExpanded[OutlineNode]) -> None:
        node = event.node
        if node.data is not None and not node.children and node.data.children:
            self._fill(node, node.data, expand_all=False)

    def select_ref(self, kind: str, ref: str | None, *, within: str | None = None) -> bool:
        """Move the cursor to the first node for (kind, ref), opening its parents;
        `within` (an account id) looks only in that account's branch."""
        path = _path_to(self.root.data, kind, ref) if self.root.data else None
        if within is not None and self.root.data is not None:
            branch = next(
                (c for c in self.root.data.children if c.kind == "account" and c.ref == within),
                None,
            )
            below = _path_to(branch, kind, ref) if branch else None
            path = [self.root.data, *below] if below else None
        if not path:
            return False
        node = self.root
        for step in path[1:]:
            if not node.children and node.data and node.data.children:
                self._fill(node, node.data, expand_all=False)
            node.expand()
            match = next((c for c in node.children if c.data is step), None)
            if match is None:
                return False
            node = match
        # Line numbers of freshly expanded nodes are known after the next refresh.
        self.call_after_refresh(self.move_cursor, node)
        return True

    def _walk(self, node: TreeNode[OutlineNode]):  # type: ignore[no-untyped-def]
        yield node
        for child in node.children:
            yield from self._walk(child)

    @staticmethod
    def render_label_for(outline: OutlineNode) -> Text:
        icon = _ICONS.get(outline.kind, "")
        text = Text()
        if icon:
            text.append(icon + " ", style="dim")
        text.append(
            outline.label,
            style="bold red" if outline.warn else "bold" if outline.kind == "section" else "",
        )
        # The badge comes before the note: a long note is cut at the pane's
        # edge, and the badge must not be.
        if outline.findings:
            style = _BADGE_STYLES.get(outline.worst or "", "dim")
            text.append(f"  ⚑{outline.findings} {outline.worst}", style=style)
        if outline.note:
            text.append(f"  {outline.note}", style="red" if outline.warn else "dim")
        return text


def _path_to(outline: OutlineNode, kind: str, ref: str | None) -> list[OutlineNode] | None:
    if outline.kind == kind and outline.ref == ref:
        return [outline]
    for child in outline.children:
        below = _path_to(child, kind, ref)
        if below:
            return [outline, *below]
    return None
