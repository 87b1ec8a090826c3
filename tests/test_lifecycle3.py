"""Three real stations on loopback — two parties and a facilitator (issue 3 items 1 and 6): a
facilitated channel through its whole lifecycle, a back channel between the two parties, and
bodies of a three-member channel wrapped for each member.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from parley.cli.client import ApiError
from parley.errors import Code
from parley.protocol.envelope import parse_envelope
from parley.station.config import Timings
from tests.net import Stations, wait

FAST = Timings(heartbeat_ms=300, retry_base_ms=100, retry_max_ms=1000)
PEOPLE = [("South", "en"), ("North", "ko"), ("UN", "en")]
NAMES = [n for n, _ in PEOPLE]


def channel(net: Stations, name: str, ch: str) -> dict[str, object]:
    info: dict[str, object] = net.api(name).get(f"/channels/{ch}")
    return info


def all_see(net: Stations, ch: str, state: str, names: list[str] = NAMES) -> None:
    for n in names:
        wait(lambda n=n: channel(net, n, ch)["state"] == state, what=f"{n} to see {state}")


def texts(net: Stations, name: str, ch: str) -> list[str]:
    msgs = net.api(name).get(f"/channels/{ch}/messages")
    return [m["body"]["text"] for m in msgs if m["body"].get("type") == "text"]


def test_three_stations_facilitated_lifecycle_back_channel_and_wrapping(tmp_path: Path) -> None:
    with Stations(tmp_path, PEOPLE, timings=FAST) as net:
        ids = net.ids
        # Propose a facilitated channel naming the UN; it opens when all three consented.
        req = {
            "kind": "facilitated", "title": "Talks about talks",
            "peers": [ids["North"], ids["UN"]], "facilitator": ids["UN"],
        }  # fmt: skip
        ch = net.api("South").post("/channels", json=req)["channel"]
        for n in ("North", "UN"):
            wait(lambda n=n: any(c["channel"] == ch for c in net.api(n).get("/channels")))
            assert channel(net, n, ch)["state"] == "proposed"
            assert channel(net, n, ch)["facilitator"] == ids["UN"]
        net.api("North").post(f"/channels/{ch}/consent")
        wait(lambda: ids["North"] in channel(net, "UN", ch)["consents"])  # type: ignore[operator]
        assert channel(net, "UN", ch)["state"] == "proposed"  # the facilitator has not consented
        net.cli("UN", "channel", "consent", ch)
        all_see(net, ch, "open")

        # Bodies wrapped for each member: every other member reads the facilitator's message.
        net.api("UN").post(f"/channels/{ch}/messages", json={"text": "Venue: Panmunjom, 10:00"})
        for n in ("South", "North"):
            wait(lambda n=n: texts(net, n, ch) == ["Venue: Panmunjom, 10:00"])
        un_db = sqlite3.connect(f"file:{net.dirs['UN'] / 'parley.db'}?mode=ro", uri=True)
        raw = un_db.execute(
            "SELECT raw FROM envelopes WHERE channel = ? AND sender = ? ORDER BY seq DESC LIMIT 1",
            (ch, ids["UN"]),
        ).fetchone()[0]
        un_db.close()
        env = parse_envelope(bytes(raw))
        assert env.recipients == {ids["South"], ids["North"]}
        assert len({k.kid for k in env.keys}) == 2  # one wrap per member, under its own key

        # Suspend by North: the others see who and when.
        net.cli("North", "channel", "suspend", ch, "--reason", "consultations at home")
        all_see(net, ch, "suspended")
        for n in NAMES:
            last = channel(net, n, ch)["history"][-1]  # type: ignore[index]
            assert last["by"] == ids["North"] and last["event"] == "suspend"
            assert isinstance(last["ts"], int) and last["ts"] > 0
        with pytest.raises(ApiError) as exc:
            net.api("South").post(f"/channels/{ch}/messages", json={"text": "anyone?"})
        assert exc.value.code == Code.CHANNEL_NOT_OPEN

        # Reopen by South needs everyone's consent again.
        net.api("South").post(f"/channels/{ch}/reopen", json={"reason": "ready to resume"})
        all_see(net, ch, "reopening")
        net.api("North").post(f"/channels/{ch}/consent")
        net.api("UN").post(f"/channels/{ch}/consent")
        all_see(net, ch, "open")
        events = [(h["by"], h["event"]) for h in channel(net, "UN", ch)["history"]]  # type: ignore[attr-defined]
        assert events[-4] == (ids["South"], "reopen")
        assert set(events[-3:-1]) == {(ids["North"], "consent"), (ids["UN"], "consent")}
        assert events[-1][1] == "opened"
        net.api("North").post(f"/channels/{ch}/messages", json={"text": "재개에 동의합니다"})
        wait(lambda: "재개에 동의합니다" in texts(net, "UN", ch))

        # Close (final), here by the facilitator.
        net.cli("UN", "channel", "close", ch, "--reason", "talks concluded")
        all_see(net, ch, "closed")
        with pytest.raises(ApiError) as exc:
            net.api("North").post(f"/channels/{ch}/reopen")
        assert exc.value.code == Code.CONFLICT

        # A back channel between the two parties' representatives; the UN never learns of it.
        south_rep = net.person("South", "south.rep", ["representative"])
        north_rep = net.person("North", "north.rep", ["representative"])
        reps = {ids["South"]: ["south.rep"], ids["North"]: ["north.rep"]}
        bc = south_rep.post("/channels", json={
            "kind": "backchannel", "title": "Personal representatives",
            "peers": [ids["North"]], "representatives": reps,
        })["channel"]  # fmt: skip
        wait(lambda: any(c["channel"] == bc for c in north_rep.get("/channels")))
        north_rep.post(f"/channels/{bc}/consent")
        wait(lambda: south_rep.get(f"/channels/{bc}")["state"] == "open")
        south_rep.post(f"/channels/{bc}/messages", json={"text": "Quietly: agreed."})
        wait(lambda: [
            m["body"]["text"] for m in north_rep.get(f"/channels/{bc}/messages")
            if m["body"].get("type") == "text"
        ] == ["Quietly: agreed."])  # fmt: skip
        assert north_rep.get(f"/channels/{bc}")["kind"] == "backchannel"
        with pytest.raises(ApiError) as exc:
            net.api("UN").get(f"/channels/{bc}")
        assert exc.value.code == Code.NOT_FOUND
