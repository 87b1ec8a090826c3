"""Translations: records and their fold, what a reader sees, and the engines that propose text."""

from __future__ import annotations

import contextlib
import http.server
import importlib.util
import json
import os
import re
import socketserver
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parley.cli.demo import free_port
from parley.domain import translation as tr
from parley.errors import Code, Conflict, LocalError, NotFound, RejectedInput
from parley.protocol.crypto import sha256
from parley.protocol.encoding import b64e
from parley.station.translators import (
    MAX_ANSWER_BYTES,
    ArgosEngine,
    EngineError,
    LibreTranslateEngine,
    NoEngine,
    TranslationEngine,
    UnsupportedPair,
    engine_from_config,
)
from tests.translate_standin import StandIn, phrasebook_translate

SEOUL, PYONGYANG = "station-seoul", "station-pyongyang"
ORIGINAL = "We propose a meeting without preconditions."


@dataclass(frozen=True)
class Ev:
    author: str
    envelope_hash: str
    ts_ms: int
    body: Mapping[str, Any]


def h(label: str) -> str:
    return b64e(sha256(label.encode()))


class Channel:
    """Records as they arrive, each with its own envelope hash and a later timestamp."""

    def __init__(self) -> None:
        self.state = tr.Translations()
        self.ts = 1_000

    def send(self, author: str, body: Mapping[str, Any], label: str | None = None) -> str:
        self.ts += 1_000
        ev_hash = h(label or f"envelope-{self.ts}")
        self.state = self.state.apply(Ev(author, ev_hash, self.ts, body))
        return ev_hash


@pytest.fixture
def chan() -> Channel:
    return Channel()


@pytest.fixture
def original(chan: Channel) -> str:
    return chan.send(SEOUL, {"type": "text", "text": ORIGINAL, "lang": "en"}, "original")


# --- the fold ------------------------------------------------------------------------------


def test_machine_then_human_correction_then_certification(chan: Channel, original: str) -> None:
    m = chan.send(
        PYONGYANG, tr.machine_body(original, "ko", "우리는 회담 제안", "LibreTranslate 1.6")
    )
    shown = chan.state.shown(original, "ko")
    assert (shown.original, shown.text, shown.label) == (
        ORIGINAL,
        "우리는 회담 제안",
        "기계 번역: LibreTranslate 1.6",
    )
    fixed = "우리는 전제조건 없는 회담을 제안합니다."
    c = chan.send(PYONGYANG, tr.correction_body(original, "ko", fixed, "Ri Son-gwon", m))
    assert chan.state.shown(original, "ko").label == "사람 번역, Ri Son-gwon 수정 (미인증)"
    cert = chan.send(PYONGYANG, tr.certification_body(original, "ko", fixed, "Kim Yong-chol", c))

    ko = chan.state.of(original)["ko"]
    assert [t.envelope_hash for t in ko.history] == [m, c, cert]
    assert [t.envelope_hash for t in ko.current] == [cert]
    assert [(t.kind, t.status) for t in chan.state.lineage(cert)] == [
        ("machine", "draft"),
        ("human", "corrected"),
        ("human", "certified"),
    ]
    assert ko.history[0].superseded_by == c and ko.history[1].superseded_by == cert
    shown = chan.state.shown(original, "ko")
    assert shown.original == ORIGINAL  # the original is never replaced
    assert shown.text == fixed
    assert shown.translation is not None and shown.translation.label("en") == (
        "human, certified by Kim Yong-chol"
    )
    assert chan.state.originals[original].text == ORIGINAL


def test_certifying_a_machine_translation_is_a_conflict(chan: Channel, original: str) -> None:
    m = chan.send(PYONGYANG, tr.machine_body(original, "ko", "회담", "argos"))
    before = chan.state
    with pytest.raises(Conflict, match="only human"):  # the operator is told before sending
        tr.check_move(chan.state, PYONGYANG, tr.certification_body(original, "ko", "회담", "K", m))
    with pytest.raises(Conflict) as err:
        chan.send(PYONGYANG, tr.certification_body(original, "ko", "회담", "Kim", m))
    assert err.value.code is Code.CONFLICT and "only human" in err.value.message
    assert chan.state is before


