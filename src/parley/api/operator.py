"""The operator API (OpenAPI at /docs and /openapi.json): what the CLI and console call."""

from __future__ import annotations

import hmac
from typing import Any, Literal

from fastapi import APIRouter, Depends, Header, Query
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from parley.domain import channels
from parley.errors import Code, Unauthorized
from parley.protocol.encoding import b64e
from parley.protocol.identity import fingerprint, parse_invitation
from parley.station.node import Station

Precedence = Literal["ROUTINE", "PRIORITY", "IMMEDIATE", "FLASH"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PeerAdd(Strict):
    invitation: str = Field(max_length=32_000)


class ChannelPropose(Strict):
    kind: Literal["hotline", "backchannel", "facilitated"] = "hotline"
    title: str = Field(min_length=1, max_length=channels.MAX_TITLE)
    peers: list[str] = Field(min_length=1, max_length=channels.MAX_MEMBERS - 1)


class ChannelControl(Strict):
    reason: str = Field(default="", max_length=2000)


class TextMessage(Strict):
    text: str = Field(min_length=1, max_length=channels.MAX_TEXT)
    lang: str | None = Field(default=None, max_length=16)
    precedence: Precedence = "ROUTINE"


def router(station: Station, token: str) -> APIRouter:
    bearer = HTTPBearer(auto_error=False)

    def actor(cred: HTTPAuthorizationCredentials | None = Depends(bearer)) -> str:
        if cred is None or not hmac.compare_digest(cred.credentials, token):
            raise Unauthorized(Code.UNAUTHORIZED, "a valid API token is required (Bearer)")
        return "admin"

    r = APIRouter(prefix="/api/v1", tags=["operator"], dependencies=[Depends(actor)])

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
    def add_peer(req: PeerAdd, who: str = Depends(actor)) -> dict[str, Any]:
        inv = parse_invitation(req.invitation)
        station.add_peer(inv, who)
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
    def propose(req: ChannelPropose, who: str = Depends(actor)) -> dict[str, Any]:
        ch = station.propose_channel(req.kind, req.title, req.peers, who)
        return _channel(station, ch)

    @r.get("/channels")
    def list_channels() -> list[dict[str, Any]]:
        return [_channel(station, s.channel) for s in station.channel_states()]

    @r.get("/channels/{channel}")
    def get_channel(channel: str) -> dict[str, Any]:
        return _channel(station, channel)

    @r.post("/channels/{channel}/messages")
    def send(
        channel: str,
        req: TextMessage,
        who: str = Depends(actor),
        idempotency_key: str = Header(default="", max_length=128),
    ) -> dict[str, Any]:
        body = channels.text_body(req.text, req.lang or station.cfg.lang)
        row, created = station.send(channel, body, req.precedence, idempotency_key, who)
        return {
            "channel": channel,
            "seq": row.seq,
            "hash": b64e(row.hash),
            "status": "queued",
            "created": created,
        }

    @r.get("/channels/{channel}/messages")
    def messages(
        channel: str, after: int = Query(0, ge=0), limit: int = Query(1000, ge=1, le=10_000)
    ) -> list[dict[str, Any]]:
        return [
            m.to_json() | {"id": m.extra["id"]} for m in station.messages(channel, after, limit)
        ]

    @r.get("/channels/{channel}/transcript")
    def transcript(channel: str) -> dict[str, Any]:
        return station.transcript_digest(channel)

    @r.post("/channels/{channel}/{action}")
    def control(
        channel: str,
        action: Literal["consent", "suspend", "reopen", "close"],
        req: ChannelControl | None = None,
        who: str = Depends(actor),
    ) -> dict[str, Any]:
        station.control(channel, action, req.reason if req else "", who)
        return _channel(station, channel)

    @r.get("/inbox")
    def inbox(limit: int = Query(200, ge=1, le=10_000)) -> list[dict[str, Any]]:
        return [m.to_json() for m in station.inbox(limit)]

    @r.get("/status")
    def status() -> dict[str, Any]:
        return station.status()

    @r.get("/alarms")
    def alarms(all: bool = False) -> list[dict[str, Any]]:
        return [a.__dict__ for a in station.store.alarms(include_cleared=all)]

    @r.get("/evidence")
    def evidence() -> list[dict[str, Any]]:
        return [
            {
                "channel": c, "sender": s, "seq": q, "kind": k, "envelope": raw.decode(),
                "held_hash": b64e(h) if h else None, "detected": t,
            }
            for c, s, q, k, raw, h, t in station.store.evidence()
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
        "consents": sorted(s.consents),
        "awaiting": sorted(set(s.members) - s.consents) if s.pending else [],
        "history": [{"ts": ts, "by": who, "event": what} for ts, who, what in s.history],
    }
