"""A fault-injecting HTTP proxy for the station-to-station path (tests only).

Each station's invitation advertises the proxy's address instead of its own, so every push, ping
and prekey fetch a peer makes passes through here. Per request, with a seeded random generator:

- cut:        while `cut` is set, connections are closed at once (a partition);
- delay:      the request waits 0..max_delay_ms before it is forwarded;
- drop:       the request is closed unanswered without being forwarded;
- lose reply: the request is forwarded and the connection closed before the answer (the sender
              cannot know it arrived: the hardest case for exactly-once);
- duplicate:  the request is forwarded twice, the copy a little later;
- reorder:    an earlier request is forwarded again after this one, so older envelopes arrive
              after newer ones (and a lost batch may arrive after its retry).

Requests are signed with a timestamp (docs/protocol.md §9.1); copies are sent within the skew
window, so the station sees them as the network would deliver them.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass

import httpx

from tests.net import LIVENESS_S

HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass
class Faults:
    max_delay_ms: int = 50
    p_drop: float = 0.05
    p_lose_reply: float = 0.05
    p_duplicate: float = 0.05
    p_reorder: float = 0.05


class FaultProxy:
    def __init__(self, upstream: str, seed: int, faults: Faults | None = None) -> None:
        self.upstream = upstream
        self.faults = faults or Faults()
        self.enabled = False
        self.cut = False
        self.counts: Counter[str] = Counter()
        self.rng = random.Random(seed)
        self.history: list[tuple[str, str, dict[str, str], bytes]] = []
        self._copies: set[asyncio.Future[None]] = set()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        assert self._ready.wait(LIVENESS_S), "the fault proxy did not start"
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(LIVENESS_S)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self.client = httpx.AsyncClient(base_url=self.upstream, timeout=10)
        server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
            size = int(next((v for k, v in headers.items() if k.lower() == "content-length"), 0))
            body = await reader.readexactly(size) if size else b""
            headers = {k: v for k, v in headers.items() if k.lower() not in HOP}
            reply = await self._handle(method, path, headers, body)
            if reply is not None:
                status, rheaders, content = reply
                out = [f"HTTP/1.1 {status} X"]
                out += [f"{k}: {v}" for k, v in rheaders.items() if k.lower() not in HOP]
                out += [f"Content-Length: {len(content)}", "Connection: close", "", ""]
                writer.write("\r\n".join(out).encode("latin-1") + content)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError, ValueError, httpx.HTTPError):
            self.counts["upstream_error"] += 1
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        r = await self.client.request(method, path, headers=headers, content=body)
        return r.status_code, dict(r.headers), r.content

    async def _later(self, req: tuple[str, str, dict[str, str], bytes], delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        with contextlib.suppress(httpx.HTTPError):
            await self._forward(*req)

    def _spawn(self, coro: Coroutine[None, None, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._copies.add(task)
        task.add_done_callback(self._copies.discard)

    async def _handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes] | None:
        if not self.enabled:
            return await self._forward(method, path, headers, body)
        if self.cut:
            self.counts["cut"] += 1
            return None
        f, rng, req = self.faults, self.rng, (method, path, headers, body)
        await asyncio.sleep(rng.uniform(0, f.max_delay_ms) / 1000)
        roll = rng.random()
        if roll < f.p_drop:
            self.counts["drop"] += 1
            return None
        if method == "POST":
            self.history = [*self.history[-31:], req]
            if rng.random() < f.p_duplicate:
                self.counts["duplicate"] += 1
                self._spawn(self._later(req, rng.uniform(0, 0.3)))
            if len(self.history) > 2 and rng.random() < f.p_reorder:
                self.counts["reorder"] += 1
                old = self.history[rng.randrange(len(self.history) - 1)]
                self._spawn(self._later(old, rng.uniform(0, 0.2)))
        reply = await self._forward(method, path, headers, body)
        if roll < f.p_drop + f.p_lose_reply:
            self.counts["lose_reply"] += 1
            return None
        self.counts["forwarded"] += 1
        return reply
