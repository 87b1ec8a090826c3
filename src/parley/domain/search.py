"""What of a body a person can search for, and how a query is read. Pure.

Rules:
- A text message is found by its text, a control step by its reason, a proposal by its title, a
  translation by its translated text, an acknowledgement by its answer text. A notice is found by
  its rendering in every language of its form (so a launch notice written in fields is found by
  "launch" and by "발사") and by the free text of its fields. Checkpoints and cosignatures are the
  stations' bookkeeping: never indexed.
- Identifiers (types, references, digests, station ids) are not words a person looks for.
- A query is 1..MAX_QUERY characters, split at white space into at most MAX_TERMS terms; a result
  holds every term as a case-insensitive substring.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from parley.domain import notices
from parley.domain.forms import render
from parley.errors import Code, LocalError

MAX_QUERY = 200
MAX_TERMS = 8
MAX_INDEXED = 64 * 1024  # characters of one envelope's index text
BOOKKEEPING = frozenset({"checkpoint", "checkpoint.cosign"})
_NOT_WORDS = frozenset(
    {"type", "ref", "form", "form_digest", "members", "target", "supersedes", "call_id", "engine"}
)


def _strings(value: Any, key: str = "") -> Iterator[str]:
    if key in _NOT_WORDS:
        return
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _strings(v, str(k))
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v, key)


def _rendered(body: Mapping[str, Any]) -> list[str]:
    try:
        notice = notices.parse_notice(dict(body), notices.catalogue())
        return [render(notice.form, notice.fields, lang) for lang in notice.form.languages]
    except Exception:  # parse errors, or whatever a template raises on odd fields
        # A notice this station cannot render is still found by its free text; indexing must
        # never refuse an envelope the receive path accepted.
        return []


def text_of(body: Mapping[str, Any]) -> str:
    """The text a person may search `body` by ("" for nothing)."""
    kind = str(body.get("type", ""))
    if kind in BOOKKEEPING:
        return ""
    parts = _rendered(body) if kind == notices.TYPE else []
    parts += _strings(body)
    return "\n".join(p for p in parts if p.strip())[:MAX_INDEXED]


def terms(query: str) -> list[str]:
    """The terms of a query; invalid_request for an empty, too long or too wordy one."""
    if len(query) > MAX_QUERY:
        raise LocalError(
            Code.INVALID_REQUEST, f"a search is at most {MAX_QUERY} characters", field="q"
        )
    found = list(dict.fromkeys(query.split()))
    if not found:
        raise LocalError(Code.INVALID_REQUEST, "search for at least one word", field="q")
    if len(found) > MAX_TERMS:
        raise LocalError(Code.INVALID_REQUEST, f"a search has at most {MAX_TERMS} words", field="q")
    return found
