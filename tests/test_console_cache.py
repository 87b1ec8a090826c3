"""The console's pages are never stored by a browser or proxy; its static files may be
(web/console.py `NoStore`, a plain ASGI wrapper since issue 14)."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from parley.app.build import build_app
from tests.pair import Clock, make_station


def test_console_pages_say_no_store_and_static_files_do_not(tmp_path: Path) -> None:
    client = TestClient(build_app(make_station(tmp_path / "a", "South", "en", Clock()), "t" * 32))
    page = client.get("/console/login")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert page.headers["x-frame-options"] == "DENY"  # the station's headers too (app/gate.py)
    missing = client.get("/console/no-such-page", follow_redirects=False)
    assert missing.headers["cache-control"] == "no-store"
    static = client.get("/console/static/console.css")
    assert static.status_code == 200 and "no-store" not in static.headers.get("cache-control", "")