def test_a_machine_text_is_taken_over_by_a_correction_then_certified(
    chan: Channel, original: str
) -> None:
    m = chan.send(PYONGYANG, tr.machine_body(original, "ko", "좋은 번역", "argos"))
    c = chan.send(PYONGYANG, tr.correction_body(original, "ko", "좋은 번역", "Ri", m))
    chan.send(PYONGYANG, tr.certification_body(original, "ko", "좋은 번역", "Kim", c))
    assert chan.state.shown(original, "ko").label == "사람 번역, Kim 인증"


def test_a_certified_translation_can_be_corrected_and_certified_again(
    chan: Channel, original: str
) -> None:
    first = chan.send(PYONGYANG, tr.human_body(original, "ko", "초판", "Kim", certified=True))
    c = chan.send(SEOUL, tr.correction_body(original, "ko", "수정판", "Park", first))
    assert chan.state.shown(original, "ko").label == "사람 번역, Park 수정 (미인증)"
    again = chan.send(PYONGYANG, tr.certification_body(original, "ko", "수정판", "Kim", c))
    assert chan.state.of(original)["ko"].best == chan.state.records[again]
    with pytest.raises(Conflict, match="already certified"):
        chan.send(PYONGYANG, tr.certification_body(original, "ko", "수정판", "Lee", again))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        # a certification vouches for one exact text
        (lambda o, d: tr.certification_body(o, "ko", "다른 글", "Kim", d), "exact text"),
        # a correction of a human translation changes it
        (lambda o, d: tr.correction_body(o, "ko", "초안", "Kim", d), "must change the text"),
        # supersedes a translation of the same original and language
        (lambda o, d: tr.correction_body(o, "ja", "案", "Kim", d), "same original and language"),
        (lambda o, d: tr.correction_body(h("other"), "ko", "수정", "Kim", d), "same original"),
        (lambda o, d: tr.correction_body(o, "ko", "수정", "Kim", h("nowhere")), "no translation"),
        # the original's own language, and translations of translations
        (lambda o, d: tr.human_body(o, "en", "We propose", "Kim"), "already in en"),
        (lambda o, d: tr.human_body(d, "en", "draft", "Kim"), "not a translation"),
    ],
)
def test_illegal_moves_are_conflicts(chan: Channel, original: str, make: Any, message: str) -> None:
    draft = chan.send(PYONGYANG, tr.human_body(original, "ko", "초안", "Ri"))
    before = chan.state
    with pytest.raises(Conflict, match=message):
        chan.send(SEOUL, make(original, draft))
    assert chan.state is before


def test_a_translation_is_superseded_once(chan: Channel, original: str) -> None:
    draft = chan.send(PYONGYANG, tr.human_body(original, "ko", "초안", "Ri"))
    newer = chan.send(PYONGYANG, tr.correction_body(original, "ko", "수정 1", "Kim", draft))
    with pytest.raises(Conflict, match=f"already superseded by {newer}"):
        chan.send(SEOUL, tr.correction_body(original, "ko", "수정 2", "Park", draft))
    chan.send(SEOUL, tr.correction_body(original, "ko", "수정 2", "Park", newer))
    assert chan.state.shown(original, "ko").text == "수정 2"


def test_the_same_envelope_twice_is_a_no_op(chan: Channel, original: str) -> None:
    body = tr.machine_body(original, "ko", "회담", "argos")
    chan.send(PYONGYANG, body, "m")
    before = chan.state
    chan.send(PYONGYANG, body, "m")
    chan.send(SEOUL, {"type": "text", "text": "changed?", "lang": "en"}, "original")
    assert chan.state == before
    assert chan.state.originals[original].text == ORIGINAL


def test_other_records_pass_by_and_unknown_originals_are_accepted(chan: Channel) -> None:
    chan.send(SEOUL, {"type": "talks.propose", "negotiation_id": "n1", "terms": {}})
    notice = h("a notice envelope")  # translated free text of a record another fold reads
    chan.send(SEOUL, tr.human_body(notice, "ko", "설명", "Kim"))
    assert chan.state.of(notice)["ko"].best is not None
    with pytest.raises(NotFound, match="no text record"):
        chan.state.shown(notice, "ko")


# --- bodies --------------------------------------------------------------------------------


def good() -> dict[str, Any]:
    return {
        "type": "translation",
        "ref": h("original"),
        "lang": "ko",
        "text": "직통전화",
        "kind": "human",
        "translator": "Kim",
        "status": "draft",
    }


