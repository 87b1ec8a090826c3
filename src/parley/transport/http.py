"""HTTP transport between stations: signed requests to a peer's peer API.

The peer API's paths (docs/protocol.md §Peer API):
    POST /peer/v1/envelopes   body: canonical envelopes, one per line (application/x-ndjson)
    GET  /peer/v1/ping        liveness and clock
    GET  /peer/v1/prekeys     the station's current signed prekeys
Every request carries a Parley-Auth header (protocol.request).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from parley.errors import Code, ParleyError
from parley.protocol.request import HEADER

PUSH_PATH = "/peer/v1/envelopes"
PING_PATH = "/peer/v1/ping"
PREKEYS_PATH = "/peer/v1/prekeys"
NDJSON = "application/x-ndjson"

Signer = Callable[[str, str, bytes], str]
"""signer(method, path, body) -> Parley-Auth header value."""


class TransportError(ParleyError):
    """The peer could not be reached or answered with an error."""

    status = 502


@dataclass(frozen=True)
class PushResponse:
    results: list[dict[str, Any]]
    receipts: list[dict[str, Any]]
    rtt_ms: int


class PeerClient:
    def __init__(self, signer: Signer, timeout_s: float = 10.0) -> None:
        self.signer = signer
        self.http = httpx.AsyncClient(timeout=timeout_s)

    async def close(self) -> None:
        await self.http.aclose()

    async def _request(self, method: str, base: str, path: str, body: bytes = b"") -> Any:
        headers = {HEADER: self.signer(method, path, body)}
        if body:
            headers["Content-Type"] = NDJSON
        start = time.perf_counter()
        try:
            resp = await self.http.request(
                method, base.rstrip("/") + path, content=body, headers=headers
            )
        except httpx.HTTPError as exc:
            raise TransportError(
                Code.STATION_UNREACHABLE, f"{base}: {type(exc).__name__}: {exc}"
            ) from exc
        rtt = int((time.perf_counter() - start) * 1000)
        if resp.status_code != 200:
            try:
                err = resp.json()
                code, msg = Code(err["code"]), err["message"]
            except (ValueError, KeyError, TypeError):
                code, msg = Code.STATION_UNREACHABLE, f"HTTP {resp.status_code}"
            raise TransportError(code, f"{base}: {msg}")
        return resp.json(), rtt

    async def push(self, base: str, raws: list[bytes]) -> PushResponse:
        data, rtt = await self._request("POST", base, PUSH_PATH, b"\n".join(raws))
        return PushResponse(data["results"], data["receipts"], rtt)

    async def ping(self, base: str) -> tuple[dict[str, Any], int]:
        data, rtt = await self._request("GET", base, PING_PATH)
        return data, rtt

    async def prekeys(self, base: str) -> list[dict[str, Any]]:
        data, _ = await self._request("GET", base, PREKEYS_PATH)
        return list(data["prekeys"])
