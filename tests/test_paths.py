"""Paths besides direct push (issue 3 item 5): pull, relay through a facilitator, offline bundles,
and the same envelope over two paths applied once. Every path ends in Station.receive_batch.

The first tests join stations in memory (tests/pair.py) and drive the same functions the peer
API and the dispatcher call; the last ones run real station processes on loopback (tests/net.py).
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from parley.api import peer as peer_api
from parley.cli.demo import free_port
from parley.domain import channels
from parley.errors import Code, LocalError, NotFound, RejectedInput
from parley.protocol.bundle import parse_bundle, split_frame
from parley.protocol.encoding import canonical
from parley.protocol.identity import parse_invitation, station_id
from parley.protocol.request import HEADER, sign_request
from parley.station import paths
from parley.station.boot import open_station
from parley.station.config import CONFIG, Timings, load_identity
from parley.station.node import Station
from parley.station.users import BOOTSTRAP, User
from parley.store import paths as db
from parley.store.base import SqlStore
from parley.store.sqlite import SqliteStore
from parley.transport.http import PUSH_PATH
from tests.net import Stations, parley, wait
from tests.pair import Clock, Net, introduce, make_station, open_channel

pytest_plugins = ["tests.stores"]  # the store fixture, on SQLite and on PostgreSQL

OPERATOR = User("duty", frozenset({"operator"}))
ADMIN = BOOTSTRAP
FAST = Timings(heartbeat_ms=300, retry_base_ms=100, retry_max_ms=1000)


def state(st: Station) -> tuple[object, ...]:
    """What a refused bundle or relay request must leave untouched."""
    q = st.store.q
    return (
        q("SELECT COUNT(*) FROM envelopes")[0][0],
        q("SELECT COUNT(*) FROM bodies")[0][0],
        q("SELECT COUNT(*) FROM receipts")[0][0],
        q("SELECT COUNT(*) FROM outbox WHERE delivered IS NULL")[0][0],
        q("SELECT COUNT(*) FROM prekeys")[0][0],
        q("SELECT prekeys FROM peers ORDER BY station"),
    )


def texts(st: Station, ch: str) -> list[str]:
    return [m.body["text"] for m in st.messages(ch) if m.body.get("type") == "text"]


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Net, Station, Station, str]:
    clock = Clock()
    a = make_station(tmp_path / "a", "South", "en", clock)
    b = make_station(tmp_path / "b", "North", "ko", clock)
    introduce(a, b)
    net = Net()
    return net, a, b, open_channel(net, a, b)


def send(st: Station, ch: str, text: str) -> bytes:
    row, _ = st.send(ch, channels.text_body(text, st.cfg.lang))
    return row.raw


# --- bundles (in memory) -------------------------------------------------------------------------
def test_a_bundle_carries_pending_envelopes_and_its_answer_carries_the_receipts(
    pair: tuple[Net, Station, Station, str],
) -> None:
    _, a, b, ch = pair
    for i in range(3):
        send(a, ch, f"by courier {i}")
    data, summary = paths.export_bundle(a, b.id, OPERATOR)
    assert summary["envelopes"] == 3
    assert a.store.outbox_counts(b.id) == (1, 3)  # exporting marks nothing delivered

    report = paths.import_bundle(b, data, OPERATOR)
    assert (report["accepted"], report["duplicate"], report["rejected"]) == (3, 0, 0)
    assert texts(b, ch) == ["by courier 0", "by courier 1", "by courier 2"]

    answer, summary = paths.export_bundle(b, a.id, OPERATOR)
    assert summary["envelopes"] == 0 and summary["receipts"] == 1
    back = paths.import_bundle(a, answer, OPERATOR)
    assert back["delivered"] == 3
    assert a.store.outbox_counts(b.id) == (4, 0)
    assert [x.direction for x in db.bundle_log(a.store)] == ["import", "export"]


def _tamper_envelope(data: bytes) -> bytes:
    lines = data.split(b"\n")
    lines[1] = lines[1].replace(b'"seq":', b'"seq": ', 1)
    return b"\n".join(lines)


def _tamper_receipts(data: bytes) -> bytes:
    header, rest = data.split(b"\n", 1)
    obj = json.loads(header)
    obj["receipts"] = []
    return canonical(obj) + b"\n" + rest


def _drop_envelope(data: bytes) -> bytes:
    lines = data.split(b"\n")
    return b"\n".join([lines[0], *lines[2:]])


def _flip_signature(data: bytes) -> bytes:
    header, rest = data.split(b"\n", 1)
    obj = json.loads(header)
    sig = bytearray(obj["sig"].encode())
    sig[5] = ord("A") if sig[5] != ord("A") else ord("B")
    obj["sig"] = sig.decode()
    return canonical(obj) + b"\n" + rest


def _swap_envelope(data: bytes) -> bytes:
    """Replace an envelope line by another genuine, signed envelope and fix the count: only the
    signed digest gives it away."""
    header, first, *rest = data.split(b"\n")
    return b"\n".join([header, rest[0], first, *rest[1:]])


@pytest.mark.parametrize(
    ("tamper", "code"),
    [
        (_tamper_envelope, Code.BAD_SIGNATURE),
        (_tamper_receipts, Code.BAD_SIGNATURE),
        (_drop_envelope, Code.MALFORMED),
        (_flip_signature, Code.BAD_SIGNATURE),
        (_swap_envelope, Code.BAD_SIGNATURE),
        (lambda d: d.rstrip(b"\n"), Code.MALFORMED),
        (lambda d: d.replace(b"\n", b"\r\n"), Code.MALFORMED),
    ],
)
def test_a_tampered_bundle_is_refused_and_changes_nothing(
    pair: tuple[Net, Station, Station, str], tamper: Callable[[bytes], bytes], code: Code
) -> None:
    net, a, b, ch = pair
    send(a, ch, "first")
    net.deliver(b, a)  # so that b's export would carry a receipt worth tampering with
    send(a, ch, "second")
    send(a, ch, "third")
    data, _ = paths.export_bundle(a, b.id, OPERATOR)
    before = state(b)
    with pytest.raises(RejectedInput) as exc:
        paths.import_bundle(b, tamper(data), OPERATOR)
    assert exc.value.code == code
    assert state(b) == before
    assert paths.import_bundle(b, data, OPERATOR)["accepted"] == 3  # the genuine one applies


def test_a_bundle_for_another_station_or_from_a_stranger_is_refused(
    tmp_path: Path, pair: tuple[Net, Station, Station, str]
) -> None:
    _, a, b, ch = pair
    c = make_station(tmp_path / "c", "UN", "en", a.clock)  # type: ignore[arg-type]
    introduce(a, c)
    send(a, ch, "not for you")
    data, _ = paths.export_bundle(a, b.id, OPERATOR)
    with pytest.raises(RejectedInput) as exc:
        paths.import_bundle(c, data, OPERATOR)
    assert exc.value.code == Code.NOT_A_RECIPIENT
    stranger = make_station(tmp_path / "d", "Stranger", "en", a.clock)  # type: ignore[arg-type]
    with pytest.raises(RejectedInput) as exc:
        paths.import_bundle(stranger, data, OPERATOR)
    assert exc.value.code == Code.UNKNOWN_SENDER


def test_a_bundle_in_precedence_order_reports_what_it_applied(
    pair: tuple[Net, Station, Station, str],
) -> None:
    """The outbox sends FLASH first, so a bundle may carry seq 3 before seq 2: the later one is
    held, then applied when its predecessor arrives from the same file. The report says it was
    applied, not that a gap is left."""
    _, a, b, ch = pair
    send(a, ch, "routine first")
    a.send(ch, channels.text_body("flash second", "en"), "FLASH")
    data, _ = paths.export_bundle(a, b.id, OPERATOR)
    report = paths.import_bundle(b, data, OPERATOR)
    assert (report["accepted"], report["gap"], report["wait"]) == (2, 0, 0)
    assert report["applied_late"] == 1 and report["problems"] == []
    assert texts(b, ch) == ["routine first", "flash second"]


def test_importing_ones_own_bundle_says_so(pair: tuple[Net, Station, Station, str]) -> None:
    _, a, b, ch = pair
    send(a, ch, "for North")
    data, _ = paths.export_bundle(a, b.id, OPERATOR)
    with pytest.raises(RejectedInput) as exc:
        paths.import_bundle(a, data, OPERATOR)
    assert exc.value.code == Code.NOT_A_RECIPIENT
    assert "this station exported this bundle" in str(exc.value) and b.cfg.name in str(exc.value)


def test_a_bundle_brings_the_senders_new_prekeys(pair: tuple[Net, Station, Station, str]) -> None:
    """An air-gapped peer learns rotated keys the same way it learns envelopes."""
    _, a, b, _ = pair
    clock: Clock = a.clock  # type: ignore[assignment]
    clock.advance(a.cfg.timings.prekey_rotation_ms)
    a.rotate_prekeys()
    newest = a.prekeys()[0]["kid"]
    assert newest not in {r["kid"] for r in b.store.get_peer(a.id).prekeys}  # type: ignore[union-attr]
    data, _ = paths.export_bundle(a, b.id, OPERATOR)
    assert parse_bundle(data).prekeys[0]["kid"] == newest
    paths.import_bundle(b, data, OPERATOR)
    assert newest in {r["kid"] for r in b.store.get_peer(a.id).prekeys}  # type: ignore[union-attr]


# --- the same envelope over two paths ------------------------------------------------------------
def test_direct_push_then_bundle_applies_once(pair: tuple[Net, Station, Station, str]) -> None:
    net, a, b, ch = pair
    send(a, ch, "over two paths")
    data, _ = paths.export_bundle(a, b.id, OPERATOR)
    assert [r.status for r in net.deliver(a, b)] == ["accepted"]
    before = state(b)
    report = paths.import_bundle(b, data, OPERATOR)
    assert (report["accepted"], report["duplicate"]) == (0, 1)
    assert state(b) == before
    assert texts(b, ch) == ["over two paths"]


def test_bundle_then_direct_push_applies_once(pair: tuple[Net, Station, Station, str]) -> None:
    net, a, b, ch = pair
    send(a, ch, "courier first")
    data, _ = paths.export_bundle(a, b.id, OPERATOR)
    assert paths.import_bundle(b, data, OPERATOR)["accepted"] == 1
    assert [r.status for r in net.deliver(a, b)] == ["duplicate"]
    assert texts(b, ch) == ["courier first"]
    assert a.store.outbox_counts(b.id)[1] == 0  # the duplicate's receipt delivered it


# --- relay (in memory) ---------------------------------------------------------------------------
@pytest.fixture
def three(tmp_path: Path) -> tuple[Net, Station, Station, Station, str]:
    clock = Clock()
    a = make_station(tmp_path / "a", "South", "en", clock)
    b = make_station(tmp_path / "b", "North", "ko", clock)
    r = make_station(tmp_path / "r", "UN", "en", clock)
    for x, y in ((a, b), (a, r), (b, r)):
        introduce(x, y)
    net = Net()
    return net, a, b, r, open_channel(net, a, b)


def relay_forward(r: Station, dest: Station) -> None:
    """What the relay's dispatcher does: push the queue to the destination, keep its receipts."""
    items = db.relay_pending(r.store, dest.id, 128)
    _, receipts = dest.receive_batch([i.raw for i in items])
    paths.relay_answered(r, dest.id, items, [x.to_json() for x in receipts])