BAD_BODIES: list[tuple[str, dict[str, Any]]] = [
    ("machine with a translator", {"kind": "machine", "engine": "argos"}),
    ("machine without engine", {"kind": "machine", "translator": None}),
    ("certified machine", {"kind": "machine", "engine": "x", "status": "certified"}),
    ("human with an engine", {"engine": "argos"}),
    ("human without translator", {"translator": None}),
    ("draft that supersedes", {"supersedes": h("earlier")}),
    ("correction superseding nothing", {"status": "corrected"}),
    ("supersedes the original", {"status": "corrected", "supersedes": h("original")}),
    ("unknown status", {"status": "approved"}),
    ("unknown kind", {"kind": "crowd"}),
    ("ref not a hash", {"ref": "abc"}),
    ("lang not a tag", {"lang": "Korean"}),
    ("blank text", {"text": "   "}),
    ("text not a string", {"text": 5}),
    ("blank translator", {"translator": " "}),
    ("explicit null", {"supersedes": None, "keep_null": True}),
    ("unknown field", {"note": "hi"}),
    ("wrong type", {"type": "text"}),
    ("missing field", {"lang": None}),
    ("float", {"text": 1.5}),
]


@pytest.mark.parametrize(("why", "change"), BAD_BODIES, ids=[w for w, _ in BAD_BODIES])
def test_bad_bodies_are_rejected(why: str, change: dict[str, Any]) -> None:
    body = good()
    change = dict(change)
    keep_null = change.pop("keep_null", False)
    body.update(change)
    if not keep_null:
        body = {k: v for k, v in body.items() if v is not None}
    with pytest.raises(RejectedInput) as err:
        tr.parse_body(body)
    assert err.value.code is Code.BAD_BODY
    if body["type"] != "translation":
        return  # not a translation record: the fold leaves it to the fold it belongs to
    # and a peer's bad record leaves the fold unchanged
    state = tr.Translations()
    with pytest.raises(RejectedInput):
        state.apply(Ev(SEOUL, h("e"), 1, body))
    assert state.records == {}


def test_good_bodies_round_trip() -> None:
    for body in (
        good(),
        tr.machine_body(h("o"), "en-GB", "hotline", "LibreTranslate 1.6 (en→ko)"),
        tr.human_body(h("o"), "ko", "직통전화", "Kim", certified=True),
        tr.correction_body(h("o"), "ko", "직통 전화", "Kim", h("t")),
        tr.certification_body(h("o"), "ko", "직통 전화", "Kim", h("t")),
    ):
        assert tr.parse_body(body).model_dump(mode="json", exclude_none=True) == body


def test_builders_report_bad_values_as_local_errors() -> None:
    with pytest.raises(LocalError) as err:
        tr.machine_body("not-a-hash", "ko", "x", "argos")
    assert err.value.code is Code.INVALID_REQUEST
    with pytest.raises(LocalError):
        tr.human_body(h("o"), "ko", "", "Kim")


# --- what a reader sees --------------------------------------------------------------------


def test_display_always_shows_the_original(chan: Channel, original: str) -> None:
    nothing = tr.display(ORIGINAL, "en", [], "ko")
    assert (nothing.original, nothing.translation, nothing.label) == (ORIGINAL, None, None)
    chan.send(PYONGYANG, tr.human_body(original, "ko", "제안", "Kim", certified=True))
    own_language = chan.state.shown(original, "en")
    assert own_language.original == ORIGINAL and own_language.translation is None
    assert chan.state.shown(original, "en-US").translation is None
    assert chan.state.shown(original, "fr").translation is None  # nothing in French


def test_display_prefers_human_then_latest(chan: Channel, original: str) -> None:
    chan.send(PYONGYANG, tr.machine_body(original, "ko", "기계 1", "engine A"))
    chan.send(PYONGYANG, tr.machine_body(original, "ko", "기계 2", "engine B"))
    shown = chan.state.shown(original, "ko")
    assert (shown.text, shown.label) == ("기계 2", "기계 번역: engine B")
    chan.send(SEOUL, tr.human_body(original, "ko", "사람", "Park"))
    chan.send(PYONGYANG, tr.machine_body(original, "ko", "기계 3", "engine C"))
    ko = chan.state.of(original)["ko"]
    assert [t.text for t in ko.current] == ["사람", "기계 3", "기계 2", "기계 1"]
    shown = tr.display(ORIGINAL, "en", ko.history, "ko")
    assert shown.text == "사람" and shown.label == "사람 번역, Park 초안 (미인증)"
    assert ko.best is not None and ko.best.label() == "human, draft by Park"


