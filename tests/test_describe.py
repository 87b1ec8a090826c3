"""domain/describe.py: every record kind a channel may carry reads as a sentence or as its type
and plain fields, in English and Korean; never raw JSON, never an error."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parley.domain import describe, records

T = 1_790_000_000_000


@pytest.mark.parametrize(
    ("body", "en", "ko"),
    [
        ({"type": "text", "text": "hello", "lang": "en"}, "hello", "hello"),
        (
            {"type": "channel.propose", "kind": "hotline", "title": "Military hotline"},
            "proposed the hotline channel “Military hotline”",
            "hotline 채널 “Military hotline” 제안",
        ),
        (
            {"type": "channel.suspend", "reason": "maintenance"},
            "suspended the channel — maintenance",
            "채널 일시 중지 — maintenance",
        ),
        (
            {"type": "ack", "by": "kim", "answer": "received", "ref": "a" * 43, "text": "noted"},
            "kim answered received to notice aaaaaaaaaa…: noted",
            "kim: 통보 aaaaaaaaaa…에 received 응답: noted",
        ),
        (
            {"type": "checkcall.call", "call_id": "c1", "due_ms": T, "answer_by_ms": T},
            "check call c1, answer by 2026-09-21 14:13:20 UTC",
            "점검 통화 c1, 응답 기한 2026년 9월 21일 14:13:20 UTC",
        ),
        (
            {"type": "roadmap.agree", "step_id": "1", "terms": {"nested": True}},
            "roadmap.agree: step_id=1",
            "roadmap.agree: step_id=1",
        ),
    ],
)
def test_records_read_as_sentences(body: dict[str, Any], en: str, ko: str) -> None:
    assert describe.line(body, "en") == en
    assert describe.line(body, "ko") == ko


def test_a_missing_field_reads_as_a_question_mark() -> None:
    assert describe.line({"type": "checkcall.answer"}) == "? answered check call ?"


@given(
    st.sampled_from(sorted(records.CHECKERS)),
    st.dictionaries(st.text(max_size=8), st.none() | st.integers() | st.text(max_size=20)),
    st.sampled_from(["en", "ko", "fr"]),
)
def test_any_body_of_any_kind_reads_as_one_line(kind: str, fields: dict, lang: str) -> None:
    line = describe.line({**fields, "type": kind}, lang)
    assert isinstance(line, str) and (kind == "text" or line)
