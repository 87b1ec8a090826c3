"""The station follows the rules docs/protocol.md states where it used to be silent (issue 16).

Each test names the section it proves. Real stations (SQLite files, the real receive path),
joined in memory by tests.pair; the byte-level rules have their vectors in vectors/protocol/.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from parley.domain import channels
from parley.errors import RejectedInput
from parley.protocol import checkpoint, identity, merkle
from parley.protocol.encoding import b64e, canonical, parse
from parley.protocol.envelope import ENVELOPE_LABEL, MIN_CT_BYTES, Ref, parse_envelope, seal
from parley.protocol.receipt import sign_receipt
from parley.protocol.verifier import verify_transcript
from parley.station import checkpoints, paths
from parley.station.node import Station
from parley.store import checkpoints as db
from tests.pair import Clock, Net, hotline, introduce, make_station


def _resigned(st: Station, **changes: object) -> str:
    """`st`'s own invitation with fields changed and signed again: only the rule can refuse it."""
    body = {**st.invitation().body(), **changes}
    sig = st.identity.sign(identity.INVITE_LABEL, canonical(body))
    return identity.INVITE_PREFIX + b64e(canonical({**body, "sig": b64e(sig)}))


def _peers(st: Station) -> int:
    return int(st.store.q("SELECT COUNT(*) FROM peers")[0][0])


@pytest.fixture
def two(tmp_path: Path) -> tuple[Clock, Station, Station]:
    clock = Clock()
    return (
        clock,
        make_station(tmp_path / "a", "South", "en", clock),
        make_station(tmp_path / "b", "North", "ko", clock),
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"addresses": ["not a url"]},
        {"addresses": ["ftp://x"]},
        {"addresses": ["https://user@north.example"]},
        {"addresses": ["https://north.example/#top"]},
        {"addresses": ["https://north.example", "https://north.example"]},
        {"name": "   "},
        {"name": ""},
        {"lang": "\u3000"},
        {"created": "1790000000000"},
        {"created": True},
    ],
    ids=repr,
)
def test_3_4_an_invitation_breaking_a_field_rule_is_refused(two, changes) -> None:
    _, a, b = two
    with pytest.raises(RejectedInput) as exc:
        identity.parse_invitation(_resigned(b, **changes))
    assert str(exc.value.code) == "bad_invitation"
    assert _peers(a) == 0


def test_3_4_a_station_refuses_an_invitation_from_the_future(two) -> None:
    clock, a, b = two
    clock.advance(a.cfg.timings.skew_ms + 1)
    inv = identity.parse_invitation(b.invitation().encode())
    clock.advance(-(a.cfg.timings.skew_ms + 1))
    with pytest.raises(RejectedInput) as exc:
        a.add_peer(inv)
    assert str(exc.value.code) == "bad_invitation" and "future" in exc.value.message
    assert _peers(a) == 0
    clock.advance(1)  # now exactly the skew window ahead: allowed (bounds inclusive)
    a.add_peer(inv)
    assert _peers(a) == 1


def test_3_4_a_station_refuses_an_invitation_whose_prekeys_all_expired(two) -> None:
    clock, a, b = two
    inv = identity.parse_invitation(b.invitation().encode())
    clock.advance(max(p.not_after for p in inv.prekeys) - clock() + 1)
    with pytest.raises(RejectedInput) as exc:
        a.add_peer(inv)
    assert str(exc.value.code) == "bad_invitation" and "expired" in exc.value.message
    assert _peers(a) == 0


def test_3_4_an_own_address_that_is_not_a_url_cannot_go_into_an_invitation(two) -> None:
    _, a, _ = two
    with pytest.raises(RejectedInput):
        identity.make_invitation(a.identity, "South", "en", [], ["not a url"], 0)


def _snapshot(st: Station) -> tuple[object, ...]:
    q = st.store.q
    return tuple(
        q(f"SELECT COUNT(*) FROM {t}")[0][0] for t in ("envelopes", "bodies", "held", "evidence")
    )