def test_display_labels_in_english() -> None:
    t = tr.Translation(h("t"), SEOUL, 1, h("o"), "en", "hotline", "machine", "draft", "argos 1.9")
    shown = tr.display("직통전화", "ko", [t], "en")
    assert (shown.original, shown.text, shown.label) == (
        "직통전화",
        "hotline",
        "machine: argos 1.9",
    )


# --- a property: whatever arrives, the original stands and supersession is a set of chains ------


MOVES = st.lists(
    st.tuples(
        st.sampled_from(["machine", "draft", "certify_new", "correct", "certify"]),
        st.integers(0, 8),  # which earlier translation a correction/certification names
        st.sampled_from(["ko", "ja"]),
        st.sampled_from(["가", "나", "다"]),
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(MOVES)
def test_any_sequence_keeps_the_original_and_one_current_head_per_chain(
    moves: list[tuple[str, int, str, str]],
) -> None:
    chan = Channel()
    o = chan.send(SEOUL, {"type": "text", "text": ORIGINAL, "lang": "en"}, "original")
    sent: list[str] = []
    for move, pick, lang, text in moves:
        target = sent[pick % len(sent)] if sent else h("none")
        if move == "machine":
            body = tr.machine_body(o, lang, text, "argos")
        elif move in ("draft", "certify_new"):
            body = tr.human_body(o, lang, text, "Ri", certified=move == "certify_new")
        elif move == "correct":
            body = tr.correction_body(o, lang, text, "Park", target)
        else:
            body = tr.certification_body(o, lang, text, "Kim", target)
        with contextlib.suppress(Conflict):
            sent.append(chan.send(PYONGYANG, body))
    state = chan.state
    assert state.originals[o].text == ORIGINAL
    successors = [t.supersedes for t in state.records.values() if t.supersedes]
    assert len(successors) == len(set(successors))  # nothing is superseded twice
    for t in state.records.values():
        if t.status == "certified" and t.supersedes:
            assert state.records[t.supersedes].kind == "human"  # only human text is certified
        assert (t.superseded_by is None) == (t.envelope_hash not in successors)
    for lang, view in state.of(o).items():
        assert all(t.lang == lang and t.current for t in view.current)
        shown = state.shown(o, lang)
        assert shown.original == ORIGINAL and shown.translation == view.best


# --- engines -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[StandIn]:
    with StandIn() as s:
        yield s


def test_stand_in_phrase_book() -> None:
    assert phrasebook_translate("The hotline meeting", "en", "ko") == "직통전화 회담"
    assert phrasebook_translate("회담 at a round table", "ko", "en") == "meeting at a round table"
    assert phrasebook_translate("a round table", "en", "ko") == "원탁"


def test_libretranslate_translates_both_ways(server: StandIn) -> None:
    with LibreTranslateEngine(server.url) as engine:
        assert isinstance(engine, TranslationEngine)
        assert engine.translate("Reopen the hotline.", "en", "ko") == "Reopen 직통전화."
        assert engine.translate("직통전화 회담", "ko", "en") == "hotline meeting"
        # The name goes to the peers in every record: the product, never where we reach it.
        assert engine.name == "LibreTranslate"


def test_libretranslate_languages(server: StandIn) -> None:
    with LibreTranslateEngine(server.url) as engine:
        assert engine.languages() == [("en", "ko"), ("ko", "en")]


@pytest.mark.parametrize(
    ("source", "target", "said"),
    [
        ("en", "zz", "zz is not supported"),
        ("en", "ja", "Japanese (ja) is not available as a target language from English (en)"),
        ("en", "en", "both 'en'"),
    ],
)
def test_libretranslate_unsupported_pair(
    server: StandIn, source: str, target: str, said: str
) -> None:
    with LibreTranslateEngine(server.url) as engine, pytest.raises(UnsupportedPair) as err:
        engine.translate("hotline", source, target)
    assert err.value.code is Code.INVALID_REQUEST and err.value.status == 400
    assert said in err.value.message


def test_libretranslate_server_down_is_a_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with LibreTranslateEngine(url, timeout=2) as engine:
        for call in (lambda: engine.translate("hotline", "en", "ko"), engine.languages):
            with pytest.raises(EngineError) as err:
                call()
            assert err.value.code is Code.STATION_UNREACHABLE and err.value.status == 502
            assert url in err.value.message and "cannot reach" in err.value.message


def test_libretranslate_api_key() -> None:
    with StandIn(api_keys={"k-1"}) as s:
        with LibreTranslateEngine(s.url) as engine, pytest.raises(EngineError) as err:
            engine.translate("hotline", "en", "ko")
        assert err.value.code is Code.FORBIDDEN and "Invalid API key" in err.value.message
        with LibreTranslateEngine(s.url, api_key="k-1") as engine:
            assert engine.translate("hotline", "en", "ko") == "직통전화"


def test_libretranslate_refuses_a_server_that_is_not_one(server: StandIn) -> None:
    with LibreTranslateEngine(server.url + "/nowhere") as engine:
        with pytest.raises(EngineError) as err:
            engine.languages()
        assert err.value.code is Code.STATION_UNREACHABLE and "HTTP 404" in err.value.message
    with pytest.raises(LocalError):
        LibreTranslateEngine("ftp://example.org")


def test_machine_translation_end_to_end(server: StandIn, chan: Channel, original: str) -> None:
    with LibreTranslateEngine(server.url, label="stand-in 1.0") as engine:
        text = engine.translate(ORIGINAL, "en", "ko")
        chan.send(PYONGYANG, tr.machine_body(original, "ko", text, engine.name))
    shown = chan.state.shown(original, "ko")
    assert shown.original == ORIGINAL
    assert shown.text == "우리는 제안한다 회담 전제조건 없이."
    assert shown.translation is not None
    assert shown.translation.label("en") == "machine: LibreTranslate stand-in 1.0"


def test_no_engine_the_product_works_without_one(chan: Channel, original: str) -> None:
    engine = engine_from_config({})
    assert isinstance(engine, NoEngine) and isinstance(engine, TranslationEngine)
    assert engine.languages() == [] and engine.name == "none"
    with pytest.raises(UnsupportedPair) as err:
        engine.translate("hotline", "en", "ko")
    assert err.value.code is Code.INVALID_REQUEST
    assert "no translation engine configured" in err.value.message
    chan.send(PYONGYANG, tr.human_body(original, "ko", "회담 제안", "Kim", certified=True))
    assert chan.state.shown(original, "ko").label == "사람 번역, Kim 인증"


def test_engine_from_config(server: StandIn, tmp_path: Path) -> None:
    assert isinstance(engine_from_config({"engine": "none"}), NoEngine)
    lt = engine_from_config({"engine": "libretranslate", "url": server.url, "timeout_s": 5})
    assert isinstance(lt, LibreTranslateEngine)
    assert lt.translate("meeting", "en", "ko") == "회담"
    lt.close()
    bad: list[tuple[dict[str, Any], str]] = [
        ({"engine": "deepl"}, "unknown translation engine"),
        ({"engine": "libretranslate"}, "needs ['url']"),
        ({"engine": "libretranslate", "url": server.url, "colour": 1}, "unknown settings"),
        ({"engine": "libretranslate", "url": server.url, "timeout_s": "x"}, "timeout_s"),
        ({"engine": "argos", "model_dir": str(tmp_path / "missing")}, "no translation model"),
    ]
    for cfg, said in bad:
        with pytest.raises(LocalError, match=re.escape(said)):
            engine_from_config(cfg)


# --- Argos / CTranslate2 -------------------------------------------------------------------


def fake_package(root: Path, meta: dict[str, Any] | None) -> Path:
    (root / "model").mkdir(parents=True)
    (root / "model" / "model.bin").write_bytes(b"not a model")
    (root / "sentencepiece.model").write_bytes(b"not a model")
    if meta is not None:
        (root / "metadata.json").write_text(json.dumps(meta))
    return root


def test_argos_reads_package_metadata_without_loading(tmp_path: Path) -> None:
    meta = {"from_code": "en", "to_code": "ko", "package_version": "1.1", "name": "en_ko"}
    engine = ArgosEngine(fake_package(tmp_path / "p", meta))
    assert engine.languages() == [("en", "ko")]
    assert engine.name == "Argos Translate en_ko 1.1 (en→ko)"
    with pytest.raises(UnsupportedPair, match="translates en→ko, not ko→en"):
        engine.translate("직통전화", "ko", "en")


def test_argos_needs_a_model_and_languages(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(LocalError, match="no CTranslate2 model"):
        ArgosEngine(tmp_path / "empty")
    with pytest.raises(LocalError, match="give source and target"):
        ArgosEngine(fake_package(tmp_path / "bare", None))
    assert ArgosEngine(tmp_path / "bare", "ko", "en").languages() == [("ko", "en")]


@pytest.mark.skipif(
    importlib.util.find_spec("ctranslate2") is not None,
    reason="ctranslate2 is installed; this checks the message shown when it is not",
)
def test_argos_without_its_packages_says_what_to_install(tmp_path: Path) -> None:
    engine = ArgosEngine(fake_package(tmp_path / "p", {"from_code": "en", "to_code": "ko"}))
    with pytest.raises(LocalError, match="'ctranslate2', which is not installed"):
        engine.translate("hotline", "en", "ko")


ARGOS_MODEL = os.environ.get("PARLEY_ARGOS_MODEL")


@pytest.mark.skipif(
    not ARGOS_MODEL,
    reason="set PARLEY_ARGOS_MODEL to an unpacked Argos Translate package (e.g. en→ko) to run",
)
def test_argos_translates_with_a_real_model() -> None:
    assert ARGOS_MODEL is not None
    engine = ArgosEngine(ARGOS_MODEL)
    ((source, target),) = engine.languages()
    text = {"en": "The hotline is open.", "ko": "직통전화가 열려 있습니다."}.get(source, "Hello.")
    out = engine.translate(text, source, target)
    assert isinstance(out, str) and out.strip() and out != text
    two = engine.translate(f"{text}\n{text}", source, target)
    assert two.count("\n") == 1  # paragraphs keep their breaks


def test_argos_plumbing_with_stand_in_runtime(tmp_path: Path, monkeypatch: Any) -> None:
    """Sentences, paragraphs and the target prefix, with ctranslate2/sentencepiece stand-ins
    (the real ones run in test_argos_translates_with_a_real_model)."""
    import types

    calls: list[dict[str, Any]] = []

    class Processor:
        def __init__(self, model_file: str) -> None:
            assert model_file.endswith("sentencepiece.model")

        def encode(self, text: str, out_type: type) -> list[str]:
            return ["▁" + w for w in text.split()]

        def decode(self, pieces: list[str]) -> str:
            return "".join(pieces).replace("▁", " ").strip()

    class Translator:
        def __init__(self, path: str, device: str) -> None:
            assert path.endswith("model") and device == "cpu"

        def translate_batch(self, batch: list[list[str]], **kw: Any) -> list[Any]:
            calls.append({"batch": batch, **kw})
            book = {"▁hotline": "▁직통전화", "▁open.": "▁열림."}
            prefix = [kw["target_prefix"][0][0]] if "target_prefix" in kw else []
            return [
                types.SimpleNamespace(hypotheses=[prefix + [book.get(p, p) for p in tokens]])
                for tokens in batch
            ]

    monkeypatch.setitem(sys.modules, "ctranslate2", types.SimpleNamespace(Translator=Translator))
    monkeypatch.setitem(
        sys.modules, "sentencepiece", types.SimpleNamespace(SentencePieceProcessor=Processor)
    )
    meta = {"from_code": "en", "to_code": "ko", "target_prefix": "__ko__"}
    engine = ArgosEngine(fake_package(tmp_path / "p", meta))
    out = engine.translate("hotline open. hotline\n\nopen.", "en", "ko")
    assert out == "직통전화 열림. 직통전화\n\n열림."
    assert calls[0]["batch"] == [["▁hotline", "▁open."], ["▁hotline"]]  # one per sentence
    assert calls[0]["target_prefix"] == [["__ko__"]] * 2


class _Flood(http.server.BaseHTTPRequestHandler):
    """A 'translation server' whose answer never ends (no length: it closes when done) or
    declares a length far past the cap."""

    declare = False

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if self.declare:
            self.send_header("Content-Length", str(10**9))
        self.end_headers()
        chunk = b"[" + b" " * 65535
        with contextlib.suppress(OSError):  # the client hangs up once it has seen enough
            for _ in range(64):  # 4 MiB at most, bounded
                self.wfile.write(chunk)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("declare", [False, True])
def test_libretranslate_answers_are_read_up_to_a_cap(declare: bool) -> None:
    handler = type("Flood", (_Flood,), {"declare": declare})
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler) as srv:
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        try:
            url = f"http://127.0.0.1:{srv.server_address[1]}"
            with LibreTranslateEngine(url, timeout=5) as engine, pytest.raises(EngineError) as err:
                engine.languages()
        finally:
            srv.shutdown()
    assert err.value.code is Code.STATION_UNREACHABLE
    assert f"exceeds {MAX_ANSWER_BYTES} bytes" in err.value.message
