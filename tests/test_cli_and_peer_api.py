"""The `parley` command end to end against real station processes, and the peer API's own checks
(signed requests: unknown station, stale clock, oversize) over real HTTP on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from parley.cli.client import Api
from parley.cli.demo import free_port, start
from parley.protocol import crypto
from parley.protocol.identity import station_id
from parley.protocol.request import HEADER, sign_request
from tests.net import LIVENESS_S, wait


def parley(
    *args: str, data: Path | None = None, ok: bool = True
) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "parley.cli", *args]
    if data is not None:
        cmd += ["--data", str(data)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if ok:
        assert res.returncode == 0, res.stderr + res.stdout
    return res


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    procs = []
    dirs = []
    try:
        for name, lang in (("South", "en"), ("North", "ko")):
            d = tmp_path / name.lower()
            res = parley("station", "init", "--name", name, "--lang", lang,
                         "--listen", f"127.0.0.1:{free_port()}", data=d)  # fmt: skip
            assert "station id   st" in res.stdout
            assert len(res.stdout.split("fingerprint  ")[1].split("\n")[0].split()) == 12
            procs.append(start(d, tmp_path / f"{name}.log"))
            dirs.append(d)
        yield dirs[0], dirs[1]
    finally:  # also when the second station fails to start: no station outlives its test
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(LIVENESS_S)


def test_cli_story(two: tuple[Path, Path], tmp_path: Path) -> None:
    south, north = two
    (tmp_path / "s.inv").write_text(parley("peer", "invite", data=south).stdout)
    (tmp_path / "n.inv").write_text(parley("peer", "invite", data=north).stdout)
    # without --yes the fingerprint must be confirmed; answering "n" records nothing
    refused = subprocess.run(
        [sys.executable, "-m", "parley.cli", "peer", "add", "@" + str(tmp_path / "s.inv"),
         "--data", str(north)],
        input="n\n", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode != 0 and "fingerprint" in refused.stdout
    assert Api(north).get("/peers") == []
    out = parley("peer", "add", "@" + str(tmp_path / "s.inv"), "--yes", data=north).stdout
    assert "Hotline" not in out and "South" in out and "fingerprint" in out
    parley("peer", "add", "@" + str(tmp_path / "n.inv"), "--yes", data=south)
    res = parley("channel", "open", "North", "--title", "Military hotline", data=south).stdout
    ch = res.split("channel ")[1].split()[0]
    wait(lambda: "proposed" in parley("channel", "list", data=north).stdout)
    parley("channel", "consent", ch[:8], data=north)
    wait(lambda: Api(south).get(f"/channels/{ch}")["state"] == "open")
    sent = parley("send", ch, "Do you read this line?", data=south).stdout
    assert sent.startswith("queued: channel") and "seq 2" in sent
    wait(lambda: "Do you read this line?" in parley("inbox", data=north).stdout)
    inbox = parley("inbox", data=north).stdout
    assert "South #2" in inbox and "signature verified" in inbox
    wait(lambda: Api(south).get("/status")["peers"][0]["pending"] == 0)
    status = parley("status", data=south).stdout
    assert "North" in status and "up" in status and "seq 2" in status
    bad = parley("send", "nope", "x", data=south, ok=False)
    assert bad.returncode == 1 and "error [not_found]" in bad.stderr


def _peer_post(base: str, key: crypto.SigningKey, body: bytes, ts: int) -> httpx.Response:
    path = "/peer/v1/envelopes"
    auth = sign_request(key, station_id(key.public), "POST", path, body, ts)
    return httpx.post(base + path, content=body, headers={HEADER: auth}, timeout=10)


def test_peer_api_refuses_unknown_stale_and_oversized(two: tuple[Path, Path]) -> None:
    south, _ = two
    base = Api(south).base
    stranger = crypto.SigningKey.generate()
    now = int(time.time() * 1000)
    r = _peer_post(base, stranger, b"", now)
    assert (r.status_code, r.json()["code"]) == (422, "unknown_sender")
    r = httpx.post(base + "/peer/v1/envelopes", content=b"x", timeout=10)
    assert r.json()["code"] == "unknown_sender"
    r = httpx.post(base + "/peer/v1/envelopes", content=b"x", headers={HEADER: "a.b.c"}, timeout=10)
    assert r.json()["code"] == "malformed"
    r = httpx.post(base + "/peer/v1/envelopes", content=b"x" * (17 * 1024 * 1024), timeout=30)
    assert (r.status_code, r.json()["code"]) == (413, "oversized")  # before it is read


def test_peer_api_refuses_a_replayed_or_skewed_request(two: tuple[Path, Path]) -> None:
    south, north = two
    Api(south).post("/peers", json={"invitation": Api(north).get("/invitation")["invitation"]})
    key = crypto.SigningKey(bytes.fromhex((north / "identity.key").read_text().strip()))
    base = Api(south).base
    now = int(time.time() * 1000)
    assert _peer_post(base, key, b"", now).status_code == 200
    old = _peer_post(base, key, b"", now - 60 * 60 * 1000)
    assert (old.status_code, old.json()["code"]) == (422, "clock_skew")
    future = _peer_post(base, key, b"", now + 60 * 60 * 1000)
    assert future.json()["code"] == "clock_skew"
    path = "/peer/v1/envelopes"
    auth = sign_request(key, station_id(key.public), "POST", path, b"", now)
    swapped = httpx.post(base + path, content=b"{}", headers={HEADER: auth}, timeout=10)
    assert swapped.json()["code"] == "bad_signature"


def test_peers_are_named_by_name_and_the_cli_opens_back_and_facilitated_channels(
    two: tuple[Path, Path], tmp_path: Path
) -> None:
    south, north = two
    for a, b in ((south, north), (north, south)):
        (tmp_path / "x.inv").write_text(parley("peer", "invite", data=b).stdout)
        parley("peer", "add", "@" + str(tmp_path / "x.inv"), "--yes", data=a)
    for d, user in ((south, "kim"), (north, "lee")):
        subprocess.run(
            [sys.executable, "-m", "parley.cli", "user", "add", user, "--role", "representative",
             "--password-stdin", "--data", str(d)],
            input="a long passphrase for the test\n", capture_output=True, text=True, timeout=60,
            check=True,
        )  # fmt: skip
    # The API takes the name `GET /peers` lists (exactly, or ignoring case), as well as the id.
    api = Api(south)
    hot = api.post("/channels", json={"peers": ["north"], "title": "Hotline"})
    assert sorted(m["name"] for m in hot["members"]) == ["North", "South"]
    fac = api.post(
        "/channels",
        json={"kind": "facilitated", "title": "Talks", "peers": ["North"], "facilitator": "me"},
    )
    assert fac["kind"] == "facilitated"
    with pytest.raises(Exception) as err:
        api.post("/channels", json={"peers": ["Nobody"], "title": "x"})
    assert getattr(err.value, "code", None) == "not_found" and "North" in str(err.value)
    # The CLI names a back channel's representatives, for this station and for the peer.
    res = parley(
        "channel", "open", "North", "--kind", "backchannel", "--title", "Quiet word",
        "--rep", "me=kim", "--rep", "North=lee", data=south,
    ).stdout  # fmt: skip
    assert "Proposed backchannel channel" in res
    ch = res.split("channel ")[2].split()[0]
    assert "Awaiting consent from: North" in res
    with pytest.raises(Exception) as err:  # named: kim and lee; not the bootstrap admin
        api.get(f"/channels/{ch}")
    assert getattr(err.value, "code", None) == "forbidden"
    bad = parley("channel", "open", "North", "--kind", "backchannel", "--title", "x",
                 "--rep", "kim", data=south, ok=False)  # fmt: skip
    assert bad.returncode == 1 and "STATION=USER" in bad.stderr


def test_invitations_peers_and_bundles_work_with_the_station_stopped(tmp_path: Path) -> None:
    """An air-gapped station need not run to hand out its invitation, record a peer or take a
    courier's bundle in; and while one runs, nothing else writes beside it."""
    south, north = tmp_path / "south", tmp_path / "north"
    for d, name, lang in ((south, "South", "en"), (north, "North", "ko")):
        parley("station", "init", "--name", name, "--lang", lang,
               "--listen", f"127.0.0.1:{free_port()}", data=d)  # fmt: skip
    for a, b in ((south, north), (north, south)):  # both stopped
        (tmp_path / "x.inv").write_text(parley("peer", "invite", data=b).stdout)
        assert "Peer recorded." in parley("peer", "add", "@" + str(tmp_path / "x.inv"), "--yes",
                                          data=a).stdout  # fmt: skip
    proc = start(south, tmp_path / "south.log")
    try:
        twice = subprocess.run(
            [sys.executable, "-m", "parley.cli", "station", "run", "--data", str(south)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert twice.returncode != 0
        assert "in use by a running station" in " ".join(twice.stderr.split())
        ch = Api(south).post("/channels", json={"peers": ["North"], "title": "Hotline"})
        bundle = tmp_path / "s2n.bundle"
        parley("bundle", "export", "--peer", "North", "--out", str(bundle), data=south)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(LIVENESS_S)
    res = parley("bundle", "import", str(bundle), data=north).stdout  # North still stopped
    assert "applied 1 of 1 envelopes" in res
    proc = start(north, tmp_path / "north.log")
    try:
        assert Api(north).get(f"/channels/{ch['channel']}")["state"] == "proposed"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(LIVENESS_S)
