"""A channel member's side of witnessing: the channel's checkpoints go to its witnesses.

A channel's proposal may name witnesses (C2SP tlog-witness, by cosignature/v1 vkey and submission
prefix) and how many of them must cosign (docs/protocol.md §24). Every member sends every
checkpoint it holds on such a channel (its own, and other members' it countersigned) to each
witness, in size order, and keeps the cosignatures that verify (store/witness.py). Every member
submitting every chain means each holds the witnesses' cosignatures for its exports, and a
sender that shows two members two histories is refused by the witness the second time.

Rules (run by the scheduled tick, outside any transaction; nothing here holds up delivery):
- old size: what the witness last told us it holds for that origin (kept in memory), else the
  largest size of that chain it cosigned for us, else 0. A 409 naming size S ≤ the checkpoint's
  is retried once at once with old = S (the spec's way to learn the state); S larger: the witness
  is past this checkpoint, and a later one will be cosigned.
- 200: the lines by the witness's key that verify on the checkpoint are kept; others ignored.
- 422, or 409 at the checkpoint's own size: the witness holds a history of that chain that is
  not ours. Critical alarm `witness_conflict`; evidence (kind `witness_conflict`): the note we
  sent and the witness's answer.
- no answer, 429 or 5xx: the witness is down. One warning alarm `witness`, resolved when it
  answers again (ref `witness:<vkey>`); that witness is tried again after a backoff (1 s
  doubling to 60 s). Checkpoints wait.
- 400, 403 or 404: the witness does not witness this chain (e.g. its admin has not added us).
  One warning alarm per (witness, chain) until it cosigns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from weakref import WeakKeyDictionary

import httpx

from parley import __version__
from parley.errors import NotFound, RejectedInput
from parley.protocol import note, transcript
from parley.protocol import witness as core
from parley.protocol.encoding import b64e
from parley.station import alarms
from parley.station.node import Station
from parley.store import checkpoints as cdb
from parley.store import witness as db
from parley.transport import clients

ALARM_DOWN = "witness"
ALARM_CONFLICT = "witness_conflict"
TIMEOUT_S = 5.0
SUBMISSIONS_PER_TICK = 64
BACKOFF_MAX_MS = 60_000


@dataclass
class _Memory:
    policies: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    no_policy: set[str] = field(default_factory=set)
    held: dict[tuple[str, str], int] = field(default_factory=dict)  # (vkey, origin) -> size
    retry_at: dict[str, int] = field(default_factory=dict)  # vkey -> ms
    failures: dict[str, int] = field(default_factory=dict)
    down: set[str] = field(default_factory=set)
    refused: set[tuple[str, str]] = field(default_factory=set)
    conflicted: set[tuple[str, str, int]] = field(default_factory=set)
    http: httpx.Client | None = None


_memory: WeakKeyDictionary[Station, _Memory] = WeakKeyDictionary()


def install(station: Station) -> None:
    _memory[station] = _Memory()
    station.scheduled.append(submit_due)


def _mem(station: Station) -> _Memory:
    return _memory.setdefault(station, _Memory())


def _http(m: _Memory) -> httpx.Client:
    if m.http is None:
        m.http = clients.sync_client(TIMEOUT_S)
    return m.http


def policy(station: Station, channel: str) -> tuple[tuple[str, str], ...]:
    """The channel's witnesses (vkey, url); a proposal never changes, so it is kept."""
    m = _mem(station)
    if channel in m.policies:
        return m.policies[channel]
    try:
        state = station.channel_state(channel)
    except NotFound:
        return ()
    if state.witnesses:
        m.policies[channel] = state.witnesses
    return state.witnesses


