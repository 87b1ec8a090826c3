"""The operator console in a real browser: Debian's chromium driven by Playwright against real
stations on loopback (tests/net.py), signed in as users made through the users API.

Screenshots go to each test's tmp dir; with PARLEY_SCREENSHOTS=DIR (e.g. docs/screenshots) the
set that documents the console is written there too.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import pytest

from parley.app.build import build_app
from parley.domain import channels, translation
from parley.domain.forms import timefmt
from parley.protocol import checkpoint
from parley.station import checkcalls, checkpoints, crises, users
from parley.store import vigil as vigil_db
from parley.web import i18n
from tests.net import LIVENESS_S, Stations, wait
from tests.pair import Clock, Net, introduce, make_station, open_channel
from tests.shots import MAX_BYTES, small_png

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
PASSWORD = "correct horse battery"


# --- fixtures ------------------------------------------------------------------------------------
class World:
    """Two stations (South in English, North in Korean) with an open hotline, a back channel
    between named representatives, and console users on each side."""

    def __init__(self, net: Stations, hotline: str, back: str) -> None:
        self.net = net
        self.hotline = hotline
        self.back = back

    def url(self, name: str, path: str = "/console/") -> str:
        return self.net.api(name).base + path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("console")
    with Stations(root, [("South", "en"), ("North", "ko")]) as net:
        people = {
            "South": [("kim", ["operator", "admin", "representative"]), ("park", ["operator"])],
            "North": [("lee", ["operator", "representative", "translator"])],
        }
        for station, users in people.items():
            for name, roles in users:
                net.api(station).post(
                    "/users", json={"name": name, "roles": roles, "password": PASSWORD}
                )
        hotline = net.open_channel("South", ["North"], title="Military hotline")
        yield World(net, hotline, back_channel(net))


def as_user(net: Stations, station: str, name: str) -> httpx.Client:
    """The operator API as one of the console users (a session from POST /login)."""
    base = net.api(station).base
    token = httpx.post(base + "/api/v1/login", json={"name": name, "password": PASSWORD})
    token.raise_for_status()
    auth = {"Authorization": f"Bearer {token.json()['token']}"}
    return httpx.Client(base_url=base + "/api/v1", headers=auth, timeout=30)


def back_channel(net: Stations) -> str:
    """A back channel between kim (South) and lee (North): only they can consent to it, so
    this goes through their sessions rather than the bootstrap token (which cannot see it)."""
    reps = {net.ids["South"]: ["kim"], net.ids["North"]: ["lee"]}
    kim, lee = as_user(net, "South", "kim"), as_user(net, "North", "lee")
    req = {"kind": "backchannel", "title": "Representatives", "peers": [net.ids["North"]],
           "representatives": reps}  # fmt: skip
    ch: str = kim.post("/channels", json=req).json()["channel"]
    wait(lambda: lee.get(f"/channels/{ch}").status_code == 200, what="the proposal at North")
    lee.post(f"/channels/{ch}/consent").raise_for_status()
    wait(lambda: kim.get(f"/channels/{ch}").json()["state"] == "open", what="it to open")
    return ch


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (scripts/setup installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield b
        finally:
            b.close()


# The pictures docs/console.md shows (PARLEY_SCREENSHOTS=docs/screenshots refreshes them).
DOCUMENTED = {
    "dashboard", "channel-ko", "notice-errors", "talks", "transcript", "crisis", "admin",
    "schedules", "notice-compose", "notice-preview", "printout", "notify", "admin-keys",
}  # fmt: skip


@pytest.fixture
def shots(tmp_path: Path) -> Any:
    """shots(page, name): a full-page screenshot in the tmp dir (and PARLEY_SCREENSHOTS)."""
    extra = os.environ.get("PARLEY_SCREENSHOTS")

    def take(page: Any, name: str) -> Path:
        path = tmp_path / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 1000
        if extra and name in DOCUMENTED:
            Path(extra).mkdir(parents=True, exist_ok=True)
            small_png(path, Path(extra) / f"{name}.png")  # cropped, a palette: tests/shots.py
        return path

    return take


def test_the_documented_screenshots_are_small() -> None:
    """Issue 15: a full-page picture was 1.2 MB; every one docs/console.md shows is written
    through tests/shots.small_png and stays under its bound."""
    pictures = sorted((Path(__file__).parents[1] / "docs" / "screenshots").glob("*.png"))
    assert pictures
    big = [(p.name, p.stat().st_size) for p in pictures if p.stat().st_size > MAX_BYTES]
    assert not big, big


def new_page(browser: Any, locale: str = "en-US") -> Any:
    ctx = browser.new_context(locale=locale, viewport={"width": 1100, "height": 800})
    ctx.set_default_timeout(LIVENESS_S * 1000)  # a liveness bound: chromium on a loaded machine
    return ctx.new_page()


def login(page: Any, w: World, station: str, name: str, path: str = "/console/") -> None:
    page.goto(w.url(station, path))
    page.get_by_label(re.compile("User name|사용자 이름")).fill(name)
    page.get_by_label(re.compile("^(Password|비밀번호)$")).fill(PASSWORD)
    page.get_by_role("button", name=re.compile("Sign in|로그인")).click()
    page.wait_for_url(re.compile(re.escape(path) + r"(\?.*)?$"))


def signed_in(st: Any, name: str) -> Any:
    """In-process: a TestClient of `st`'s app with `name` signed in to the console."""
    from fastapi.testclient import TestClient

    web = TestClient(build_app(st, "t" * 32))
    form = web.get("/console/login")
    web.post(
        "/console/login", data={"csrf": csrf_of(form.text), "name": name, "password": PASSWORD}
    )
    return web


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return found[1]