def test_relay_carries_envelopes_and_brings_receipts_back(
    three: tuple[Net, Station, Station, Station, str],
) -> None:
    net, a, b, r, ch = three
    raws = [send(a, ch, "through the UN"), send(a, ch, "still through the UN")]
    first = paths.accept_relay(r, a.id, b.id, raws)
    assert [x["status"] for x in first["results"]] == ["queued", "queued"]
    again = paths.accept_relay(r, a.id, b.id, raws)
    assert [x["status"] for x in again["results"]] == ["held", "held"]
    assert db.relay_count(r.store, b.id) == 2

    relay_forward(r, b)
    assert texts(b, ch) == ["through the UN", "still through the UN"]
    assert db.relay_count(r.store, b.id) == 0  # forgotten once the destination answered

    collected = paths.accept_relay(r, a.id, b.id, [])  # the sender's next relay request
    assert paths.apply_relay_response(a, r.id, [], collected["receipts"], set()) == 2
    assert a.store.outbox_counts(b.id)[1] == 0

    # The same envelopes pushed directly afterwards: duplicates, nothing stored twice.
    before = state(b)
    assert [x.status for x in b.receive_batch(raws)[0]] == ["duplicate", "duplicate"]
    assert state(b) == before
    # The relay stored no envelope, body or channel of a channel it is not a member of.
    assert r.store.q("SELECT COUNT(*) FROM envelopes WHERE channel = ?", ch)[0][0] == 0
    assert (
        r.store.q("SELECT COUNT(*) FROM bodies")[0][0]
        == r.store.q("SELECT COUNT(*) FROM envelopes")[0][0]
    )
    assert not r.store.has_channel(ch)
    del net


