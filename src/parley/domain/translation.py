"""Translations of free text: the original always stands; translations are attached records.

DESIGN.md §5: free text is shown as the original plus translations, each marked human (certified
by a named translator) or machine (engine named). §6: the receiving side translates, and a chief
translator reviews and certifies. Forms are never machine-translated (they render per language).

Record (an envelope body on the channel of the original; `?` = optional, omitted when absent):

    {"type": "translation", "ref", "lang", "text", "kind", "engine"?, "translator"?, "status",
     "supersedes"?}

    ref         b64url envelope hash of the original (a `text` record, or any record with text)
    lang        the translation's language tag, e.g. "ko", "en", "en-GB"
    text        the translated text
    kind        "machine" (engine named) | "human" (translator named)
    engine      machine only: the engine's product name and, optionally, a label the station
                configured (version, model), e.g. "LibreTranslate 1.6.2 (en→ko)"; never the
                host, port, URL or path the station reaches the engine at
    translator  human only: the name of the translator, a user of the sending station who
                signs in their own name (station/talks_desk.py checks it is the acting user)
    status      "draft" | "corrected" | "certified"
    supersedes  b64url envelope hash of the earlier translation record this one replaces

Body rules (a violation is RejectedInput(BAD_BODY); the record says something impossible):
 B1. A machine record names `engine` and no `translator`, is a `draft` and supersedes nothing:
     a machine never corrects or certifies.
 B2. A human record names `translator` and no `engine`. A human `draft` supersedes nothing; a
     `corrected` record must supersede; a `certified` record may (certifying an earlier text) or
     may not (a translation written and certified in one step).
 B3. Strict JSON types, sizes, no unknown fields, normal form (absent fields omitted, never null).

Fold rules (`Translations`; a well-formed record the state does not allow is Conflict(CONFLICT)
and leaves the state unchanged; the same envelope twice is a no-op):
 F1. The original is never replaced: `text` records are kept as they came; a translation is
     another record beside it. A translation into the original's own language, or a translation
     of a translation, is a Conflict.
 F2. `supersedes` must name a translation of the same original into the same language that has
     not already been superseded (a second correction of the same text is a Conflict: correct the
     newer one). The superseded record stays in the history.
 F3. A correction replaces any current translation — machine, human draft, corrected or
     certified (a certified text with a mistake found later is corrected, then certified again).
     Correcting a human translation must change its text (to agree with it, certify it);
     taking over a machine translation word for word is allowed (it becomes a human translation).
 F4. Only human translations can be certified: a certification that supersedes a machine record is
     a Conflict. It must carry the exact text it certifies (the superseded record's text), so a
     certification vouches for one text; a certified record cannot be certified again.
 F5. A translation of an original the fold has not seen is accepted (the original may be a record
     another fold interprets); F1's language check applies once the original is known.

What a reader sees (`display`): the original always, plus the best current translation into the
reader's language: certified > corrected > human draft > machine; among equals the latest
(ts_ms, then envelope hash, so every member picks the same one).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Final, Literal, TypeAlias

from pydantic import AfterValidator, StrictStr, StringConstraints, TypeAdapter, model_validator

from parley.domain.channels import MAX_TEXT
from parley.domain.talks import (
    Event,
    Frozen,
    Hash,
    Label,
    Probe,
    build_record,
    validate_record,
)
from parley.errors import Code, Conflict, LocalError, NotFound, RejectedInput
from parley.protocol.crypto import HASH_BYTES
from parley.protocol.encoding import b64e

TYPE: Final = "translation"
ORIGINAL_TYPE: Final = "text"  # domain/channels.text_body: {"type": "text", "text", "lang"}

Kind: TypeAlias = Literal["machine", "human"]
Status: TypeAlias = Literal["draft", "corrected", "certified"]

# How good a translation is for display, best last. Nothing else ranks translations.
RANK: Final[Mapping[tuple[Kind, Status], int]] = {
    ("machine", "draft"): 0,
    ("human", "draft"): 1,
    ("human", "corrected"): 2,
    ("human", "certified"): 3,
}


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be blank")
    return text


# BCP 47 shape, loosely: a 2-3 letter primary language, then subtags ("ko", "en-GB", "zh-Hant").
LangTag = Annotated[
    StrictStr, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{1,8}){0,3}$", max_length=16)
]
LongText = Annotated[
    StrictStr, StringConstraints(min_length=1, max_length=MAX_TEXT), AfterValidator(_not_blank)
]


class TranslationRecord(Frozen):
    type: Literal["translation"] = "translation"
    ref: Hash
    lang: LangTag
    text: LongText
    kind: Kind
    engine: Label | None = None
    translator: Label | None = None
    status: Status
    supersedes: Hash | None = None

    @model_validator(mode="after")
    def _consistent(self) -> TranslationRecord:
        if self.kind == "machine":
            if self.engine is None or self.translator is not None:
                raise ValueError("a machine translation names its engine and no translator")
            if self.status != "draft" or self.supersedes is not None:
                raise ValueError("a machine translation is a draft and supersedes nothing")
        else:
            if self.translator is None or self.engine is not None:
                raise ValueError("a human translation names its translator and no engine")
            if self.status == "draft" and self.supersedes is not None:
                raise ValueError("a draft supersedes nothing (send a correction)")
            if self.status == "corrected" and self.supersedes is None:
                raise ValueError("a correction names the translation it supersedes")
        if self.supersedes is not None and self.supersedes == self.ref:
            raise ValueError("supersedes names a translation, not the original")
        return self


_ADAPTER: TypeAdapter[TranslationRecord] = TypeAdapter(TranslationRecord)


def parse_body(body: Mapping[str, Any]) -> TranslationRecord:
    """Validate a received translation body; RejectedInput(BAD_BODY) says what is wrong."""
    record: TranslationRecord = validate_record(_ADAPTER, body)
    return record


# --- engine labels ------------------------------------------------------------------------

# What in an engine label would tell the other side where this station's engine runs: a URL, a
# path, an IPv4 or IPv6 address, host:port, or a dotted host name ("mt.internal", "localhost").
# Version numbers ("1.6.2", "v1.6", "en_ko-1_1") are not addresses.
_ADDRESS = re.compile(
    r"""
      [a-z][a-z0-9+.-]*://                   # a URL
    | (?:^|[\s(])[/~\\]                   # a path
    | \b\d{1,3}(?:\.\d{1,3}){3}\b           # IPv4
    | [0-9a-f]{0,4}:[0-9a-f]{0,4}:[0-9a-f:]*  # IPv6
    | [\w.-]:\d{1,5}\b                     # host:port
    | \b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z][a-z0-9-]*[a-z]\b   # a host name with a domain
    | \blocalhost\b
    | @
    """,
    re.IGNORECASE | re.VERBOSE,
)


def names_an_address(label: str) -> bool:
    """True when `label` holds something that looks like a network address or a path."""
    return _ADDRESS.search(label) is not None


# --- builders (our operator's records; bad values are LocalError(INVALID_REQUEST)) ---------


def machine_body(ref: str, lang: str, text: str, engine: str) -> dict[str, Any]:
    """A machine translation of the original `ref` into `lang`, produced by `engine` (a
    product label: one that names an address is refused, as the record goes to the peers)."""
    if names_an_address(engine):
        raise LocalError(
            Code.INVALID_REQUEST,
            f"engine: {engine!r} looks like an address; a translation record names the "
            "engine's product, never where this station reaches it",
        )
    return build_record(
        _ADAPTER,
        TranslationRecord,
        ref=ref,
        lang=lang,
        text=text,
        kind="machine",
        engine=engine,
        status="draft",
    )


def human_body(
    ref: str, lang: str, text: str, translator: str, *, certified: bool = False
) -> dict[str, Any]:
    """A new human translation: a draft, or written and certified by `translator` at once."""
    return build_record(
        _ADAPTER,
        TranslationRecord,
        ref=ref,
        lang=lang,
        text=text,
        kind="human",
        translator=translator,
        status="certified" if certified else "draft",
    )


def correction_body(
    ref: str, lang: str, text: str, translator: str, supersedes: str
) -> dict[str, Any]:
    """`translator` replaces the translation `supersedes` with a corrected `text`."""
    return _superseding("corrected", ref, lang, text, translator, supersedes)


def certification_body(
    ref: str, lang: str, text: str, translator: str, supersedes: str
) -> dict[str, Any]:
    """`translator` certifies the human translation `supersedes`, whose text is `text`."""
    return _superseding("certified", ref, lang, text, translator, supersedes)


def _superseding(
    status: str, ref: str, lang: str, text: str, translator: str, supersedes: str
) -> dict[str, Any]:
    return build_record(
        _ADAPTER,
        TranslationRecord,
        ref=ref,
        lang=lang,
        text=text,
        kind="human",
        translator=translator,
        status=status,
        supersedes=supersedes,
    )


# --- the fold ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Original:
    envelope_hash: str
    author: str
    ts_ms: int
    text: str
    lang: str


@dataclass(frozen=True)
class Translation:
    """One accepted translation record, with where it came from and what replaced it."""

    envelope_hash: str
    author: str  # the station that sent it
    ts_ms: int
    ref: str
    lang: str
    text: str
    kind: Kind
    status: Status
    engine: str | None = None
    translator: str | None = None
    supersedes: str | None = None
    superseded_by: str | None = None

    @property
    def current(self) -> bool:
        return self.superseded_by is None

    @property
    def rank(self) -> int:
        return RANK[(self.kind, self.status)]

    def label(self, reader_lang: str = "en") -> str:
        """How the translation is marked for a reader: who or what made it, and its standing."""
        ko = reader_lang.split("-")[0] == "ko"
        if self.kind == "machine":
            return f"기계 번역: {self.engine}" if ko else f"machine: {self.engine}"
        who = self.translator
        if self.status == "certified":
            return f"사람 번역, {who} 인증" if ko else f"human, certified by {who}"
        if self.status == "corrected":
            return f"사람 번역, {who} 수정 (미인증)" if ko else f"human, corrected by {who}"
        return f"사람 번역, {who} 초안 (미인증)" if ko else f"human, draft by {who}"


@dataclass(frozen=True)
class LanguageTranslations:
    """The translations of one original into one language."""

    lang: str
    current: tuple[Translation, ...]  # not superseded, best first
    history: tuple[Translation, ...]  # every accepted record, in transcript order

    @property
    def best(self) -> Translation | None:
        return self.current[0] if self.current else None


def _best_first(items: Iterable[Translation]) -> tuple[Translation, ...]:
    return tuple(sorted(items, key=lambda t: (t.rank, t.ts_ms, t.envelope_hash), reverse=True))


@dataclass(frozen=True)
class Translations:
    """Originals and their translations on one channel, folded in transcript order."""

    originals: Mapping[str, Original] = field(default_factory=dict)
    records: Mapping[str, Translation] = field(default_factory=dict)  # in transcript order

    def apply(self, event: Event) -> Translations:
        return apply(self, event)

    def of(self, ref: str) -> dict[str, LanguageTranslations]:
        """For the original `ref`: per language, the current translations and the history."""
        by_lang: dict[str, list[Translation]] = {}
        for t in self.records.values():
            if t.ref == ref:
                by_lang.setdefault(t.lang, []).append(t)
        return {
            lang: LanguageTranslations(lang, _best_first(t for t in ts if t.current), tuple(ts))
            for lang, ts in sorted(by_lang.items())
        }

    def lineage(self, envelope_hash: str) -> tuple[Translation, ...]:
        """The chain that led to one translation, oldest first (e.g. machine → corrected →
        certified)."""
        chain: list[Translation] = []
        at: str | None = envelope_hash
        while at is not None and at in self.records:
            chain.append(self.records[at])
            at = self.records[at].supersedes
        return tuple(reversed(chain))

    def shown(self, ref: str, reader_lang: str) -> Shown:
        """What a reader of `reader_lang` sees for the original `ref` (a text record)."""
        original = self.originals.get(ref)
        if original is None:
            raise NotFound(Code.NOT_FOUND, f"no text record {ref} on this channel")
        mine = (t for t in self.records.values() if t.ref == ref)
        return display(original.text, original.lang, mine, reader_lang)


def apply(state: Translations, event: Event) -> Translations:
    """The state after `event`; other record types are not this fold's business and pass by."""
    body = event.body
    kind = body.get("type") if isinstance(body, Mapping) else None
    if kind == ORIGINAL_TYPE:
        return _original(state, event)
    if kind != TYPE:
        return state
    if event.envelope_hash in state.records:
        return state  # delivery is at least once
    record = parse_body(body)
    new = Translation(
        envelope_hash=event.envelope_hash,
        author=event.author,
        ts_ms=event.ts_ms,
        ref=record.ref,
        lang=record.lang,
        text=record.text,
        kind=record.kind,
        status=record.status,
        engine=record.engine,
        translator=record.translator,
        supersedes=record.supersedes,
    )
    _check_target(state, new)
    records = dict(state.records)
    if new.supersedes is not None:
        records[new.supersedes] = replace(
            _check_supersedes(state, new), superseded_by=new.envelope_hash
        )
    records[new.envelope_hash] = new
    return replace(state, records=records)


