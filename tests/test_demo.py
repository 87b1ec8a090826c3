"""`parley demo`: the story between three real station processes, and what it leaves behind."""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from parley.cli.demo import start, stop

STEPS = (
    "1. The hotline reopened",
    "2. Check calls",
    "3. Launch notice",
    "4. Back channel between representatives",
    "5. Talks about talks",
    "6. Summary",
)


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "FORCE_COLOR"}
    return subprocess.run(
        [sys.executable, "-m", "parley.cli", "demo", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**env, "NO_COLOR": "1"},
    )


def free_run(n: int) -> int:
    """A port p such that p .. p+n-1 are free on 127.0.0.1 now (bounded tries). The run lies
    below the kernel's ephemeral range (ip_local_port_range starts at 32768), so no outgoing
    connection or port-0 listener of another test can take it between this check and the demo's
    bind; only a listener on a fixed port could."""
    for _ in range(200):
        base = random.randrange(20_000, 32_000)
        with contextlib.ExitStack() as held:
            try:
                for port in range(base, base + n):
                    s = held.enter_context(socket.socket())
                    s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return base
    raise AssertionError("no run of free ports")


@pytest.fixture(scope="module")
def port_base() -> int:
    """Chosen just before the demo runs, not when the module is collected: stations of the
    tests run in between are handed ports below the ephemeral range too."""
    return free_run(3)


@pytest.fixture(scope="module")
def played(tmp_path_factory: pytest.TempPathFactory, port_base: int) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("demo") / "parley-demo"
    res = run_demo("--exit", "--dir", str(root), "--port-base", str(port_base))
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    return root, res.stdout


def test_demo_tells_every_step_of_the_story(played: tuple[Path, str]) -> None:
    _, text = played
    for step in STEPS:
        assert step in text
    # check calls: one answered by North's operator
    assert "answered by north.duty at Hotline North" in text
    # the launch notice in both languages, rendered from the same fields, then acknowledged
    assert "LAUNCH NOTICE" in text and "발사 통보" in text
    # typed as a person would (issue 15), previewed for each member, then sent
    assert "north.duty types the notice field by field" in text
    assert "launch_area: 39°39'N 124°42'E" in text and "launch_window.end: +4h" in text
    assert "Hotline South (en)" in text and "Hotline North (ko)" in text
    assert "south.duty acknowledges" in text
    # translations of hotline messages, certified by a named translator
    assert "human, certified by south.translator" in text
    # the back channel: open for the representatives, forbidden to the operators
    assert "north.rep consents: the back channel is open" in text
    assert "south.duty asks for the back channel: forbidden" in text
    # talks: no preconditions, a counter about the table, acceptance by hash, an agreement
    assert "preconditions: none" in text
    assert 'format.table: "square" → "round"' in text
    assert "Agreement " in text and "identical at South, North and the UN" in text
    assert "unlocks step 2" in text
    # every channel's transcript is the same at each of its members
    assert text.count("✓ identical") == 3 and "DIFFERENT" not in text
    # The UN witnesses the hotline: every checkpoint at both ends carries its cosignature.
    assert text.count("carry the UN's cosignature ✓") == 2, text[-3000:]
    assert "Every checkpoint of the hotline carries the UN's cosignature" in text


def test_demo_prints_consoles_and_working_logins(played: tuple[Path, str], port_base: int) -> None:
    root, text = played
    doc = json.loads((root / "demo.json").read_text())
    assert (root / "demo.json").stat().st_mode & 0o077 == 0  # it holds passwords
    for key in ("south", "north", "un"):
        assert (root / key / "parley.db").is_file()
        assert (root / key / "station.json").is_file()
        assert doc["stations"][key]["console"] in text
        # printed last, where people look: after the summary
        assert text.rindex(doc["stations"][key]["console"]) > text.index("6. Summary")
    ports = [doc["stations"][k]["url"].rsplit(":", 1)[1] for k in ("south", "north", "un")]
    assert ports == [str(port_base + i) for i in range(3)]
    assert {u["name"] for u in doc["users"]} >= {"south.duty", "north.rep", "un.facilitator"}
    for u in doc["users"]:
        assert f"{u['name']} " in text and u["password"] in text


def test_back_channel_stays_hidden_from_the_operator_after_the_demo(
    played: tuple[Path, str],
) -> None:
    root, _ = played
    doc = json.loads((root / "demo.json").read_text())
    passwords = {u["name"]: u["password"] for u in doc["users"]}
    bc = doc["channels"]["backchannel"]
    proc = start(root / "south", root / "south-again.log")
    try:
        http = httpx.Client(base_url=doc["stations"]["south"]["url"] + "/api/v1", timeout=30)

        def as_(name: str) -> dict[str, str]:
            r = http.post("/login", json={"name": name, "password": passwords[name]})
            assert r.status_code == 200, r.text
            return {"Authorization": f"Bearer {r.json()['token']}"}

        duty, rep = as_("south.duty"), as_("south.rep")
        listed = [c["channel"] for c in http.get("/channels", headers=duty).json()]
        assert doc["channels"]["hotline"] in listed and bc not in listed
        for path in (f"/channels/{bc}", f"/channels/{bc}/messages"):
            r = http.get(path, headers=duty)
            assert r.status_code == 403 and r.json()["code"] == "forbidden"
        msgs = http.get(f"/channels/{bc}/messages", headers=rep).json()
        texts = [m["body"]["text"] for m in msgs if m["body"].get("type") == "text"]
        assert len(texts) == 2 and "유엔" in texts[1]
    finally:
        stop(proc)


def test_demo_refuses_to_replace_a_directory_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    res = run_demo("--exit", "--dir", str(tmp_path))
    assert res.returncode == 1
    assert "was not made by `parley demo`" in " ".join(res.stderr.split())  # wrapped at 80
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_demo_refuses_a_taken_port_base_before_starting_anything(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        res = run_demo("--exit", "--dir", str(tmp_path / "d"), "--port-base", str(taken))
    assert res.returncode != 0
    assert f"port {taken} on 127.0.0.1 is taken" in res.stdout + res.stderr
    assert not (tmp_path / "d" / "south" / "parley.db").exists()
