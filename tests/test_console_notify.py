"""The console's notifications page in a real browser (issue 15): an admin adds a webhook target
(an error beside the field first), routes an alarm kind to it, sends a test, and reads the
targets per kind and the delivery log; an operator is refused the page.

Screenshots go to each test's tmp dir; with PARLEY_SCREENSHOTS=DIR (docs/screenshots) the one
docs/console.md shows is written there too.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

# The console tests' fixtures (stations, users, the browser), used here by name.
from tests.test_console import (  # noqa: F401
    PASSWORD,
    World,
    browser,
    login,
    new_page,
    shots,
    world,
)
from tests.test_notices import Hook


def test_admin_adds_a_target_routes_a_kind_tests_it_and_reads_the_log(
    world: World, browser: Any, shots: Any
) -> None:
    hook = Hook([200])
    try:
        kim = new_page(browser)
        login(kim, world, "South", "kim", "/console/admin")
        kim.get_by_role("link", name="Notifications").click()
        kim.wait_for_url(re.compile(r"/console/admin/notify$"))
        assert "No targets yet" in kim.locator("#h-targets + p").inner_text()

        kim.locator("#target-name").fill("duty-desk")
        kim.locator("#target-address").fill("ftp://nowhere")
        kim.get_by_role("button", name="Save target").click()
        err = kim.locator("#target-error")
        err.wait_for()
        assert "http(s) URL" in err.inner_text()
        assert kim.locator("#target-address").input_value() == "ftp://nowhere"  # kept

        kim.locator("#target-address").fill(hook.url)
        kim.get_by_role("button", name="Save target").click()
        kim.wait_for_url(re.compile(r"ok=notify\.saved"))
        assert hook.url in kim.locator("#targets").inner_text()

        kim.locator("#route-kind").select_option("link")
        kim.get_by_label("duty-desk", exact=True).check()
        kim.get_by_role("button", name="Save route").click()
        kim.wait_for_url(re.compile(r"ok=notify\.routed"))
        row = kim.locator("#kinds tbody tr", has_text="a link to a peer").inner_text()
        assert "duty-desk" in row and "urgent" in row

        kim.get_by_role("button", name="Send a test notification to duty-desk").click()
        kim.locator("#tested").wait_for()
        assert "reached duty-desk" in kim.locator("#tested").inner_text()
        assert hook.bodies[-1]["event"] == "parley.test"
        log = kim.locator("#deliveries tbody tr").first.inner_text()
        assert "test" in log and "delivered" in log
        shots(kim, "notify")

        kim.goto(world.url("South", "/console/admin/notify?lang=ko"))
        assert kim.get_by_role("heading", name="알림", exact=True).is_visible()
        kim.goto(world.url("South", "/console/admin/notify?lang=en"))

        # An operator is not an admin: the page is refused, and so is the API behind it.
        base = world.net.api("South").base
        token = httpx.post(base + "/api/v1/login", json={"name": "park", "password": PASSWORD})
        park = {"Authorization": f"Bearer {token.json()['token']}"}
        refused = httpx.get(base + "/api/v1/notify", headers=park)
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
        page = new_page(browser)
        login(page, world, "South", "park")
        answer = page.goto(world.url("South", "/console/admin/notify"))
        assert answer is not None and answer.status == 403
    finally:
        hook.close()