# --- tests ---------------------------------------------------------------------------------------
def test_catalogue_has_every_key_in_every_language() -> None:
    assert i18n.missing_keys() == {}
    assert i18n.missing_keys({"en": {"a": "A", "b": "B"}, "ko": {"a": "에이"}}) == {"ko": {"b"}}


def test_language_choice_follows_query_then_user_then_cookie_then_station() -> None:
    assert i18n.choose("ko", "en", "en", "en") == "ko"  # just picked
    assert i18n.choose(None, "ko", "en", "en") == "ko"  # the user's own, on any browser
    assert i18n.choose(None, None, "ko", "en") == "ko"  # picked on this browser, signed out
    assert i18n.choose(None, None, None, "ko") == "ko"  # the station's working language
    assert i18n.choose("xx", None, None, "ko") == "ko"
    assert i18n.choose(None, None, None, "fr") == "en"


def test_sessions_expire_when_idle_and_links_cannot_inject_text(tmp_path: Path) -> None:
    """In-process (no browser): a controlled clock ages the session past its idle limit."""
    from fastapi.testclient import TestClient

    clock = Clock()
    st = make_station(tmp_path, "South", "en", clock)
    users.create_user(st, "kim", ["operator"], PASSWORD, clock(), "admin")
    web = TestClient(build_app(st, "t" * 32))
    form = web.get("/console/login")
    assert "default-src 'self'" in form.headers["content-security-policy"]
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token is not None
    signed = web.post(
        "/console/login", data={"csrf": token[1], "name": "kim", "password": PASSWORD}
    )
    assert signed.url.path == "/console/"
    # A confirmation comes from the catalogue, never from the link's own text.
    page = web.get("/console/", params={"ok": "Your account is locked, call +1 555", "seq": "1"})
    assert "Your account is locked" not in page.text
    clock.advance(users.SESSION_IDLE_MS - 60_000)
    assert web.get("/console/", follow_redirects=False).status_code == 200
    clock.advance(users.SESSION_IDLE_MS + 60_000)
    gone = web.get("/console/", follow_redirects=False)
    assert gone.status_code == 303 and "expired=1" in gone.headers["location"]
    assert "session has ended" in web.get(gone.headers["location"]).text


def test_sign_in_send_and_receive_live_with_markup_shown_as_text(
    world: World, browser: Any, shots: Any
) -> None:
    south, north = new_page(browser), new_page(browser, locale="ko-KR")
    login(south, world, "South", "kim")
    shots(south, "dashboard")
    assert south.get_by_role("heading", name="Links").is_visible()
    assert south.locator("figure.chart svg").count() == 1  # one peer, one link-health chart

    # North's operator watches the hotline before anything is sent: the message must arrive
    # without a reload. North's working language, Korean, is its console's default.
    login(north, world, "North", "lee", f"/console/channels/{world.hotline}")
    assert north.locator("html").get_attribute("lang") == "ko"
    assert north.get_by_role("heading", name="메시지", exact=True).is_visible()
    north.evaluate("window.__same_page = true")

    south.goto(world.url("South", f"/console/channels/{world.hotline}"))
    hostile = "<script>window.__pwned = 1</script><b>bold</b> & <img src=x onerror=alert(1)>"
    south.get_by_label("Message", exact=True).fill(hostile)
    south.get_by_role("button", name="Send").click()
    south.wait_for_url(re.compile(r"ok=compose\.sent"))
    assert "Queued as #" in south.get_by_role("status").inner_text()
    mine = south.locator("ol.messages p.text", has_text="window.__pwned")
    assert mine.inner_text() == hostile
    assert south.locator("ol.messages b").count() == 0
    assert south.locator("ol.messages img").count() == 0
    shots(south, "channel-en")

    received = north.locator("ol.messages p.text", has_text="window.__pwned")
    received.wait_for()
    assert north.evaluate("window.__same_page") is True  # arrived live, no reload
    assert received.inner_text() == hostile
    assert north.evaluate("window.__pwned") is None
    assert north.locator("ol.messages b, ol.messages img").count() == 0
    shots(north, "channel-ko")


