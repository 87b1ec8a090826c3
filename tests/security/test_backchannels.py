"""Back channels that no other local user can enter, name or act on (issue 13 §2).

Two stations joined in memory (real stores and crypto), each with its operator API on the real
app. South's representative proposes, North's consents; everyone else at either station is
outside the channel, whatever their roles.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from parley.app.build import build_app
from parley.domain.channels import text_body
from parley.station import users
from tests.pair import Clock, Net, introduce, make_station

TOKEN = "bootstrap-" + "b" * 32


class Side:
    def __init__(self, station: Any, clock: Clock) -> None:
        self.station = station
        self.client = TestClient(build_app(station, TOKEN))
        self.password = secrets.token_urlsafe(18)
        self.tokens: dict[str, str] = {"bootstrap": TOKEN}
        self.clock = clock

    def person(self, name: str, *roles: str) -> None:
        users.create_user(self.station, name, list(roles), self.password, self.clock(), "test")
        r = self.client.post("/api/v1/login", json={"name": name, "password": self.password})
        assert r.status_code == 200, r.text
        self.tokens[name] = r.json()["token"]

    def call(self, who: str, method: str, path: str, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        return self.client.request(method, "/api/v1" + path, headers=headers, **kw)


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[Net, Side, Side]]:
    clock = Clock()
    a = make_station(tmp_path / "s", "South", "en", clock)
    b = make_station(tmp_path / "n", "North", "ko", clock)
    introduce(a, b)
    south, north = Side(a, clock), Side(b, clock)
    for side, prefix in ((south, "south"), (north, "north")):
        side.person(f"{prefix}.rep", "representative")
        side.person(f"{prefix}.duty", "operator")
        side.person(f"{prefix}.admin", "admin", "operator")
        side.person(f"{prefix}.auditor", "auditor")
    yield Net(), south, north


def propose(south: Side, north: Side, who: str, reps: dict[str, list[str]]) -> Any:
    return south.call(who, "POST", "/channels", json={
        "kind": "backchannel", "title": "Envoys", "peers": [north.station.id],
        "representatives": reps,
    })  # fmt: skip


def test_only_real_representatives_can_be_named_and_consent(two: tuple[Net, Side, Side]) -> None:
    net, south, north = two
    s, n = south.station.id, north.station.id
    cases = 0
    # Refused at the proposing station: nothing is stored.
    for who, mine in [
        ("south.duty", ["south.duty"]),  # an operator naming himself
        ("south.rep", ["ghost.user"]),  # a user who does not exist (yet)
        ("south.rep", ["south.duty"]),  # an existing user without the role
        ("south.admin", ["south.admin"]),  # an admin naming himself
        ("south.rep", []),  # nobody of this station
    ]:
        before = len(south.station.channel_states())
        r = propose(south, north, who, {s: mine, n: ["north.rep"]})
        assert r.status_code == 400, (who, mine, r.text)
        assert r.json()["code"] == "invalid_request"
        assert len(south.station.channel_states()) == before
        cases += 1
    r = propose(south, north, "south.rep", {s: ["south.rep"], n: ["admin"]})
    assert r.status_code == 400, r.text  # the bootstrap name is reserved, never a representative
    cases += 1

    # North names a user who is not a representative there: nobody at North can open it.
    r = propose(south, north, "south.rep", {s: ["south.rep"], n: ["north.duty"]})
    assert r.status_code == 200, r.text
    ch = r.json()["channel"]
    net.deliver(south.station, north.station)
    for who in ("north.duty", "north.admin", "north.rep", "bootstrap"):
        r = north.call(who, "POST", f"/channels/{ch}/consent")
        assert r.status_code in (400, 403), (who, r.text)
        cases += 1
    assert north.station.channel_state(ch).state == "proposed"

    # Named properly, the named representative consents and the channel opens.
    r = propose(south, north, "south.rep", {s: ["south.rep"], n: ["north.rep"]})
    ch = r.json()["channel"]
    net.deliver(south.station, north.station)
    assert north.call("north.rep", "POST", f"/channels/{ch}/consent").status_code == 200
    net.deliver(north.station, south.station)
    assert south.station.channel_state(ch).is_open
    # A representative who loses the role loses the channel with it.
    users.set_roles(north.station, "north.rep", ["operator"], north.clock(), "north.admin")
    assert north.call("north.rep", "GET", f"/channels/{ch}").status_code == 403
    print(f"{cases + 2} naming and consent cases")


def test_nothing_names_or_acts_on_a_back_channel_for_those_outside(
    two: tuple[Net, Side, Side],
) -> None:
    net, south, north = two
    s, n = south.station.id, north.station.id
    ch = propose(south, north, "south.rep", {s: ["south.rep"], n: ["north.rep"]}).json()["channel"]
    net.deliver(south.station, north.station)
    north.call("north.rep", "POST", f"/channels/{ch}/consent")
    net.deliver(north.station, south.station)
    assert south.call("south.rep", "POST", f"/channels/{ch}/messages",
                      json={"text": "quietly"}).status_code == 200  # fmt: skip
    net.deliver(south.station, north.station)  # North's receipt is now South's last from North
    # A FLASH from North that arrives ahead of its chain raises an alarm on the back channel.
    north.station.send(ch, text_body("earlier", "ko"))
    flash, _ = north.station.send(ch, text_body("urgent", "ko"), "FLASH")
    south.station.receive_batch([flash.raw])
    alarms = south.call("south.rep", "GET", "/alarms").json()
    mine = [a for a in alarms if a["kind"] == "flash"]
    assert mine, alarms
    alarm_id = mine[0]["id"]

    cases = 0
    for who in ("south.duty", "south.admin", "south.auditor", "bootstrap"):
        status = south.call(who, "GET", "/status").json()
        assert ch not in str(status), who
        listed = south.call(who, "GET", "/alarms", params={"all": True}).json()
        assert all(a["id"] != alarm_id for a in listed) and ch not in str(listed)
        assert status["alarms"] == len(south.call(who, "GET", "/alarms").json())
        r = south.call(who, "POST", f"/alarms/{alarm_id}/clear")
        assert r.status_code in (403, 404) and ch not in r.text, (who, r.text)
        cases += 4
    # The console's clear button: the same answer, and the alarm stays open.
    console = south.client
    form = console.get("/console/login").text
    csrf = form.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    login = console.post("/console/login", data={"csrf": csrf, "name": "south.duty",
                                                 "password": south.password},
                         follow_redirects=False)  # fmt: skip
    assert login.status_code in (302, 303), login.text
    page = console.get("/console/")
    token = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    r = console.post(f"/console/alarms/{alarm_id}/clear", data={"csrf": token},
                     follow_redirects=False)  # fmt: skip
    assert r.status_code == 404 and ch not in r.text, r.status_code
    assert ch not in page.text
    cases += 2
    assert any(a.id == alarm_id for a in south.station.store.alarms())
    # The representative sees it all, and may clear it? No: clearing is an operator's duty.
    rep_status = south.call("south.rep", "GET", "/status").json()
    assert rep_status["peers"][0]["last_receipt"]["channel"] == ch
    print(f"{cases} cases outside the channel")
