"""Stations joined in one process (like h11's tests/helpers.py): the Transport without sockets.

`MemoryNet` maps addresses to each station's `PeerService`; `net.transport(caller)` is the
Transport one station uses, calling the other's service directly as `caller`. Everything above
the wire is the real thing (dispatcher, receive path, receipts), and answers go through the same
shape checks as HTTP answers (transport/base.py), serialised to JSON and back so nothing is
shared between the two stations but bytes.

Faults: `net.cut(addr)` makes an address unreachable (as a killed peer) until `net.mend(addr)`.
The caller is trusted to be who it says: this transport is for tests and simulations, never
for a network.
"""

from __future__ import annotations

import json
from typing import Any

from parley.errors import Code, ParleyError
from parley.transport.base import (
    PeerService,
    Pong,
    PullResponse,
    PushResponse,
    TransportError,
    pong,
    prekey_list,
    pull_response,
    push_response,
)


def _wire(obj: Any) -> Any:
    return json.loads(json.dumps(obj))


class MemoryNet:
    def __init__(self) -> None:
        self.services: dict[str, PeerService] = {}
        self.down: set[str] = set()
        self.calls = 0

    def attach(self, addr: str, service: PeerService) -> None:
        self.services[addr] = service

    def cut(self, addr: str) -> None:
        self.down.add(addr)

    def mend(self, addr: str) -> None:
        self.down.discard(addr)

    def transport(self, caller: str) -> MemoryTransport:
        return MemoryTransport(self, caller)

    def service(self, addr: str) -> PeerService:
        self.calls += 1
        svc = self.services.get(addr)
        if svc is None or addr in self.down:
            raise TransportError(Code.STATION_UNREACHABLE, f"{addr}: nobody answers")
        return svc


class MemoryTransport:
    def __init__(self, net: MemoryNet, caller: str) -> None:
        self.net = net
        self.caller = caller

    async def push(self, addr: str, raws: list[bytes]) -> PushResponse:
        svc = self.net.service(addr)
        return push_response(_wire(_answer(addr, lambda: svc.push(self.caller, raws))), addr, 0)

    async def pull(self, addr: str, answer: dict[str, Any]) -> PullResponse:
        svc = self.net.service(addr)
        body = json.dumps(answer).encode()
        return pull_response(_answer(addr, lambda: svc.pull(self.caller, body)), addr, 0)

    async def relay(self, addr: str, to: str, raws: list[bytes]) -> PushResponse:
        svc = self.net.service(addr)
        obj = _answer(addr, lambda: svc.relay(self.caller, to, raws))
        return push_response(_wire(obj), addr, 0)

    async def ping(self, addr: str) -> Pong:
        svc = self.net.service(addr)
        return pong(_wire(_answer(addr, lambda: svc.ping(self.caller))), addr, 0)

    async def prekeys(self, addr: str, station: str | None = None) -> list[dict[str, Any]]:
        svc = self.net.service(addr)
        return prekey_list(_wire(_answer(addr, lambda: svc.prekeys(self.caller, station))), addr)

    async def close(self) -> None:
        return None


def _answer(addr: str, call: Any) -> Any:
    """The service's answer; its refusal becomes the TransportError an HTTP error answer would."""
    try:
        return call()
    except ParleyError as exc:
        raise TransportError(exc.code, f"{addr}: {exc.message}") from exc