def test_posts_without_the_sessions_csrf_token_are_refused(world: World, browser: Any) -> None:
    page = new_page(browser)
    login(page, world, "South", "kim")
    req = page.context.request
    send = world.url("South", f"/console/channels/{world.hotline}/send")
    before = len(world.net.api("South").get(f"/channels/{world.hotline}/messages"))
    assert req.post(send, form={"text": "no token"}).status == 403
    assert req.post(send, form={"text": "bad token", "csrf": "x" * 43}).status == 403
    # A token from another session is no good either.
    other = new_page(browser)
    login(other, world, "South", "park")
    token = other.locator("input[name=csrf]").first.get_attribute("value")
    assert req.post(send, form={"text": "foreign token", "csrf": token}).status == 403
    assert len(world.net.api("South").get(f"/channels/{world.hotline}/messages")) == before
    # The sign-in form has its own token, tied to a cookie set with the form.
    anon = httpx.post(world.url("South", "/console/login"), data={"name": "kim"})
    assert anon.status_code == 403
    # The page's own form, with its token, works.
    mine = page.locator("input[name=csrf]").first.get_attribute("value")
    resp = req.post(send, form={"text": "with token", "csrf": mine}, max_redirects=0)
    assert resp.status == 303


def test_session_cookie_is_httponly_strict_and_ends_at_sign_out(world: World, browser: Any) -> None:
    page = new_page(browser)
    login(page, world, "South", "park")
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "parley_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert cookie["expires"] > 0  # not a browser-lifetime cookie: it expires
    assert page.evaluate("document.cookie").find("parley_session") < 0
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/console/login"))
    # The old token is dead on the server too, not just forgotten by the browser.
    stale = httpx.get(
        world.url("South"), cookies={"parley_session": cookie["value"]}, follow_redirects=False
    )
    assert stale.status_code == 303 and "/console/login" in stale.headers["location"]
    api = httpx.get(world.url("South", "/api/v1/me"), cookies={"parley_session": cookie["value"]})
    assert api.status_code == 401


def test_back_channel_exists_only_for_its_named_representatives(
    world: World, browser: Any, shots: Any
) -> None:
    park = new_page(browser)
    login(park, world, "South", "park")
    park.goto(world.url("South", "/console/channels"))
    assert park.get_by_role("link", name="Military hotline").is_visible()
    assert park.get_by_text("Representatives", exact=True).count() == 0
    # Its address answers exactly as a channel that does not exist.
    resp = park.goto(world.url("South", f"/console/channels/{world.back}"))
    assert resp is not None and resp.status == 404
    assert "Representatives" not in park.content()
    unknown = park.goto(world.url("South", "/console/channels/AAAAAAAAAAAAAAAAAAAAAA"))
    assert unknown is not None and unknown.status == 404
    live = park.context.request.get(world.url("South", f"/console/channels/{world.back}/live"))
    assert live.status == 404 and "Representatives" not in live.text()

    kim = new_page(browser)
    login(kim, world, "South", "kim")
    kim.goto(world.url("South", "/console/channels"))
    kim.get_by_role("link", name="Representatives").click()
    kim.get_by_label("Message", exact=True).fill("For the representatives only.")
    kim.get_by_role("button", name="Send").click()
    kim.wait_for_url(re.compile(r"ok=compose\.sent"))
    shots(kim, "channels-back")
    # park's dashboard and admin-less top bar never mention it either.
    park.goto(world.url("South"))
    assert "Representatives" not in park.content()
    assert park.get_by_role("link", name="Admin").count() == 0
    assert park.goto(world.url("South", "/console/admin")).status == 403  # type: ignore[union-attr]


def test_keyboard_only_sign_in_and_skip_link(world: World, browser: Any) -> None:
    page = new_page(browser)
    page.goto(world.url("South", "/console/login"))
    # autofocus puts the cursor in the user name (once the page has applied it); everything else
    # is Tab and Enter.
    page.wait_for_function("document.activeElement && document.activeElement.id === 'name'")
    page.keyboard.type("kim")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/console/$"))
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    # Focus is visible: the focused element gets an outline from :focus-visible.
    page.keyboard.press("Tab")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", "")


