"""Key rotation (issue 3 item 4): medium-term prekeys rotate on a schedule, private halves are
erased after the grace period, peers learn the new ones.

Stations are joined in memory with a controllable clock (tests/pair.py); the dispatcher's
prekey refresh runs against a transport that answers from the peer station's own records.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from parley.domain import channels
from parley.errors import Code, LocalError, RejectedInput
from parley.protocol import crypto
from parley.protocol.envelope import open_envelope, parse_envelope
from parley.station import paths
from parley.station.dispatcher import Dispatcher
from parley.station.node import Station
from parley.station.peering import PeerDesk
from parley.transport.memory import MemoryNet
from tests.pair import Clock, Net, hotline, make_station

DAY = 24 * 3600 * 1000


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Net, Clock, Station, Station, str]:
    return hotline(tmp_path)


def secrets_on_disk(st: Station) -> list[tuple[str, bytes]]:
    """Every private prekey half the station's database still holds."""
    rows = st.store.q("SELECT kid, secret FROM prekeys WHERE secret IS NOT NULL ORDER BY kid")
    return [(r[0], bytes(r[1])) for r in rows]


def openers(st: Station, raw: bytes) -> list[str]:
    """The key ids among the remaining secrets that open the envelope `raw` for `st`."""
    env = parse_envelope(raw)
    found = []
    for kid, secret in secrets_on_disk(st):
        try:
            open_envelope(env, st.id, crypto.KemKey(secret))
        except RejectedInput as exc:
            assert exc.code == Code.DECRYPT_FAILED
            continue
        found.append(kid)
    return found


def texts(st: Station, ch: str) -> list[str]:
    return [m.body["text"] for m in st.messages(ch) if m.body.get("type") == "text"]


def day_by_day(clock: Clock, stations: list[Station], days: int) -> list[str]:
    """Let `days` days pass with every station rotating daily, as the running station does;
    returns the key ids erased."""
    erased = []
    for _ in range(days):
        clock.advance(DAY)
        for st in stations:
            erased += st.rotate_prekeys()
    return erased