def submit_due(station: Station, now: int) -> None:
    """Scheduled: send each checkpoint not yet cosigned by each of its channel's witnesses."""
    m, budget = _mem(station), SUBMISSIONS_PER_TICK
    for channel in station.store.list_channels():
        if channel in m.no_policy:
            continue
        witnesses = policy(station, channel)
        if not witnesses:
            # A channel whose proposal we hold and names none will never have any.
            try:
                station.channel_state(channel)
                m.no_policy.add(channel)
            except NotFound:
                pass
            continue
        for vkey, url in witnesses:
            if m.retry_at.get(vkey, 0) > now:
                continue
            done = {(c.sender, c.size) for c in db.cosignatures(station.store, channel)
                    if c.witness == vkey}  # fmt: skip
            for cp in cdb.checkpoints(station.store, channel):
                if (cp.sender, cp.size) in done or budget <= 0:
                    continue
                budget -= 1
                if not _submit(station, m, vkey, url, cp, now):
                    break  # down: the rest of this witness waits for the backoff


def _submit(station: Station, m: _Memory, vkey: str, url: str, cp: cdb.CheckpointRow,
            now: int) -> bool:  # fmt: skip
    """One checkpoint to one witness. False if the witness did not answer (back off)."""
    origin = transcript.origin(cp.channel, cp.sender)
    key = (vkey, origin)
    old = m.held.get(key)
    if old is None:
        old = db.latest_cosigned(station.store, cp.channel, cp.sender, vkey)
    for _attempt in range(2):
        if old > cp.size:
            m.held[key] = old
            return True  # the witness is past this checkpoint
        body = core.format_request(old, _proof(station, cp, old), cp.note)
        try:
            resp = _http(m).post(
                url.rstrip("/") + "/add-checkpoint", content=body,
                headers={"User-Agent": f"parley/{__version__}"},
            )  # fmt: skip
        except httpx.HTTPError as exc:
            _down(station, m, vkey, url, f"{type(exc).__name__}: {exc}", now)
            return False
        if resp.status_code == 429 or resp.status_code >= 500:
            _down(station, m, vkey, url, f"HTTP {resp.status_code}", now)
            return False
        _up(station, m, vkey, url)
        if resp.status_code == 200:
            _keep(station, m, vkey, url, cp, resp.content, now)
            m.held[key] = cp.size
            return True
        if resp.status_code == 409:
            try:
                held = core.parse_conflict(resp.content)
            except RejectedInput:
                held = -1
            if held == cp.size == old or held < 0:
                _conflict(station, m, vkey, url, cp, resp)
                return True
            if held == old:
                return True  # nothing new to learn: leave it for the next tick
            old = held
            continue
        if resp.status_code == 422:
            _conflict(station, m, vkey, url, cp, resp)
            return True
        _refused(station, m, vkey, url, cp, resp)
        return True
    return True


def _proof(station: Station, cp: cdb.CheckpointRow, old: int) -> list[bytes]:
    if old == 0 or old >= cp.size:
        return []
    from parley.station.checkpoints import chain_tree

    tree = chain_tree(station, cp.channel, cp.sender, cp.size)
    return list(tree.consistency_proof(old, cp.size))


def _keep(station: Station, m: _Memory, vkey: str, url: str, cp: cdb.CheckpointRow,
          answer: bytes, now: int) -> None:  # fmt: skip
    verifier = note.parse_vkey(vkey)
    text = note.parse_note(cp.note).text
    try:
        lines = core.parse_answer(answer)
    except RejectedInput:
        lines = []
    kept = 0
    for sig in lines:
        if (sig.name, sig.key_id) != (verifier.name, verifier.key_id):
            continue
        try:
            ts = note.verify_cosignature(text, sig, verifier)
        except RejectedInput:
            continue
        row = db.CosignatureRow(cp.channel, cp.sender, cp.size, vkey, sig.line().rstrip("\n"), ts)
        db.add_cosignature(station.store, row, now)
        kept += 1
    if not kept:
        station.alarm(
            ALARM_DOWN, "warning", url,
            f"witness {verifier.name} ({url}) answered 200 for {station.peer_name(cp.sender)}'s "
            f"checkpoint at size {cp.size} without a cosignature by its key",
        )  # fmt: skip
    m.refused.discard((vkey, cp.sender))


