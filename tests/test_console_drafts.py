"""Machine drafts in the console (issue 15), in Debian's chromium against real stations: South
runs the stand-in translation server (tests/translate_standin.py) as its engine, North runs none.
A translator asks for a draft of North's Korean message and sees it labelled as a machine draft
naming the engine, beside the original; an engine that refuses the language or is down shows its
error beside the message and sends nothing; an auditor sees no button and a forged POST is
refused; North's operator reads the draft, and is told plainly that North has no engine."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.net import Stations, wait
from tests.test_console import (
    DOCUMENTED,
    PASSWORD,
    World,
    as_user,
    browser,
    csrf_of,
    login,
    new_page,
    shots,
)
from tests.translate_standin import StandIn

__all__ = ["browser", "shots"]  # fixtures this module borrows
DOCUMENTED.update({"machine-draft"})
ENGINE = "LibreTranslate stand-in 1.0"  # the product label the records carry
TEXT = "우리는 원탁 회담 제안한다"  # the stand-in's phrase book: "we round table meeting propose"


class Drafts(World):
    def __init__(self, net: Stations, hotline: str, server: StandIn) -> None:
        super().__init__(net, hotline, "")
        self.server = server


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Drafts]:
    root = tmp_path_factory.mktemp("console-drafts")
    with StandIn() as server, Stations(root, [("South", "en"), ("North", "ko")]) as net:
        path = net.dirs["South"] / "station.json"
        cfg = json.loads(path.read_text())
        engine = {"engine": "libretranslate", "url": server.url, "label": "stand-in 1.0"}
        cfg["translation"] = engine
        path.write_text(json.dumps(cfg))
        net.restart("South")
        people = {
            "South": [("tran", ["translator"]), ("audra", ["auditor"])],
            "North": [("ri", ["operator"])],
        }
        for station, names in people.items():
            for name, roles in names:
                net.api(station).post(
                    "/users", json={"name": name, "roles": roles, "password": PASSWORD}
                )
        hotline = net.open_channel("North", ["South"], title="Military hotline")
        yield Drafts(net, hotline, server)


def _records(w: World, ref: str) -> int:
    """How many translation records of `ref` South holds."""
    view = w.net.api("South").get(f"/channels/{w.hotline}/messages/{ref}/translations")
    return sum(len(lang["history"]) for lang in view["languages"].values())


def test_translator_asks_for_a_machine_draft_and_an_auditor_cannot(
    world: Drafts, browser: Any, shots: Any
) -> None:
    w = world
    ri = as_user(w.net, "North", "ri")
    sent = ri.post(f"/channels/{w.hotline}/messages", json={"text": TEXT, "lang": "ko"})
    sent.raise_for_status()
    ref = sent.json()["hash"]
    south = w.net.api("South")
    wait(
        lambda: any(m["hash"] == ref for m in south.get(f"/channels/{w.hotline}/messages")),
        what="South to hold North's message",
    )

    # The translator, in an English console: the target language is English unless changed.
    tran = new_page(browser)
    login(tran, w, "South", "tran", f"/console/channels/{w.hotline}")
    item = tran.locator("ol.messages li", has_text=TEXT)
    item.locator("summary", has_text="Machine draft").click()
    assert item.get_by_label("Translate into").input_value() == "en"
    assert ENGINE in item.locator("details.machine-draft").inner_text()
    assert tran.locator("#machine-none").count() == 0
    # Lifecycle steps are not the translator's: no button the server would refuse.
    assert tran.locator("#action-close").count() == 0
    assert tran.locator("#h-control").count() == 0
    # A channel of one page says where it starts once, not above and below the messages.
    assert tran.locator("nav.pager").count() == 1

    # A language the engine does not translate into: its answer beside the message, nothing sent.
    # (The page offers only the console's languages; a forged option stands in for another.)
    item.get_by_label("Translate into").evaluate("s => s.add(new Option('Japanese', 'ja'))")
    item.get_by_label("Translate into").select_option("ja")
    item.get_by_role("button", name="Ask for a machine draft").click()
    item = tran.locator("ol.messages li", has_text=TEXT)
    error = item.locator(".field-error")
    error.wait_for()
    assert "not available" in error.inner_text() and "Nothing was sent" in error.inner_text()
    assert item.get_by_label("Translate into").get_attribute("aria-invalid") == "true"
    assert _records(w, ref) == 0

    item.get_by_label("Translate into").select_option("en")
    item.get_by_role("button", name="Ask for a machine draft").click()
    tran.wait_for_url(re.compile(r"ok=msg\.machine_drafted"))
    item = tran.locator("ol.messages li", has_text=TEXT)
    assert item.get_attribute("class") == "anchor"  # the page came back around the message
    side = item.locator(".side > div")
    assert side.count() == 2
    assert TEXT in side.nth(0).inner_text()  # the original, kept
    draft = side.nth(1)
    label = draft.locator(".label").inner_text()
    assert label.startswith("Machine draft (en)") and ENGINE in label
    assert "certif" not in label.lower()
    assert "round table" in draft.locator("p.text").inner_text()
    item.locator("summary", has_text="Machine draft").click()  # the form, for the picture
    shots(tran, "machine-draft")
    assert _records(w, ref) == 1
    (record,) = south.get(f"/channels/{w.hotline}/messages/{ref}/translations")["languages"]["en"][
        "history"
    ]
    assert record["kind"] == "machine" and record["engine"] == ENGINE

    # North (no engine) reads the same draft, labelled in Korean; its operator is told plainly
    # that North itself cannot make one, instead of being shown a button that can only fail.
    north = new_page(browser, locale="ko-KR")
    login(north, w, "North", "ri", f"/console/channels/{w.hotline}")
    theirs = north.locator("ol.messages li", has_text=TEXT).locator(".side > div.machine")
    theirs.wait_for()
    assert "기계 번역 초안 (en)" in theirs.inner_text() and ENGINE in theirs.inner_text()
    assert "번역 엔진이 설정되어 있지" in north.locator("#machine-none").inner_text()
    assert north.locator("#action-close").count() == 1  # an operator's steps are shown
    assert north.locator("details.machine-draft").count() == 0

    # The auditor sees the draft but no button, and a forged POST is refused by the desk.
    audra = new_page(browser)
    login(audra, w, "South", "audra", f"/console/channels/{w.hotline}")
    assert audra.locator("ol.messages li", has_text=TEXT).locator("div.machine").count() == 1
    assert audra.locator("details.machine-draft, #machine-none").count() == 0
    envelopes = south.get(f"/channels/{w.hotline}/history", params={"limit": 1})["total"]
    forged = audra.context.request.post(
        w.url("South", f"/console/channels/{w.hotline}/machine-draft"),
        form={"csrf": csrf_of(audra.content()), "ref": ref, "lang": "en"},
        headers={"Origin": w.url("South", "")},
        max_redirects=0,
    )
    assert forged.status == 403 and "translation.machine" in forged.text()
    assert south.get(f"/channels/{w.hotline}/history", params={"limit": 1})["total"] == envelopes
    assert _records(w, ref) == 1

    # The engine down: the error beside the message, nothing sent.
    w.server.__exit__(None, None, None)
    item = tran.locator("ol.messages li", has_text=TEXT)
    item.locator("details.machine-draft").evaluate("d => { d.open = true; }")  # live may redraw
    item.get_by_role("button", name="Ask for a machine draft").click()
    error = tran.locator("ol.messages li", has_text=TEXT).locator(".field-error")
    error.wait_for()
    assert "cannot reach the translation server" in error.inner_text()
    assert _records(w, ref) == 1
    print(f"machine draft: {label!r}; refused for the auditor; two engine errors shown")