def test_admin_page_shows_fingerprints_and_korean_on_request(
    world: World, browser: Any, shots: Any
) -> None:
    page = new_page(browser)
    login(page, world, "South", "kim", "/console/admin")
    north_fp = world.net.api("North").get("/station")["fingerprint"]
    assert page.get_by_text(north_fp).is_visible()
    shots(page, "admin")
    page.goto(world.url("South", "/console/admin?lang=ko"))
    assert page.get_by_role("heading", name="상대 스테이션", exact=True).is_visible()
    # The choice sticks for the next page without ?lang=, and it is kim's own: another
    # browser (an English one) shows kim Korean too, while a Korean browser shows park, who
    # chose nothing, South's working language.
    page.goto(world.url("South", "/console/channels"))
    assert page.get_by_role("heading", name="채널").is_visible()
    elsewhere = new_page(browser, locale="en-US")
    login(elsewhere, world, "South", "kim", "/console/channels")
    assert elsewhere.get_by_role("heading", name="채널").is_visible()
    park = new_page(browser, locale="ko-KR")
    login(park, world, "South", "park", "/console/channels")
    assert park.locator("html").get_attribute("lang") == "en"
    page.goto(world.url("South", "/console/channels?lang=en"))


def test_add_user_form_shows_errors_beside_the_field(world: World, browser: Any) -> None:
    page = new_page(browser)
    login(page, world, "South", "kim", "/console/admin")
    page.locator("#user-name").fill("choi")
    page.locator("#user-password").fill("short")
    page.get_by_role("button", name="Add user").click()
    err = page.locator("#password-error")
    assert err.is_visible() and "10" in err.inner_text()
    assert page.locator("#user-password").get_attribute("aria-invalid") == "true"
    page.locator("#user-password").fill(PASSWORD)
    page.get_by_role("button", name="Add user").click()
    page.wait_for_url(re.compile(r"ok=admin\.user_added"))
    assert page.get_by_role("row", name=re.compile("^choi")).is_visible()


def test_notice_with_field_errors_then_acknowledged_before_its_deadline(
    world: World, browser: Any, shots: Any
) -> None:
    kim = new_page(browser)
    login(
        kim, world, "South", "kim", f"/console/channels/{world.hotline}/notice?form=launch_notice"
    )
    # The composer starts from the form's example, in degrees; break two fields.
    area = kim.locator("#f-launch_area")
    good_area = area.input_value()
    area.fill(good_area.replace("39.650000N", "99.650000N", 1))  # latitude 99.65°: no such place
    kim.locator("#f-launch_count").fill("many")
    kim.get_by_role("button", name="Send notice").click()
    assert kim.locator("#launch_count-error").is_visible()
    assert kim.locator("#f-launch_count").get_attribute("aria-invalid") == "true"
    kim.locator("#f-launch_count").fill("1")
    kim.get_by_role("button", name="Send notice").click()
    # Now the domain's own validation speaks, beside the area it is about.
    err = kim.locator("#launch_area-error")
    assert err.is_visible() and err.inner_text().strip()
    assert kim.locator("#launch_count-error").count() == 0
    shots(kim, "notice-errors")
    kim.locator("#f-launch_area").fill(good_area)
    kim.get_by_role("button", name="Send notice").click()
    kim.wait_for_url(re.compile(r"ok=notice\.sent"))

    lee = new_page(browser, locale="ko-KR")
    login(lee, world, "North", "lee")
    # North owes an answer: the dashboard counts down to the deadline (JS, from data-deadline).
    row = lee.locator("#h-deadlines + table tbody tr").first
    row.wait_for()
    timer = row.locator("[data-deadline]")
    lee.wait_for_function(
        "el => /\\d\\d:\\d\\d:\\d\\d/.test(el.textContent)", arg=timer.element_handle()
    )
    assert "남음" in timer.inner_text() and "overdue" not in (timer.get_attribute("class") or "")
    shots(lee, "dashboard-ko")
    row.get_by_role("link").click()
    notice = lee.locator("ol.messages li", has=lee.locator(".notice")).last
    assert notice.locator("img.map").is_visible()
    notice.get_by_role("button", name="수신 확인").click()
    lee.wait_for_url(re.compile(r"ok=notice\.acked"))
    # Answered before the deadline, and the sender sees it.
    answered = world.net.api("North").get("/deadlines", params={"all": "true"})
    assert answered and all(d["status"] == "answered" for d in answered)
    wait(lambda: not world.net.api("South").get("/deadlines"), what="South to see the answer")
    kim.goto(world.url("South", f"/console/channels/{world.hotline}"))
    assert kim.get_by_text("lee (North) answered: acknowledged").first.is_visible()
    shots(kim, "notice-answered")


def test_check_call_answered_from_the_dashboard(world: World, browser: Any) -> None:
    lee = new_page(browser)
    login(lee, world, "North", "lee")
    lee.evaluate("window.__same_page = true")
    call = world.net.api("South").post(f"/checkcalls/{world.hotline}/call", json={})
    button = lee.locator(f'[id="answer-{call["call_id"]}"]')
    button.wait_for()  # arrives live on the dashboard
    assert lee.evaluate("window.__same_page") is True
    button.click()
    lee.wait_for_url(re.compile(r"ok=checkcall\.answered"))

    def answered() -> bool:
        calls = world.net.api("South").get("/checkcalls", params={"channel": world.hotline})
        mine = [c for c in calls if c["call_id"] == call["call_id"]]
        return bool(mine) and mine[0]["answers"][0]["by"] == "lee"

    wait(answered, what="the answer to reach South")