def test_direct_push_then_relay_applies_once(
    three: tuple[Net, Station, Station, Station, str],
) -> None:
    net, a, b, r, ch = three
    raw = send(a, ch, "direct first")
    net.deliver(a, b)
    paths.accept_relay(r, a.id, b.id, [raw])
    before = state(b)
    relay_forward(r, b)
    assert state(b) == before
    assert texts(b, ch) == ["direct first"]


def test_a_relay_refuses_what_it_should_not_carry(
    three: tuple[Net, Station, Station, Station, str],
) -> None:
    net, a, b, r, ch = three
    raw = send(a, ch, "hello")
    net.deliver(a, b)
    from_b = send(b, ch, "reply")
    # Only the caller's own envelopes, only to one of their recipients, only to known stations.
    res = paths.accept_relay(r, a.id, b.id, [from_b, b"{not json", raw])
    assert [(x["status"], x.get("code")) for x in res["results"]] == [
        ("rejected", "no_route"),
        ("rejected", "malformed"),
        ("queued", None),
    ]
    res = paths.accept_relay(r, b.id, a.id, [raw])
    assert res["results"][0]["code"] == "no_route"
    for to in (r.id, "st" + "a" * 24):
        with pytest.raises(RejectedInput) as exc:
            paths.accept_relay(r, a.id, to, [raw])
        assert exc.value.code == Code.NO_ROUTE
    assert db.relay_count(r.store, a.id) == 0
    assert db.relay_count(r.store, b.id) == 1


