"""A station as a C2SP tlog-witness: its key, the logs it witnesses, and add-checkpoint.

The `witness` section of station.json, written by the station's admin (nobody else can):

    {"name": "un.example/witness",        the witness's key name (default parley/witness/<id>)
     "peers": true,                       witness every Parley chain of every known peer
     "logs": [{"vkey": "<name>+<id>+<key>", "origin": "<origin>"},   one C2SP log
              {"vkey": "<station id>+<id>+<key>"}],  every Parley chain signed by that station
     "max_logs": 100000,                  origins it keeps state for, at most
     "per_minute": 600}                   add-checkpoint requests per client address a minute

An empty section (the default) witnesses nothing: every request is answered 404, as the spec
answers an unknown log. The rules of the answer are protocol/witness.py's; here: the origin's
trusted keys are looked up, the decision and the compare-and-swap of the stored state are one
transaction, and a `suspicious` refusal (a log-signed checkpoint that is inconsistent with what
was cosigned) keeps both notes as evidence (kind `witness`) with a critical `witness` alarm.
A witness sees checkpoints only (origins, sizes, roots): never an envelope.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any
from weakref import WeakKeyDictionary

from parley.errors import Code, LocalError, RejectedInput
from parley.protocol import note, transcript
from parley.protocol import witness as core
from parley.protocol.identity import is_station_id, station_id
from parley.station.node import Station
from parley.store import witness as db

ALARM = "witness"
EVIDENCE = "witness"


@dataclass(frozen=True)
class Settings:
    name: str
    peers: bool = False
    logs: dict[str, tuple[note.Verifier, ...]] = field(default_factory=dict)  # exact origins
    stations: dict[str, note.Verifier] = field(default_factory=dict)  # Parley chains by signer
    max_logs: int = 100_000
    per_minute: int = 600

    @property
    def enabled(self) -> bool:
        return self.peers or bool(self.logs) or bool(self.stations)


def default_name(station: Station) -> str:
    return f"parley/witness/{station.id}"


def parse_settings(raw: dict[str, Any], default: str) -> Settings:
    """The `witness` section of station.json; LocalError naming what is wrong."""

    def bad(msg: str) -> LocalError:
        return LocalError(Code.INVALID_REQUEST, f"station.json witness: {msg}")

    unknown = set(raw) - {"name", "peers", "logs", "max_logs", "per_minute"}
    if unknown:
        raise bad(f"unknown keys {sorted(unknown)}")
    name = raw.get("name", default)
    if not isinstance(name, str) or not note.valid_name(name):
        raise bad("name must be a key name (no spaces, no '+')")
    logs: dict[str, list[note.Verifier]] = {}
    stations: dict[str, note.Verifier] = {}
    entries = raw.get("logs", [])
    if not isinstance(entries, list):
        raise bad("logs is a list")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("vkey"), str):
            raise bad(f"logs[{i}] needs a vkey")
        try:
            v = note.parse_vkey(entry["vkey"])
        except RejectedInput as exc:
            raise bad(f"logs[{i}]: {exc.message}") from exc
        if v.sig_type != note.ED25519:
            raise bad(f"logs[{i}]: a log signs with an Ed25519 (type 0x01) key")
        origin = entry.get("origin")
        if origin is None:
            if not (is_station_id(v.name) and station_id(v.public) == v.name):
                raise bad(f"logs[{i}]: without an origin, the vkey must be a Parley station's")
            stations[v.name] = v
        elif isinstance(origin, str) and origin and "\n" not in origin:
            logs.setdefault(origin, []).append(v)
        else:
            raise bad(f"logs[{i}]: origin is one line of text")
    limits = {}
    for key, default_value in (("max_logs", 100_000), ("per_minute", 600)):
        value = raw.get(key, default_value)
        if type(value) is not int or not 1 <= value <= 10**9:
            raise bad(f"{key} is a positive integer")
        limits[key] = value
    peers = raw.get("peers", False)
    if not isinstance(peers, bool):
        raise bad("peers is true or false")
    return Settings(name, peers, {o: tuple(v) for o, v in logs.items()}, stations, **limits)


_settings: WeakKeyDictionary[Station, Settings] = WeakKeyDictionary()


def settings(station: Station) -> Settings:
    got = _settings.get(station)
    if got is None:
        got = _settings[station] = parse_settings(station.cfg.witness, default_name(station))
    return got


def key(station: Station) -> core.WitnessKey:
    return core.WitnessKey(settings(station).name, db.witness_key(station.store))


def describe(station: Station, url: str) -> dict[str, Any]:
    """What a channel's proposer needs to name this witness: its vkey and submission prefix."""
    s = settings(station)
    return {
        "name": s.name,
        "vkey": key(station).verifier.vkey(),
        "url": url.rstrip("/") + "/witness",
        "enabled": s.enabled,
        "peers": s.peers,
        "logs": sorted(s.logs),
        "stations": sorted(s.stations),
        "origins_held": db.origins(station.store),
    }