def _forge(
    a: Station,
    b: Station,
    ch: str,
    body: dict[str, object] | None = None,
    at: Ref | None = None,
    **seen: Ref,
) -> bytes:
    """An envelope on `ch` really signed by a: its next one unless `at` gives (seq, prev), with
    the body and `seen` the test chooses."""
    head = a.store.head(ch, a.id)
    seq, prev = (at.seq, at.hash) if at else ((head.seq + 1, head.hash) if head else (1, bytes(32)))
    env, _ = seal(
        body or channels.text_body("hello", "en"),
        identity=a.identity,
        sender=a.id,
        channel=ch,
        seq=seq,
        prev=prev,
        seen=seen,
        recipients=[a.recipient_key(b.id, a.clock())],
        now_ms=a.clock(),
    )
    return env.raw


def test_4_1_a_seen_key_must_be_a_member(tmp_path: Path) -> None:
    _, clock, a, b, ch = hotline(tmp_path)
    carol = make_station(tmp_path / "c", "Carol", "en", clock)
    raw = _forge(a, b, ch, **{carol.id: Ref(1, bytes(32))})
    before = _snapshot(b)
    res = b.receive(raw)
    assert (res.status, res.code) == ("rejected", "not_a_member")
    assert carol.id in res.message
    assert _snapshot(b) == before


def test_4_1_a_ct_too_short_to_open_is_malformed_at_step_1(tmp_path: Path) -> None:
    _, _, a, b, ch = hotline(tmp_path)
    doc = parse(_forge(a, b, ch))
    doc["ct"] = b64e(bytes(MIN_CT_BYTES - 1))
    del doc["sig"]
    doc["sig"] = b64e(a.identity.sign(ENVELOPE_LABEL, canonical(doc)))
    before = _snapshot(b)
    res = b.receive(canonical(doc))
    assert (res.status, res.code) == ("rejected", "malformed")
    assert _snapshot(b) == before


def test_5_after_an_equivocation_the_chain_held_first_goes_on(tmp_path: Path) -> None:
    net, _, a, b, ch = hotline(tmp_path)
    a.send(ch, channels.text_body("the real seq 2", "en"))
    net.deliver(a, b)
    real2 = b.store.head(ch, a.id)
    assert real2 is not None and real2.seq == 2
    evil2 = _forge(a, b, ch, channels.text_body("another seq 2", "en"), at=Ref(2, b"\1" * 32))
    assert b.receive(evil2).status == "equivocation"
    # The branch this station applied first goes on: a's next real envelope is accepted...
    a.send(ch, channels.text_body("the real seq 3", "en"))
    assert [r.status for r in net.deliver(a, b)] == ["accepted"]
    real3 = b.store.head(ch, a.id)
    assert real3 is not None and real3.seq == 3
    # ...while one extending the other branch is itself an equivocation (a wrong `prev`), kept
    # as evidence with the held predecessor its prev should have named.
    evil3 = _forge(a, b, ch, at=Ref(4, parse_envelope(evil2).hash))
    before = _snapshot(b)
    res = b.receive(evil3)
    assert (res.status, res.code) == ("equivocation", "equivocation")
    kept = {e[4]: e for e in b.store.evidence()}
    assert kept[evil3][2] == 4 and kept[evil3][5] == real3.hash
    assert kept[evil2][2] == 2 and kept[evil2][5] == real2.hash
    assert _snapshot(b)[:3] == before[:3]  # nothing applied or held, only evidence
    assert [x.kind for x in b.store.alarms()] == ["equivocation", "equivocation"]


def test_6_a_proposal_naming_a_member_who_is_not_a_peer_is_refused(tmp_path: Path) -> None:
    clock = Clock()
    a, b, c = (make_station(tmp_path / n, n, "en", clock) for n in ("a", "b", "c"))
    introduce(a, b)
    introduce(a, c)  # b does not know c
    net = Net()
    ch = a.propose_channel("hotline", "Three", [b.id, c.id])
    before = _snapshot(b)
    res = net.deliver(a, b)
    assert [(r.status, r.code) for r in res] == [("rejected", "unknown_member")]
    assert c.id in res[0].message
    assert _snapshot(b) == before and not b.store.has_channel(ch)
    # Once b's admin adds c, the same proposal offered again is accepted.
    introduce(b, c)
    assert [r.status for r in net.deliver(a, b)] == ["accepted"]
    assert b.channel_state(ch).members == tuple(sorted({a.id, b.id, c.id}))


