"""`parley witness …`: a witness-only party in its own process and database, configured by its
admin on the command line, answering the C2SP witness API and nothing else."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from parley.cli.demo import free_port
from parley.protocol import crypto, merkle, note
from parley.protocol import witness as core
from tests.net import LIVENESS_S, parley, wait

LEAVES = [merkle.leaf_hash(bytes([i])) for i in range(6)]
ORIGIN = "example.org/some-log"


def _signed(key: crypto.SigningKey, size: int) -> str:
    text = note.Checkpoint(ORIGIN, size, merkle.root(LEAVES[:size])).format()
    return note.sign_note(text, ORIGIN, key)


def test_a_witness_only_party_cosigns_the_logs_its_admin_added(tmp_path: Path) -> None:
    data, port = tmp_path / "w", free_port()
    parley("witness", "init", "--name", "UN witness", "--listen", f"127.0.0.1:{port}", data=data)
    log_key = crypto.SigningKey.generate()
    vkey = note.Verifier(ORIGIN, log_key.public).vkey()
    parley("witness", "add-log", vkey, "--origin", ORIGIN, data=data)
    bad = parley("witness", "add-log", "not-a-vkey", "--origin", ORIGIN, data=data, ok=False)
    assert bad.returncode == 1
    shown = json.loads(parley("witness", "show", "--json", data=data).stdout)
    assert shown["logs"] == [ORIGIN] and shown["url"].endswith("/witness")
    proc = subprocess.Popen(
        [sys.executable, "-m", "parley.cli", "witness", "run", "--data", str(data)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ),
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait(lambda: _up(base), what="the witness to serve")
        with httpx.Client(base_url=base, timeout=10) as http:
            r = http.post("/witness/add-checkpoint",
                          content=core.format_request(0, [], _signed(log_key, 3)))  # fmt: skip
            assert r.status_code == 200, r.text
            verifier = note.parse_vkey(shown["vkey"])
            assert note.open_note(_signed(log_key, 3) + r.text, [verifier]).signed_by(verifier)
            other = crypto.SigningKey.generate()
            r = http.post("/witness/add-checkpoint",
                          content=core.format_request(3, [], _signed(other, 3)))  # fmt: skip
            assert r.status_code == 403
            # Nothing but the witness API is served: no operator API, no console, no peer API.
            for path in ("/api/v1/station", "/console", "/peer/v1/ping"):
                assert http.get(path).status_code == 404
    finally:
        proc.terminate()
        proc.wait(timeout=LIVENESS_S)


def _up(base: str) -> bool:
    try:
        return httpx.get(base + "/witness", timeout=10).status_code == 200
    except httpx.HTTPError:
        return False
