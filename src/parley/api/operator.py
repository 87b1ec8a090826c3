"""The operator API (OpenAPI at /docs and /openapi.json): what the CLI and console call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from parley.api import offload
from parley.api.actions import acts
from parley.api.auth import Auth, Sender
from parley.domain import channels
from parley.protocol.identity import MAX_INVITATION_CHARS
from parley.station.channels import STEPS, ChannelDesk
from parley.station.keys import KeyDesk
from parley.station.node import MAX_BATCH, Station
from parley.station.overview import StationDesk
from parley.station.roles import Action
from parley.station.users import User

Precedence = Literal["ROUTINE", "PRIORITY", "IMMEDIATE", "FLASH"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PeerAdd(Strict):
    invitation: str = Field(max_length=MAX_INVITATION_CHARS)


class PeerRemove(Strict):
    force: bool = False


class PeerRevoke(Strict):
    reason: str = Field(default="", max_length=2000)


class IdentityRotate(Strict):
    grace_days: int = Field(default=7, ge=0, le=90)


class ChannelPropose(Strict):
    kind: Literal["hotline", "backchannel", "facilitated"] = "hotline"
    title: str = Field(min_length=1, max_length=channels.MAX_TITLE)
    peers: list[str] = Field(min_length=1, max_length=channels.MAX_MEMBERS - 1)
    facilitator: str | None = Field(default=None, max_length=64)
    representatives: dict[str, list[str]] | None = None
    # [{"vkey": a cosignature/v1 vkey, "url": the witness's submission prefix}] and k of them.
    witnesses: list[dict[str, str]] | None = Field(default=None, max_length=16)
    witness_k: int = Field(default=0, ge=0, le=16)


class ChannelControl(Strict):
    reason: str = Field(default="", max_length=2000)


class TextMessage(Strict):
    text: str = Field(min_length=1, max_length=channels.MAX_TEXT)
    lang: str | None = Field(default=None, max_length=16)
    precedence: Precedence = "ROUTINE"


class TextBatch(Strict):
    messages: list[TextMessage] = Field(min_length=1, max_length=MAX_BATCH)


JSON = "application/json"
Object = dict[str, Any]
Objects = list[dict[str, Any]]


# The routes sends and the operators' polling reach, busiest first (issue 14).
BUSIEST = {
    f"/api/v1{path}": i
    for i, path in enumerate(
        ["/channels/{channel}/messages", "/channels/{channel}/messages/batch", "/status",
         "/inbox", "/channels/{channel}", "/channels"]
    )
}  # fmt: skip


def router(station: Station, auth: Auth) -> APIRouter:
    # The reads answer a Response (the route's response_model documents its shape): FastAPI
    # would otherwise check a plain answer against the declared type on a second worker thread
    # and walk every message doing so, which cost more than reading them (issue 14). The reads
    # everybody polls come encoded from the station, kept while nothing changed
    # (station/answers.py). The busiest reads hand their station call to api/offload.py; the
    # sends await the writer's group commit on the loop (station/writer.py run_async), so no
    # thread waits per send.
    # Each route takes its user itself, not also the router for all of them: FastAPI solved the
    # same dependency twice per request (issue 14; tests/security/test_auth_everywhere.py).
    r = APIRouter(prefix="/api/v1", tags=["operator"])
    desk, chans, keys = StationDesk(station), ChannelDesk(station), KeyDesk(station)

    @r.get("/station", response_model=Object, **acts(Action.STATION_READ))
    def get_station(who: User = Depends(auth.user)) -> JSONResponse:
        return JSONResponse(desk.info(who))

    @r.get("/invitation", **acts(Action.STATION_READ))
    def invitation(who: User = Depends(auth.user)) -> dict[str, str]:
        return {"invitation": desk.invitation(who)}

    @r.post("/peers", **acts(Action.PEER_ADD))
    def add_peer(req: PeerAdd, who: User = Depends(auth.user)) -> dict[str, Any]:
        return desk.add_peer(who, req.invitation)

    @r.get("/peers", response_model=Objects, **acts(Action.STATION_READ))
    def peers(who: User = Depends(auth.user)) -> JSONResponse:
        return JSONResponse(desk.peers(who))

    @r.post("/peers/{peer}/remove", **acts(Action.PEER_REMOVE))
    def remove_peer(peer: str, req: PeerRemove, who: User = Depends(auth.user)) -> dict[str, Any]:
        return keys.remove(who, peer, req.force)

    @r.post("/peers/{peer}/revoke", **acts(Action.PEER_REVOKE))
    def revoke_peer(peer: str, req: PeerRevoke, who: User = Depends(auth.user)) -> dict[str, Any]:
        return keys.revoke(who, peer, req.reason)

    @r.post("/identity/rotate", **acts(Action.IDENTITY_ROTATE))
    def rotate_identity(req: IdentityRotate, who: User = Depends(auth.user)) -> dict[str, Any]:
        return keys.rotate(who, req.grace_days * 24 * 3600 * 1000)

    @r.post("/channels", **acts(Action.CHANNEL_PROPOSE))
    def propose(req: ChannelPropose, who: User = Depends(auth.user)) -> dict[str, Any]:
        return chans.propose(
            who, req.kind, req.title, req.peers, req.facilitator, req.representatives,
            req.witnesses, req.witness_k,
        )  # fmt: skip

    @r.get("/channels", response_model=Objects, **acts(Action.CHANNEL_READ))
    def list_channels(who: User = Depends(auth.user)) -> JSONResponse:
        return JSONResponse(chans.channels(who))

    @r.get("/channels/{channel}", response_model=Object, **acts(Action.CHANNEL_READ))
    def get_channel(channel: str, who: User = Depends(auth.user)) -> JSONResponse:
        return JSONResponse(chans.channel(who, channel))

    # The sends answer a JSONResponse of plain data: a dict would be re-encoded by FastAPI on
    # another trip to a worker thread, per message sent (issue 14).
    @r.post(
        "/channels/{channel}/messages", response_model=Object,
        **acts(Action.MESSAGE_SEND, keyed=True),
    )  # fmt: skip
    async def send(
        channel: str, req: TextMessage, s: Sender = Depends(auth.sender)
    ) -> JSONResponse:
        sent = await chans.send_async(s.user, channel, req.text, req.lang, req.precedence, s.key)
        return JSONResponse(sent)

    @r.post(
        "/channels/{channel}/messages/batch", response_model=Object,
        **acts(Action.MESSAGE_SEND, keyed=True),
    )  # fmt: skip
    async def send_batch(
        channel: str, req: TextBatch, s: Sender = Depends(auth.sender)
    ) -> JSONResponse:
        """Several text messages in order, queued in one transaction (all or none)."""
        items = [(m.text, m.lang, m.precedence) for m in req.messages]
        return JSONResponse(await chans.send_batch_async(s.user, channel, items, s.key))

    @r.get("/channels/{channel}/messages", response_model=Objects, **acts(Action.CHANNEL_READ))
    def messages(
        channel: str,
        after: int = Query(0, ge=0),
        limit: int = Query(1000, ge=1, le=10_000),
        who: User = Depends(auth.user),
    ) -> JSONResponse:
        msgs = chans.messages(who, channel, after, limit)
        return JSONResponse([m.to_json() | {"id": m.extra["id"]} for m in msgs])

    @r.get("/channels/{channel}/transcript", **acts(Action.CHANNEL_READ))
    def transcript(channel: str, who: User = Depends(auth.user)) -> dict[str, Any]:
        return chans.transcript(who, channel)

    # One route per step, not "/channels/{channel}/{step}": a pattern that broad would
    # capture every other router's POST /channels/{channel}/<word>.
    def step_route(step: str) -> Callable[..., dict[str, Any]]:
        def control(
            channel: str, req: ChannelControl | None = None, who: User = Depends(auth.user)
        ) -> dict[str, Any]:
            return chans.step(who, channel, step, req.reason if req else "")

        return control

    for step, action in STEPS.items():
        r.add_api_route(
            f"/channels/{{channel}}/{step}", step_route(step), methods=["POST"],
            name=f"channel_{step}", **acts(action),
        )  # fmt: skip

    @r.get("/inbox", response_model=Objects, **acts(Action.CHANNEL_READ))
    async def inbox(
        limit: int = Query(200, ge=1, le=10_000), who: User = Depends(auth.user)
    ) -> Response:
        return Response(await offload.run(chans.inbox_json, who, limit), media_type=JSON)

    @r.get("/status", response_model=Object, **acts(Action.STATION_READ))
    async def status(who: User = Depends(auth.user)) -> Response:
        return Response(await offload.run(desk.status_json, who), media_type=JSON)

    @r.get("/evidence", **acts(Action.EVIDENCE_READ))
    def evidence(who: User = Depends(auth.user)) -> list[dict[str, Any]]:
        return desk.evidence(who)

    # Tried first, in this order (stable otherwise): a request is matched against each route
    # in turn, twice over within its router (app/build.py, tests/test_routes.py).
    r.routes.sort(key=lambda route: BUSIEST.get(getattr(route, "path", ""), len(BUSIEST)))
    return r
