"""Operator API for checkpoints, transcript exports and message proofs (under /api/v1).

    GET  /channels/{ch}/checkpoints              checkpoints held, with their cosigners
    POST /channels/{ch}/checkpoint               checkpoint this station's chain now
    GET  /channels/{ch}/export                   the transcript file (text/plain, streamed)
    GET  /channels/{ch}/proof?sender=&seq=       a proof of one message (JSON)

Exports and proofs carry plaintext out of the station: they need the auditor or admin role, or,
on a back channel, being one of its named representatives (whom `station.guard` already checks:
nobody else sees a back channel at all). Both are written to the audit log.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from parley.api.auth import Auth
from parley.errors import Code, Forbidden, LocalError
from parley.protocol.encoding import b64e
from parley.protocol.identity import is_station_id
from parley.station import checkpoints
from parley.station.node import Station
from parley.station.users import User

READERS = ("auditor", "admin")


def router(station: Station, auth: Auth) -> APIRouter:
    r = APIRouter(prefix="/api/v1", tags=["transcripts"], dependencies=[Depends(auth.user)])

    def reader(channel: str, who: User) -> None:
        state = station.guard(channel, who)
        if state.kind != "backchannel" and not any(who.has(role) for role in READERS):
            raise Forbidden(Code.FORBIDDEN, "exports and proofs need the auditor or admin role")

    @r.get("/channels/{channel}/checkpoints")
    def listing(channel: str, who: User = Depends(auth.user)) -> list[dict[str, Any]]:
        station.guard(channel, who)
        return checkpoints.listing(station, channel)

    @r.post("/channels/{channel}/checkpoint")
    def checkpoint(
        channel: str, who: User = Depends(auth.role("operator", "admin"))
    ) -> dict[str, Any]:
        station.guard(channel, who)
        row = checkpoints.issue(station, channel, who.name)
        return {"channel": channel, "size": row.size, "root": b64e(row.root), "seq": row.seq}

    @r.get("/channels/{channel}/export", response_class=StreamingResponse)
    def export(channel: str, who: User = Depends(auth.user)) -> StreamingResponse:
        reader(channel, who)
        lines = checkpoints.export(station, channel, who.name)
        return StreamingResponse(
            lines,
            media_type="text/plain; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{channel}.transcript"'},
        )

    @r.get("/channels/{channel}/proof")
    def proof(
        channel: str,
        sender: str = Query(max_length=64),
        seq: int = Query(ge=1, le=2**53 - 1),
        who: User = Depends(auth.user),
    ) -> dict[str, Any]:
        reader(channel, who)
        if not is_station_id(sender):
            raise LocalError(Code.INVALID_REQUEST, "sender: expected a station id")
        return checkpoints.prove(station, channel, sender, seq, who.name)

    return r