def test_11_a_consent_naming_the_wrong_target_is_channel_not_open(tmp_path: Path) -> None:
    clock = Clock()
    a, b = (make_station(tmp_path / n, n, "en", clock) for n in ("a", "b"))
    introduce(a, b)
    net = Net()
    ch = a.propose_channel("hotline", "Line", [b.id])
    net.deliver(a, b)
    wrong = _forge(b, a, ch, channels.control_body("consent", b64e(bytes(32))))
    before = _snapshot(a)
    res = a.receive(wrong)
    assert (res.status, res.code) == ("rejected", "channel_not_open")
    assert _snapshot(a) == before and a.channel_state(ch).state == "proposed"


_A, _B, _C = "st" + "a" * 24, "st" + "b" * 24, "st" + "c" * 24
_HASH = b64e(bytes(32))
_GOOD_BODIES = [
    {"type": "channel.propose", "kind": "hotline", "title": "Line", "members": [_A, _B]},
    {"type": "channel.propose", "kind": "hotline", "title": "\ud55c" * 200, "members": [_A, _B]},
    {"type": "channel.propose", "kind": "facilitated", "title": "Talks", "members": [_A, _B, _C],
     "facilitator": _C},
    {"type": "channel.propose", "kind": "backchannel", "title": "Quiet", "members": [_A, _B],
     "representatives": {_A: ["kim", "lee"], _B: ["park"]}},
    {"type": "channel.consent", "target": _HASH},
    {"type": "channel.consent", "target": _HASH, "reason": "agreed"},
    {"type": "channel.suspend"},
    {"type": "channel.reopen", "reason": "talks resume"},
    {"type": "channel.close", "reason": "x" * 2000},
]  # fmt: skip
_BAD_BODIES = [
    ("a blank title", {**_GOOD_BODIES[0], "title": " \u3000 "}),
    ("a title of 201 characters", {**_GOOD_BODIES[0], "title": "\ud55c" * 201}),
    ("a member that is not a station id", {**_GOOD_BODIES[0], "members": [_A, "north"]}),
    ("a facilitator on a hotline", {**_GOOD_BODIES[0], "facilitator": _A}),
    ("representatives on a hotline",
     {**_GOOD_BODIES[0], "representatives": {_A: ["k"], _B: ["l"]}}),
    ("representatives on a facilitated channel",
     {**_GOOD_BODIES[2], "representatives": {_A: ["k"], _B: ["l"], _C: ["m"]}}),
    ("a facilitated channel without its facilitator",
     {k: v for k, v in _GOOD_BODIES[2].items() if k != "facilitator"}),
    ("a facilitator on a back channel", {**_GOOD_BODIES[3], "facilitator": _A}),
    ("representatives not covering every member",
     {**_GOOD_BODIES[3], "representatives": {_A: ["k"]}}),
    ("a blank representative name",
     {**_GOOD_BODIES[3], "representatives": {_A: [" "], _B: ["l"]}}),
    ("a repeated representative name",
     {**_GOOD_BODIES[3], "representatives": {_A: ["k", "k"], _B: ["l"]}}),
    ("a consent without its target", {"type": "channel.consent"}),
    ("a consent whose target is not a hash", {"type": "channel.consent", "target": "proposal"}),
    ("a target on a suspend", {"type": "channel.suspend", "target": _HASH}),
    ("a target on a reopen", {"type": "channel.reopen", "target": _HASH}),
    ("a target on a close", {"type": "channel.close", "target": _HASH}),
    ("a blank reason", {"type": "channel.close", "reason": "  "}),
    ("an empty reason", {"type": "channel.close", "reason": ""}),
    ("a reason of 2001 characters", {"type": "channel.close", "reason": "x" * 2001}),
]  # fmt: skip


@pytest.mark.parametrize("body", _GOOD_BODIES, ids=lambda b: b["type"])
def test_11_channel_bodies_the_rules_allow(body: dict[str, object]) -> None:
    channels.check_body(body)


