"""Reading and finding in the console, in Debian's chromium against real stations (the world of
tests/test_console.py): a channel's history page by page back to its proposal, jumps by date and
by hash, search in Korean that never shows a back channel to someone not named on it, and alarms
acknowledged with a note and kept with their resolution."""

from __future__ import annotations

import re
from typing import Any

from tests import test_console as tc
from tests.net import wait
from tests.test_console import DOCUMENTED, World, as_user, login, new_page

# The same fixtures (one world of two stations for this module, the browser, screenshots).
world, browser, shots = tc.world, tc.browser, tc.shots
DOCUMENTED.update({"history", "search", "alarms"})


def test_history_pages_back_to_the_proposal_and_jumps_by_date_and_hash(
    world: World, browser: Any, shots: Any
) -> None:
    south = world.net.api("South")
    lines = [{"text": f"history line {i}"} for i in range(130)]
    lines[7] = {"text": "내일 09시 미사일 발사 예정", "lang": "ko"}
    sent = south.post(f"/channels/{world.hotline}/messages/batch", json={"messages": lines})
    north = world.net.api("North")
    wait(
        lambda: any(
            m["body"].get("text") == "history line 129"
            for m in north.get(f"/channels/{world.hotline}/history", params={"limit": 5})[
                "messages"
            ]
        ),
        what="North to hold the batch",
    )
    page = new_page(browser)
    login(page, world, "North", "lee", f"/console/channels/{world.hotline}")
    page.goto(world.url("North", f"/console/channels/{world.hotline}?lang=en"))  # North: Korean
    texts = page.locator("ol.messages p.text")
    assert "history line 129" in texts.all_inner_texts()
    assert "history line 0" not in texts.all_inner_texts()
    # Back, page by page, to the start: the proposal of the channel.
    for _ in range(10):
        older = page.locator("a.page-older").first
        if older.count() == 0:
            break
        with page.expect_navigation():  # read the next page only once it has loaded
            older.click()
    assert page.get_by_text("The start of the channel").first.is_visible()
    assert "history line 0" in page.locator("ol.messages p.text").all_inner_texts()
    assert page.locator("ol.messages .control-line").count() >= 1  # the proposal, consent
    assert page.locator("a.page-newest").count() >= 1
    with page.expect_navigation():
        page.locator("a.page-newer").first.click()
    assert "history line 129" in page.locator("ol.messages p.text").all_inner_texts()
    shots(page, "history")

    # Jump to a message by its hash: it is on the page, marked.
    target = sent["envelopes"][7]["hash"]
    page.get_by_label("Message hash").fill(target)
    page.locator("#jump-hash-go").click()
    anchor = page.locator("ol.messages li.anchor")
    assert "내일 09시 미사일 발사 예정" in anchor.inner_text()
    # A hash that is not a message: the error beside the field, the newest page below.
    page.get_by_label("Message hash").fill("not-a-hash")
    page.locator("#jump-hash-go").click()
    assert page.locator("#jump-error").is_visible()
    assert page.get_by_label("Message hash").get_attribute("aria-invalid") == "true"
    # A date in the future: the newest page.
    page.get_by_label("From date (UTC)").fill("2099-01-01")
    page.locator("#jump-date-go").click()
    assert "history line 129" in page.locator("ol.messages p.text").all_inner_texts()


def test_search_in_korean_never_shows_a_back_channel_to_others(
    world: World, browser: Any, shots: Any
) -> None:
    kim = as_user(world.net, "South", "kim")
    kim.post(
        f"/channels/{world.back}/messages", json={"text": "발사 계획 비공개 협의", "lang": "ko"}
    ).raise_for_status()
    kim.post(
        f"/channels/{world.hotline}/messages", json={"text": "발사 통보 수신 확인", "lang": "ko"}
    ).raise_for_status()
    # park (operator, not a representative) finds the hotline's, never the back channel's.
    page = new_page(browser, locale="ko-KR")
    login(page, world, "South", "park", "/console/search")
    page.goto(world.url("South", "/console/search?lang=ko"))  # South speaks English unless picked
    page.get_by_label("검색어 (모두 포함)").fill("발사")
    page.locator("#search-go").click()
    found = page.locator("ol.results").inner_text()
    assert "발사 통보 수신 확인" in found and "비공개" not in found
    assert page.locator(f"select#search-channel option[value='{world.back}']").count() == 0
    hidden = page.goto(world.url("South", f"/console/search?q=발사&channel={world.back}"))
    assert hidden is not None and hidden.status == 404
    # kim, named on the back channel, finds both; the result opens the message in its channel.
    page = new_page(browser)
    login(page, world, "South", "kim", "/console/search")
    page.get_by_label("Words (every one must appear)").fill("발사")
    page.locator("#search-go").click()
    found = page.locator("ol.results").inner_text()
    assert "발사 계획 비공개 협의" in found and "발사 통보 수신 확인" in found
    shots(page, "search")
    page.locator("a.result-link").first.click()
    page.wait_for_url(re.compile(r"hash="))
    assert "발사" in page.locator("ol.messages li.anchor").inner_text()


def test_alarms_acknowledged_with_a_note_and_kept_with_their_resolution(
    world: World, browser: Any, shots: Any
) -> None:
    lee = as_user(world.net, "North", "lee")
    for i in range(2):
        lee.post(
            "/crises",
            json={"channel": world.hotline, "title": f"Unannounced launch {i}", "severity": "high"},
        ).raise_for_status()
    south = world.net.api("South")
    wait(
        lambda: sum(a["kind"] == "crisis" for a in south.get("/alarms")) >= 2,
        what="South's crisis alarms",
    )
    page = new_page(browser)
    login(page, world, "South", "park", "/console/alarms")
    page.goto(world.url("South", "/console/alarms?lang=en"))  # park picked Korean above
    chosen = page.locator("input[name=ids]").first.get_attribute("value")
    before = south.get("/alarms")
    page.locator("#ack-chosen").click()  # none chosen: the error beside the note, no change
    assert page.locator("#alarm-error").is_visible()
    assert south.get("/alarms") == before
    page.locator(f"input[name=ids][value='{chosen}']").check()
    page.get_by_label("Note (why, or what was done)").fill("called North, launch confirmed")
    page.locator("#ack-chosen").click()
    page.wait_for_url(re.compile(r"ok=alarm\.acked"))
    closed = page.locator("#closed-alarms").inner_text()
    assert "acknowledged by park" in closed and "called North, launch confirmed" in closed
    page.get_by_label("Note (why, or what was done)").fill("end of shift")
    page.locator("#ack-all").click()
    page.wait_for_url(re.compile(r"ok=alarm\.acked"))
    assert south.get("/alarms") == []
    shots(page, "alarms")
    audit = south.get("/audit", params={"limit": 50})
    assert any(e["actor"] == "park" and e["action"] == "alarm.ack" for e in audit)