def test_meeting_proposed_countered_and_agreed(world: World, browser: Any, shots: Any) -> None:
    kim, lee = new_page(browser), new_page(browser)
    login(kim, world, "South", "kim", f"/console/channels/{world.hotline}/talks")
    kim.locator("#p-dates").fill("2027-03-02\n2027-03-09")
    kim.locator("#p-venues").fill("Panmunjom, Peace House")
    kim.locator("#p-table").fill("square")
    kim.locator("#p-seating").fill("delegations facing each other")
    kim.locator("#p-delegation").fill("5")
    kim.locator("#p-agenda").fill("Format of the talks\nAgenda of the first round")
    kim.get_by_role("button", name="Send proposal").click()
    kim.wait_for_url(re.compile(r"ok=talks\.propose_ok"))
    assert kim.get_by_text("none (without preconditions)").first.is_visible()

    login(lee, world, "North", "lee", f"/console/channels/{world.hotline}/talks")
    # North's console speaks Korean unless lee picks English: he does, for this test, and the
    # choice follows him until he picks Korean again at its end.
    lee.goto(world.url("North", f"/console/channels/{world.hotline}/talks?lang=en"))
    wait(lambda: lee.reload() or lee.get_by_text("Counter-proposal based on this version").count(),
         what="the proposal at North")  # fmt: skip
    lee.get_by_text("Counter-proposal based on this version").first.click()
    lee.locator("form:has(input[value=counter]) input[name=table]").first.fill("round")
    lee.get_by_role("button", name="Send counter-proposal").first.click()
    lee.wait_for_url(re.compile(r"ok=talks\.done"))
    assert lee.get_by_text("format.table").first.is_visible()  # the history names the change

    def countered() -> bool:
        kim.reload()
        return kim.get_by_role("button", name="Accept this version").count() > 0

    wait(countered, what="the counter-proposal at South")
    kim.get_by_role("button", name="Accept this version").first.click()
    kim.wait_for_url(re.compile(r"ok=talks\.done"))
    assert kim.get_by_text("Agreed. Agreement record").is_visible()
    shots(kim, "talks")

    def agreed_north() -> bool:
        lee.reload()
        return lee.get_by_text("Agreed. Agreement record").count() > 0

    wait(agreed_north, what="North to see the agreement")
    lee.goto(world.url("North", "/console/?lang=ko"))
    assert lee.locator("html").get_attribute("lang") == "ko"


def test_transcript_verified_and_a_tampered_file_refused(
    world: World, browser: Any, shots: Any
) -> None:
    kim = new_page(browser)
    login(kim, world, "South", "kim", f"/console/channels/{world.hotline}/transcript")
    kim.get_by_role("button", name="Checkpoint this station's chain now").click()
    kim.wait_for_url(re.compile(r"ok=transcript\.checkpointed"))

    def cosigned() -> bool:
        kim.reload()
        return kim.locator("#h-checkpoints + table td", has_text="North").count() > 0

    wait(cosigned, what="North to countersign the checkpoint")
    kim.get_by_role("button", name="Verify this station's transcript now").click()
    assert kim.locator("#verdict").inner_text() == "Every check passed."
    checks = kim.locator("#report tbody tr")
    assert checks.filter(has_text="cosignature").locator("td").first.inner_text() == "pass"
    shots(kim, "transcript")
    with kim.expect_download() as dl:
        kim.get_by_role("link", name="Export the transcript file").click()
    data = Path(dl.value.path()).read_bytes()
    assert data.startswith(b"parley")
    tampered = data.replace(b"hotline", b"hotlime", 1)
    assert tampered != data
    kim.locator("#tr-file").set_input_files(
        {"name": "tampered.transcript", "mimeType": "text/plain", "buffer": tampered}
    )
    kim.get_by_role("button", name="Verify file").click()
    assert kim.locator("#verdict").inner_text().startswith("Verification FAILED")
    kim.locator("#tr-file").set_input_files(
        {"name": "exported.transcript", "mimeType": "text/plain", "buffer": data}
    )
    kim.get_by_role("button", name="Verify file").click()
    assert kim.locator("#verdict").inner_text() == "Every check passed."


