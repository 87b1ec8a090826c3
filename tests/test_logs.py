"""Structured logs: every line one JSON object with ts, level, logger, message and the context
(station, peer, channel, seq), both from the formatter alone and from a real station process."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from parley.cli.client import Api
from parley.cli.demo import init
from parley.protocol import crypto
from parley.protocol.identity import station_id
from parley.protocol.request import HEADER, sign_request
from parley.station import logs
from parley.station.config import load_config
from tests.net import LIVENESS_S


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level, bound = list(root.handlers), root.level, dict(logs._bound)
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)
    logs._bound.clear()
    logs._bound.update(bound)


def lines(text: str) -> list[dict[str, Any]]:
    out = [json.loads(line) for line in text.splitlines()]
    for rec in out:
        assert {"ts", "level", "logger", "message"} <= set(rec)
        assert rec["ts"].endswith("Z") and len(rec["ts"]) == len("2026-01-01T00:00:00.000Z")
    return out


def test_each_line_is_json_with_its_context(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert logs.configure("auto") == "json"  # stderr is not a terminal here
    logs.bind(station="South", station_id="st123")
    log = logging.getLogger("parley.test")
    log.info("plain %s", "text")
    with logs.context(peer="stpeer", channel="ch1"):
        log.warning("inside", extra={"seq": 7})
        with logs.context(channel="ch2"):
            log.info("nested")
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        log.exception("failed")
    log.debug("below the level")
    recs = lines(capsys.readouterr().err)
    assert [r["message"] for r in recs] == ["plain text", "inside", "nested", "failed"]
    plain, inside, nested, failed = recs
    assert plain["level"] == "info" and plain["logger"] == "parley.test"
    assert plain["station"] == "South" and plain["station_id"] == "st123"
    assert plain["pid"] == os.getpid()
    assert "peer" not in plain and "channel" not in plain
    assert (inside["level"], inside["peer"], inside["channel"], inside["seq"]) == (
        "warning", "stpeer", "ch1", 7,
    )  # fmt: skip
    assert (nested["peer"], nested["channel"]) == ("stpeer", "ch2")
    assert failed["level"] == "error" and "ValueError: boom" in failed["exc"]


def test_text_format_for_people(restore_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert logs.configure("text") == "text"
    with logs.context(peer="stpeer"):
        logging.getLogger("parley.test").warning("link down")
    err = capsys.readouterr().err
    assert "WARNING" in err and "parley.test: link down" in err and "peer=stpeer" in err
    with pytest.raises(ValueError):
        logs.configure("xml")


def test_a_running_station_writes_only_json_lines(tmp_path: Path) -> None:
    data = tmp_path / "south"
    init(data, "South", "en")
    log = tmp_path / "south.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "parley.cli", "station", "run", "--data", str(data),
         "--log-format", "json"],
        stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        api = Api(data, timeout_s=2)
        deadline = time.monotonic() + LIVENESS_S
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                api.get("/station")
                break
            except Exception:
                assert time.monotonic() < deadline, "the station did not start"
                time.sleep(0.2)
        cfg = load_config(data)
        base = f"http://{cfg.host}:{cfg.port}"
        # An unknown station's signed request, and an operator request without a token.
        key = crypto.SigningKey.generate()
        stranger = station_id(key.public)
        auth = sign_request(key, stranger, "GET", "/peer/v1/ping", b"", int(time.time() * 1000))
        assert httpx.get(base + "/peer/v1/ping", headers={HEADER: auth}).status_code >= 400
        assert httpx.get(base + "/api/v1/channels/chX/messages").status_code == 401
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(LIVENESS_S)
    recs = lines(log.read_text())
    serving = [r for r in recs if "serving on" in r["message"]]
    assert len(serving) == 1 and serving[0]["station"] == "South"
    refused = [r for r in recs if r["message"].startswith("GET /peer/v1/ping answered 4")]
    assert len(refused) == 1 and refused[0]["peer"] == stranger
    unauthorized = [r for r in recs if "/api/v1/channels/chX/messages answered 401" in r["message"]]
    assert len(unauthorized) == 1 and unauthorized[0]["channel"] == "chX"
    assert all(r["station_id"] == serving[0]["station_id"] for r in recs)
