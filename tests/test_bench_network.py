"""bench/network.py at its smallest: three real stations (a facilitator and two parties) after
a baseline of two, the notice round to the end and the figures it prints. Bounded: five
processes in all, each wait in the script has its own timeout, the whole run one here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "network.py"


def test_three_stations_notice_round() -> None:
    res = subprocess.run(
        [sys.executable, str(BENCH), "--stations", "3", "--baseline", "2", "--idle-s", "1"],
        capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:] + res.stdout[-3000:]
    out = res.stdout
    assert "N = 2: 1 parties and the facilitator, 2 deliveries" in out
    assert "N = 3: 2 parties and the facilitator, 6 deliveries" in out
    assert "notice + every acknowledgement receipted everywhere" in out
    assert "RSS per station" in out and "against N = 2 in this run" in out