def test_translation_shown_beside_the_original(world: World, browser: Any) -> None:
    kim = new_page(browser)
    login(kim, world, "South", "kim", f"/console/channels/{world.hotline}")
    kim.get_by_label("Message", exact=True).fill("We propose check calls at 09:00 and 16:00.")
    kim.get_by_role("button", name="Send").click()
    kim.wait_for_url(re.compile(r"ok=compose\.sent"))

    lee = new_page(browser, locale="ko-KR")
    login(lee, world, "North", "lee", f"/console/channels/{world.hotline}")
    item = lee.locator("ol.messages li", has_text="We propose check calls")
    item.wait_for()
    item.locator("summary", has_text="번역하기").click()
    item.get_by_label("번역", exact=True).fill("09:00와 16:00에 점검 통화를 제안합니다.")
    item.get_by_label(re.compile("인증")).check()
    item.get_by_role("button", name="번역 보내기").click()
    lee.wait_for_url(re.compile(r"ok=msg\.translated"))
    side = lee.locator("ol.messages li", has_text="We propose check calls").locator(".side > div")
    assert side.count() == 2
    assert "09:00와 16:00에" in side.nth(1).inner_text()
    assert "lee" in side.nth(1).inner_text()  # who certified it

    # South's operator sees the same pair, original first, live.
    kim_item = kim.locator("ol.messages li", has_text="We propose check calls")
    kim_item.locator(".side > div").nth(1).wait_for()
    assert "certified by lee" in kim_item.locator(".side > div").nth(1).inner_text()


def test_crisis_timeline_picture(world: World, browser: Any, shots: Any) -> None:
    kim = new_page(browser)
    login(kim, world, "South", "kim", "/console/crises")
    kim.locator("#crisis-title").fill("Unannounced launch <detected>")
    kim.locator("#crisis-severity").select_option("high")
    kim.get_by_role("button", name="Open incident").click()
    kim.wait_for_url(re.compile(r"ok=crisis\.opened"))
    assert kim.get_by_role("heading", name=re.compile("Unannounced launch <detected>")).is_visible()
    kim.locator("#move-status").select_option("contained")
    kim.locator("#move-note").fill("North explained: a satellite launch")
    kim.get_by_role("button", name="Change status").click()
    kim.wait_for_url(re.compile(r"ok=crisis\.moved"))
    svg = kim.locator("figure.timeline svg")
    assert svg.locator("circle.mark-incident").count() == 2  # opened, contained
    assert svg.locator("rect.status-open").count() == 1
    assert svg.locator("rect.status-contained").count() == 1
    shots(kim, "crisis")


def test_schedules_page_errors_beside_the_field_then_lists_the_next_call(
    world: World, browser: Any, shots: Any
) -> None:
    kim = new_page(browser)
    login(kim, world, "South", "kim", "/console/admin")
    kim.get_by_role("link", name="Check-call schedules").click()
    kim.wait_for_url(re.compile(r"/console/admin/schedules$"))
    kim.locator("#sched-channel").select_option(world.hotline)
    kim.locator("#sched-times").fill("09:00 16:00")
    kim.locator("#sched-tz").fill("Asia/Seol")
    kim.locator("#sched-within").fill("15")
    kim.get_by_role("button", name="Save schedule").click()
    err = kim.locator("#tz-error")
    err.wait_for()  # the answer to the POST, not the form still on screen
    assert "Asia/Seol" in err.inner_text()
    assert kim.locator("#sched-tz").get_attribute("aria-invalid") == "true"
    assert kim.locator("#times-error, #within-error, #weekdays-error").count() == 0
    assert kim.locator("#sched-times").input_value() == "09:00 16:00"  # the form is kept
    api = world.net.api("South")
    assert [s for s in api.get("/checkcalls/schedules") if s["channel"] == world.hotline] == []

    kim.locator("#sched-tz").fill("Asia/Seoul")
    kim.get_by_role("button", name="Save schedule").click()
    kim.wait_for_url(re.compile(r"ok=sched\.saved"))
    (saved,) = [s for s in api.get("/checkcalls/schedules") if s["channel"] == world.hotline]
    assert saved["times"] == ["09:00", "16:00"] and saved["weekdays"] == [0, 1, 2, 3, 4]
    assert saved["answer_within_ms"] == 15 * 60_000 and saved["next_due_ms"]
    row = kim.locator("#schedules tbody tr", has_text="Military hotline")
    text = row.inner_text()
    assert "09:00 16:00" in text and "Asia/Seoul" in text and "Mon Tue Wed Thu Fri" in text
    assert "0 h 15 min" in text
    nxt = row.locator(".next-due").inner_text()
    assert timefmt.when(saved["next_due_ms"], "en") in nxt
    assert re.search(r"(09|16):00 in Asia/Seoul", nxt)
    shots(kim, "schedules")

    kim.goto(world.url("South", "/console/admin/schedules?lang=ko"))
    assert kim.get_by_role("heading", name="점검 통화 일정", exact=True).is_visible()
    assert "월 화 수 목 금" in kim.locator("#schedules tbody tr").first.inner_text()
    kim.goto(world.url("South", f"/console/channels/{world.hotline}?lang=en"))
    assert "Scheduled: 09:00 16:00 (Asia/Seoul)" in kim.locator("#checkcall-schedule").inner_text()

    kim.goto(world.url("South", "/console/admin/schedules"))
    kim.get_by_role("link", name="Change the schedule of Military hotline").click()
    kim.wait_for_url(re.compile(r"\?channel="))
    assert kim.locator("#sched-tz").input_value() == "Asia/Seoul"  # the form starts from it
    assert kim.locator("#sched-within").input_value() == "15"
    kim.get_by_role("button", name="Remove the schedule of Military hotline").click()
    kim.wait_for_url(re.compile(r"ok=sched\.removed"))
    assert [s for s in api.get("/checkcalls/schedules") if s["channel"] == world.hotline] == []
    assert kim.locator("#schedules").count() == 0