def check_move(state: Translations, author: str, body: Mapping[str, Any]) -> None:
    """Raise what `apply` would raise if `author` sent `body` now (for the operator, pre-send)."""
    apply(state, Probe(author, b64e(bytes(HASH_BYTES)), 0, body))


def _original(state: Translations, event: Event) -> Translations:
    if event.envelope_hash in state.originals:
        return state
    text, lang = event.body.get("text"), event.body.get("lang")
    if not isinstance(text, str) or not isinstance(lang, str):
        raise RejectedInput(Code.BAD_BODY, "text: expected text and lang")
    original = Original(event.envelope_hash, event.author, event.ts_ms, text, lang)
    return replace(state, originals={**state.originals, event.envelope_hash: original})


def _check_target(state: Translations, new: Translation) -> None:
    if new.ref in state.records:
        raise Conflict(Code.CONFLICT, "translate the original, not a translation of it")
    original = state.originals.get(new.ref)
    if original is not None and _primary(original.lang) == _primary(new.lang):
        raise Conflict(Code.CONFLICT, f"the original is already in {original.lang}")


def _check_supersedes(state: Translations, new: Translation) -> Translation:
    assert new.supersedes is not None
    old = state.records.get(new.supersedes)
    if old is None:
        raise Conflict(Code.CONFLICT, f"no translation {new.supersedes} to supersede")
    if old.ref != new.ref or old.lang != new.lang:
        raise Conflict(
            Code.CONFLICT, "a translation supersedes one of the same original and language"
        )
    if old.superseded_by is not None:
        raise Conflict(
            Code.CONFLICT,
            f"translation {old.envelope_hash} was already superseded by "
            f"{old.superseded_by}; work on the newer one",
        )
    if new.status == "certified":
        if old.kind == "machine":
            raise Conflict(
                Code.CONFLICT,
                "only human translations can be certified; correct the machine translation first",
            )
        if old.status == "certified":
            raise Conflict(Code.CONFLICT, "this translation is already certified")
        if old.text != new.text:
            raise Conflict(
                Code.CONFLICT,
                "a certification carries the exact text it certifies; "
                "to change the text, send a correction",
            )
    elif old.kind == "human" and old.text == new.text:  # a correction
        raise Conflict(Code.CONFLICT, "a correction must change the text; to agree, certify it")
    return old