@pytest.mark.parametrize("desc, body", _BAD_BODIES, ids=[d for d, _ in _BAD_BODIES])
def test_11_channel_bodies_the_rules_refuse(desc: str, body: dict[str, object]) -> None:
    with pytest.raises(RejectedInput) as exc:
        channels.check_body(body)
    assert str(exc.value.code) == "bad_body"


def test_11_a_received_proposal_breaking_a_rule_is_bad_body_and_stores_nothing(
    tmp_path: Path,
) -> None:
    clock = Clock()
    a, b = (make_station(tmp_path / n, n, "en", clock) for n in ("a", "b"))
    introduce(a, b)
    members = sorted([a.id, b.id])
    body = {"type": "channel.propose", "kind": "hotline", "title": "   ", "members": members}
    raw = _forge(a, b, b64e(bytes(range(16))), body)
    before = _snapshot(b)
    res = b.receive(raw)
    assert (res.status, res.code) == ("rejected", "bad_body")
    assert _snapshot(b) == before


def test_17_2_a_checkpoint_whose_prev_skips_the_previous_one_is_not_countersigned(
    tmp_path: Path,
) -> None:
    """`prev` links to the chain's previous checkpoint: a member warns and does not countersign
    one that names another size, and an auditor's `consistency` check fails on it."""
    net, _, a, b, ch = hotline(tmp_path)
    for i in range(3):
        a.send(ch, channels.text_body(f"before the first checkpoint {i}", "en"))
    checkpoints.issue(a, ch)
    net.deliver(a, b)
    net.deliver(b, a)  # b's cosignature
    assert len(db.cosignatures(a.store, ch, a.id)) == 1
    a.send(ch, channels.text_body("after it", "en"))
    tree = checkpoints.chain_tree(a, ch, a.id)
    a.send(ch, checkpoint.checkpoint_body(a.identity, ch, tree, 0))  # prev 0: skips the first
    assert [r.status for r in net.deliver(a, b)] == ["accepted", "accepted"]
    alarms = [x for x in b.store.alarms() if x.kind == checkpoints.ALARM_CHECKPOINT]
    assert len(alarms) == 1 and "previous checkpoint covers 4 envelopes" in alarms[0].message
    net.deliver(b, a)
    assert len(db.cosignatures(a.store, ch, a.id)) == 1  # nothing new countersigned
    report = verify_transcript(checkpoints.export(b, ch), trust=checkpoints.anchors(b))
    cons = report.checks["consistency"]
    assert cons.failed == 1 and "previous checkpoint covers 4" in cons.failures[0]
    assert report.failed == ["consistency"]


def test_8_receipts_carry_the_receivers_checkpoint_and_a_different_root_is_a_divergence(
    tmp_path: Path,
) -> None:
    _, _, a, b, ch = hotline(tmp_path)
    a.send(ch, channels.text_body("one", "en"))
    results, receipts = b.receive_batch([r.raw for r in a.store.pending(b.id, 10)])
    (rc,) = receipts
    ours = merkle.root([merkle.leaf_hash(h) for h in db.chain_hashes(a.store, ch, a.id, 2)])
    assert (rc.seq, rc.root) == (2, ours)  # b's checkpoint of a's chain: the same root
    # A receipt b signs for the same seq and hash but another root: b holds another history.
    forged = sign_receipt(b.identity, b.id, ch, a.id, Ref(rc.seq, rc.hash), rc.head, rc.ts,
                          bytes(32))  # fmt: skip
    applied = paths.apply_answer(a, b.id, [], [forged.to_json()], set())
    assert applied == 0 and a.store.pending(b.id, 10)  # not delivered by it
    (alarm,) = [x for x in a.store.alarms() if x.kind == "divergence"]
    assert "another history" in alarm.message
    (ev,) = [e for e in a.store.evidence() if e[3] == "divergence"]
    assert ev[2] == 2 and ev[4] == forged.encode() and ev[5] == ours
    # The same receipt again: no second alarm; the true one is applied as before.
    paths.apply_answer(a, b.id, [], [forged.to_json()], set())
    assert len([x for x in a.store.alarms() if x.kind == "divergence"]) == 1
    assert paths.apply_answer(a, b.id, [r.to_json() for r in results], [rc.to_json()], set())
    assert not a.store.pending(b.id, 10)
