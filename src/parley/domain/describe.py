"""A record of a channel as one line a person reads, in English or Korean: what the CLI's inbox
and history, and the printed transcript, show for records that are not a text message (a
proposal, a suspension, a check call, an acknowledgement …), never raw JSON.

Record kinds without a sentence of their own show as their type and their plain fields; nested
fields are left out (the console and `parley notice show` render those whole)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from parley.domain.forms import timefmt

When = Callable[[int], str]

_SENTENCES: dict[str, dict[str, str]] = {
    "en": {
        "channel.propose": "proposed the {kind} channel “{title}”",
        "channel.consent": "consented to the channel",
        "channel.suspend": "suspended the channel",
        "channel.reopen": "asked to reopen the channel",
        "channel.close": "closed the channel",
        "notice": "NOTICE {form} v{version} ({lang}), answer by {deadline}",
        "ack": "{by} answered {answer} to notice {ref}",
        "checkcall.call": "check call {call_id}, answer by {answer_by}",
        "checkcall.answer": "{by} answered check call {call_id}",
        "crisis.open": "opened the crisis “{title}” ({severity})",
        "crisis.status": "crisis {incident_id}: {status}",
        "translation": "translation ({lang}) of {ref}: {text}",
        "checkpoint": "checkpoint (the stations' own bookkeeping)",
        "checkpoint.cosign": "checkpoint countersignature (the stations' own bookkeeping)",
    },
    "ko": {
        "channel.propose": "{kind} 채널 “{title}” 제안",
        "channel.consent": "채널에 동의",
        "channel.suspend": "채널 일시 중지",
        "channel.reopen": "채널 재개 요청",
        "channel.close": "채널 종료",
        "notice": "통보 {form} v{version} ({lang}), 응답 기한 {deadline}",
        "ack": "{by}: 통보 {ref}에 {answer} 응답",
        "checkcall.call": "점검 통화 {call_id}, 응답 기한 {answer_by}",
        "checkcall.answer": "{by}: 점검 통화 {call_id}에 응답",
        "crisis.open": "위기 “{title}” 개시 ({severity})",
        "crisis.status": "위기 {incident_id}: {status}",
        "translation": "번역 ({lang}), 원문 {ref}: {text}",
        "checkpoint": "체크포인트 (스테이션 자체 기록)",
        "checkpoint.cosign": "체크포인트 연서 (스테이션 자체 기록)",
    },
}


def short(value: object, n: int = 10) -> str:
    text = str(value)
    return text if len(text) <= n else text[:n] + "…"


def line(body: Mapping[str, Any], lang: str = "en", when: When | None = None) -> str:
    """`body` as one line in `lang` (English for any language without sentences); `when` formats
    times (default: timefmt.when in that language). A text message is its text."""
    words = _SENTENCES.get(lang, _SENTENCES["en"])
    kind = str(body.get("type", ""))
    if kind == "text":
        return str(body.get("text", ""))
    at = when or (lambda ms: timefmt.when(ms, lang))
    fields: dict[str, object] = {k: v for k, v in body.items() if not isinstance(v, dict | list)}
    if "ref" in fields:
        fields["ref"] = short(fields["ref"])
    for k, out in (("deadline_ms", "deadline"), ("answer_by_ms", "answer_by")):
        v = body.get(k)
        fields[out] = at(v) if isinstance(v, int) and not isinstance(v, bool) else "-"
    template = words.get(kind)
    if template is not None:
        text = template.format_map(_Blank(fields))  # values are never read as templates
    else:
        skip = ("type", "reason")
        plain = [f"{k}={short(v, 40)}" for k, v in body.items() if k not in skip and k in fields]
        text = f"{kind}: {', '.join(plain)}" if plain else kind
    if kind == "ack" and body.get("text"):
        text += f": {body['text']}"
    if body.get("reason"):
        text += f" — {body['reason']}"
    return text


class _Blank(dict[str, object]):
    """Fields a body lacks read as "?", not a KeyError."""

    def __missing__(self, key: str) -> str:
        return "?"
