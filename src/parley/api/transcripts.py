"""Operator API for checkpoints, transcript exports and message proofs (under /api/v1).

    GET  /channels/{ch}/checkpoints              checkpoints held, with their cosigners
    POST /channels/{ch}/checkpoint               checkpoint this station's chain now
    GET  /channels/{ch}/export                   the transcript file (text/plain, streamed)
    GET  /channels/{ch}/proof?sender=&seq=       a proof of one message (JSON)

Exports and proofs carry plaintext out of the station: station/checkpoints.py checks the role
table (`transcript.export`) and, on a back channel, that the caller is one of its named
representatives (nobody else sees a back channel at all). Both are written to the audit log.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import StreamingResponse

from parley.api.actions import acts
from parley.api.auth import Auth
from parley.station import checkpoints, tiles
from parley.station.node import Station
from parley.station.roles import Action
from parley.station.users import User


def router(station: Station, auth: Auth) -> APIRouter:
    r = APIRouter(prefix="/api/v1", tags=["transcripts"], dependencies=[Depends(auth.user)])

    @r.get("/channels/{channel}/checkpoints", **acts(Action.CHANNEL_READ))
    def listing(channel: str, who: User = Depends(auth.user)) -> list[dict[str, Any]]:
        return checkpoints.checkpoints_of(station, who, channel)

    # C2SP tlog-tiles, read-only (station/tiles.py): prefix /channels/{channel}/chains/{sender}.
    @r.get("/channels/{channel}/chains/{sender}/checkpoint", **acts(Action.CHANNEL_READ))
    def log_checkpoint(channel: str, sender: str, who: User = Depends(auth.user)) -> Response:
        text = tiles.checkpoint(station, who, channel, sender)
        return Response(
            text, headers={"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"}
        )

    @r.get("/channels/{channel}/chains/{sender}/tile/{path:path}", **acts(Action.CHANNEL_READ))
    def log_tile(channel: str, sender: str, path: str, who: User = Depends(auth.user)) -> Response:
        return Response(
            tiles.tile(station, who, channel, sender, path),
            headers={"Content-Type": "application/octet-stream", "Cache-Control": "no-store"},
        )

    @r.post("/channels/{channel}/checkpoint", **acts(Action.CHECKPOINT_MAKE))
    def checkpoint(channel: str, who: User = Depends(auth.user)) -> dict[str, Any]:
        return checkpoints.make(station, who, channel)

    @r.get(
        "/channels/{channel}/export",
        response_class=StreamingResponse,
        **acts(Action.TRANSCRIPT_EXPORT),
    )
    def export(channel: str, who: User = Depends(auth.user)) -> StreamingResponse:
        lines = checkpoints.export_transcript(station, who, channel)
        return StreamingResponse(
            lines,
            media_type="text/plain; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{channel}.transcript"'},
        )

    @r.get("/channels/{channel}/proof", **acts(Action.TRANSCRIPT_EXPORT))
    def proof(
        channel: str,
        sender: str = Query(max_length=64),
        seq: int = Query(ge=1, le=2**53 - 1),
        who: User = Depends(auth.user),
    ) -> dict[str, Any]:
        return checkpoints.proof(station, who, channel, sender, seq)

    return r
