"""The tree with several accounts as its roots, against a two-account moto server."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Static
from two_accounts import PERSONAL, WORK, seed_two_accounts

from keyhygiene.core.accounts import AccountSpec
from keyhygiene.core.options import ConnectionOptions
from keyhygiene.ui.app import make_app
from keyhygiene.ui.screens.main_screen import MainScreen
from keyhygiene.ui.widgets.account_tree import AccountTree
from keyhygiene.ui.widgets.details_pane import DetailsPane


def _specs(url: str) -> list[AccountSpec]:
    return [
        AccountSpec(
            name,
            ConnectionOptions(admin_profile=f"{name}-admin", endpoint_url=url, computer_key=False),
        )
        for name in ("personal", "work", "client")
    ]


async def test_accounts_are_roots_and_a_failed_one_shows_its_error(
    moto_endpoint: str, isolated_aws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_two_accounts(moto_endpoint).write_profiles(isolated_aws)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    specs = _specs(moto_endpoint)  # "client" has no profile: it fails alone
    app = make_app(specs[0].options, accounts=specs)
    async with app.run_test(size=(140, 40)) as pilot:
        screen = app.screen
        assert isinstance(screen, MainScreen)
        for _ in range(300):
            if screen.accounts:
                break
            await pilot.pause(0.1)
        await app.workers.wait_for_complete()
        await pilot.pause()
        tree = screen.query_one(AccountTree)
        roots = [str(node.label) for node in tree.root.children]
        assert any(f"Account personal ({PERSONAL})" in label for label in roots), roots
        assert any(f"Account work ({WORK})" in label for label in roots), roots
        assert any("Account client: could not load" in label for label in roots), roots
        assert any("Computers across accounts" in label for label in roots), roots

        # The cursor in the work account makes it the account the wizards use.
        work = next(n for n in tree.root.children if f"({WORK})" in str(n.label))
        tree.move_cursor(work)
        await pilot.pause()
        assert screen.current_account == "work"
        assert screen.snapshot is not None and screen.snapshot.account_id == WORK

        failed = next(n for n in tree.root.children if "client" in str(n.label))
        tree.move_cursor(failed)
        await pilot.pause()
        body = screen.query_one(DetailsPane).query_one("#details-body", Static)
        shown = str(body.render())
        assert "could not load" in shown and "client-admin" in shown, shown
        assert screen.current_account == "work"  # still the last account that loaded