# --- pull (in memory) ----------------------------------------------------------------------------
def test_pull_hands_out_pending_envelopes_until_the_pullers_receipts_come_back(
    pair: tuple[Net, Station, Station, str],
) -> None:
    """b serves, a pulls: a's answer (receipts) rides on its next pull request."""
    _, a, b, ch = pair
    for i in range(3):
        send(b, ch, f"for the puller {i}")
    frame = paths.serve_pull(b, a.id, paths.PullRequest([], [], 2), set())
    header, lines = split_frame(frame, "pull", header_limit=1 << 20, max_envelopes=512)
    assert header["station"] == b.id and header["more"] is True and len(lines) == 2
    results, receipts = a.receive_batch(lines)
    assert [x.status for x in results] == ["accepted", "accepted"]

    answer = paths.PullRequest(
        [x.to_json() for x in results], [x.to_json() for x in receipts], 2, a.prekeys()[:4]
    )
    header, lines = split_frame(
        paths.serve_pull(b, a.id, answer, set()), "pull", header_limit=1 << 20, max_envelopes=9
    )
    assert b.store.outbox_counts(a.id) == (3, 1)  # the two answered are delivered
    assert header["more"] is False and len(lines) == 1
    results, receipts = a.receive_batch(lines)
    last = paths.PullRequest([x.to_json() for x in results], [x.to_json() for x in receipts], 0)
    header, lines = split_frame(
        paths.serve_pull(b, a.id, last, set()), "pull", header_limit=1 << 20, max_envelopes=9
    )
    assert lines == [] and b.store.outbox_counts(a.id) == (4, 0)
    assert texts(a, ch) == [f"for the puller {i}" for i in range(3)]
    # The header's receipts tell the puller what the server holds of its own chain.
    assert [(r["of"], r["seq"]) for r in header["receipts"]] == [(a.id, 1)]
    assert db.pull_cursor(b.store, a.id) is not None


