"""A chain's tree in the C2SP tlog-tiles layout: the spec's own path and size examples, and a real
station serving a chain's checkpoint, tiles and entries to those who may read the channel."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from parley.app.build import build_app
from parley.errors import NotFound, RejectedInput
from parley.protocol import merkle, note, tiles
from parley.station import checkpoints, users
from tests.pair import hotline


def test_paths_as_the_spec_encodes_them() -> None:
    assert tiles.parse_tile_path("0/x001/x234/067") == tiles.TilePath(0, 1234067, None)
    assert tiles.parse_tile_path("2/000.p/1") == tiles.TilePath(2, 0, 1)
    assert tiles.parse_tile_path("entries/x001/000.p/255") == tiles.TilePath(0, 1000, 255, True)
    for bad in ("00/000", "64/000", "0/1", "0/x1/000", "0/001/000", "0/000.p/0", "0/000.p/256",
                "0/000.p/01", "0/000/", "x/000", "0/000.q/1", ""):  # fmt: skip
        with pytest.raises(RejectedInput):
            tiles.parse_tile_path(bad)


def test_the_spec_example_of_a_tree_of_70000() -> None:
    """273 full level-0 tiles and one of width 112, one full level-1 tile and one of width 17,
    and one level-2 tile of width 1: exactly those are within the tree, nothing more."""
    size = 70_000
    tree = merkle.Tree([merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(size)])

    def served(level: int, index: int, width: int | None) -> bool:
        try:
            tiles.tile(tree, size, tiles.TilePath(level, index, width))
        except NotFound:
            return False
        return True

    assert served(0, 272, None) and not served(0, 273, None)
    assert served(0, 273, 112) and not served(0, 273, 113)
    assert served(1, 0, None) and served(1, 1, 17) and not served(1, 1, 18)
    assert served(2, 0, 1) and not served(2, 0, None) and not served(3, 0, 1)
    # A level-1 hash is the root of the level-0 tile below it.
    level1 = tiles.tile(tree, size, tiles.TilePath(1, 0, 1))
    level0 = tiles.tile(tree, size, tiles.TilePath(0, 0, None))
    assert level1 == merkle.root([level0[i : i + 32] for i in range(0, 8192, 32)])


def test_a_station_serves_its_chains_as_tiles_to_readers_only(tmp_path: Path) -> None:
    net, _clock, a, b, ch = hotline(tmp_path)
    for i in range(5):
        a.send(ch, {"type": "text", "text": f"m{i}", "lang": "en"})
    size = checkpoints.issue(a, ch).size
    net.deliver(a, b)
    net.deliver(b, a)
    password = secrets.token_urlsafe(18)
    client = TestClient(build_app(a, "t" * 32))
    tokens = {}
    for name, roles in (("u.auditor", ["auditor"]), ("u.none", [])):
        users.create_user(a, name, roles, password, a.clock(), "test")
        r = client.post("/api/v1/login", json={"name": name, "password": password})
        tokens[name] = {"Authorization": f"Bearer {r.json()['token']}"}
    prefix = f"/api/v1/channels/{ch}/chains/{a.id}"
    r = client.get(prefix + "/checkpoint", headers=tokens["u.auditor"])
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    cp = note.parse_checkpoint(note.parse_note(r.text).text)
    assert cp.size == size and len(note.parse_note(r.text).signatures) == 2  # sender + North
    r = client.get(prefix + f"/tile/0/000.p/{size}", headers=tokens["u.auditor"])
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    leaves = [r.content[i : i + 32] for i in range(0, len(r.content), 32)]
    assert merkle.root(leaves) == cp.root_hash
    r = client.get(prefix + f"/tile/entries/000.p/{size}", headers=tokens["u.auditor"])
    bundle, entries = r.content, []
    while bundle:
        n = int.from_bytes(bundle[:2], "big")
        entries.append(bundle[2 : 2 + n])
        bundle = bundle[2 + n :]
    assert [merkle.leaf_hash(e) for e in entries] == leaves
    # Nothing beyond the latest checkpoint; malformed paths are refused; no role, no tiles.
    assert (
        client.get(prefix + f"/tile/0/000.p/{size + 1}", headers=tokens["u.auditor"]).status_code
        == 404
    )
    assert client.get(prefix + "/tile/0/1", headers=tokens["u.auditor"]).status_code == 422
    for path in ("/checkpoint", f"/tile/0/000.p/{size}"):
        assert client.get(prefix + path, headers=tokens["u.none"]).status_code == 403
        assert client.get(prefix + path).status_code == 401
