"""The transport seam: one small interface for moving envelopes between stations, whatever the
medium (like httpx's `_transports/base.py`).

    Transport        the calling side: push, pull, relay, ping, prekeys (docs/protocol.md §9, §18)
      HttpTransport    transport/http.py: signed requests to a peer's peer API
      MemoryTransport  transport/memory.py: stations joined in one process (tests, simulations)
      BundleTransport  transport/bundle.py: signed bundle files dropped in a shared folder
    PeerService      the answering side: what a station does with each call once it knows who
                     calls (station/peering.py); the peer API and the in-memory transport both
                     hand it the same parsed input, so both paths run the same checks.

Every failure to reach a peer, and every error answer, is one `TransportError` with a stable code;
`rtt_ms` is the round trip as the caller measured it (0 where there is none, as for bundles).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from parley.errors import Code, ParleyError
from parley.protocol.bundle import split_frame
from parley.protocol.schema import require_fields

MAX_RESPONSE_BYTES = 32 * 1024 * 1024
MAX_FRAME_ENVELOPES = 512  # envelopes in one push, pull answer or relay request
MAX_CHAIN_RECEIPTS = 1024  # receipts in one push, relay or pull answer (one per chain)


class TransportError(ParleyError):
    """The peer could not be reached or answered with an error."""

    status = 502


@dataclass(frozen=True)
class PushResponse:
    results: list[dict[str, Any]]
    receipts: list[dict[str, Any]]
    rtt_ms: int


@dataclass(frozen=True)
class PullResponse:
    station: str
    receipts: list[dict[str, Any]]
    more: bool
    envelopes: list[bytes]
    rtt_ms: int


@dataclass(frozen=True)
class Pong:
    station: str
    ts: int
    rtt_ms: int


class Transport(Protocol):
    """Moves envelopes to and from the station at `addr` (an address from its invitation)."""

    async def push(self, addr: str, raws: list[bytes]) -> PushResponse:
        """Our envelopes for the station at `addr`; its results and receipts."""
        ...

    async def pull(self, addr: str, answer: dict[str, Any]) -> PullResponse:
        """What `addr` holds for us; `answer` is our answer to the previous pull."""
        ...

    async def relay(self, addr: str, to: str, raws: list[bytes]) -> PushResponse:
        """Ask the relay at `addr` to carry `raws` (our envelopes) to station `to`."""
        ...

    async def ping(self, addr: str) -> Pong: ...

    async def prekeys(self, addr: str, station: str | None = None) -> list[dict[str, Any]]:
        """The station's own prekeys, or (with `station`) those a relay holds for another."""
        ...

    async def close(self) -> None: ...


class PeerService(Protocol):
    """A station's answers to its peers, the caller already authenticated as `caller`. Answers
    are the wire's JSON objects (and the pull frame's bytes), as docs/protocol.md §9 gives them."""

    def push(self, caller: str, raws: list[bytes]) -> dict[str, Any]: ...

    def pull(self, caller: str, body: bytes) -> bytes: ...

    def relay(self, caller: str, to: str, raws: list[bytes]) -> dict[str, Any]: ...

    def ping(self, caller: str) -> dict[str, Any]: ...

    def prekeys(self, caller: str | None, station: str | None) -> dict[str, Any]: ...


def push_response(obj: Any, where: str, rtt_ms: int) -> PushResponse:
    """A push or relay answer, checked for shape and counts: a peer's answer is input like any
    other. An honest one holds a result per envelope sent and a receipt per chain; beyond
    MAX_FRAME_ENVELOPES results or MAX_CHAIN_RECEIPTS receipts it is refused before any is
    read (each receipt costs a signature check)."""
    results = obj.get("results") if isinstance(obj, dict) else None
    receipts = obj.get("receipts") if isinstance(obj, dict) else None
    if not isinstance(results, list) or not isinstance(receipts, list):
        raise TransportError(Code.MALFORMED, f"{where}: the answer has no results and receipts")
    if len(results) > MAX_FRAME_ENVELOPES or len(receipts) > MAX_CHAIN_RECEIPTS:
        raise TransportError(
            Code.OVERSIZED,
            f"{where}: the answer holds {len(results)} results and {len(receipts)} receipts;"
            f" at most {MAX_FRAME_ENVELOPES} and {MAX_CHAIN_RECEIPTS}",
        )
    if not all(isinstance(r, dict) for r in results):
        raise TransportError(Code.MALFORMED, f"{where}: the answer has no results and receipts")
    return PushResponse(results, receipts, rtt_ms)


def pull_response(data: bytes, where: str, rtt_ms: int) -> PullResponse:
    """A pull answer: a frame whose header carries the peer's receipts and whether it has more."""
    try:
        header, lines = split_frame(
            data, "pull", header_limit=MAX_RESPONSE_BYTES, max_envelopes=MAX_FRAME_ENVELOPES
        )
        obj = require_fields(header, "pull", {"station", "receipts", "more"})
    except ParleyError as exc:
        raise TransportError(exc.code, f"{where}: pull answer: {exc.message}") from exc
    if not isinstance(obj["receipts"], list) or not isinstance(obj["more"], bool):
        raise TransportError(Code.MALFORMED, f"{where}: pull answer header is malformed")
    return PullResponse(str(obj["station"]), obj["receipts"], obj["more"], lines, rtt_ms)


def pong(obj: Any, where: str, rtt_ms: int) -> Pong:
    if not isinstance(obj, dict) or not isinstance(obj.get("station"), str):
        raise TransportError(Code.MALFORMED, f"{where}: the ping answer names no station")
    ts = obj.get("ts")
    return Pong(obj["station"], ts if type(ts) is int else 0, rtt_ms)


def prekey_list(obj: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(obj, dict) or not isinstance(obj.get("prekeys"), list):
        raise TransportError(Code.MALFORMED, f"{where}: the answer has no prekeys")
    return [r for r in obj["prekeys"] if isinstance(r, dict)]