def test_a_malformed_pull_request_is_refused() -> None:
    for body in (b"[]", b'{"max": 513}', b'{"receipts": 1}', b'{"other": []}', b'{"results":[1]}'):
        with pytest.raises(RejectedInput):
            paths.parse_pull_request(body, 1 << 20)
    assert paths.parse_pull_request(b"", 10).max == paths.MAX_PULL


# --- real stations on loopback -------------------------------------------------------------------
def _edit_config(net: Stations, name: str, **changes: object) -> None:
    net.stop(name)
    path = net.dirs[name] / CONFIG
    cfg = json.loads(path.read_text())
    cfg.update(changes)
    path.write_text(json.dumps(cfg))
    net.restart(name)


def _pending(net: Stations, name: str, peer: str) -> int:
    return next(
        int(p["pending"]) for p in net.api(name).get("/status")["peers"] if p["name"] == peer
    )


def _texts(net: Stations, name: str, ch: str) -> list[str]:
    msgs = net.api(name).get(f"/channels/{ch}/messages")
    return [m["body"]["text"] for m in msgs if m["body"].get("type") == "text"]


def test_init_no_inbound_serves_no_peer_api_and_invites_without_an_address(
    tmp_path: Path,
) -> None:
    parley("station", "init", "--name", "North", "--no-inbound", data=tmp_path / "north")
    st = open_station(tmp_path / "north")
    assert st.cfg.inbound is False
    assert parse_invitation(st.invitation().encode()).addresses == ()
    assert peer_api.router(st).routes == []
    st.cfg.inbound = True
    assert len(peer_api.router(st).routes) > 0


def test_a_station_without_inbound_connections_pulls(tmp_path: Path) -> None:
    with Stations(tmp_path, [("South", "en"), ("North", "ko")], timings=FAST) as net:
        _edit_config(net, "North", inbound=False)
        net.introduce("North", "South")  # South now holds North with no address
        south_peers = net.api("South").get("/peers")
        assert [p["addresses"] for p in south_peers] == [[]]
        north_url = json.loads((net.dirs["North"] / CONFIG).read_text())["listen"]
        assert httpx.get(f"http://{north_url}/peer/v1/ping").status_code == 404

        ch = net.open_channel("South", ["North"])  # the proposal reaches North by pull
        net.api("South").post(f"/channels/{ch}/messages", json={"text": "pulled to you"})
        net.api("North").post(f"/channels/{ch}/messages", json={"text": "pushed to you"})
        wait(lambda: sorted(_texts(net, "North", ch)) == ["pulled to you", "pushed to you"])
        wait(lambda: "pushed to you" in _texts(net, "South", ch))
        # North's receipts travelled back with its pull requests: nothing left pending.
        wait(lambda: _pending(net, "South", "North") == 0, what="South's outbox to drain")
        wait(lambda: _pending(net, "North", "South") == 0, what="North's outbox to drain")
        overview = net.api("South").get("/paths")
        assert [p["name"] for p in overview["pulls"]] == ["North"]
        assert net.api("North").get("/paths")["inbound"] is False
        status = net.api("South").get("/status")["peers"][0]
        assert status["link"] == "up"


def _sign_push(data: Path, body: bytes) -> dict[str, str]:
    """The Parley-Auth header South's station would send with this push."""
    key = load_identity(data)
    now = time.time_ns() // 1_000_000
    return {HEADER: sign_request(key, station_id(key.public), "POST", PUSH_PATH, body, now)}