def test_call_now_from_the_channel_page_is_pending_at_the_other_station(
    world: World, browser: Any, shots: Any
) -> None:
    kim = new_page(browser)
    login(kim, world, "South", "kim", f"/console/channels/{world.hotline}")
    kim.locator("#call-within").fill("0")
    kim.get_by_role("button", name="Call now").click()
    kim.locator("#call-within-error").wait_for()
    kim.locator("#call-within").fill("20")
    kim.get_by_role("button", name="Call now").click()
    kim.wait_for_url(re.compile(r"ok=checkcall\.called"))
    sent = world.net.api("South").get(
        "/checkcalls", params={"channel": world.hotline, "direction": "outgoing"}
    )[-1]
    assert sent["answer_by_ms"] - sent["due_ms"] == 20 * 60_000

    def pending_at_north() -> bool:
        calls = world.net.api("North").get(
            "/checkcalls", params={"status": "pending", "direction": "incoming"}
        )
        return any(c["call_id"] == sent["call_id"] for c in calls)

    wait(pending_at_north, what="North to see the pending call")
    kim.evaluate("window.__same_page = true")
    lee = new_page(browser, locale="ko-KR")
    login(lee, world, "North", "lee", f"/console/channels/{world.hotline}")
    theirs = lee.locator(f'#recent-calls tr[data-call="{sent["call_id"]}"]')
    assert "응답 대기" in theirs.inner_text()  # waiting for an answer
    lee.locator(f'[id="ch-answer-{sent["call_id"]}"]').click()
    lee.wait_for_url(re.compile(rf"/channels/{world.hotline}\?ok=checkcall\.answered"))
    # The caller's page shows the answer live, with who answered.
    mine = kim.locator(f'#recent-calls tr[data-call="{sent["call_id"]}"]')
    mine.locator("td.call-answered").wait_for()
    assert "lee (North)" in mine.inner_text()
    shots(kim, "channel-checkcall")
    assert kim.evaluate("window.__same_page") is True


def test_schedule_and_call_now_keep_the_api_roles_and_csrf(tmp_path: Path) -> None:
    """In-process: admin for schedules, operator for a call, the session's token on every POST;
    a schedule set in the console calls the other station when it falls due."""
    clock = Clock()
    net = Net()
    south = make_station(tmp_path / "s", "South", "en", clock)
    north = make_station(tmp_path / "n", "North", "ko", clock)
    introduce(south, north)
    ch = open_channel(net, south, north)
    for name, roles in (("kim", ["admin"]), ("park", ["operator"]), ("ahn", ["auditor"])):
        users.create_user(south, name, roles, PASSWORD, clock(), "admin")
    good = {"channel": ch, "times": "09:00", "tz": "Asia/Seoul", "weekdays": ["0", "1", "2",
            "3", "4", "5", "6"], "within": "10"}  # fmt: skip

    park = signed_in(south, "park")
    assert park.get("/console/admin/schedules").status_code == 403
    token = csrf_of(park.get(f"/console/channels/{ch}").text)
    refused = park.post("/console/admin/schedules", data=good | {"csrf": token})
    assert refused.status_code == 403
    ahn = signed_in(south, "ahn")
    ahn_token = csrf_of(ahn.get(f"/console/channels/{ch}").text)
    assert "call-now" not in ahn.get(f"/console/channels/{ch}").text
    call = ahn.post(f"/console/channels/{ch}/checkcall", data={"within": "5", "csrf": ahn_token})
    assert call.status_code == 403
    assert park.post(f"/console/channels/{ch}/checkcall", data={"within": "5"}).status_code == 403
    assert vigil_db.calls(south.store, [ch]) == []

    kim = signed_in(south, "kim")
    page = kim.get("/console/admin/schedules")
    assert page.status_code == 200
    kim_token = csrf_of(page.text)
    assert kim.post("/console/admin/schedules", data=good).status_code == 403  # no token
    bad = kim.post(
        "/console/admin/schedules",
        data=good | {"csrf": kim_token, "times": "9am", "weekdays": [], "within": "99999"},
    )
    assert bad.status_code == 422
    for field in ("times", "weekdays", "within"):
        assert f'id="{field}-error"' in bad.text
    assert 'id="tz-error"' not in bad.text and vigil_db.schedule(south.store, ch) is None
    saved = kim.post("/console/admin/schedules", data=good | {"csrf": kim_token})
    assert saved.status_code == 200 and "Schedule saved." in saved.text
    row = vigil_db.schedule(south.store, ch)
    assert row is not None and row.times == ["09:00"] and row.updated_by == "kim"
    due = checkcalls.schedule_json(row, clock())["next_due_ms"]
    assert timefmt.when(due, "en") in saved.text

    # The schedule calls when due, and North has a call to answer.
    clock.now = due + 1000
    south.tick()
    net.deliver(south, north)
    (pending,) = checkcalls.list_calls(north, users.BOOTSTRAP, ch, "pending", "incoming")
    assert pending["due_ms"] == due and pending["caller"] == south.id

    # Removing needs the token too (a new session: the old one ended while the clock ran).
    kim = signed_in(south, "kim")
    kim_token = csrf_of(kim.get("/console/admin/schedules").text)
    assert kim.post(f"/console/admin/schedules/{ch}/remove").status_code == 403
    assert vigil_db.schedule(south.store, ch) is not None
    gone = kim.post(f"/console/admin/schedules/{ch}/remove", data={"csrf": kim_token})
    assert "Schedule removed." in gone.text and vigil_db.schedule(south.store, ch) is None


