"""The printable transcript (issue 15): HTML and PDF of a channel or a date range through the
operator API, between real in-process stations; the PDF's text is extracted (poppler's
pdftotext) to prove it holds the Korean text as text. Who may print what, and how much."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from parley.app.build import build_app
from parley.station import printout, users
from parley.station.node import Station
from parley.station.notices import desk
from parley.station.users import BOOTSTRAP
from tests.pair import Clock, Net, introduce, make_station
from tests.test_form_inputs import LAUNCH_INPUTS
from tests.test_form_inputs import world as inputs_world

PASSWORD = "correct horse battery"
HOUR = 3_600_000


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Net, Clock, Station, Station, str]]:
    """South and North with a hotline holding a text and a launch notice (typed inputs)."""
    for net, clock, a, b, ch in inputs_world.__wrapped__(tmp_path):  # type: ignore[attr-defined]
        a.send(ch, {"type": "text", "text": "Hotline test <b>one</b>", "lang": "en"},
               "ROUTINE", "", "admin")  # fmt: skip
        desk(a).send_notice(BOOTSTRAP, ch, "launch_notice", None, texts=LAUNCH_INPUTS)
        net.deliver(a, b)
        yield net, clock, a, b, ch


def api(st: Station, token: str = "tok") -> TestClient:
    return TestClient(build_app(st, token), headers={"Authorization": f"Bearer {token}"})


def test_html_printout_has_every_message_its_proofs_and_the_notice_map(
    world: tuple[Net, Clock, Station, Station, str],
) -> None:
    _, _, _, b, ch = world
    r = api(b).get(f"/api/v1/channels/{ch}/printout")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert "대화 기록" in html  # North prints in Korean
    assert "Hotline test &lt;b&gt;one&lt;/b&gt;" in html  # message text is data, never markup
    assert "서명 확인됨" in html and "IMMEDIATE" in html
    assert "발사 통보" in html and "data:image/svg+xml;base64," in html
    digest = b.transcript_digest(ch)["digest"]
    assert digest and digest in html
    assert "script-src" not in r.headers["content-security-policy"]
    assert "default-src 'none'" in r.headers["content-security-policy"]
    en = api(b).get(f"/api/v1/channels/{ch}/printout", params={"lang": "en"}).text
    assert "LAUNCH NOTICE" in en and "Transcript" in en


def test_a_date_range_prints_only_its_messages(
    world: tuple[Net, Clock, Station, Station, str],
) -> None:
    net, clock, a, b, ch = world
    first = clock()
    clock.advance(48 * HOUR)
    a.send(ch, {"type": "text", "text": "Two days later", "lang": "en"}, "ROUTINE", "", "admin")
    net.deliver(a, b)
    c = api(a)
    later = c.get(f"/api/v1/channels/{ch}/printout", params={"from": str(first + HOUR)}).text
    assert "Two days later" in later and "Hotline test" not in later
    earlier = c.get(f"/api/v1/channels/{ch}/printout", params={"to": str(first + HOUR)}).text
    assert "Two days later" not in earlier and "Hotline test" in earlier
    bad = c.get(f"/api/v1/channels/{ch}/printout", params={"from": "soon"})
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_request"
    backwards = c.get(f"/api/v1/channels/{ch}/printout", params={"from": "2030-03-02",
                                                                  "to": "2030-03-01"})  # fmt: skip
    assert backwards.status_code == 400


def test_a_long_range_is_cut_at_the_limit_and_says_so(
    world: tuple[Net, Clock, Station, Station, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, _, a, _, ch = world
    monkeypatch.setattr(printout, "MAX_MESSAGES", 2)
    data = printout.printout(a, BOOTSTRAP, ch)
    assert data["truncated"] and len(data["messages"]) <= 2
    html = api(a).get(f"/api/v1/channels/{ch}/printout").text
    assert "Only the first 2 messages" in html


def test_pdf_holds_the_korean_text_as_text(
    world: tuple[Net, Clock, Station, Station, str], tmp_path: Path
) -> None:
    _, _, _, b, ch = world
    r = api(b).get(f"/api/v1/channels/{ch}/printout", params={"format": "pdf"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.content.startswith(b"%PDF")
    if shutil.which("pdftotext") is None:
        pytest.skip("needs poppler-utils' pdftotext (scripts/setup installs it)")
    (tmp_path / "t.pdf").write_bytes(r.content)
    text = subprocess.run(
        ["pdftotext", "-layout", str(tmp_path / "t.pdf"), "-"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    assert "대화 기록" in text and "발사 통보" in text and "낙하 구역" in text
    assert "Hotline test <b>one</b>" in text
    assert b.transcript_digest(ch)["digest"][:20] in text.replace("\n", "")


def test_who_may_print_a_back_channel(tmp_path: Path) -> None:
    clock = Clock()
    a = make_station(tmp_path / "a", "South", "en", clock)
    b = make_station(tmp_path / "b", "North", "ko", clock)
    introduce(a, b)
    net = Net()
    for name, roles in (("kim", ["representative"]), ("park", ["operator", "admin"]),
                        ("audi", ["auditor"]), ("tran", ["translator"])):  # fmt: skip
        users.create_user(a, name, roles, PASSWORD, clock(), "admin")
    users.create_user(b, "lee", ["representative"], PASSWORD, clock(), "admin")

    def as_(name: str, st: Station = a) -> TestClient:
        c = TestClient(build_app(st, "tok"))
        tok = c.post("/api/v1/login", json={"name": name, "password": PASSWORD}).json()["token"]
        c.headers["Authorization"] = f"Bearer {tok}"
        return c

    ch = as_("kim").post("/api/v1/channels", json={
        "kind": "backchannel", "title": "Envoys", "peers": [b.id],
        "representatives": {a.id: ["kim"], b.id: ["lee"]},
    }).json()["channel"]  # fmt: skip
    net.deliver(a, b)
    assert as_("lee", b).post(f"/api/v1/channels/{ch}/consent").status_code == 200
    net.deliver(b, a)
    assert a.channel_state(ch).is_open

    assert as_("kim").get(f"/api/v1/channels/{ch}/printout").status_code == 200
    # An admin or auditor not named on it, or the bootstrap token: refused by the channel
    # guard, as for reading it; nothing of it is printed.
    for refused_by_guard in (as_("park"), as_("audi"), api(a)):
        r = refused_by_guard.get(f"/api/v1/channels/{ch}/printout")
        assert r.status_code == 403 and "Envoys" not in r.text
    # A translator may read channels but not export or print them.
    refused = as_("tran").get(f"/api/v1/channels/{ch}/printout")
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    printed = [r for r in a.store.q("SELECT actor, action FROM audit") if r[1] ==
               "transcript.print"]  # fmt: skip
    assert printed == [("kim", "transcript.print")]


def test_a_notice_that_cannot_be_rendered_does_not_stop_the_printout(
    world: tuple[Net, Clock, Station, Station, str],
) -> None:
    _, _, _, b, ch = world
    with b.store.tx():
        b.store.q("DELETE FROM notices")  # as for a notice of a form this station lacks
    r = api(b).get(f"/api/v1/channels/{ch}/printout")
    assert r.status_code == 200
    assert "Hotline test" in r.text and "notice (message" in r.text