def test_relay_and_bundles_between_stations_without_a_direct_link(tmp_path: Path) -> None:
    secret_1 = "Courier: the exercise starts Monday 0600"
    secret_2 = "Relayed: launch window 14-16 March, impact area K-7"
    secret_3 = "중계: 수신 확인, 발사 통보 감사합니다"
    people = [("South", "en"), ("North", "ko"), ("UN", "en")]
    with Stations(tmp_path, people, timings=FAST) as net:
        ch = net.open_channel("South", ["North"])
        # Cut the direct link: South and North learn wrong addresses for each other; the UN
        # keeps the right ones.
        for name in ("South", "North"):
            _edit_config(net, name, public_url=f"http://127.0.0.1:{free_port()}")
        net.introduce("South", "North")

        # 1. An air gap: South's message waits; a bundle carries it, another brings receipts.
        net.api("South").post(f"/channels/{ch}/messages", json={"text": secret_1})
        out = tmp_path / "south-to-north.bundle"
        res = net.cli("South", "bundle", "export", "--peer", "North", "--out", str(out))
        assert "1 envelopes" in res.stdout
        tampered = tmp_path / "tampered.bundle"
        lines = out.read_bytes().split(b"\n")
        lines[1] = lines[1].replace(b'"prec":"ROUTINE"', b'"prec":"FLASH"')
        tampered.write_bytes(b"\n".join(lines))
        bad = net.cli("North", "bundle", "import", str(tampered), ok=False)
        assert bad.returncode == 1 and "bad_signature" in bad.stderr
        assert _texts(net, "North", ch) == []
        res = net.cli("North", "bundle", "import", str(out))
        assert "applied 1 of 1 envelopes" in res.stdout and "held" not in res.stdout
        assert _texts(net, "North", ch) == [secret_1]
        back = tmp_path / "north-to-south.bundle"
        net.cli("North", "bundle", "export", "--peer", "South", "--out", str(back))
        res = net.cli("South", "bundle", "import", str(back))
        assert "1 of ours newly receipted by North" in res.stdout
        assert _pending(net, "South", "North") == 0
        res = net.cli("North", "bundle", "import", str(out))  # the same bundle again
        assert "applied 0 of 1 envelopes; 1 already here" in res.stdout
        log = json.loads(net.cli("North", "bundle", "list", "--json").stdout)
        assert [(b["direction"], b["peer_name"]) for b in log] == [
            ("import", "South"),
            ("export", "South"),
            ("import", "South"),
        ]

        # 2. Through the UN: always from South, as a fallback from North.
        net.cli("South", "peer", "route", "North", "--via", "UN")
        res = net.cli("North", "peer", "route", "South", "--via", "UN", "--fallback")
        assert "to South: through UN (while the direct link is down)" in res.stdout
        net.api("South").post(f"/channels/{ch}/messages", json={"text": secret_2})
        net.api("North").post(f"/channels/{ch}/messages", json={"text": secret_3, "lang": "ko"})
        wait(lambda: secret_2 in _texts(net, "North", ch), what="relay to North")
        wait(lambda: secret_3 in _texts(net, "South", ch), what="relay to South")
        wait(lambda: _pending(net, "South", "North") == 0, what="receipts back to South")
        wait(lambda: _pending(net, "North", "South") == 0, what="receipts back to North")
        digests = {n: net.api(n).get(f"/channels/{ch}/transcript")["digest"] for n, _ in people[:2]}
        assert len(set(digests.values())) == 1
        wait(lambda: net.api("UN").get("/paths")["relaying"] == [], what="the UN to forget")

        # 3. The relayed envelope pushed again directly (to North's real address): applied once.
        south = _read_only(net.dirs["South"])
        raw, body_json = south.execute(
            "SELECT e.raw, b.body FROM envelopes e JOIN bodies b ON b.hash = e.hash"
            " WHERE b.body LIKE ?",
            (f"%{secret_2}%",),
        ).fetchone()
        hashes = [
            h for (h,) in south.execute("SELECT hash FROM envelopes WHERE channel = ?", (ch,))
        ]
        south.close()
        north_listen = json.loads((net.dirs["North"] / CONFIG).read_text())["listen"]
        resp = httpx.post(
            f"http://{north_listen}{PUSH_PATH}",
            content=raw,
            headers=_sign_push(net.dirs["South"], raw),
        )
        assert resp.status_code == 200, resp.text
        assert [r["status"] for r in resp.json()["results"]] == ["duplicate"]
        assert sorted(_texts(net, "North", ch)) == sorted([secret_1, secret_2, secret_3])

        # 4. The relay's database holds no plaintext of the channel, not even in its journal;
        # the same scan finds it at a member.
        def files(name: str) -> bytes:
            return b"".join(p.read_bytes() for p in net.dirs[name].glob("parley.db*"))

        assert secret_2.encode() in files("North") and body_json.encode() in files("North")
        relay_bytes = files("UN")
        for needle in (secret_1, secret_2, secret_3, body_json):
            assert needle.encode() not in relay_bytes, needle
        un = _read_only(net.dirs["UN"])
        marks = ",".join("?" * len(hashes))
        for sql, params in (
            ("SELECT COUNT(*) FROM envelopes WHERE channel = ?", [ch]),
            (f"SELECT COUNT(*) FROM bodies WHERE hash IN ({marks})", hashes),
            ("SELECT COUNT(*) FROM channels WHERE channel = ?", [ch]),
            ("SELECT COUNT(*) FROM relay_queue", []),
        ):
            assert un.execute(sql, params).fetchone()[0] == 0, sql
        un.close()


