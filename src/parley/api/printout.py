"""The printable transcript: HTML for the browser's print view, and PDF (WeasyPrint).

    GET /api/v1/channels/{ch}/printout?format=html|pdf&from=&to=&lang=

`from`/`to` are Unix ms or a date-time as a person types it (domain/forms/inputs, in the
station's zone). The station service (station/printout.py) decides who may print what and bounds
how much; this module only renders its answer. The console's print page (web/pages/transcripts)
and `parley transcript print` use the same two functions.

Rules:
- The HTML is a template with autoescaping; every text from a message is data. Notice maps are
  embedded as <img> data URLs (an image never runs script), as on the channel page.
- The page names the fonts that cover Korean (Noto CJK, installed by scripts/setup) so a PDF
  shows Korean text as text (extractable), not boxes.
- The PDF is rendered from the same HTML with no network access: WeasyPrint is given a URL
  fetcher that refuses everything except the data: URLs the page itself carries.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from parley.api.actions import acts
from parley.api.auth import Auth
from parley.domain.forms import inputs
from parley.errors import Code, LocalError
from parley.station import printout as service
from parley.station.node import Station
from parley.station.notices import desk
from parley.station.roles import Action
from parley.station.users import User

HERE = Path(__file__).parent

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Transcript",
        "channel": "Channel",
        "members": "Members",
        "range": "Range",
        "start": "start",
        "end": "now",
        "printed": "Printed",
        "count": "Messages",
        "truncated": "Only the first {limit} messages of this range are printed: narrow the "
        "range to print the rest.",
        "messages": "Messages",
        "verified": "signature verified",
        "failed": "VERIFICATION FAILED",
        "withheld": "The stored bytes of this message fail the integrity check; its text is "
        "withheld.",
        "original": "original",
        "notice": "Notice",
        "written_in": "written in",
        "shown_in": "shown in",
        "late": "LATE",
        "map": "Map of the notice's areas",
        "ack": "Acknowledgement",
        "none": "No messages in this range.",
        "checkpoints": "Checkpoints",
        "chain": "Chain of",
        "size": "Size",
        "root": "Root (RFC 9162)",
        "time": "Time",
        "cosigned": "Countersigned by",
        "no_checkpoints": "No checkpoints yet.",
        "digest": "Transcript digest",
        "no_digest": "No digest: some stored messages fail the integrity check.",
        "digest_help": "Every member holding the same transcript computes the same digest; "
        "compare it by voice or on paper. `parley transcript verify` checks an export offline.",
    },
    "ko": {
        "title": "대화 기록",
        "channel": "채널",
        "members": "참여국",
        "range": "기간",
        "start": "처음",
        "end": "현재",
        "printed": "인쇄",
        "count": "메시지 수",
        "truncated": "이 기간의 처음 {limit}개 메시지만 인쇄되었습니다. 나머지는 기간을 좁혀 "
        "인쇄하십시오.",
        "messages": "메시지",
        "verified": "서명 확인됨",
        "failed": "검증 실패",
        "withheld": "이 메시지의 저장된 내용이 무결성 검사를 통과하지 못해 본문을 표시하지 "
        "않습니다.",
        "original": "원문",
        "notice": "통보",
        "written_in": "작성 언어",
        "shown_in": "표시 언어",
        "late": "기한 경과",
        "map": "통보 구역 지도",
        "ack": "접수 확인",
        "none": "이 기간에는 메시지가 없습니다.",
        "checkpoints": "체크포인트",
        "chain": "발신국",
        "size": "크기",
        "root": "루트 (RFC 9162)",
        "time": "시각",
        "cosigned": "연서",
        "no_checkpoints": "아직 체크포인트가 없습니다.",
        "digest": "기록 요약값",
        "no_digest": "요약값 없음: 저장된 메시지 일부가 무결성 검사를 통과하지 못했습니다.",
        "digest_help": "같은 기록을 가진 모든 참여국은 같은 요약값을 계산합니다. 음성이나 "
        "문서로 비교하십시오. `parley transcript verify`로 내보낸 파일을 오프라인에서 "
        "검증할 수 있습니다.",
    },
}

_env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["b64"] = lambda s: base64.b64encode(str(s).encode()).decode()


def render_html(data: dict[str, Any]) -> str:
    lang = data["lang"] if data["lang"] in LABELS else "en"
    return _env.get_template("printout.html").render(p=data, t=LABELS[lang], lang=lang)


def render_pdf(html: str) -> bytes:
    # Imported here: WeasyPrint loads Pango at import, and only printing needs it.
    from weasyprint import HTML
    from weasyprint.urls import URLFetcher

    # data: URLs only (the page's own maps): a printout never reaches the network or files.
    fetcher = URLFetcher(allowed_protocols={"data"})
    pdf = HTML(string=html, url_fetcher=fetcher).write_pdf()
    assert pdf is not None
    return bytes(pdf)


def moment(value: str | None, station: Station, end: bool = False) -> int | None:
    """`from`/`to` as Unix ms: digits are ms; a date alone is the start (or, for `to`, the end)
    of that day; otherwise a date and time, in the station's zone unless it names one."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if re.fullmatch(r"\d{1,15}", text):
        return int(text)
    tz = desk(station).zone()
    try:
        if re.fullmatch(r"\d{4}-\d{1,2}-\d{1,2}", text):
            ms = inputs.parse_time(text + " 00:00", tz)
            return ms + 86_400_000 - 1 if end else ms
        return inputs.parse_time(text, tz)
    except inputs.InputError:
        raise LocalError(
            Code.INVALID_REQUEST,
            f"{text[:40]!r} is not a time: Unix ms, 2030-03-01 or 2030-03-01 15:00 [zone]",
        ) from None


def printed(
    station: Station, who: User, channel: str, fmt: str, frm: str | None, to: str | None,
    lang: str | None,
) -> Response:  # fmt: skip
    data = service.printout(
        station, who, channel, moment(frm, station), moment(to, station, end=True), lang
    )
    html = render_html(data)
    name = f"{channel}-transcript"
    if fmt == "pdf":
        return Response(
            render_pdf(html),
            media_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="{name}.pdf"'},
        )
    return Response(
        html,
        media_type="text/html; charset=utf-8",
        # The page needs no script at all; its images are data: URLs.
        headers={
            "Content-Security-Policy": "default-src 'none'; img-src data:; "
            "style-src 'unsafe-inline'"
        },
    )


def router(station: Station, auth: Auth) -> APIRouter:
    r = APIRouter(prefix="/api/v1", tags=["transcripts"], dependencies=[Depends(auth.user)])

    @r.get(
        "/channels/{channel}/printout",
        response_class=Response,
        **acts(Action.TRANSCRIPT_EXPORT),
    )
    def printout(
        channel: str,
        format: Literal["html", "pdf"] = "html",
        frm: str | None = Query(None, alias="from", max_length=64),
        to: str | None = Query(None, max_length=64),
        lang: str | None = Query(None, max_length=16, pattern=r"^[a-z]{2,3}(-[A-Z]{2})?$"),
        who: User = Depends(auth.user),
    ) -> Response:
        return printed(station, who, channel, format, frm, to, lang)

    return r
