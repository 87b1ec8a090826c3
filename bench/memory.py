"""Memory: a station's resident set size idle with 100 channels, and after 1,000,000 stored
envelopes (while answering status, channel list, inbox and a page of messages), beside the RSS of
a bare Python process that imports the same station code, measured in the same run.

The million envelopes are copies of real received envelopes written straight into the station's
SQLite database while it is stopped (sealing a million would measure the crypto, not memory).

    .venv/bin/python bench/memory.py [--channels 100] [--envelopes 1000000]
"""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys
import time

from common import pair, rss_kb


def baseline_kb() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "import parley.app.serve, time; time.sleep(30)"])
    time.sleep(4)
    kb = rss_kb(proc.pid)
    proc.kill()
    proc.wait()
    return kb


def station_kb(p: object, name: str) -> int:
    return rss_kb(p.procs[name].pid)  # type: ignore[attr-defined]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--channels", type=int, default=100)
    ap.add_argument("--envelopes", type=int, default=1_000_000)
    args = ap.parse_args()
    base = baseline_kb()
    with pair() as p:
        a, b = p.api("a"), p.api("b")
        b_id = b.get("/station")["station"]
        chans = [p.channel]
        for i in range(args.channels - 1):
            chans.append(a.post("/channels", json={"title": f"c{i}", "peers": [b_id]})["channel"])
        deadline = time.monotonic() + 300
        while len(b.get("/channels")) < args.channels and time.monotonic() < deadline:
            time.sleep(0.1)
        for ch in chans[1:]:
            b.post(f"/channels/{ch}/consent", json={})
        b.post(f"/channels/{p.channel}/messages", json={"text": "template"})
        p.wait_delivered()
        while len(a.get(f"/channels/{p.channel}/messages")) < 3:
            time.sleep(0.05)
        time.sleep(3)
        idle = station_kb(p, "a")

        p.stop("a")
        db = sqlite3.connect(p.root / "a" / "parley.db")
        (e_cols,) = db.execute(
            "SELECT channel, sender, seq, hash, raw, ts, prec, stored FROM envelopes"
            " WHERE sender = ? AND channel = ? ORDER BY seq DESC LIMIT 1",
            (b_id, p.channel),
        ).fetchall()
        body = db.execute(
            "SELECT type, body, salt FROM bodies WHERE hash = ?", (e_cols[3],)
        ).fetchone()
        per = args.envelopes // len(chans)
        t0 = time.perf_counter()
        for k, ch in enumerate(chans):
            start = 1000  # above anything B sent in the set-up
            rows = [
                (ch, b_id, start + i, k.to_bytes(4, "big") + i.to_bytes(28, "big"), e_cols[4],
                 e_cols[5], e_cols[6], e_cols[7])
                for i in range(per)
            ]  # fmt: skip
            db.executemany(
                "INSERT INTO envelopes (channel, sender, seq, hash, raw, ts, prec, stored)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            db.executemany(
                "INSERT INTO bodies (hash, type, body, salt) VALUES (?, ?, ?, ?)",
                [(r[3], *body) for r in rows],
            )
            db.commit()
        total = db.execute("SELECT COUNT(*) FROM envelopes").fetchone()[0]
        db.close()
        fill_s = time.perf_counter() - t0
        p.start("a")
        a = p.api("a")
        a.get("/status")
        a.get("/channels")
        a.get("/inbox")
        a.get(f"/channels/{p.channel}/messages", params={"limit": 1000})
        loaded = station_kb(p, "a")
    print(f"baseline            {base / 1024:.1f} MiB (python importing the station code)")
    print(f"idle, {args.channels} channels  {idle / 1024:.1f} MiB  ratio {idle / base:.2f}")
    print(f"{total:,} envelopes  {loaded / 1024:.1f} MiB  ratio {loaded / base:.2f}"
          f"  (written in {fill_s:.0f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