def test_prekeys_rotate_daily_by_default(pair: tuple[Net, Clock, Station, Station, str]) -> None:
    _, clock, a, _, _ = pair
    assert a.cfg.timings.prekey_rotation_ms == DAY
    start = len(a.prekeys())
    clock.advance(DAY // 2)
    a.rotate_prekeys()
    assert len(a.prekeys()) == start  # not yet due
    clock.advance(DAY // 2)
    a.rotate_prekeys()
    assert len(a.prekeys()) == start + 1
    newest = a.prekeys()[0]
    assert newest["not_before"] == clock() and newest["not_after"] == clock() + 8 * DAY


def test_an_old_envelope_cannot_be_opened_with_the_keys_left_but_stays_readable(
    pair: tuple[Net, Clock, Station, Station, str],
) -> None:
    net, clock, a, b, ch = pair
    row, _ = a.send(ch, channels.text_body("launch window: 14 March, 06:00-08:00", "en"))
    net.deliver(a, b)
    kid = parse_envelope(row.raw).key_for(b.id).kid  # type: ignore[union-attr]
    assert openers(b, row.raw) == [kid]  # today the key on disk opens it

    t = b.cfg.timings
    days = (t.prekey_rotation_ms + t.prekey_grace_ms) // DAY
    assert kid not in day_by_day(clock, [a, b], days)  # still within rotation + grace
    assert openers(b, row.raw) == [kid]
    erased = day_by_day(clock, [a, b], 1)
    assert kid in erased
    assert b.store.prekey_secret(kid) is None
    assert len(secrets_on_disk(b)) >= days  # the keys made since then are all still there …
    assert openers(b, row.raw) == []  # … and none of them opens the old envelope

    # The authorised reader still sees what was received: the body was stored when it arrived.
    assert "launch window: 14 March, 06:00-08:00" in texts(b, ch)
    assert b.receive(row.raw).status == "duplicate"  # and the envelope is still recognised
    audit = [action for _, _, action, _ in b.store.audit_log()]
    assert "prekeys.erased" in audit


def joined(a: Station, b: Station) -> tuple[MemoryNet, Dispatcher]:
    """a's dispatcher, reaching b in memory at the address b's invitation gave."""
    net = MemoryNet()
    row = a.store.get_peer(b.id)
    assert row is not None
    net.attach(row.addresses[0], PeerDesk(b))
    return net, Dispatcher(a, net.transport(a.id))


def test_the_dispatcher_refreshes_a_peers_prekeys_before_they_run_out(
    pair: tuple[Net, Clock, Station, Station, str],
) -> None:
    net, clock, a, b, ch = pair
    wire, d = joined(a, b)
    row = a.store.get_peer(b.id)
    assert row is not None and not d.refresh_due(row, False)  # keys are fresh

    # b rotates; after half a rotation a suspects that and asks.
    day_by_day(clock, [b], 1)
    assert paths.prekeys_stale(a, b.id) and d.refresh_due(row, False)
    assert asyncio.run(d.refresh_prekeys(b.id)) == 1
    assert wire.calls == 1
    assert not d.refresh_due(row, False)  # at most once per refresh period
    newest = b.prekeys()[0]["kid"]
    sent, _ = a.send(ch, channels.text_body("sealed to the newest key", "en"))
    assert parse_envelope(sent.raw).key_for(b.id).kid == newest  # type: ignore[union-attr]
    net.deliver(a, b)
    assert "sealed to the newest key" in texts(b, ch)

    # A peer that rejects an envelope for an unknown key triggers a refresh at once.
    d.answered(b.id, [{"hash": "h", "status": "rejected", "code": "unknown_key"}], [])
    assert d.refresh_due(row, False)


def test_without_a_refresh_a_peer_cannot_seal_once_every_known_key_expired(
    pair: tuple[Net, Clock, Station, Station, str],
) -> None:
    net, clock, a, b, ch = pair
    t = b.cfg.timings
    day_by_day(clock, [a, b], (t.prekey_rotation_ms + t.prekey_grace_ms) // DAY + 1)
    with pytest.raises(LocalError) as exc:
        a.send(ch, channels.text_body("too late", "en"))
    assert exc.value.code == Code.UNKNOWN_KEY
    assert asyncio.run(joined(a, b)[1].refresh_prekeys(b.id)) > 0
    a.send(ch, channels.text_body("after the refresh", "en"))
    net.deliver(a, b)
    assert "after the refresh" in texts(b, ch)


def test_peers_learn_new_prekeys_from_pulls_and_ignore_forged_ones(
    tmp_path: Path, pair: tuple[Net, Clock, Station, Station, str]
) -> None:
    _, clock, a, b, _ = pair
    day_by_day(clock, [b], 1)
    newest = b.prekeys()[0]
    known = {r["kid"] for r in a.store.get_peer(b.id).prekeys}  # type: ignore[union-attr]
    assert newest["kid"] not in known

    # A record signed by another station's identity, or altered, is skipped.
    other = make_station(tmp_path / "c", "Other", "en", clock)
    forged = [other.prekeys()[0], {**newest, "not_after": newest["not_after"] + DAY}]
    assert paths.merge_prekeys(a, b.id, forged) == 0

    # b pulls from a (no inbound): its pull request carries its current records.
    paths.serve_pull(a, b.id, paths.PullRequest([], [], 0, b.prekeys()[:4]), set())
    assert newest["kid"] in {r["kid"] for r in a.store.get_peer(b.id).prekeys}  # type: ignore[union-attr]
    assert not paths.prekeys_stale(a, b.id)


def test_erased_secrets_are_gone_from_the_database_files(
    tmp_path: Path, pair: tuple[Net, Clock, Station, Station, str]
) -> None:
    _, clock, _, b, _ = pair
    old = secrets_on_disk(b)
    t = b.cfg.timings
    clock.advance(t.prekey_rotation_ms + t.prekey_grace_ms + 1)
    assert b.rotate_prekeys()
    files = b"".join(p.read_bytes() for p in (tmp_path / "b").glob("parley.db*"))
    for _, secret in old:
        assert secret not in files
