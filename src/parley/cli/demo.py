"""`parley demo`: stations on loopback as real processes, driven through their operator APIs."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from parley.cli.client import Api
from parley.errors import Code, LocalError
from parley.station import config as station_config

out = Console(highlight=False, soft_wrap=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(data: Path, log: Path) -> subprocess.Popen[bytes]:
    """Start `parley station run` for `data` and wait until its API answers."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "parley.cli", "station", "run", "--data", str(data)],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    api = Api(data, timeout_s=2)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LocalError(Code.STATION_UNREACHABLE, f"station in {data} exited; see {log}")
        try:
            api.get("/station")
            return proc
        except LocalError:
            raise
        except Exception:
            time.sleep(0.1)
    proc.kill()
    raise LocalError(Code.STATION_UNREACHABLE, f"station in {data} did not start; see {log}")


def init(data: Path, name: str, lang: str, timings: station_config.Timings | None = None) -> None:
    cfg = station_config.Config(
        name=name,
        lang=lang,
        listen=f"127.0.0.1:{free_port()}",
        timings=timings or station_config.Timings(),
    )
    station_config.init_dir(data, cfg)


def wait_for(pred: object, timeout_s: float = 20) -> None:
    assert callable(pred)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise LocalError(Code.STATION_UNREACHABLE, "the demo timed out waiting for delivery")


def run_demo(root: Path, keep_running: bool) -> None:
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    people = {"north": ("Hotline North", "ko"), "south": ("Hotline South", "en")}
    procs = []
    try:
        apis = {}
        for key, (name, lang) in people.items():
            init(root / key, name, lang)
            procs.append(start(root / key, root / f"{key}.log"))
            apis[key] = Api(root / key)
            info = apis[key].get("/station")
            out.print(f"[bold]{name}[/bold] ({lang}) at {info['url']}")
            out.print(f"  fingerprint {info['fingerprint']}")
        n, s = apis["north"], apis["south"]
        out.print("\n1. The stations exchange invitations and check fingerprints.")
        s.post("/peers", json={"invitation": n.get("/invitation")["invitation"]})
        n.post("/peers", json={"invitation": s.get("/invitation")["invitation"]})
        north_id = n.get("/station")["station"]
        out.print("2. South proposes to reopen the military hotline; North consents.")
        ch = s.post(
            "/channels",
            json={"kind": "hotline", "title": "Military hotline", "peers": [north_id]},
        )["channel"]
        wait_for(lambda: any(c["channel"] == ch for c in n.get("/channels")))
        n.post(f"/channels/{ch}/consent", json={})
        wait_for(lambda: s.get(f"/channels/{ch}")["state"] == "open")
        out.print(f"   channel {ch} is open at both stations.")
        lines = [
            (s, "This is the South duty officer. Do you read this line?", "en"),
            (n, "북측 당직관입니다. 잘 들립니다.", "ko"),
            (s, "We propose check calls at 09:00 and 16:00 Seoul time on working days.", "en"),
            (n, "동의합니다. 내일 09:00에 첫 점검 통화를 하겠습니다.", "ko"),
        ]
        out.print("3. Messages, each signed, encrypted, ordered and receipted:")
        for api, text, lang in lines:
            r = api.post(f"/channels/{ch}/messages", json={"text": text, "lang": lang})
            who = "South" if api is s else "North"
            out.print(f"   {who} #{r['seq']}: {text}")
        wait_for(lambda: n.get("/status")["peers"][0]["pending"] == 0)
        wait_for(lambda: s.get("/status")["peers"][0]["pending"] == 0)
        out.print("4. What North's inbox shows:")
        for m in n.get("/inbox"):
            out.print(
                f"   from {m['sender_name']} #{m['seq']} [{m['signature']}] "
                f"{m['body'].get('text', m['body'].get('type'))}",
                markup=False,
            )
        dn = n.get(f"/channels/{ch}/transcript")["digest"]
        ds = s.get(f"/channels/{ch}/transcript")["digest"]
        out.print(f"5. Transcript digests: North {dn} / South {ds} — identical: {dn == ds}")
        out.print("\nTry it yourself:")
        for key in people:
            out.print(f"   parley --help;  parley inbox --data {root / key}")
        if keep_running:
            out.print("\nStations keep running; press Ctrl-C to stop them.")
            signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        for p in procs:
            with_suppress_kill(p)


def with_suppress_kill(p: subprocess.Popen[bytes]) -> None:
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
