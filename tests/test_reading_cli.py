"""Reading and finding through the API and the `parley` command between real stations on
loopback: history pages, search (Korean too), inbox lines at 80 columns, alarms that resolve and
are acknowledged with a note, and `parley login|whoami|logout` acting as a named user."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.net import Stations, parley, wait

PASSWORD = "correct horse battery"


@pytest.mark.slow
def test_history_search_inbox_alarms_and_login_between_running_stations(tmp_path: Path) -> None:
    with Stations(tmp_path, [("South", "en"), ("North", "ko")]) as net:
        ch = net.open_channel("South", ["North"], title="Military hotline")
        south, north = net.api("South"), net.api("North")
        batch = [{"text": f"routine line {i}"} for i in range(60)]
        batch[3] = {"text": "내일 09시 미사일 발사 예정", "lang": "ko"}
        south.post(f"/channels/{ch}/messages/batch", json={"messages": batch})
        south.post(f"/channels/{ch}/suspend", json={"reason": "maintenance of the line"})
        wait(lambda: north.get(f"/channels/{ch}")["state"] == "suspended", what="the suspension")

        # The API: pages both ways, from the first record to the last.
        page = north.get(f"/channels/{ch}/history", params={"limit": 25})
        seen = list(page["messages"])
        while page["older"] is not None:
            page = north.get(
                f"/channels/{ch}/history", params={"limit": 25, "before": page["older"]}
            )
            seen = page["messages"] + seen
        assert seen[0]["body"]["type"] == "channel.propose"
        assert [m["body"]["text"] for m in seen if m["body"].get("type") == "text"] == [
            b["text"] for b in batch
        ]
        bad = httpx.get(
            north.base + f"/api/v1/channels/{ch}/history", params={"limit": 10_000},
            headers=north.http.headers,
        )  # fmt: skip
        assert (bad.status_code, bad.json()["code"]) == (422, "invalid_request")

        # The CLI: the newest page with the way back; a jump by hash; search in Korean.
        out = net.cli("North", "history", ch[:8], "--limit", "5").stdout
        assert "suspended the channel — maintenance of the line" in out
        assert f"older: parley history {ch} --before" in out and "{" not in out
        korean = next(m for m in seen if "미사일" in m["body"].get("text", ""))
        out = net.cli("North", "history", ch[:8], "--hash", korean["hash"], "--limit", "3").stdout
        assert "내일 09시 미사일 발사 예정" in out and "routine line 2" in out
        out = net.cli("North", "search", "발사").stdout
        assert "내일 09시 미사일 발사 예정" in out and "routine" not in out
        assert "Military hotline" in out
        assert "Nothing found." in net.cli("North", "search", "nonexistent words").stdout
        found = north.get("/search", params={"q": "routine line 5"})["results"]
        # Every word, anywhere in the text: "5" is in 5, 15, 25 … 59 too.
        assert {r["body"]["text"] for r in found} == {
            f"routine line {i}" for i in range(60) if "5" in str(i) and i != 3
        }

        # The inbox: a channel column, readable control lines, nothing wider than 80 columns.
        out = parley("inbox", "--limit", "5", data=net.dirs["North"], env={"COLUMNS": "80"})
        lines = out.stdout.splitlines()
        assert max(len(line) for line in lines) <= 80, out.stdout
        assert "· Military hotline" in out.stdout
        assert "suspended the channel" in out.stdout and '"type"' not in out.stdout

        # Tables at 80 columns: nothing wider, no fingerprint or id split over lines.
        fp = north.get("/peers")[0]["fingerprint"]
        for args in (("peer", "list"), ("channel", "list"), ("status",)):
            res = parley(*args, data=net.dirs["North"], env={"COLUMNS": "80"}).stdout
            assert max(len(line) for line in res.splitlines()) <= 80, res
            if args[0] == "peer":
                assert fp in res
            if args[0] == "channel":
                assert ch in res

        # Alarms: a missed check call resolves itself when answered, late.
        net.cli("South", "channel", "reopen", ch[:8])
        net.api("North").post(f"/channels/{ch}/consent")
        wait(lambda: south.get(f"/channels/{ch}")["state"] == "open", what="the reopening")
        net.cli("South", "checkcall", "call", ch[:8], "--within", "1s")
        wait(
            lambda: any(a["kind"] == "checkcall_missed" for a in south.get("/alarms")),
            what="the missed-call alarm",
        )
        wait(lambda: north.get("/checkcalls", params={"channel": ch}), what="North's copy")
        net.cli("North", "checkcall", "answer", ch[:8])
        wait(
            lambda: not any(a["kind"] == "checkcall_missed" for a in south.get("/alarms")),
            what="the late answer to resolve the alarm",
        )
        out = net.cli("South", "alarms", "list", "--all").stdout
        assert "resolved by station" in out

        # Login: the CLI acts as kim, recorded as kim; the session file is kim's alone.
        south.post("/users", json={"name": "kim", "roles": ["operator"], "password": PASSWORD})
        env = {"PARLEY_CONFIG_DIR": str(tmp_path / "config")}
        d = net.dirs["South"]
        res = _login(d, env, "not the password", ok=False)
        assert res.returncode == 1 and "unauthorized" in res.stderr
        assert "Signed in as kim (operator)" in _login(d, env, PASSWORD).stdout
        kept = tmp_path / "config" / "sessions.json"
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600
        assert stat.S_IMODE(kept.parent.stat().st_mode) == 0o700
        assert (
            "kim (operator) via a `parley login` session"
            in parley("whoami", data=d, env=env).stdout
        )
        parley("send", ch[:8], "from kim", data=d, env=env)
        parley("alarms", "ack", "--all-open", "--note", "end of shift", data=d, env=env)
        audit = south.get("/audit")
        assert any(e["actor"] == "kim" and e["action"] == "send" for e in audit)
        assert all(e["actor"] == "kim" for e in audit if e["action"] == "alarm.ack")
        assert south.get("/alarms") == []
        token = kept.read_text()
        assert "Signed out kim" in parley("logout", data=d, env=env).stdout
        assert "via the station's bootstrap token" in parley("whoami", data=d, env=env).stdout
        assert kept.read_text() != token
        # The session ended at the station too: the old token is refused.
        old = next(iter(json.loads(token).values()))["token"]
        gone = httpx.get(south.base + "/api/v1/me", headers={"Authorization": f"Bearer {old}"})
        assert gone.status_code == 401
        # A session file others can read is refused, not used.
        _login(d, env, PASSWORD)
        os.chmod(kept, 0o644)
        res = parley("whoami", data=d, env=env, ok=False)
        assert res.returncode == 1 and "readable or writable by others" in res.stderr


def _login(
    data: Path, env: dict[str, str], password: str, ok: bool = True
) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(
        [sys.executable, "-m", "parley.cli", "login", "kim", "--password-stdin",
         "--data", str(data)],
        input=password + "\n", capture_output=True, text=True, timeout=60,
        env={**os.environ, **env},
    )  # fmt: skip
    if ok:
        assert res.returncode == 0, res.stderr + res.stdout
    return res
