"""What no handler expected (issue 16): a real station whose database lost a table answers the
operator API with the JSON error `internal` (HTTP 500) and an `X-Request-Id`, and the console with
its error page and the same header; the cause goes to the station's log under that id, never to
the caller. `LoginRequired` is part of the error hierarchy.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import httpx

from parley.errors import Code, Internal, LoginRequired, ParleyError, Unauthorized
from tests.net import Stations, wait
from tests.security.test_sessions import STRONG, console_login


def _rename(db: Path, old: str, new: str) -> None:
    with sqlite3.connect(db, timeout=30) as con:
        con.execute(f"ALTER TABLE {old} RENAME TO {new}")


def _logged(log: Path, request_id: str) -> list[dict[str, object]]:
    out = []
    for line in log.read_text("utf-8", errors="replace").splitlines():
        if request_id in line and line.startswith("{"):
            out.append(json.loads(line))
    return out


def test_an_unexpected_failure_answers_internal_with_a_request_id_the_log_has(
    tmp_path: Path,
) -> None:
    with Stations(tmp_path, [("South", "en")]) as net:
        boot = net.api("South")
        boot.post("/users", json={"name": "kim", "roles": ["admin"], "password": STRONG})
        browser = httpx.Client(base_url=boot.base, timeout=30)
        console_login(browser, "kim", STRONG)
        db = net.dirs["South"] / "parley.db"
        log = tmp_path / "south.log"
        assert boot.http.get("/api/v1/audit").status_code == 200

        _rename(db, "audit", "audit_away")
        _rename(db, "checkcall_schedules", "schedules_away")
        try:
            r = boot.http.get("/api/v1/audit")
            page = browser.get("/console/admin/schedules")
            anonymous = httpx.get(boot.base + "/api/v1/audit", timeout=30)
        finally:
            _rename(db, "audit_away", "audit")
            _rename(db, "schedules_away", "checkcall_schedules")

        # The operator API: the project's one error shape, with the id in details and header.
        assert r.status_code == 500, r.text
        body = r.json()
        rid = r.headers["X-Request-Id"]
        assert body["code"] == str(Code.INTERNAL) == "internal"
        assert body["details"] == {"request_id": rid} and rid in body["message"]
        assert "audit" not in r.text and "sqlite" not in r.text.lower()  # the cause stays home
        # The console: its error page, not Starlette's plain text.
        assert page.status_code == 500
        assert page.headers["content-type"].startswith("text/html")
        page_rid = page.headers["X-Request-Id"]
        assert page_rid != rid and page_rid in page.text and "internal" in page.text
        assert "schedules_away" not in page.text
        # Someone without a credential is refused before anything fails (no 500, no id).
        assert anonymous.status_code == 401 and "X-Request-Id" not in anonymous.headers

        # Each failure is in the log once, under its id, with the traceback and the route.
        wait(lambda: _logged(log, rid) and _logged(log, page_rid), what="the failures logged")
        (api_line,) = _logged(log, rid)
        assert api_line["level"] == "error" and api_line["request_id"] == rid
        assert "GET /api/v1/audit" in str(api_line["message"]) and "audit" in str(api_line["exc"])
        (page_line,) = _logged(log, page_rid)
        assert "schedules_away" in str(page_line["exc"]) or "checkcall" in str(page_line["exc"])
        # The station goes on answering.
        assert boot.http.get("/api/v1/audit").status_code == 200
        assert browser.get("/console/admin/schedules").status_code == 200


def test_every_error_is_a_parley_error_with_a_code() -> None:
    login = LoginRequired(expired=True)
    assert isinstance(login, Unauthorized) and login.code is Code.UNAUTHORIZED
    assert login.status == 401 and login.expired
    internal = Internal("0123abcd")
    assert isinstance(internal, ParleyError) and internal.status == 500
    assert internal.to_json() == {
        "code": "internal",
        "message": internal.message,
        "details": {"request_id": "0123abcd"},
    }