def known_log(station: Station, origin: str) -> core.Log | None:
    """The log `origin` names, with the keys trusted for it, if this station witnesses it."""
    s = settings(station)
    if origin in s.logs:
        return core.Log(origin, s.logs[origin])
    try:
        _, sender = transcript.parse_origin(origin)
    except RejectedInput:
        return None
    if sender in s.stations:
        return core.Log(origin, (s.stations[sender],))
    if s.peers:
        peer = station.store.get_peer(sender)
        if peer is not None:
            return core.Log(origin, (note.Verifier(sender, peer.identity),))
    return None


def add_checkpoint(station: Station, body: bytes) -> core.Answer:
    """Answer one add-checkpoint request body (already bounded by the caller)."""
    try:
        request = core.parse_request(body)
    except RejectedInput as exc:
        return core.refusal(413 if exc.code == Code.OVERSIZED else 400, exc.message)
    s, store, now = settings(station), station.store, station.clock()
    log = known_log(station, request.origin) if s.enabled else None
    wkey = key(station)
    with store.tx():
        held = db.state(store, request.origin)
        if log is not None and held is None and db.origins(store) >= s.max_logs:
            return core.refusal(503, f"this witness keeps state for {s.max_logs} logs at most")
        answer = core.decide(request, log, held, wkey, now // 1000)
        if answer.new_state is not None and not db.advance(
            store, request.origin, held, answer.new_state, now
        ):
            # Another request moved the log between our read and our write: answer as if it
            # had come first, which is what happened.
            current = db.state(store, request.origin)
            return core.conflict(current.size if current else 0, "the log moved meanwhile")
        if answer.suspicious:
            _keep_evidence(station, request, held, answer)
    return answer


def _keep_evidence(
    station: Station, request: core.Request, held: core.State | None, answer: core.Answer
) -> None:
    cp = request.checkpoint
    try:
        channel, sender = transcript.parse_origin(cp.origin)
    except RejectedInput:
        channel, sender = cp.origin, ""
    kept = station.keep_evidence(
        channel, sender, cp.size, EVIDENCE, request.signed_note.encode(),
        held.root if held else None,
    )  # fmt: skip
    if held is not None and held.signed_note:
        station.keep_evidence(
            channel, sender, held.size, EVIDENCE, held.signed_note.encode(), cp.root_hash
        )
    if kept:
        station.alarm(
            ALARM, "critical", sender or cp.origin,
            f"as a witness: the log {cp.origin} sent a signed checkpoint of size {cp.size} that "
            f"is not consistent with the size {held.size if held else 0} cosigned before "
            f"({answer.reason}). Both notes are kept as evidence.",
        )  # fmt: skip


class RateWindow:
    """At most `limit` requests per key in each fixed one-minute window (bounded memory: the
    table is emptied when the window turns, and refuses new keys past `max_keys`)."""

    def __init__(self, limit: int, max_keys: int = 100_000) -> None:
        self.limit, self.max_keys = limit, max_keys
        self._window = 0
        self._counts: dict[str, int] = {}

    def allow(self, key: str, now_s: float | None = None) -> bool:
        window = int((time.monotonic() if now_s is None else now_s) // 60)
        if window != self._window:
            self._window, self._counts = window, {}
        n = self._counts.get(key, 0)
        if n >= self.limit or (n == 0 and len(self._counts) >= self.max_keys):
            return False
        self._counts[key] = n + 1
        return True
