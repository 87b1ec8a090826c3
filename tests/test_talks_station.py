"""Talks about talks, road maps and translations between three stations: two parties (South in
English, North in Korean) and a facilitator (UN).

The first tests use in-memory stations (tests/pair.py) to decide who hears what first; the rest
run real station processes on loopback (tests/net.py), driven through the operator API and the
`parley` command, sharing one set of stations.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from parley.cli.client import Api, ApiError
from parley.domain import talks as dtalks
from parley.domain import translation as dtranslation
from parley.domain.channels import text_body
from parley.errors import Code, Conflict
from parley.protocol.crypto import sha256
from parley.protocol.encoding import b64e
from parley.station import talks as feature
from parley.station.node import Station
from tests.net import Stations, parley, wait
from tests.pair import Clock, Net, introduce, make_station
from tests.translate_standin import StandIn, phrasebook_translate

TERMS: dict[str, Any] = {
    "date_options": [{"start": "2026-03-02"}, {"start": "2026-03-09"}],
    "venue_options": ["Panmunjom", "Geneva"],
    "format": {"table": "round", "seating": "delegations facing each other"},
    "delegation_size": {"max": 5},
    "agenda": ["talks about talks", "reopening the military hotline"],
    "preconditions": {"none": True},
}
UNKNOWN = b64e(sha256(b"a version nobody proposed"))


def terms(**changes: Any) -> dtalks.MeetingTerms:
    return dtalks.terms_from_json({**TERMS, **changes})


def test_the_version_hash_example_of_the_protocol_document() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "protocol.md").read_text("utf-8")
    example = terms(
        date_options=[{"start": "2026-03-02"}],
        venue_options=["Geneva"],
        agenda=["talks about talks"],
    )
    version = dtalks.version_hash("n1", None, "styskvrgr64nqablx6ceprauxw", example)
    assert version == "zipRH-7okhGxb8viug5xMj8z2zrWQEa1ZNH_6peXGps"
    assert f"hashes to `{version}`" in doc


# --- in memory: who hears what first ---------------------------------------------------------


def settle(net: Net, stations: list[Station]) -> None:
    for _ in range(10):
        moved = [net.deliver(a, b) for a in stations for b in stations if a is not b]
        if not any(moved):
            return
    raise AssertionError("the stations did not settle")


Trio = tuple[Net, Clock, Station, Station, Station, str]


@pytest.fixture
def trio(tmp_path: Path) -> Trio:
    clock = Clock()
    south = make_station(tmp_path / "south", "South", "en", clock)
    north = make_station(tmp_path / "north", "North", "ko", clock)
    un = make_station(tmp_path / "un", "UN", "en", clock)
    for a, b in ((south, north), (south, un), (north, un)):
        introduce(a, b)
    net = Net()
    ch = un.propose_channel(
        "facilitated", "Talks about talks", [south.id, north.id], facilitator=un.id
    )
    settle(net, [south, north, un])
    south.control(ch, "consent")
    north.control(ch, "consent")
    settle(net, [south, north, un])
    assert all(s.channel_state(ch).is_open for s in (south, north, un))
    return net, clock, south, north, un, ch


def only_version(st: Station, ch: str, nid: str = "n1") -> str:
    (v,) = feature.negotiations(st, ch).state.negotiations[nid].versions
    return v


def test_an_accept_crossing_a_counter_is_ignored_alike_at_every_station(trio: Trio) -> None:
    net, clock, south, north, un, ch = trio
    un.send(ch, dtalks.propose_body("n1", terms()))
    settle(net, [south, north, un])
    v1 = only_version(south, ch)

    # North counters and South accepts the same version, neither having seen the other's move.
    counter, _ = north.send(
        ch,
        dtalks.counter_body(
            "n1", v1, terms(format={"table": "square", "seating": "delegations facing each other"})
        ),
    )
    clock.advance(1000)
    accept, _ = south.send(ch, dtalks.accept_body("n1", v1))
    # UN hears South first: the accept applies, until North's earlier counter arrives.
    net.deliver(south, un)
    assert (
        south.id in feature.negotiations(un, ch).state.negotiations["n1"].versions[v1].acceptances
    )
    net.deliver(north, un)
    settle(net, [south, north, un])

    folds = [feature.negotiations(s, ch) for s in (south, north, un)]
    assert folds[0].state == folds[1].state == folds[2].state
    assert [i.record.envelope_hash for f in folds for i in f.ignored] == [b64e(accept.hash)] * 3
    assert "superseded" in folds[0].ignored[0].error.message
    n1 = folds[0].state.negotiations["n1"]
    assert n1.versions[v1].status == "superseded" and n1.status == "open"
    for st in (south, un):  # the ones that saw the accept apply before the counter
        assert any("no longer applies" in a.message for a in st.store.alarms())

    # Refused when sent: nothing sealed, nothing queued.
    head = south.store.head_seq(ch, south.id)
    for bad, words in ((v1, "superseded"), (UNKNOWN, "no version")):
        with pytest.raises(Conflict, match=words):
            south.send(ch, dtalks.accept_body("n1", bad))
    assert south.store.head_seq(ch, south.id) == head
    assert not south.store.pending(north.id, 10)

    (v2,) = [v.hash for v in n1.open_versions]
    accepted, _ = south.send(ch, dtalks.accept_body("n1", v2))
    settle(net, [south, north, un])
    agreements = [
        feature.negotiations(s, ch).state.negotiations["n1"].agreement for s in (south, north, un)
    ]
    assert agreements[0] is not None and agreements[0] == agreements[1] == agreements[2]
    assert dict(agreements[0].acceptances) == {
        north.id: b64e(counter.hash),
        south.id: b64e(accepted.hash),
    }
    assert agreements[0].facilitator == un.id
    assert len({a.hash for a in agreements if a}) == 1


def test_a_move_from_a_station_that_does_not_check_is_kept_ignored_and_alarmed(
    trio: Trio,
) -> None:
    net, _, south, north, un, ch = trio
    north.observers.remove(feature.check_moves)  # a modified station: sends what it likes
    bad, _ = north.send(ch, dtalks.accept_body("n1", UNKNOWN))
    after, _ = north.send(ch, text_body("the line still works", "ko"))
    settle(net, [south, north, un])
    for st in (south, un):
        f = feature.negotiations(st, ch)
        assert [i.record.envelope_hash for i in f.ignored] == [b64e(bad.hash)]
        assert f.state.negotiations == {}
        assert any("does not apply" in a.message for a in st.store.alarms())
        # The chain goes on: the envelope after it was accepted.
        assert st.store.envelope_by_hash(after.hash) is not None


def test_concurrent_corrections_of_one_translation_resolve_alike(trio: Trio) -> None:
    net, clock, south, north, un, ch = trio
    original, _ = south.send(ch, text_body("We propose a round table", "en"))
    ref = b64e(original.hash)
    settle(net, [south, north, un])
    machine, _ = north.send(ch, dtranslation.machine_body(ref, "ko", "원탁", "test engine"))
    settle(net, [south, north, un])
    first, _ = north.send(
        ch,
        dtranslation.correction_body(
            ref, "ko", "우리는 원탁을 제안한다", "Kim", b64e(machine.hash)
        ),
    )
    clock.advance(1000)
    second, _ = un.send(
        ch,
        dtranslation.correction_body(
            ref, "ko", "원탁 회담을 제안합니다", "Choi", b64e(machine.hash)
        ),
    )
    settle(net, [south, north, un])
    folds = [feature.translations(s, ch, ref) for s in (south, north, un)]
    assert folds[0].state == folds[1].state == folds[2].state
    assert [i.record.envelope_hash for f in folds for i in f.ignored] == [b64e(second.hash)] * 3
    shown = folds[0].state.shown(ref, "ko")
    assert shown.original == "We propose a round table"
    assert shown.translation is not None and shown.translation.envelope_hash == b64e(first.hash)


# --- real stations ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stations]:
    people = [("South", "en"), ("North", "ko"), ("UN", "en")]
    with StandIn() as server, Stations(tmp_path_factory.mktemp("talks"), people) as stations:
        # North runs a machine translation engine; South and UN run none (the default).
        path = stations.dirs["North"] / "station.json"
        cfg = json.loads(path.read_text())
        cfg["translation"] = {"engine": "libretranslate", "url": server.url}
        path.write_text(json.dumps(cfg))
        stations.restart("North")
        yield stations


@pytest.fixture(scope="module")
def facilitated(net: Stations) -> str:
    return net.open_channel(
        "UN",
        ["South", "North"],
        kind="facilitated",
        title="Talks about talks",
        facilitator=net.ids["UN"],
    )


def has(api: Api, path: str) -> bool:
    try:
        api.get(path)
    except ApiError:
        return False
    return True


def refused(call: Any, code: Code, words: str) -> None:
    with pytest.raises(ApiError) as info:
        call()
    assert info.value.code == code, info.value.message
    assert words in info.value.message


def test_facilitator_tables_a_meeting_one_party_counters_the_other_accepts(
    net: Stations, facilitated: str
) -> None:
    ch, path = facilitated, f"/channels/{facilitated}/talks/first-meeting"
    south, north, un = net.api("South"), net.api("North"), net.api("UN")
    tabled = un.post(
        f"/channels/{ch}/talks", json={"negotiation_id": "first-meeting", "terms": TERMS}
    )
    v1 = tabled["version"]
    version = tabled["negotiation"]["versions"][0]
    assert version["hash"] == v1 and version["author"]["name"] == "UN"
    assert version["terms"]["preconditions"] == {"none": True}
    assert {p["name"] for p in version["awaiting"]} == {"South", "North"}
    assert tabled["negotiation"]["facilitator"]["name"] == "UN"
    refused(lambda: un.post(f"{path}/accept", json={"version": v1}), Code.CONFLICT, "only a party")

    wait(lambda: has(north, path), what="North to receive the proposal")
    out = net.cli("North", "talks", "counter", ch, "first-meeting", "--table", "square", "--json")
    v2 = json.loads(out.stdout)["version"]
    wait(lambda: len(south.get(path)["versions"]) == 2, what="South to receive the counter")

    # Illegal moves are refused with a clear error and change nothing, here or elsewhere.
    before, digest = south.get(path), south.get(f"/channels/{ch}/transcript")
    refused(lambda: south.post(f"{path}/accept", json={"version": v1}), Code.CONFLICT, "superseded")
    refused(
        lambda: south.post(f"{path}/accept", json={"version": UNKNOWN}), Code.CONFLICT, "no version"
    )
    refused(
        lambda: south.post(f"{path}/accept", json={"version": "v1"}),
        Code.INVALID_REQUEST,
        "version",
    )
    res = net.cli("South", "talks", "accept", "--", ch, "first-meeting", v1, ok=False)
    assert res.returncode == 1 and "error [conflict]" in res.stderr and "superseded" in res.stderr
    assert south.get(path) == before
    assert south.get(f"/channels/{ch}/transcript") == digest

    net.cli(
        "South", "talks", "accept", "--", ch, "first-meeting", v2[:12]
    )  # a unique prefix will do
    for name in ("South", "North", "UN"):
        wait(lambda n=name: net.api(n).get(path)["status"] == "agreed", what=f"{name} agrees")
    views = [net.api(n).get(path) for n in ("South", "North", "UN")]
    assert views[0] == views[1] == views[2]  # identical at all three, names included
    agreement = views[0]["agreement"]
    record = agreement["record"]
    assert record["type"] == "talks.agreement" and record["version"] == v2
    assert record["terms"]["format"]["table"] == "square"
    assert record["facilitator"] == net.ids["UN"]
    counter_entry = next(e for e in views[0]["history"] if e["action"] == "counter")
    assert counter_entry["changes"] == [
        {"path": "format.table", "before": "round", "after": "square"}
    ]
    signed = {s["name"]: s["envelope_hash"] for s in agreement["signatures"]}
    assert signed["North"] == counter_entry["envelope_hash"]  # its counter is its signature
    assert signed["South"] == views[0]["history"][-1]["envelope_hash"]
    assert [e["action"] for e in views[0]["history"]] == ["propose", "counter", "accept"]

    listing = un.get(f"/channels/{ch}/talks")
    assert [n["negotiation_id"] for n in listing["negotiations"]] == ["first-meeting"]
    assert listing["negotiations"][0]["agreement"]["hash"] == agreement["hash"]
    shown = net.cli("UN", "talks", "show", ch, "first-meeting").stdout
    assert 'format.table: "round" → "square"' in shown
    assert f"agreement {agreement['hash']}" in shown


def test_the_facilitator_sees_only_its_own_channels(
    net: Stations, facilitated: str, tmp_path: Path
) -> None:
    hotline = net.open_channel("South", ["North"], kind="hotline", title="Military hotline")
    (tmp_path / "terms.json").write_text(json.dumps(TERMS))
    net.cli(
        "South",
        "talks",
        "propose",
        hotline,
        "--id",
        "direct",
        "--file",
        str(tmp_path / "terms.json"),
    )
    north = net.api("North")
    wait(lambda: has(north, f"/channels/{hotline}/talks/direct"), what="North to hear it")
    talks = north.get(f"/channels/{hotline}/talks")
    assert talks["facilitator"] is None
    assert {p["name"] for p in talks["parties"]} == {"South", "North"}
    listed = net.cli("North", "talks", "list", hotline).stdout
    assert "direct" in listed and "open" in listed and "facilitator: -" in listed

    un = net.api("UN")
    assert [c["channel"] for c in un.get("/channels")] == [facilitated]
    refused(lambda: un.get(f"/channels/{hotline}/talks"), Code.NOT_FOUND, hotline)
    refused(lambda: un.get(f"/channels/{hotline}/transcript"), Code.NOT_FOUND, hotline)


def test_road_map_steps_are_verified_or_disputed_and_unlock_the_next(
    net: Stations, facilitated: str
) -> None:
    ch = facilitated
    south, north, un = net.api("South"), net.api("North"), net.api("UN")
    steps = f"/channels/{ch}/roadmap/steps"
    un.post(
        steps,
        json={"step_id": "1", "owner": "South", "description": "Return the detained fishing crew"},
    )
    un.post(
        steps,
        json={
            "step_id": "2",
            "owner": "North",
            "description": "Reopen the liaison office at Kaesong",
            "conditions": [{"after_step": "1", "state": "verified"}],
        },
    )

    def status(api: Api, step: str) -> str:
        found = [s for s in api.get(f"/channels/{ch}/roadmap")["steps"] if s["step_id"] == step]
        return str(found[0]["status"]) if found else "-"

    def reaches(step: str, want: str) -> None:
        for name in ("South", "North", "UN"):
            wait(lambda n=name: status(net.api(n), step) == want, what=f"{name}: {step} {want}")

    reaches("2", "proposed")
    net.cli("South", "roadmap", "agree", ch, "1")
    south.post(f"{steps}/2/agree")
    north.post(f"{steps}/1/agree")
    north.post(f"{steps}/2/agree")
    reaches("1", "agreed")
    reaches("2", "agreed")
    rm = un.get(f"/channels/{ch}/roadmap")
    assert rm["unlocked"] == ["1"]
    assert rm["steps"][1]["conditions"] == [
        {"after_step": "1", "state": "verified", "holds": False}
    ]
    refused(
        lambda: north.post(f"{steps}/2/update", json={"status": "in_progress"}),
        Code.CONFLICT,
        "waits for: 1 verified",
    )

    net.cli("South", "roadmap", "update", ch, "1", "done", "--note", "the crew crossed at noon")
    refused(
        lambda: south.post(f"{steps}/1/update", json={"status": "verified"}),
        Code.CONFLICT,
        "other than the owner",
    )
    reaches("1", "done")
    north.post(f"{steps}/1/update", json={"status": "disputed", "note": "two are missing"})
    reaches("1", "disputed")
    south.post(f"{steps}/1/update", json={"status": "done", "note": "all eleven are home"})
    reaches("1", "done")
    north.post(f"{steps}/1/update", json={"status": "verified"})
    reaches("1", "verified")

    maps = [net.api(n).get(f"/channels/{ch}/roadmap") for n in ("South", "North", "UN")]
    assert maps[0] == maps[1] == maps[2]
    assert maps[0]["unlocked"] == ["2"]
    history = [(h["by"]["name"], h["move"], h["status"]) for h in maps[0]["steps"][0]["history"]]
    assert history == [
        ("UN", "proposed", "proposed"),
        ("South", "agreed", "proposed"),
        ("North", "agreed", "agreed"),
        ("South", "done", "done"),
        ("North", "disputed", "disputed"),
        ("South", "done", "done"),
        ("North", "verified", "verified"),
    ]
    shown = net.cli("UN", "roadmap", "show", ch).stdout
    assert "step 2 [agreed] North" in shown and "unlocked: 2" in shown


def translator(net: Stations, station: str, name: str) -> tuple[Api, str]:
    """A user with the translator role at `station`: an API client acting as them, and their
    session token (for the CLI's PARLEY_TOKEN)."""
    api = net.person(station, name, ["translator"])
    return api, str(api.http.headers["Authorization"]).removeprefix("Bearer ")


def test_translations_keep_the_original_human_and_machine(net: Stations, facilitated: str) -> None:
    ch = facilitated
    south, north = net.api("South"), net.api("North")
    kim, kim_token = translator(net, "North", "kim")
    park, _ = translator(net, "North", "park")
    lee, _ = translator(net, "South", "lee")
    text = "We propose a round table without preconditions"
    ref = south.post(f"/channels/{ch}/messages", json={"text": text, "lang": "en"})["hash"]
    path = f"/channels/{ch}/messages/{ref}"
    wait(lambda: has(north, f"{path}/translations"), what="North to receive the message")

    # The product works without an engine, and says so when asked for a machine translation.
    assert south.get("/translation/engine") == {"engine": "none", "configured": False}
    refused(
        lambda: south.post(f"{path}/translate", json={"lang": "ko"}),
        Code.INVALID_REQUEST,
        "no translation engine configured",
    )

    machine = north.post(f"{path}/translate", json={"lang": "ko"})
    t = machine["translation"]
    assert (t["kind"], t["status"]) == ("machine", "draft")
    assert t["engine"] == "LibreTranslate"  # the product: never the address North reaches it at
    assert t["text"] == phrasebook_translate(text, "en", "ko")
    assert machine["view"]["original"]["text"] == text
    assert machine["view"]["shown"]["label"] == f"기계 번역: {t['engine']}"

    fixed = "우리는 전제조건 없이 원탁 회담을 제안한다"
    # The station's operator (the bootstrap token) may not write a person's translation.
    fix = {"status": "corrected", "supersedes": t["envelope_hash"], "text": "고친 번역"}
    refused(lambda: north.post(f"{path}/translations", json=fix), Code.FORBIDDEN, "translator")
    args = ["translate", "correct", "--text", "x", "--json", "--", ch, ref, t["envelope_hash"]]
    res = parley(*args, data=net.dirs["North"], ok=False)
    assert res.returncode == 1 and "error [forbidden]" in res.stderr, res.stderr

    out = parley(
        "translate",
        "correct",
        "--text",
        fixed,
        "--translator",
        "kim",
        "--json",
        "--",  # hashes may begin with "-"
        ch,
        ref,
        t["envelope_hash"],
        data=net.dirs["North"],
        env={"PARLEY_TOKEN": kim_token},
    )
    corrected = json.loads(out.stdout)["translation"]
    assert (corrected["status"], corrected["translator"]) == ("corrected", "kim")
    # A translator certifies only in their own name: not as kim, and nobody as a made-up name.
    for other in ("kim", "Park", "south.translator"):
        certify = {"status": "certified", "supersedes": corrected["envelope_hash"]}
        refused(
            lambda b=certify | {"translator": other}: park.post(f"{path}/translations", json=b),
            Code.FORBIDDEN,
            "own name",
        )
    certified = park.post(
        f"{path}/translations",
        json={"status": "certified", "supersedes": corrected["envelope_hash"]},
    )["translation"]
    assert certified["text"] == fixed and certified["label"] == "사람 번역, park 인증"
    again = {"status": "corrected", "supersedes": t["envelope_hash"], "text": "원탁"}
    refused(
        lambda: kim.post(f"{path}/translations", json=again), Code.CONFLICT, "already superseded"
    )

    for name in ("South", "North", "UN"):
        api = net.api(name)
        wait(
            lambda a=api: len(
                a.get(f"{path}/translations")["languages"].get("ko", {}).get("history", [])
            )
            == 3,
            what=f"{name}: translations",
        )
        for_ko = api.get(f"{path}/translations", params={"lang": "ko"})
        assert for_ko["original"]["text"] == text and for_ko["original"]["lang"] == "en"
        assert for_ko["shown"]["text"] == fixed
        assert for_ko["shown"]["translation"] == certified["envelope_hash"]
        lineage = [(x["kind"], x["status"]) for x in for_ko["languages"]["ko"]["history"]]
        assert lineage == [("machine", "draft"), ("human", "corrected"), ("human", "certified")]
        for_en = api.get(f"{path}/translations", params={"lang": "en"})
        assert for_en["shown"] == {
            "original": text,
            "original_lang": "en",
            "text": None,
            "label": None,
            "translation": None,
        }

    # A Korean message, translated into English by a person at South.
    ko_ref = north.post(f"/channels/{ch}/messages", json={"text": "직통전화", "lang": "ko"})["hash"]
    wait(lambda: has(south, f"/channels/{ch}/messages/{ko_ref}/translations"), what="South")
    draft = lee.post(
        f"/channels/{ch}/messages/{ko_ref}/translations",
        json={"lang": "en", "text": "hotline", "translator": "lee"},
    )
    assert draft["view"]["shown"]["label"] == "human, draft by lee"
    assert draft["view"]["original"]["text"] == "직통전화"

    shown = net.cli("UN", "translate", "show", "--lang", "ko", "--", ch, ref).stdout
    assert text in shown and fixed in shown and "park" in shown
