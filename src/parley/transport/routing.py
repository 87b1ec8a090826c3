"""One Transport over several media, chosen by the address's scheme: `file://…` goes to the
bundle folder (transport/bundle.py), every other address to the default (HTTP). The dispatcher
then needs no idea of which medium a peer is on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from parley.transport.base import Pong, PullResponse, PushResponse, Transport


class ByScheme:
    def __init__(self, default: Transport, by_prefix: Mapping[str, Transport]) -> None:
        self.default = default
        self.by_prefix = dict(by_prefix)

    def _for(self, addr: str) -> Transport:
        return next((t for p, t in self.by_prefix.items() if addr.startswith(p)), self.default)

    async def push(self, addr: str, raws: list[bytes]) -> PushResponse:
        return await self._for(addr).push(addr, raws)

    async def pull(self, addr: str, answer: dict[str, Any]) -> PullResponse:
        return await self._for(addr).pull(addr, answer)

    async def relay(self, addr: str, to: str, raws: list[bytes]) -> PushResponse:
        return await self._for(addr).relay(addr, to, raws)

    async def ping(self, addr: str) -> Pong:
        return await self._for(addr).ping(addr)

    async def prekeys(self, addr: str, station: str | None = None) -> list[dict[str, Any]]:
        return await self._for(addr).prekeys(addr, station)

    async def close(self) -> None:
        for t in [self.default, *self.by_prefix.values()]:
            await t.close()
