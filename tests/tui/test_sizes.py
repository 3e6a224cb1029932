"""The forms at real terminal sizes: at 80×24 every form's fields scroll and
its buttons stay on the screen; the main screen gives the details pane room."""

from __future__ import annotations

from typing import Any

import pytest
from sample_account import sample_snapshot
from textual.app import App
from textual.widgets import Button

from keyhygiene.ui.screens.application_screen import ApplicationScreen
from keyhygiene.ui.screens.enroll_screen import EnrollScreen
from keyhygiene.ui.screens.membership_screen import MembershipScreen

pytestmark = pytest.mark.tui


class Host(App[None]):
    def __init__(self, screen: Any) -> None:
        super().__init__()
        self.modal = screen

    def on_mount(self) -> None:
        self.push_screen(self.modal)


def forms() -> list[tuple[str, Any]]:
    snapshot = sample_snapshot()
    return [
        ("lend", lambda: MembershipScreen(snapshot, None, "lend", user="christopher-phone")),  # type: ignore[arg-type]
        ("enroll", lambda: EnrollScreen(snapshot, None)),  # type: ignore[arg-type]
        ("application", lambda: ApplicationScreen(snapshot, None)),  # type: ignore[arg-type]
    ]


@pytest.mark.parametrize(("name", "make"), forms(), ids=[name for name, _ in forms()])
@pytest.mark.parametrize("size", [(80, 24), (160, 50)], ids=["80x24", "160x50"])
async def test_every_button_of_a_form_is_on_the_screen(
    name: str, make: Any, size: tuple[int, int]
) -> None:
    app = Host(make())
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        screen = app.screen
        buttons = list(screen.query(Button))
        assert buttons, name
        width, height = size
        for button in buttons:
            if not button.display:
                continue
            region = button.region
            assert region.height > 0 and region.y + region.height <= height, (
                name,
                button.id,
                region,
            )
            assert region.x + region.width <= width, (name, button.id, region)


def test_values_wrap_between_an_arns_parts() -> None:
    from keyhygiene.ui.widgets.details_pane import wrap_at_boundaries

    arn = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    assert wrap_at_boundaries(arn, 50) == [
        "arn:aws:kms:us-east-1:123456789012:key/",
        "1234abcd-12ab-34cd-56ef-1234567890ab",
    ]
    assert wrap_at_boundaries("role photos, christopher-home", 20) == [
        "role photos,",
        "christopher-home",
    ]
    # No boundary: folded at the width, nothing lost.
    assert "".join(wrap_at_boundaries("x" * 25, 10)) == "x" * 25
    assert wrap_at_boundaries("short", 10) == ["short"]
    # Words first, then an ARN's parts, then an id's hyphens.
    assert wrap_at_boundaries("aws:kms arn:aws:kms:us-east-1:1", 26) == [
        "aws:kms",
        "arn:aws:kms:us-east-1:1",
    ]
    assert wrap_at_boundaries("1234abcd-12ab-34cd-56ef-1234567890ab", 30) == [
        "1234abcd-12ab-34cd-56ef-",
        "1234567890ab",
    ]
