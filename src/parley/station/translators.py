"""Machine translation engines: one small interface, a few adapters, and none by default.

DESIGN.md §5: machine translation is pluggable and no model ships with Parley, so the product
works fully without one (`NoEngine`): people translate, and every translation is a signed record
(domain/translation.py). An engine only proposes text; the station records it as a `machine`
translation naming `engine.name`.

`engine.name` goes to every member of the channel inside a signed record, so it is the engine's
product name ("LibreTranslate", "Argos Translate …" with the model's own metadata) followed by an
optional `label` from the configuration (e.g. a version), and never the URL, host, port or
directory the station reaches the engine at: a label that looks like one is refused at start.

    TranslationEngine  name, languages() -> [(source, target)], translate(text, source, target)
    ├── NoEngine       the default: no pairs; translate() says no engine is configured
    ├── LibreTranslateEngine
    │                  any LibreTranslate-compatible server (POST /translate, GET /languages)
    └── ArgosEngine    a local Argos Translate package (unpacked .argosmodel) or a CTranslate2
                       model directory with its SentencePiece model; ctranslate2 and
                       sentencepiece are imported only when the model is loaded

Errors (all ParleyError, so the API and CLI show them as they show every other error):

    EngineError        code STATION_UNREACHABLE (the engine is down, timed out or answered
                       nonsense) or FORBIDDEN (it refused our API key); HTTP 502
    └── UnsupportedPair    code INVALID_REQUEST: this engine cannot translate this pair, the
                           text is refused (too long), or no engine is configured; HTTP 400

Configuration (`engine_from_config`), e.g. the `translation` object of a station's settings:

    {}  or  {"engine": "none"}
    {"engine": "libretranslate", "url": "http://127.0.0.1:5000", "api_key"?: "…", "timeout_s"?: 30,
     "label"?: "1.6.2"}                  (recorded as "LibreTranslate 1.6.2")
    {"engine": "argos", "model_dir": "/srv/models/translate-en_ko-1_1",
     "source"?: "en", "target"?: "ko",   (source/target: only for a bare CTranslate2 directory)
     "label"?: "…"}
"""

from __future__ import annotations

import importlib
import json
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

import httpx

from parley.domain.translation import names_an_address
from parley.errors import Code, LocalError, ParleyError
from parley.transport import clients
from parley.transport.base import TransportError
from parley.transport.http import read_capped

MAX_INPUT_CHARS = 64 * 1024  # the largest free text a channel carries (domain/channels.MAX_TEXT)
# A translation of the largest text, JSON-escaped, fits with room; a server answering more is
# refused as it streams, not held whole.
MAX_ANSWER_BYTES = 2 * 1024 * 1024


class EngineError(ParleyError):
    """The translation engine could not do what we asked; nothing was recorded."""

    status = 502


class UnsupportedPair(EngineError):
    """This engine does not translate this pair (or this text); a person can still translate."""

    status = 400


@runtime_checkable
class TranslationEngine(Protocol):
    @property
    def name(self) -> str:
        """Product name and, where known, version and model: recorded in `engine` of the record,
        so never an address (see `product_label`)."""
        ...

    def languages(self) -> list[tuple[str, str]]:
        """The (source, target) pairs this engine translates."""
        ...

    def translate(self, text: str, source: str, target: str) -> str: ...


def product_label(product: str, label: str | None = None) -> str:
    """The name a record carries: the product, then the configured label (if any); a label that
    names an address or path is refused (LocalError), since the record goes to the peers."""
    if label is None or not label.strip():
        return product
    if len(label) > 100:
        raise LocalError(Code.INVALID_REQUEST, "translation engine label: at most 100 characters")
    if names_an_address(label):
        raise LocalError(
            Code.INVALID_REQUEST,
            f"translation engine label {label!r} looks like an address or a path; it goes to "
            "the other stations in every machine translation record, so name the product or "
            "version instead",
        )
    return f"{product} {label.strip()}"


