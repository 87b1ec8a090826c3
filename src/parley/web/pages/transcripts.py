"""A channel's transcript: digest, checkpoints and who countersigned them, export, and
verification (of this station's own export, or of a file someone hands the auditor).

Verification is protocol/verifier.verify_transcript, the same offline check as
`parley transcript verify` run at this station: every check is the file's own, except which
member keys to accept, which are this station's own and its known peers' (protocol/trust.py):
a file whose member keys are made up fails `member_keys`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from fastapi.responses import Response, StreamingResponse

from parley.api.printout import printed
from parley.errors import Code, LocalError
from parley.protocol import verifier
from parley.protocol.export import read_lines
from parley.station import checkpoints
from parley.station.roles import Action, allowed
from parley.web.console import Console
from parley.web.session import Viewer

MAX_UPLOAD = 64 * 1024 * 1024


def routes(c: Console) -> APIRouter:
    r = APIRouter()
    st = c.station

    def page(request: Request, v: Viewer, channel: str, **extra: Any) -> Response:
        held = checkpoints.checkpoints_of(st, v.user, channel)  # checks the user may read it
        state = st.guard(channel, v.user)
        return c.page(
            request, "transcript.html", v, ch=state, digest=st.transcript_digest(channel),
            checkpoints=held,
            # Which buttons to show; the services check again when one is used.
            may_export=allowed(v.user, Action.TRANSCRIPT_EXPORT),
            **({"report": None} | extra),
        )  # fmt: skip

    @r.get("/channels/{channel}/transcript")
    def show(channel: str, request: Request, v: Viewer = Depends(c.viewer)) -> Response:
        return page(request, v, channel)

    @r.get("/channels/{channel}/printout")
    def printout(
        channel: str,
        format: str = "html",
        frm: str | None = Query(None, alias="from", max_length=64),
        to: str | None = Query(None, max_length=64),
        v: Viewer = Depends(c.viewer),
    ) -> Response:
        """The printable transcript (api/printout.py renders it for the API as well)."""
        if format not in ("html", "pdf"):
            raise LocalError(Code.INVALID_REQUEST, "format is html or pdf")
        return printed(st, v.user, channel, format, frm, to, v.lang)

    @r.get("/channels/{channel}/transcript/export")
    def export(channel: str, v: Viewer = Depends(c.viewer)) -> Response:
        return StreamingResponse(
            checkpoints.export_transcript(st, v.user, channel),
            media_type="text/plain; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{channel}.transcript"'},
        )

    @r.post("/channels/{channel}/transcript/verify")
    def verify_own(channel: str, request: Request, v: Viewer = Depends(c.poster)) -> Response:
        """Export this station's transcript and check it as an auditor would, here and now."""
        data = b"".join(checkpoints.export_transcript(st, v.user, channel))
        report = verifier.verify_transcript(read_lines(data), trust=checkpoints.anchors(st))
        return page(request, v, channel, report=report.to_json(), source=v.words("tr.own_source"))

    @r.post("/channels/{channel}/transcript/upload")
    def verify_file(
        channel: str,
        request: Request,
        v: Viewer = Depends(c.poster),
        file: UploadFile = File(...),
    ) -> Response:
        st.guard(channel, v.user)
        data = file.file.read(MAX_UPLOAD + 1)
        if len(data) > MAX_UPLOAD:
            raise LocalError(Code.INVALID_REQUEST, f"the file is over {MAX_UPLOAD} bytes")
        report = verifier.verify_transcript(read_lines(data), trust=checkpoints.anchors(st))
        return page(request, v, channel, report=report.to_json(), source=file.filename or "")

    @r.post("/channels/{channel}/checkpoint")
    def checkpoint(channel: str, v: Viewer = Depends(c.poster)) -> Response:
        checkpoints.make(st, v.user, channel)
        return c.back(f"/channels/{channel}/transcript", "transcript.checkpointed")

    return r