def _primary(lang: str) -> str:
    return lang.split("-")[0].lower()


# --- what a reader sees --------------------------------------------------------------------


@dataclass(frozen=True)
class Shown:
    """The original, always; and the best translation into the reader's language, if any."""

    original: str
    original_lang: str
    translation: Translation | None = None
    label: str | None = None  # e.g. "human, certified by Kim" / "machine: LibreTranslate"

    @property
    def text(self) -> str | None:
        return self.translation.text if self.translation is not None else None


def display(
    original_text: str,
    original_lang: str,
    translations: Iterable[Translation],
    reader_lang: str,
) -> Shown:
    """What a reader of `reader_lang` sees: the original always, plus the best current
    translation of it into `reader_lang` (none when the reader reads the original's language).

    `translations` are those of this original (e.g. `LanguageTranslations.history`); superseded
    ones are skipped. A translation into the reader's exact tag wins over a sibling ("en-GB" over
    "en-US" for an "en-GB" reader) only among translations of equal standing.
    """
    if _primary(reader_lang) == _primary(original_lang):
        return Shown(original_text, original_lang)
    candidates = [
        t for t in translations if t.current and _primary(t.lang) == _primary(reader_lang)
    ]
    if not candidates:
        return Shown(original_text, original_lang)
    best = max(candidates, key=lambda t: (t.rank, t.lang == reader_lang, t.ts_ms, t.envelope_hash))
    return Shown(original_text, original_lang, best, best.label(reader_lang))
