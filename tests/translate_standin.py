"""A small, real LibreTranslate-compatible server for tests: HTTP on 127.0.0.1, a phrase book.

It speaks the parts of the LibreTranslate API that Parley uses, with its answers and error
shapes (LibreTranslate `app.py`): GET /languages -> [{code, name, targets}]; POST /translate
with JSON or form {q, source, target, format?, api_key?} -> {"translatedText"}; errors as
{"error": message} with 400 (missing parameter, "zz is not supported", unsupported format),
403 (an API key the server does not know).

Translation is word by word from a tiny en↔ko dictionary (longest phrase first); unknown words
are kept as they are. Good enough to see that text went through an engine, and deterministic.

    with StandIn() as server:            # or StandIn(api_keys={"k1"}) to require a key
        engine = LibreTranslateEngine(server.url)
"""

from __future__ import annotations

import re
import socket
import threading
import time
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

EN_KO: dict[str, str] = {
    "hotline": "직통전화",
    "meeting": "회담",
    "talks": "회담",
    "launch": "발사",
    "exercise": "훈련",
    "notice": "통지",
    "round table": "원탁",
    "square table": "사각 탁자",
    "without preconditions": "전제조건 없이",
    "we": "우리는",
    "propose": "제안한다",
    "a": "",
    "the": "",
}
KO_EN: dict[str, str] = {ko: en for en, ko in EN_KO.items() if ko and en not in ("talks",)}
LANGUAGES = [
    {"code": "en", "name": "English", "targets": ["ko"]},
    {"code": "ko", "name": "Korean", "targets": ["en"]},
    # Listed, but with no model to or from it: LibreTranslate's "not available" error.
    {"code": "ja", "name": "Japanese", "targets": []},
]
BOOKS = {("en", "ko"): EN_KO, ("ko", "en"): KO_EN}
_WORD = re.compile(r"\w+|[^\w\s]+|\s+")


def phrasebook_translate(text: str, source: str, target: str) -> str:
    """Word by word, longest known phrase first; unknown words are kept."""
    book = BOOKS[(source, target)]
    longest = max(len(k.split()) for k in book)
    tokens = _WORD.findall(text)
    out: list[str] = []
    i = 0
    while i < len(tokens):
        if tokens[i].isspace() or not tokens[i][0].isalnum():
            out.append(tokens[i])
            i += 1
            continue
        for n in range(longest, 0, -1):
            words = tokens[i : i + 2 * n - 1 : 2]  # words at even offsets, spaces between
            gaps = tokens[i + 1 : i + 2 * n - 1 : 2]
            if len(words) < n or not all(g.isspace() for g in gaps):
                continue
            phrase = " ".join(w.lower() for w in words)
            if phrase in book:
                out.append(book[phrase])
                i += 2 * n - 1
                break
        else:
            out.append(tokens[i])
            i += 1
    return re.sub(r" {2,}", " ", "".join(out)).strip()


def build_app(api_keys: set[str] | None = None) -> FastAPI:
    app = FastAPI()
    codes = {lang["code"] for lang in LANGUAGES}

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    @app.get("/languages")
    def languages() -> list[dict[str, Any]]:
        return LANGUAGES

    @app.post("/translate")
    async def translate(request: Request) -> JSONResponse:
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                data = await request.json()
            except ValueError:
                return error(400, "Invalid JSON format")
            if not isinstance(data, dict):
                return error(400, "Invalid JSON format")
        else:
            data = dict(await request.form())
        if api_keys is not None and data.get("api_key") not in api_keys:
            return error(403, "Invalid API key")
        for name in ("q", "source", "target"):
            if not data.get(name):
                return error(400, f"Invalid request: missing {name} parameter")
        q, source, target = data["q"], data["source"], data["target"]
        for lang in (source, target):
            if lang not in codes:
                return error(400, f"{lang} is not supported")
        fmt = data.get("format") or "text"
        if fmt not in ("text", "html"):
            return error(400, f"{fmt} format is not supported")
        if (source, target) not in BOOKS:
            names = {lang["code"]: lang["name"] for lang in LANGUAGES}
            return error(
                400,
                f"{names[target]} ({target}) is not available as a target language "
                f"from {names[source]} ({source})",
            )
        if isinstance(q, list):
            return JSONResponse(
                {"translatedText": [phrasebook_translate(x, source, target) for x in q]}
            )
        return JSONResponse({"translatedText": phrasebook_translate(str(q), source, target)})

    return app


class StandIn:
    """The stand-in server, running in a background thread while the `with` block lasts. Its
    socket is bound here, at port 0, and handed to uvicorn: no other process can take the port
    between choosing it and serving on it."""

    def __init__(self, api_keys: set[str] | None = None) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(build_app(api_keys), log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> StandIn:
        self.thread.start()
        deadline = time.monotonic() + 60  # a liveness bound: a loaded machine starts it slowly
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the stand-in translation server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()
