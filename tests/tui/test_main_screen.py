"""The tree screen, driven with Pilot against the demo account's moto server."""

from __future__ import annotations

import pytest
from helpers import use_demo
from textual.pilot import Pilot

from keyhygiene.aws.connection import ConnectionOptions
from keyhygiene.demo.server import DemoInfo
from keyhygiene.ui.app import make_app
from keyhygiene.ui.screens.main_screen import MainScreen
from keyhygiene.ui.widgets.account_tree import AccountTree
from keyhygiene.ui.widgets.details_pane import DetailsPane


async def wait_loaded(pilot: Pilot, *, timeout: float = 30) -> MainScreen:
    screen = pilot.app.screen
    assert isinstance(screen, MainScreen)
    waited = 0.0
    while screen.snapshot is None and waited < timeout:
        await pilot.pause(0.1)
        waited += 0.1
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    return screen


def tree_labels(tree: AccountTree) -> list[str]:
    labels = []

    def walk(node) -> None:  # type: ignore[no-untyped-def]
        labels.append(str(node.label))
        for child in node.children:
            walk(child)

    walk(tree.root)
    return labels


@pytest.fixture
def demo_app(demo_session: DemoInfo, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    use_demo(monkeypatch, demo_session)
    return make_app(ConnectionOptions(profile=demo_session.profile))


async def test_people_and_devices_appear(demo_app) -> None:  # type: ignore[no-untyped-def]
    async with demo_app.run_test(size=(120, 40)) as pilot:
        screen = await wait_loaded(pilot)
        tree = screen.query_one(AccountTree)
        assert tree.select_ref("device", "christopher-laptop")
        await pilot.pause()
        labels = tree_labels(tree)
        assert any("christopher" in label and "5 computers" in label for label in labels)
        assert any(label.startswith("▣ laptop") and "this computer" in label for label in labels)
        for device in ("work", "home", "phone", "vacation"):
            assert any(label.startswith(f"▣ {device}") for label in labels), device
        details = screen.query_one(DetailsPane).details
        assert details is not None and details.title == "Device christopher-laptop"


async def test_opening_a_device_reads_its_key_ids(demo_app) -> None:  # type: ignore[no-untyped-def]
    async with demo_app.run_test(size=(120, 40)) as pilot:
        screen = await wait_loaded(pilot)
        tree = screen.query_one(AccountTree)
        assert tree.select_ref("device", "christopher-work")
        await pilot.pause()
        assert tree.cursor_node is not None and tree.cursor_node.data.ref == "christopher-work"  # type: ignore[union-attr]
        await pilot.press("enter")
        await pilot.pause(0.2)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause(0.2)
        user = screen.snapshot.user("christopher-work")  # type: ignore[union-attr]
        assert user is not None and user.keys_exact and len(user.access_keys) == 2
        assert any(label.startswith("⚿ …") for label in tree_labels(tree))


async def test_filter_keeps_matches(demo_app) -> None:  # type: ignore[no-untyped-def]
    async with demo_app.run_test(size=(120, 40)) as pilot:
        screen = await wait_loaded(pilot)
        await pilot.press("slash", *"vacation")
        await pilot.pause()
        labels = tree_labels(screen.query_one(AccountTree))
        assert any("vacation" in label for label in labels)
        assert not any(label.startswith("▣ phone") for label in labels)
        await pilot.press("escape")
        await pilot.pause()
        assert any(
            label.startswith("People") or "People" in label
            for label in tree_labels(screen.query_one(AccountTree))
        )


async def test_refresh_reloads(demo_app) -> None:  # type: ignore[no-untyped-def]
    async with demo_app.run_test(size=(120, 40)) as pilot:
        screen = await wait_loaded(pilot)
        first = screen.snapshot
        await pilot.press("r")
        await pilot.pause(0.1)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        assert screen.snapshot is not first and screen.snapshot is not None


async def test_endpoint_down_shows_a_message(monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app(ConnectionOptions(endpoint_url="http://127.0.0.1:9", region="us-east-1"))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = pilot.app.screen
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        body = str(screen.query_one(DetailsPane).query_one("#details-body").render())
        assert "Cannot reach the AWS endpoint" in body
        status = str(screen.query_one("#status").render())
        assert "Press r to retry" in status
