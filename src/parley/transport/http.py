"""HTTP transport between stations: signed requests to a peer's peer API.

The peer API's paths (docs/protocol.md §9 and §18):
    POST /peer/v1/envelopes          push: canonical envelopes, one per line (application/x-ndjson)
    POST /peer/v1/pull               pull: our answer to the last pull (JSON); the response is a
                                     frame: a header line with receipts, then envelopes
    POST /peer/v1/relay              relay: a frame with header {"to": station}, then envelopes
    GET  /peer/v1/ping               liveness and clock
    GET  /peer/v1/prekeys            the station's current signed prekeys
    GET  /peer/v1/prekeys/{station}  the prekeys a relay holds for another station
Every request carries a Parley-Auth header (protocol.request).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from parley.errors import Code
from parley.protocol.bundle import join_frame
from parley.protocol.request import HEADER
from parley.transport import clients
from parley.transport.base import (
    MAX_RESPONSE_BYTES,
    Pong,
    PullResponse,
    PushResponse,
    TransportError,
    pong,
    prekey_list,
    pull_response,
    push_response,
)

PUSH_PATH = "/peer/v1/envelopes"
PULL_PATH = "/peer/v1/pull"
RELAY_PATH = "/peer/v1/relay"
PING_PATH = "/peer/v1/ping"
PREKEYS_PATH = "/peer/v1/prekeys"
NDJSON = "application/x-ndjson"
JSON = "application/json"
MAX_ERROR_BYTES = 64 * 1024  # an error answer is one small JSON object

Signer = Callable[[str, str, bytes], str]
"""signer(method, path, body) -> Parley-Auth header value."""


def _check_head(resp: httpx.Response, base: str, limit: int) -> None:
    if resp.headers.get("content-encoding", "identity").lower() != "identity":
        raise TransportError(Code.MALFORMED, f"{base}: the answer is compressed; we asked not")
    length = resp.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise TransportError(Code.OVERSIZED, f"{base}: the answer exceeds {limit} bytes")


def _add(data: bytearray, chunk: bytes, base: str, limit: int) -> None:
    data += chunk
    if len(data) > limit:
        raise TransportError(Code.OVERSIZED, f"{base}: the answer exceeds {limit} bytes")


def read_capped(resp: httpx.Response, base: str, limit: int) -> bytes:
    """A synchronous client's streamed answer (translation servers), refused as soon as it is
    known to exceed `limit` bytes: from its Content-Length before reading, else while it
    arrives. We ask for no compression (so no small answer inflates past the limit) and refuse
    one that comes compressed."""
    _check_head(resp, base, limit)
    data = bytearray()
    for chunk in resp.iter_raw():
        _add(data, chunk, base, limit)
    return bytes(data)


class HttpTransport:
    """The Transport over HTTP: each call one signed request (transport/base.py)."""

    def __init__(
        self,
        signer: Signer,
        timeout_s: float = 10.0,
        extra: Callable[[], dict[str, str]] = dict,
    ) -> None:
        self.signer = signer
        self.extra = extra  # more headers: the identity hand-over while its grace lasts
        self.total_s = 3 * timeout_s  # a whole exchange, however slowly the answer trickles
        self.http = clients.peer_client(timeout_s)

    async def close(self) -> None:
        await self.http.aclose()

    async def _send(
        self, method: str, base: str, path: str, body: bytes = b"", content_type: str = NDJSON
    ) -> tuple[bytes, int]:
        """The answer's body, cut at MAX_RESPONSE_BYTES (an error answer at MAX_ERROR_BYTES)
        as it arrives (transport/h1.py): a peer cannot make us hold more than that."""
        headers = {HEADER: self.signer(method, path, body), "Accept-Encoding": "identity"}
        if method == "POST":
            headers["Content-Length"] = str(len(body))
        headers.update(self.extra())
        if body:
            headers["Content-Type"] = content_type
        start = time.perf_counter()
        try:
            async with asyncio.timeout(self.total_s):
                answer = await self.http.request(
                    method, base.rstrip("/") + path, headers, body,
                    (MAX_RESPONSE_BYTES, MAX_ERROR_BYTES),
                )  # fmt: skip
        except TimeoutError as exc:
            raise TransportError(
                Code.STATION_UNREACHABLE, f"{base}: no whole answer within {self.total_s:g} s"
            ) from exc
        rtt = int((time.perf_counter() - start) * 1000)
        data = answer.body
        if answer.status != 200:
            try:
                err = json.loads(data)
                code, msg = Code(err["code"]), err["message"]
            except (ValueError, KeyError, TypeError):
                code, msg = Code.STATION_UNREACHABLE, f"HTTP {answer.status}"
            raise TransportError(code, f"{base}: {msg}")
        return data, rtt

    async def _request(
        self, method: str, base: str, path: str, body: bytes = b"", content_type: str = NDJSON
    ) -> tuple[Any, int]:
        data, rtt = await self._send(method, base, path, body, content_type)
        try:
            return json.loads(data), rtt
        except ValueError as exc:
            raise TransportError(Code.MALFORMED, f"{base}: the answer is not JSON") from exc

    async def push(self, addr: str, raws: list[bytes]) -> PushResponse:
        data, rtt = await self._request("POST", addr, PUSH_PATH, b"\n".join(raws))
        return push_response(data, addr, rtt)

    async def pull(self, addr: str, answer: dict[str, Any]) -> PullResponse:
        body = json.dumps(answer, separators=(",", ":")).encode()
        data, rtt = await self._send("POST", addr, PULL_PATH, body, JSON)
        return pull_response(data, addr, rtt)

    async def relay(self, addr: str, to: str, raws: list[bytes]) -> PushResponse:
        data, rtt = await self._request("POST", addr, RELAY_PATH, join_frame({"to": to}, raws))
        return push_response(data, addr, rtt)

    async def ping(self, addr: str) -> Pong:
        data, rtt = await self._request("GET", addr, PING_PATH)
        return pong(data, addr, rtt)

    async def prekeys(self, addr: str, station: str | None = None) -> list[dict[str, Any]]:
        path = PREKEYS_PATH if station is None else f"{PREKEYS_PATH}/{station}"
        data, _ = await self._request("GET", addr, path)
        return prekey_list(data, addr)