def test_checkpoints_are_one_ledger_line_not_messages(tmp_path: Path) -> None:
    """In-process: checkpoints and cosignatures (both directions) leave the message list; the
    other bodies stay as they were; one line counts the transcript and links to it."""
    clock = Clock()
    net = Net()
    south = make_station(tmp_path / "s", "South", "en", clock)
    north = make_station(tmp_path / "n", "North", "ko", clock)
    introduce(south, north)
    ch = open_channel(net, south, north)
    users.create_user(south, "kim", ["operator", "admin"], PASSWORD, clock(), "admin")
    kim = users.User("kim", frozenset({"operator", "admin"}))
    lee = users.User("lee", frozenset({"operator"}))
    south.send(ch, channels.text_body("Hello North", "en"), "ROUTINE", "", "kim")
    ref = south.messages(ch)[-1].hash
    south.send(ch, translation.human_body(ref, "ko", "안녕 북측", "kim", certified=True),
               "ROUTINE", "", "kim")  # fmt: skip
    call = checkcalls.call_now(south, ch, 600_000, kim)
    crises.open_incident(south, kim, ch, "Radar contact", "medium", "")
    checkpoints.issue(south, ch, "kim")
    net.deliver(south, north)
    checkcalls.answer(north, ch, call["call_id"], lee)
    checkpoints.issue(north, ch)
    net.deliver(north, south)
    net.deliver(south, north)

    held = south.messages(ch)
    types = [m.body.get("type") for m in held]
    assert {checkpoint.CHECKPOINT, checkpoint.COSIGN} <= set(types)  # both are held
    web = signed_in(south, "kim")
    for path in (f"/console/channels/{ch}", f"/console/channels/{ch}/live"):
        html = web.get(path).text
        messages = html[html.index('class="messages"') :]
        shown = re.findall(r"<summary>Record: ([^<]+)</summary>", messages)
        assert "checkpoint" not in shown and "checkpoint.cosign" not in shown
        assert {"checkcall.call", "checkcall.answer", "crisis.open"} <= set(shown)
        assert "Hello North" in messages and "안녕 북측" in messages  # text beside translation
        # One item per body but the translation (beside its original) and the bookkeeping.
        left_out = (checkpoint.CHECKPOINT, checkpoint.COSIGN, translation.TYPE)
        assert messages.count("<li data-id=") == len([t for t in types if t not in left_out])

        found = re.search(r'id="ledger">(.*?)</p>', html, re.S)
        assert found is not None
        line = " ".join(unescape(re.sub(r"<[^>]+>", " ", found[1])).split())
        assert f"Transcript: {len(held)} envelopes" in line
        assert len(held) == sum(south.transcript_digest(ch)["chains"].values())
        for cp in checkpoints.checkpoints_of(south, kim, ch):
            other = "North" if cp["sender_name"] == "South" else "South"
            assert [c["name"] for c in cp["cosigners"]] == [other]
            assert (
                f"{cp['sender_name']}'s chain checkpointed up to #{cp['size']}, "
                f"countersigned by {other}"
            ) in line
        assert f'href="/console/channels/{ch}/transcript"' in found[1]