def _check_request(text: str, source: str, target: str) -> None:
    if not isinstance(text, str) or not text.strip():
        raise LocalError(Code.INVALID_REQUEST, "nothing to translate")
    if len(text) > MAX_INPUT_CHARS:
        raise UnsupportedPair(Code.INVALID_REQUEST, f"text longer than {MAX_INPUT_CHARS} chars")
    if source == target:
        raise UnsupportedPair(Code.INVALID_REQUEST, f"source and target are both {source!r}")


# --- none ----------------------------------------------------------------------------------


class NoEngine:
    """No machine translation: the product works, and translations come from people."""

    name = "none"

    def languages(self) -> list[tuple[str, str]]:
        return []

    def translate(self, text: str, source: str, target: str) -> str:
        raise UnsupportedPair(
            Code.INVALID_REQUEST,
            "no translation engine configured: machine translation is off; "
            "a translator can add a human translation",
        )


# --- LibreTranslate ------------------------------------------------------------------------


class LibreTranslateEngine:
    """A LibreTranslate-compatible HTTP server (https://libretranslate.com/docs)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 30.0,
        *,
        label: str | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        """`http`: the client to call the server with (transport/clients.py builds the default,
        with `timeout`; a test may hand in one over httpx.MockTransport)."""
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise LocalError(Code.INVALID_REQUEST, f"translation server URL {base_url!r}")
        self.base_url = base_url.rstrip("/")  # ours alone: never in `name`
        self.api_key = api_key
        self.name = product_label("LibreTranslate", label)
        self._http = http or clients.sync_client(timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LibreTranslateEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def languages(self) -> list[tuple[str, str]]:
        data = self._call("GET", "/languages")
        if not isinstance(data, list):
            raise self._nonsense("/languages did not return a list")
        codes = [x.get("code") for x in data if isinstance(x, dict)]
        if not all(isinstance(c, str) for c in codes):
            raise self._nonsense("/languages: an entry without a code")
        pairs: set[tuple[str, str]] = set()
        for entry in data:
            # Servers before LibreTranslate 1.6 list no `targets`: every language to every other.
            targets = entry.get("targets", codes)
            if not isinstance(targets, list):
                raise self._nonsense("/languages: targets is not a list")
            pairs.update((entry["code"], t) for t in targets if isinstance(t, str))
        return sorted(p for p in pairs if p[0] != p[1])

    def translate(self, text: str, source: str, target: str) -> str:
        _check_request(text, source, target)
        payload: dict[str, Any] = {"q": text, "source": source, "target": target, "format": "text"}
        if self.api_key:
            payload["api_key"] = self.api_key
        data = self._call("POST", "/translate", json=payload)
        out = data.get("translatedText") if isinstance(data, dict) else None
        if not isinstance(out, str):
            raise self._nonsense("/translate: no translatedText in the answer")
        return out

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        headers = {"Accept-Encoding": "identity"}  # so no small answer inflates past the cap
        try:
            with self._http.stream(method, self.base_url + path, headers=headers, **kw) as resp:
                raw = read_capped(resp, self.base_url, MAX_ANSWER_BYTES)
        except TransportError as exc:
            raise self._nonsense(exc.message) from exc
        except httpx.TimeoutException as exc:
            raise EngineError(
                Code.STATION_UNREACHABLE,
                f"the translation server at {self.base_url} did not answer in time",
            ) from exc
        except httpx.HTTPError as exc:
            raise EngineError(
                Code.STATION_UNREACHABLE,
                f"cannot reach the translation server at {self.base_url} ({exc}); "
                "is it running? A translator can still add a human translation",
            ) from exc
        if resp.status_code >= 400:
            said = _error_text(raw, resp.reason_phrase)
            if resp.status_code == 400:
                raise UnsupportedPair(Code.INVALID_REQUEST, f"translation server: {said}")
            if resp.status_code in (401, 403):
                raise EngineError(Code.FORBIDDEN, f"the translation server refused us: {said}")
            raise EngineError(
                Code.STATION_UNREACHABLE,
                f"translation server {self.base_url} answered HTTP {resp.status_code}: {said}",
            )
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise self._nonsense(f"{path} did not return JSON") from exc

    def _nonsense(self, what: str) -> EngineError:
        return EngineError(
            Code.STATION_UNREACHABLE, f"{self.base_url} is not a LibreTranslate server: {what}"
        )


def _error_text(raw: bytes, reason: str) -> str:
    try:
        data = json.loads(raw)
    except ValueError:
        return raw[:200].decode("utf-8", "replace") or reason
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return str(data["error"])[:500]
    return reason


# --- Argos Translate / CTranslate2 ---------------------------------------------------------

# Sentences are translated one by one (the models are trained on sentences); paragraphs keep
# their line breaks. Argos uses stanza or a model for this; punctuation is enough here.
MAX_DECODE_TOKENS = 1024
_SENTENCE_END = re.compile(r"(?<=[.!?。？！])\s+")


class ArgosEngine:
    """A local model: an unpacked Argos Translate package, or a CTranslate2 model directory.

    An Argos package directory holds `metadata.json` (from_code, to_code, package_version …),
    `model/` (a CTranslate2 model) and `sentencepiece.model`. A bare CTranslate2 directory holds
    `model.bin` and needs `sentencepiece.model` beside it (or in its parent) plus `source` and
    `target`. Nothing is loaded until the first translation.
    """

    def __init__(
        self,
        model_dir: str | Path,
        source: str | None = None,
        target: str | None = None,
        *,
        label: str | None = None,
        device: str = "cpu",
    ) -> None:
        root = Path(model_dir).expanduser()
        if not root.is_dir():
            raise LocalError(Code.INVALID_REQUEST, f"no translation model directory {root}")
        meta = _read_metadata(root)
        if (root / "model" / "model.bin").is_file():
            self.model_path = root / "model"
        elif (root / "model.bin").is_file():
            self.model_path = root
        else:
            raise LocalError(
                Code.INVALID_REQUEST,
                f"{root} holds no CTranslate2 model (model/model.bin or model.bin)",
            )
        sp = [p / "sentencepiece.model" for p in (root, self.model_path, root.parent)]
        found = next((p for p in sp if p.is_file()), None)
        if found is None:
            raise LocalError(Code.INVALID_REQUEST, f"{root} holds no sentencepiece.model")
        self.sp_path = found
        src = source or _meta_str(meta, "from_code")
        dst = target or _meta_str(meta, "to_code")
        if not src or not dst:
            raise LocalError(
                Code.INVALID_REQUEST,
                f"{root}: no metadata.json naming from_code/to_code; give source and target",
            )
        self.source: str = src
        self.target: str = dst
        # The package's own name and version, never the directory it was unpacked into.
        named = (_meta_str(meta, "name"), _meta_str(meta, "package_version"))
        model = [m for m in named if m and not names_an_address(m)]
        product = " ".join(["Argos Translate", *model, f"({self.source}→{self.target})"])
        self.name = product_label(product, label)
        self._target_prefix = _meta_str(meta, "target_prefix")
        self._device = device
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Any] | None = None

    def languages(self) -> list[tuple[str, str]]:
        return [(self.source, self.target)]

    def translate(self, text: str, source: str, target: str) -> str:
        _check_request(text, source, target)
        if (source, target) != (self.source, self.target):
            raise UnsupportedPair(
                Code.INVALID_REQUEST,
                f"{self.name} translates {self.source}→{self.target}, not {source}→{target}",
            )
        translator, sp = self._load()
        paragraphs = text.split("\n")
        out = []
        for paragraph in paragraphs:
            sentences = [s for s in _SENTENCE_END.split(paragraph.strip()) if s]
            if not sentences:
                out.append("")
                continue
            tokens = [sp.encode(s, out_type=str) for s in sentences]
            # A model that loops (a bad or hostile package) stops at twice the input, plus room.
            longest = max(len(t) for t in tokens)
            kw: dict[str, Any] = {
                "beam_size": 4,
                "replace_unknowns": True,
                "max_decoding_length": min(2 * longest + 16, MAX_DECODE_TOKENS),
            }
            if self._target_prefix:
                kw["target_prefix"] = [[self._target_prefix]] * len(tokens)
            try:
                with self._lock:  # one CTranslate2 call at a time per model
                    results = translator.translate_batch(tokens, **kw)
            except Exception as exc:  # the model's own error, whatever its type
                raise EngineError(
                    Code.STATION_UNREACHABLE, f"{self.name} failed to translate: {exc}"
                ) from exc
            done = []
            for r in results:
                pieces = list(r.hypotheses[0])
                if self._target_prefix and pieces[:1] == [self._target_prefix]:
                    pieces = pieces[1:]
                done.append(sp.decode(pieces))
            out.append(" ".join(done))
        return "\n".join(out)

    def load(self) -> None:
        """Load the model now rather than at the first translation: EngineError if it is
        corrupt, LocalError if the `translate` extra is not installed."""
        self._load()

    def _load(self) -> tuple[Any, Any]:
        with self._lock:
            if self._loaded is None:
                ct2 = _require("ctranslate2")
                spm = _require("sentencepiece")
                try:
                    translator = ct2.Translator(str(self.model_path), device=self._device)
                    sp = spm.SentencePieceProcessor(model_file=str(self.sp_path))
                except Exception as exc:  # a corrupt or incompatible model
                    raise EngineError(
                        Code.STATION_UNREACHABLE, f"cannot load {self.model_path}: {exc}"
                    ) from exc
                self._loaded = (translator, sp)
            return self._loaded


def _require(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise LocalError(
            Code.INVALID_REQUEST,
            f"the Argos engine needs the Python package {module!r}, which is not installed; "
            "install Parley's `translate` extra (pip install 'parley[translate]': "
            "ctranslate2 and sentencepiece) or configure no engine",
        ) from exc


def _read_metadata(root: Path) -> Mapping[str, Any]:
    path = root / "metadata.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LocalError(Code.INVALID_REQUEST, f"{path} is not readable JSON: {exc}") from exc
    return data if isinstance(data, dict) else {}


def _meta_str(meta: Mapping[str, Any], key: str) -> str | None:
    v = meta.get(key)
    return v if isinstance(v, str) and v else None


# --- configuration -------------------------------------------------------------------------


_SETTINGS: Mapping[str, tuple[frozenset[str], frozenset[str]]] = {  # kind: (required, optional)
    "none": (frozenset(), frozenset()),
    "libretranslate": (frozenset({"url"}), frozenset({"api_key", "timeout_s", "label"})),
    "argos": (frozenset({"model_dir"}), frozenset({"source", "target", "label"})),
}


def engine_from_config(cfg: Mapping[str, Any] | None) -> TranslationEngine:
    """The engine a station's configuration names; `NoEngine` when it names none."""
    settings = dict(cfg or {})
    kind = settings.pop("engine", None) or "none"
    if kind not in _SETTINGS:
        raise LocalError(
            Code.INVALID_REQUEST,
            f"unknown translation engine {kind!r}: one of {', '.join(_SETTINGS)}",
        )
    required, optional = _SETTINGS[kind]
    label = settings.get("label")
    if label is not None and not isinstance(label, str):
        raise LocalError(Code.INVALID_REQUEST, "translation engine label: a text")
    if missing := required - settings.keys():
        raise LocalError(
            Code.INVALID_REQUEST, f"translation engine {kind!r} needs {sorted(missing)}"
        )
    if unknown := settings.keys() - required - optional:
        raise LocalError(
            Code.INVALID_REQUEST, f"translation engine {kind!r}: unknown settings {sorted(unknown)}"
        )
    if kind == "libretranslate":
        try:
            timeout = float(settings.get("timeout_s", 30.0))
        except (TypeError, ValueError):
            raise LocalError(Code.INVALID_REQUEST, "timeout_s: a number of seconds") from None
        return LibreTranslateEngine(
            str(settings["url"]),
            api_key=settings.get("api_key"),
            timeout=timeout,
            label=label,
        )
    if kind == "argos":
        return ArgosEngine(
            str(settings["model_dir"]),
            source=settings.get("source"),
            target=settings.get("target"),
            label=label,
        )
    return NoEngine()
