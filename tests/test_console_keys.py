"""The admin page's peer and key controls in a real browser (Debian's chromium via Playwright)
against real station processes: refusing to remove a peer still on an open channel (the error
beside its row), revoking a peer's key, and rotating this station's identity key, after which
the peer still reads what the station sends (it verified the hand-over)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.net import Stations, wait
from tests.test_console import PASSWORD, World, browser, login, new_page, shots

__all__ = ["browser", "shots"]  # fixtures this module borrows


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("console-keys")
    with Stations(root, [("South", "en"), ("North", "ko"), ("East", "en")]) as net:
        net.api("South").post(
            "/users", json={"name": "kim", "roles": ["operator", "admin"], "password": PASSWORD}
        )
        hotline = net.open_channel("South", ["North"], title="Military hotline")
        yield World(net, hotline, "")


def _row(page: Any, world: World, peer: str) -> Any:
    return page.locator(f"#peer-{world.net.ids[peer]}")


def test_admin_removes_revokes_and_rotates_in_the_console(
    world: World, browser: Any, shots: Any
) -> None:
    net = world.net
    page = new_page(browser)
    login(page, world, "South", "kim", "/console/admin")

    # North is on an open hotline: removing it without "force" is refused beside its row.
    north = _row(page, world, "North")
    north.get_by_role("button", name="Remove North").click()
    north = _row(page, world, "North")
    assert north.locator(".field-error, [id$='-error']").first.is_visible()
    assert "active" in north.inner_text()
    assert all(p["state"] == "active" for p in net.api("South").get("/peers"))

    # East's key is revoked: the page says so, and so does the API.
    east = _row(page, world, "East")
    east.get_by_label("Reason (for the audit log)").fill("key reported lost")
    east.get_by_role("button", name="Revoke the key of East").click()
    assert page.get_by_text("Key revoked").first.is_visible()
    assert "key revoked" in _row(page, world, "East").inner_text()
    states = {p["name"]: p["state"] for p in net.api("South").get("/peers")}
    assert states == {"North": "active", "East": "revoked"}

    # A grace period out of range is refused beside its field; a good one rotates the key.
    before = net.api("South").get("/station")["fingerprint"]
    page.get_by_label("Days the old key may still sign").fill("500")
    page.get_by_role("button", name="Rotate this station's identity key").click()
    assert page.locator("#grace_days-error").is_visible()
    assert net.api("South").get("/station")["fingerprint"] == before
    page.get_by_label("Days the old key may still sign").fill("7")
    page.get_by_role("button", name="Rotate this station's identity key").click()
    assert page.get_by_text("Identity key rotated").first.is_visible()
    after = net.api("South").get("/station")["fingerprint"]
    assert after != before and page.get_by_text(after).first.is_visible()
    shots(page, "admin-keys")

    # North verified the hand-over: what South signs with its new key still reaches it.
    ch = world.hotline
    net.api("South").post(f"/channels/{ch}/messages", json={"text": "after rotation", "lang": "en"})
    wait(
        lambda: any(
            m["body"].get("text") == "after rotation"
            for m in net.api("North").get(f"/channels/{ch}/messages")
        ),
        what="North to read South's message signed with the new key",
    )