def _down(station: Station, m: _Memory, vkey: str, url: str, why: str, now: int) -> None:
    n = m.failures.get(vkey, 0) + 1
    m.failures[vkey] = n
    m.retry_at[vkey] = now + min(1000 << min(n - 1, 16), BACKOFF_MAX_MS)
    if vkey not in m.down:
        m.down.add(vkey)
        station.alarm(
            ALARM_DOWN, "warning", url,
            f"witness {note.parse_vkey(vkey).name} at {url} does not answer ({why}); "
            "checkpoints wait for its cosignature, delivery goes on",
            ref=f"witness:{vkey}",
        )  # fmt: skip


def _up(station: Station, m: _Memory, vkey: str, url: str) -> None:
    m.failures.pop(vkey, None)
    m.retry_at.pop(vkey, None)
    if vkey in m.down:
        m.down.discard(vkey)
        alarms.resolve(station, [ALARM_DOWN], f"witness:{vkey}", f"the witness at {url} answers")


def _refused(station: Station, m: _Memory, vkey: str, url: str, cp: cdb.CheckpointRow,
             resp: httpx.Response) -> None:  # fmt: skip
    if (vkey, cp.sender) in m.refused:
        return
    m.refused.add((vkey, cp.sender))
    station.alarm(
        ALARM_DOWN, "warning", url,
        f"witness {note.parse_vkey(vkey).name} at {url} refuses {station.peer_name(cp.sender)}'s "
        f"checkpoints on channel {cp.channel} (HTTP {resp.status_code}: "
        f"{resp.text[:200].strip()}); its admin may not have added that station",
    )  # fmt: skip


def _conflict(station: Station, m: _Memory, vkey: str, url: str, cp: cdb.CheckpointRow,
              resp: httpx.Response) -> None:  # fmt: skip
    if (vkey, cp.sender, cp.size) in m.conflicted:
        return
    m.conflicted.add((vkey, cp.sender, cp.size))
    name = note.parse_vkey(vkey).name
    station.keep_evidence(cp.channel, cp.sender, cp.size, ALARM_CONFLICT, cp.note.encode(), cp.root)
    answer = f"witness {name} ({url}) answered HTTP {resp.status_code}:\n".encode()
    station.keep_evidence(
        cp.channel, cp.sender, cp.size, ALARM_CONFLICT, answer + resp.content[:4096], None
    )
    station.alarm(
        ALARM_CONFLICT, "critical", cp.sender,
        f"witness {name} holds a history of {station.peer_name(cp.sender)}'s chain on channel "
        f"{cp.channel} that is not the one held here: it refused the checkpoint of size "
        f"{cp.size} (root {b64e(cp.root)}) with HTTP {resp.status_code}. Someone showed the "
        "witness another history. Our note and its answer are kept as evidence.",
    )  # fmt: skip


def witnessed(station: Station, channel: str) -> dict[str, Any]:
    """The channel's witness policy and, per checkpoint held, which witnesses cosigned it."""
    witnesses = policy(station, channel)
    if not witnesses:
        return {"k": 0, "witnesses": [], "checkpoints": []}
    state = station.channel_state(channel)
    names = {v: note.parse_vkey(v).name for v, _ in witnesses}
    by: dict[tuple[str, int], list[str]] = {}
    for c in db.cosignatures(station.store, channel):
        by.setdefault((c.sender, c.size), []).append(names.get(c.witness, c.witness))
    down = _mem(station).down
    rows = []
    for cp in cdb.checkpoints(station.store, channel):
        got = sorted(by.get((cp.sender, cp.size), []))
        rows.append({
            "sender": cp.sender, "sender_name": station.peer_name(cp.sender), "size": cp.size,
            "witnessed_by": got, "witnessed": len(got) >= state.witness_k,
        })  # fmt: skip
    return {
        "k": state.witness_k,
        "witnesses": [{"name": names[v], "vkey": v, "url": u, "down": v in down}
                      for v, u in witnesses],
        "checkpoints": rows,
    }  # fmt: skip


def cosignature_lines(station: Station, channel: str, sender: str, size: int) -> list[str]:
    """The witness cosignature lines held for one checkpoint (for exports)."""
    return [c.line for c in db.cosignatures(station.store, channel, sender, size)]
