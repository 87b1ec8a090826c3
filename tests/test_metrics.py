"""GET /metrics: Prometheus text that moves with sends, receipts, links and alarms, needs a token,
and reads the same from any worker of a PostgreSQL station.

Stations are in memory (tests/pair.py) with a controlled clock, served through the real FastAPI
app; the latency histogram settles SETTLE_MS after a receipt, so the clock is moved past it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from parley.app.build import build_app
from parley.protocol import crypto
from parley.protocol.identity import parse_invitation
from parley.station import features
from parley.station.config import Config
from parley.station.metrics import SETTLE_MS
from parley.station.node import Station
from parley.store.base import LinkRow
from parley.store.postgres import PostgresStore
from tests.pair import Clock, Net, introduce, make_station, open_channel

pytest_plugins = ["tests.pgserver"]  # the pg_dsn and pg_db fixtures

TOKEN = "metrics-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient) -> Samples:
    r = client.get("/metrics", headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    out: Samples = {}
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    """The one sample named `name` whose labels include `labels`; 0 if there is none."""
    found = [v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls]
    assert len(found) <= 1, f"{name} {labels} matches {len(found)} samples"
    return found[0] if found else 0.0


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Station, Station, Clock, Net, TestClient]]:
    clock = Clock()
    a = make_station(tmp_path / "a", "South", "en", clock)
    b = make_station(tmp_path / "b", "North", "ko", clock)
    introduce(a, b)
    with TestClient(build_app(a, TOKEN)) as client:
        yield a, b, clock, Net(), client
    a.store.close()
    b.store.close()


def test_sends_queue_and_receipts_deliver(
    pair: tuple[Station, Station, Clock, Net, TestClient],
) -> None:
    a, b, clock, net, client = pair
    ch = open_channel(net, a, b)
    clock.advance(SETTLE_MS + 1)
    before = scrape(client)
    delivered_before = value(before, "parley_deliveries_total", peer="North")
    assert delivered_before == 1  # the channel proposal
    stored_before = value(before, "parley_envelopes_stored", sender="South")

    for i in range(3):
        a.send(ch, {"type": "text", "text": f"message {i}", "lang": "en"})
    clock.advance(2_000)
    queued = scrape(client)
    assert value(queued, "parley_queue_depth", peer="North", peer_id=b.id) == 3
    assert value(queued, "parley_queue_oldest_age_seconds", peer="North") == 2.0
    assert value(queued, "parley_envelopes_stored", sender="South") == stored_before + 3
    assert value(queued, "parley_deliveries_total", peer="North") == delivered_before
    # One at a time here, so one commit each; tests/test_writer.py shows them grouped.
    for name in ("parley_writer_sends_total", "parley_writer_commits_total"):
        assert value(queued, name) == value(before, name) + 3

    clock.advance(250)  # receipted 2.25 s after queueing
    net.deliver(a, b)
    fresh = scrape(client)
    assert value(fresh, "parley_queue_depth", peer="North") == 0
    assert value(fresh, "parley_queue_oldest_age_seconds", peer="North") == 0
    # Not settled yet: a receipt counts SETTLE_MS after it was recorded.
    assert value(fresh, "parley_deliveries_total", peer="North") == delivered_before

    clock.advance(SETTLE_MS)
    settled = scrape(client)
    bucket = "parley_delivery_latency_seconds_bucket"
    assert value(settled, "parley_deliveries_total", peer="North") == delivered_before + 3
    assert value(settled, "parley_delivery_latency_seconds_count", peer="North") == 4
    assert value(settled, "parley_delivery_latency_seconds_sum", peer="North") == 6.75
    assert value(settled, bucket, peer="North", le="1.0") == 1  # the proposal, at once
    assert value(settled, bucket, peer="North", le="2.5") == 4
    assert value(settled, bucket, peer="North", le="+Inf") == 4
    # Scraping again folds nothing twice.
    clock.advance(SETTLE_MS)
    assert scrape(client) == settled


def test_link_state_and_alarms_are_gauges(
    pair: tuple[Station, Station, Clock, Net, TestClient],
) -> None:
    a, b, clock, _, client = pair
    m = scrape(client)
    assert value(m, "parley_link_state", peer="North", state="unknown") == 1
    assert value(m, "parley_link_state", peer="North", state="up") == 0

    a.store.set_link(LinkRow(b.id, "down", clock(), None, "refused", 3, 40))
    a.alarm("link_down", "high", b.id, "link to North is down: refused")
    a.alarm("link_down", "high", b.id, "link to North is down: refused")
    m = scrape(client)
    assert value(m, "parley_link_state", peer="North", state="down") == 1
    assert value(m, "parley_link_state", peer="North", state="unknown") == 0
    assert value(m, "parley_link_rtt_seconds", peer="North") == 0.04
    assert value(m, "parley_alarms", kind="link_down", severity="high") == 2

    for alarm in a.store.alarms():
        a.store.clear_alarm(alarm.id, clock())
    m = scrape(client)
    assert value(m, "parley_alarms", kind="link_down", severity="high") == 0


def test_metrics_need_a_token(pair: tuple[Station, Station, Clock, Net, TestClient]) -> None:
    client = pair[4]
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        r = client.get("/metrics", headers=headers)
        assert r.status_code == 401
        assert r.json()["code"] == "unauthorized"
    assert client.get("/metrics", headers=AUTH).status_code == 200


def test_metrics_never_name_channels(
    pair: tuple[Station, Station, Clock, Net, TestClient],
) -> None:
    a, b, clock, net, client = pair
    ch = open_channel(net, a, b)
    a.send(ch, {"type": "text", "text": "discreet", "lang": "en"})
    clock.advance(SETTLE_MS + 1)
    net.deliver(a, b)
    text = client.get("/metrics", headers=AUTH).text
    assert ch not in text


def test_every_worker_of_a_postgresql_station_answers_the_same(tmp_path: Path, pg_db: str) -> None:
    """Two processes' worth of Station on one database: a send through one, receipts through the
    other, and both scrapes agree; each delivery is folded once whichever worker settles it."""
    clock = Clock()
    cfg = Config(name="South", lang="en", listen="127.0.0.1:9")
    key = crypto.SigningKey.generate()
    workers = []
    for _ in range(2):
        st = Station(cfg, PostgresStore(pg_db), key, clock)
        st.rotate_prekeys()
        workers.append(features.install(st))
    w1, w2 = workers
    b = make_station(tmp_path / "b", "North", "ko", clock)
    try:
        w1.add_peer(parse_invitation(b.invitation().encode()))
        b.add_peer(parse_invitation(w1.invitation().encode()))
        net = Net()
        ch = open_channel(net, w1, b)
        for i in range(4):
            w2.send(ch, {"type": "text", "text": f"via worker 2: {i}", "lang": "en"})
        c1, c2 = TestClient(build_app(w1, TOKEN)), TestClient(build_app(w2, TOKEN))
        assert value(scrape(c1), "parley_queue_depth", peer="North") == 4
        clock.advance(100)
        net.deliver(w1, b)
        clock.advance(SETTLE_MS)
        first, second = scrape(c2), scrape(c1)
        assert first == second
        assert value(first, "parley_deliveries_total", peer="North") == 5
        assert value(first, "parley_queue_depth", peer="North") == 0
        clock.advance(SETTLE_MS)
        assert scrape(c1) == scrape(c2) == first
    finally:
        for st in (*workers, b):
            st.store.close()
