"""The console's notice composer and printed transcript in a real browser (issue 15): inputs per
kind of field, a position clicked on the map, the preview each member will read with the late
warning, sending, and the print view and PDF of the channel; `parley transcript print`.

Screenshots go to each test's tmp dir; with PARLEY_SCREENSHOTS=DIR (docs/screenshots) the ones
docs/console.md shows are written there too.
"""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# The console tests' fixtures (stations, users, the browser), used here by name.
from tests.test_console import (  # noqa: F401
    World,
    browser,
    login,
    new_page,
    shots,
    world,
)


def test_notice_typed_field_by_field_previewed_late_then_sent(
    world: World,
    browser: Any,
    shots: Any,
) -> None:
    kim = new_page(browser)
    path = f"/console/channels/{world.hotline}/notice?form=launch_notice"
    login(kim, world, "South", "kim", path)
    # Every field has its own input; nothing asks for JSON, milliseconds or micro-degrees.
    assert kim.locator("#f-launch_window-start").input_value().startswith("2030-")
    assert "N" in kim.locator("#f-launch_area").input_value()
    assert kim.locator("#f-vehicle_kind").evaluate("e => e.tagName") == "SELECT"
    shots(kim, "notice-compose")

    soon = datetime.now(UTC) + timedelta(hours=3)
    kim.locator("#f-zone").select_option("UTC")
    kim.locator("#f-launch_window-start").fill(f"{soon:%Y-%m-%d %H:%M}")
    kim.locator("#f-launch_window-end").fill("+2h")
    kim.locator("#f-launch_area").fill("")
    kim.locator("#f-launch_area-name").fill("Sohae")
    # Three corners clicked on the map, in the launch area's part of it.
    kim.locator("#pick-target").select_option("f-launch_area")
    sea = kim.locator("svg.pick-map > rect").first
    box = sea.bounding_box()
    assert box is not None
    for dx, dy in ((0.10, 0.40), (0.16, 0.40), (0.13, 0.46)):
        # force: the land drawn over the sea takes the click; the map's handler gets it all the same
        sea.click(position={"x": box["width"] * dx, "y": box["height"] * dy}, force=True)
    typed = kim.locator("#f-launch_area").input_value()
    assert typed.count(";") == 2 and re.search(r"\d+\.\d{4}N \d+\.\d{4}E", typed)
    kim.locator("#f-impact_area").fill("circle 40°N 131°30'E 60 km")
    kim.get_by_role("button", name="Preview").click()

    late = kim.locator("#preview-late")
    assert late.is_visible() and "LATE NOTICE" in late.inner_text()
    readers = kim.locator("#preview article.reader")
    assert readers.count() == 2
    north = kim.locator("#preview article.reader", has_text="North reads (ko)")
    assert "발사 통보" in north.locator("pre").inner_text()
    assert north.locator("img.map").is_visible()
    shots(kim, "notice-preview")
    assert not world.net.api("South").get(f"/channels/{world.hotline}/notices") or all(
        n["form"] != "launch_notice" or not n["late"]
        for n in world.net.api("South").get(f"/channels/{world.hotline}/notices")
    )  # the preview sent nothing

    kim.get_by_role("button", name="Send notice").click()
    kim.wait_for_url(re.compile(r"ok=notice\.sent"))
    sent = [n for n in world.net.api("South").get(f"/channels/{world.hotline}/notices")
            if n["late"]]  # fmt: skip
    assert sent, "the late notice was sent and marked late"


def test_print_view_and_pdf_of_the_channel(
    world: World,
    browser: Any,
    shots: Any,
    tmp_path: Path,
) -> None:
    lee = new_page(browser, locale="ko-KR")
    login(lee, world, "North", "lee", f"/console/channels/{world.hotline}/transcript")
    lee.get_by_role("button", name="인쇄 화면").click()
    lee.wait_for_url(re.compile(r"/printout\?"))
    assert lee.get_by_role("heading", name=re.compile("대화 기록")).is_visible()
    assert lee.locator(".msg").count() >= 2
    assert lee.locator("img.map").count() >= 1
    shots(lee, "printout")
    with lee.expect_download() as dl:
        lee.goto(world.url("North", f"/console/channels/{world.hotline}/transcript"))
        lee.get_by_role("button", name="PDF").click()
    pdf = tmp_path / "t.pdf"
    dl.value.save_as(pdf)
    assert pdf.read_bytes().startswith(b"%PDF")

    # The same from the command line.
    out = tmp_path / "cli.pdf"
    world.net.cli("North", "transcript", "print", "--out", str(out), "--", world.hotline)
    text = subprocess.run(["pdftotext", str(out), "-"], capture_output=True, text=True,
                          check=True, timeout=60).stdout  # fmt: skip
    assert "대화 기록" in text and "서명 확인됨" in text