def _read_only(data: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{data / 'parley.db'}?mode=ro", uri=True)


def test_a_route_names_a_known_relay_other_than_the_peer(
    three: tuple[Net, Station, Station, Station, str],
) -> None:
    _, a, b, r, _ = three
    with pytest.raises(LocalError):
        paths.set_route(a, b.id, b.id, False, ADMIN)
    with pytest.raises(NotFound):
        paths.set_route(a, b.id, "st" + "a" * 24, False, ADMIN)
    paths.set_route(a, b.id, r.id, True, ADMIN)
    assert db.route(a.store, b.id) == db.Route(b.id, r.id, True, a.clock())
    paths.set_route(a, b.id, None, False, ADMIN)
    assert db.route(a.store, b.id) is None


# --- the queries, on both backends ---------------------------------------------------------------
def test_the_paths_queries_run_on_sqlite_and_postgresql(store: SqlStore) -> None:
    db.set_route(store, "north", "un", True, 1)
    db.set_route(store, "north", "un2", False, 2)
    assert db.route(store, "north") == db.Route("north", "un2", False, 2)
    assert db.routes(store) == [db.Route("north", "un2", False, 2)]
    assert db.clear_route(store, "north") and not db.clear_route(store, "north")

    assert db.relay_add(store, "south", "north", b"h1", b"raw1", 5)
    assert not db.relay_add(store, "south", "north", b"h1", b"raw1", 6)
    assert db.relay_add(store, "south", "north", b"h2", b"raw2", 7)
    assert db.relay_add(store, "south", "un", b"h1", b"raw1", 8)
    items = db.relay_pending(store, "north", 10)
    assert [(i.src, i.hash, i.raw) for i in items] == [
        ("south", b"h1", b"raw1"),
        ("south", b"h2", b"raw2"),
    ]
    assert sorted(db.relay_dests(store)) == ["north", "un"]
    db.relay_remove(store, [items[0].id])
    assert db.relay_count(store, "north") == 1

    db.relay_keep_receipt(store, "ch", "south", "north", 3, b"r3", 1)
    db.relay_keep_receipt(store, "ch", "south", "north", 2, b"r2", 2)  # older: ignored
    db.relay_keep_receipt(store, "ch2", "south", "north", 1, b"c1", 3)
    assert db.relay_receipts_for(store, "south", 10) == [b"c1", b"r3"]
    assert db.relay_receipts_for(store, "north", 10) == []

    assert db.pull_cursor(store, "north") is None
    db.note_pull(store, "north", 3, 10)
    db.note_pull(store, "north", 2, 20)
    assert db.pull_cursor(store, "north") == (20, 5)

    entry = db.BundleLog("import", "north", b"d" * 32, 1, 2, 3, 4, "accepted 2")
    db.log_bundle(store, entry)
    assert db.bundle_log(store) == [entry]
    assert db.chains_of(store, "north") == []


def test_relay_usage_follows_every_envelope_queued_and_forgotten(store: SqlStore) -> None:
    """The counts kept beside the relay queue (migration 22) equal a recount after any mix of
    envelopes queued, queued again and forgotten, per source and destination."""
    rng = random.Random(22)
    for _ in range(200):
        src, dest = rng.choice(["south", "east"]), rng.choice(["north", "un"])
        if rng.random() < 0.65:
            h = bytes([rng.randint(0, 30)]) * 32
            db.relay_add(store, src, dest, h, bytes(rng.randint(1, 200)), 1)
        else:
            items = db.relay_pending(store, dest, 3)
            db.relay_remove(store, [i.id for i in items if rng.random() < 0.7] + [10**9])
        for s in ("south", "east"):
            for d in ("north", "un"):
                n, size = store.q(
                    "SELECT COUNT(*), COALESCE(SUM(LENGTH(raw)), 0) FROM relay_queue"
                    " WHERE src = ? AND dest = ?", s, d,
                )[0]  # fmt: skip
                assert db.relay_usage(store, s, d) == (n, size)
    for d in ("north", "un"):
        assert db.relay_count(store, d) == sum(
            db.relay_usage(store, s, d)[0] for s in ("south", "east")
        )
    assert sorted(db.relay_dests(store)) == sorted(
        {r[0] for r in store.q("SELECT DISTINCT dest FROM relay_queue")}
    )


def test_a_relay_bounds_each_source_s_share_of_a_destination_s_queue(
    three: tuple[Net, Station, Station, Station, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One source that fills its share is refused whole (oversized, nothing queued); another
    source still queues for the same destination."""
    _, a, b, r, ch = three
    raws = [send(a, ch, f"through the UN {i}") for i in range(3)]
    monkeypatch.setattr(paths, "MAX_RELAY_QUEUE", 2)
    with pytest.raises(RejectedInput) as exc:
        paths.accept_relay(r, a.id, b.id, raws)
    assert exc.value.code == Code.OVERSIZED and db.relay_count(r.store, b.id) == 0
    assert [x["status"] for x in paths.accept_relay(r, a.id, b.id, raws[:2])["results"]] == [
        "queued", "queued",
    ]  # fmt: skip
    back = send(b, ch, "the other way")
    assert paths.accept_relay(r, b.id, a.id, [back])["results"][0]["status"] == "queued"
    monkeypatch.setattr(paths, "MAX_RELAY_BYTES", sum(map(len, raws[:2])) + len(raws[2]) - 1)
    with pytest.raises(RejectedInput):
        paths.accept_relay(r, a.id, b.id, raws[2:])  # within the count, not the bytes


def test_a_peer_s_chains_are_found_channel_by_channel(store: SqlStore) -> None:
    """Every pull a peer makes lists the chains it has here (our receipts of them): read through
    the (channel, sender, seq) index per channel, not by a scan of every envelope stored."""
    for i, ch in enumerate(["c3", "c1", "c2", "c4"]):
        store.add_channel(ch, i)
    for n, (ch, sender) in enumerate([("c1", "p"), ("c2", "q"), ("c3", "p"), ("c3", "q")]):
        for seq in (1, 2):
            h = bytes([n, seq]) * 16
            store.insert_envelope(ch, sender, seq, h, b"raw", 1, "ROUTINE", 1)
    for sender in ("p", "q", "nobody"):
        scanned = store.q(
            "SELECT DISTINCT channel FROM envelopes WHERE sender = ? ORDER BY channel", sender
        )
        assert db.chains_of(store, sender) == [r[0] for r in scanned]
    if isinstance(store, SqliteStore):
        plan = " ".join(
            str(r[3])
            for r in store.conn.execute(
                "EXPLAIN QUERY PLAN SELECT c.channel FROM channels c WHERE EXISTS (SELECT 1 FROM"
                " envelopes e WHERE e.channel = c.channel AND e.sender = 'p') ORDER BY c.channel"
            )
        )
        assert "SCAN e" not in plan and "USING" in plan, plan
