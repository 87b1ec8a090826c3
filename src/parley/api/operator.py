"""The operator API (OpenAPI at /docs and /openapi.json): what the CLI and console call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter, Depends, Header, Query
from pydantic import BaseModel, ConfigDict, Field

from parley.api.auth import Auth
from parley.domain import channels
from parley.protocol.encoding import b64e
from parley.protocol.identity import fingerprint, parse_invitation
from parley.station.node import MAX_BATCH, Station
from parley.station.users import User

Precedence = Literal["ROUTINE", "PRIORITY", "IMMEDIATE", "FLASH"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PeerAdd(Strict):
    invitation: str = Field(max_length=32_000)


class ChannelPropose(Strict):
    kind: Literal["hotline", "backchannel", "facilitated"] = "hotline"
    title: str = Field(min_length=1, max_length=channels.MAX_TITLE)
    peers: list[str] = Field(min_length=1, max_length=channels.MAX_MEMBERS - 1)
    facilitator: str | None = Field(default=None, max_length=64)
    representatives: dict[str, list[str]] | None = None


class ChannelControl(Strict):
    reason: str = Field(default="", max_length=2000)


class TextMessage(Strict):
    text: str = Field(min_length=1, max_length=channels.MAX_TEXT)
    lang: str | None = Field(default=None, max_length=16)
    precedence: Precedence = "ROUTINE"


class TextBatch(Strict):
    messages: list[TextMessage] = Field(min_length=1, max_length=MAX_BATCH)


def router(station: Station, auth: Auth) -> APIRouter:
    r = APIRouter(prefix="/api/v1", tags=["operator"], dependencies=[Depends(auth.user)])

    @r.get("/station")
    def get_station() -> dict[str, Any]:
        return {
            "station": station.id,
            "name": station.cfg.name,
            "lang": station.cfg.lang,
            "fingerprint": station.fingerprint,
            "url": station.cfg.url,
        }

    @r.get("/invitation")
    def invitation() -> dict[str, str]:
        return {"invitation": station.invitation().encode()}

    @r.post("/peers")
    def add_peer(req: PeerAdd, who: User = Depends(auth.user)) -> dict[str, Any]:
        inv = parse_invitation(req.invitation)
        station.add_peer(inv, who.name)
        return {"station": inv.station, "name": inv.name, "fingerprint": inv.fingerprint}

    @r.get("/peers")
    def peers() -> list[dict[str, Any]]:
        return [
            {
                "station": p.station,
                "name": p.name,
                "lang": p.lang,
                "addresses": p.addresses,
                "fingerprint": fingerprint(p.identity),
            }
            for p in station.store.list_peers()
        ]

    @r.post("/channels")
    def propose(req: ChannelPropose, who: User = Depends(auth.user)) -> dict[str, Any]:
        extra = req.model_dump(include={"facilitator", "representatives"}, exclude_none=True)
        ch = station.propose_channel(req.kind, req.title, req.peers, who.name, **extra)
        return _channel(station, ch)

    @r.get("/channels")
    def list_channels(who: User = Depends(auth.user)) -> list[dict[str, Any]]:
        return [_channel(station, s.channel) for s in station.channel_states(who)]

    @r.get("/channels/{channel}")
    def get_channel(channel: str, who: User = Depends(auth.user)) -> dict[str, Any]:
        station.guard(channel, who)
        return _channel(station, channel)

    @r.post("/channels/{channel}/messages")
    def send(
        channel: str,
        req: TextMessage,
        who: User = Depends(auth.user),
        idempotency_key: str = Header(default="", max_length=128),
    ) -> dict[str, Any]:
        station.guard(channel, who)
        body = channels.text_body(req.text, req.lang or station.cfg.lang)
        row, created = station.send(channel, body, req.precedence, idempotency_key, who.name)
        return {
            "channel": channel,
            "seq": row.seq,
            "hash": b64e(row.hash),
            "status": "queued",
            "created": created,
        }

    @r.post("/channels/{channel}/messages/batch")
    def send_batch(
        channel: str,
        req: TextBatch,
        who: User = Depends(auth.user),
        idempotency_key: str = Header(default="", max_length=120),
    ) -> dict[str, Any]:
        """Several text messages in order, queued in one transaction (all or none)."""
        station.guard(channel, who)
        items = [
            (channels.text_body(m.text, m.lang or station.cfg.lang), m.precedence)
            for m in req.messages
        ]
        rows, created = station.send_many(channel, items, idempotency_key, who.name)
        return {
            "channel": channel,
            "status": "queued",
            "created": created,
            "envelopes": [{"seq": r.seq, "hash": b64e(r.hash)} for r in rows],
        }

    @r.get("/channels/{channel}/messages")
    def messages(
        channel: str,
        after: int = Query(0, ge=0),
        limit: int = Query(1000, ge=1, le=10_000),
        who: User = Depends(auth.user),
    ) -> list[dict[str, Any]]:
        msgs = station.messages(channel, after, limit, who)
        return [m.to_json() | {"id": m.extra["id"]} for m in msgs]

    @r.get("/channels/{channel}/transcript")
    def transcript(channel: str, who: User = Depends(auth.user)) -> dict[str, Any]:
        station.guard(channel, who)
        return station.transcript_digest(channel)

    # One route per action, not "/channels/{channel}/{action}": a pattern that broad would
    # capture every other router's POST /channels/{channel}/<word>.
    def control_route(action: str) -> Callable[..., dict[str, Any]]:
        def control(
            channel: str, req: ChannelControl | None = None, who: User = Depends(auth.user)
        ) -> dict[str, Any]:
            station.guard(channel, who)
            station.control(channel, action, req.reason if req else "", who.name)
            return _channel(station, channel)

        return control

    for action in ("consent", "suspend", "reopen", "close"):
        r.add_api_route(
            f"/channels/{{channel}}/{action}", control_route(action), methods=["POST"],
            name=f"channel_{action}",
        )  # fmt: skip

    @r.get("/inbox")
    def inbox(
        limit: int = Query(200, ge=1, le=10_000), who: User = Depends(auth.user)
    ) -> list[dict[str, Any]]:
        return [m.to_json() for m in station.inbox(limit, who)]

    @r.get("/status")
    def status() -> dict[str, Any]:
        return station.status()

    def hidden(who: User) -> set[str]:
        """Back channels this user is not named on: their alarms and evidence are not shown."""
        return {s.channel for s in station.channel_states() if not station.visible(s, who)}

    @r.get("/alarms")
    def alarms(all: bool = False, who: User = Depends(auth.user)) -> list[dict[str, Any]]:
        skip = hidden(who)
        return [
            a.__dict__ for a in station.store.alarms(include_cleared=all) if a.subject not in skip
        ]

    @r.get("/evidence")
    def evidence(who: User = Depends(auth.user)) -> list[dict[str, Any]]:
        skip = hidden(who)
        return [
            {
                "channel": c, "sender": s, "seq": q, "kind": k, "envelope": raw.decode(),
                "held_hash": b64e(h) if h else None, "detected": t,
            }
            for c, s, q, k, raw, h, t in station.store.evidence() if c not in skip
        ]  # fmt: skip

    return r


def _channel(station: Station, channel: str) -> dict[str, Any]:
    s = station.channel_state(channel)
    return {
        "channel": s.channel,
        "kind": s.kind,
        "title": s.title,
        "state": s.state,
        "members": [{"station": m, "name": station.peer_name(m)} for m in s.members],
        "proposer": s.proposer,
        "facilitator": s.facilitator or None,
        "representatives": {k: list(v) for k, v in s.representatives.items()},
        "consents": sorted(s.consents),
        "awaiting": sorted(set(s.members) - s.consents) if s.pending else [],
        "history": [{"ts": ts, "by": who, "event": what} for ts, who, what in s.history],
    }
