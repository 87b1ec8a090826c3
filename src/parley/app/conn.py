"""Connections no client can hold forever: uvicorn's HTTP protocols with deadlines and a cap.

uvicorn times out only an idle keep-alive connection, and only until its first byte: a client
that opens a connection and sends nothing, or a request head one byte every few seconds
(slowloris), or a body that way, holds a socket and a file descriptor for ever. `Guarded` gives
each connection one deadline per phase, measured from the start of the phase and not reset by
arriving bytes:

    phase   from                                            deadline
    head    the connection, or the first byte after a       header_timeout_ms
            keep-alive pause
    body    the end of the request head                     body_timeout_ms
    idle    the end of a response                           keepalive_timeout_ms (uvicorn's own)
    app     the request is in; the station is answering     none

A connection past its deadline is closed. At most `max_connections` are open (the factory lowers
it to what the process's file limit allows, so accept() never runs out of descriptors): a
connection beyond it closes the one that has waited longest for a request head (head or idle
phase) or, if every connection is inside a request, is closed itself. A slow client therefore
delays nobody: it gives way to new connections, oldest first.

`quiet_accept_errors` rate-limits the event loop's log line for a failed accept() (and other
connection errors), which otherwise repeats for as long as the cause lasts.

Both of uvicorn's HTTP/1.1 protocols are guarded the same way: httptools (llhttp, C; the
default, chosen by `http_parser` in station.json) and h11 (pure Python, about a third of the
per-request cost of a small answer; kept as a choice, and as the A/B baseline of bench/api.py).
The request head is bounded to `limits.header_bytes` with either.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import resource
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import h11
import uvicorn
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools not installed: server_config falls back to h11
    HttpToolsProtocol = H11Protocol  # type: ignore[misc,assignment]

from parley.station.config import Config as StationConfig
from parley.station.config import Limits

log = logging.getLogger("parley.station")

# asyncio accepts up to BACKLOG connections in one go before any of them reaches
# connection_made (where the cap is applied), so the cap leaves room for two such bursts besides
# the descriptors the station needs for its database, peers and logs.
BACKLOG = 128
CORK_BYTES = 64 * 1024  # the largest write held back to leave with the next one (_Corked)
FD_RESERVE = 128 + 2 * BACKLOG


class _Deadlines:
    """The phases, deadlines and cap of the module docstring, for either HTTP protocol class.
    A subclass says which phase the client's side is in (`_theirs`)."""

    header_timeout_s: float
    body_timeout_s: float
    max_connections: int
    waiting: OrderedDict[_Deadlines, None]  # head or idle phase, longest waiting first
    # Provided by the uvicorn protocol class this is mixed into.
    connections: set[Any]
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    cycle: Any
    timeout_keep_alive_task: asyncio.TimerHandle | None

    def _guard_init(self) -> None:
        self._phase = ""
        self._deadline: asyncio.TimerHandle | None = None

    def _theirs(self) -> str:
        """The client's side: "idle" (between requests), "head", "body" or "done"."""
        raise NotImplementedError

    def _guard_connection_made(self) -> None:
        if len(self.connections) > self.max_connections:
            victim = next((c for c in self.waiting if c is not self), None)
            if victim is None:
                self._close()
                return
            victim._close()
        self._enter("head")

    def _guard_response_complete(self) -> None:
        if self.transport.is_closing():
            return
        if self._theirs() == "idle" and self.timeout_keep_alive_task is not None:
            self._enter("idle")  # uvicorn's keep-alive timer runs now
        else:
            self._follow()  # a pipelined request, or a body still arriving

    def _follow(self) -> None:
        if self.transport.is_closing():
            return
        theirs = self._theirs()
        if theirs in ("idle", "head"):
            if self._phase != "head":
                self._enter("head")  # the first byte of a new request head
        elif theirs == "body":
            if self._phase != "body":
                self._enter("body")
        elif self._phase != "app":
            self._enter("app")

    def _enter(self, phase: str) -> None:
        self._phase = phase
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self.waiting.pop(self, None)
        if phase in ("head", "idle"):
            self.waiting[self] = None
        wait = {"head": self.header_timeout_s, "body": self.body_timeout_s}.get(phase)
        if wait is not None:
            self._deadline = self.loop.call_later(wait, self._expire)

    def _expire(self) -> None:
        self._deadline = None
        if self._phase == "body" and self.cycle is not None and not self.cycle.response_complete:
            # The app is waiting for the rest of the body: it reads a disconnect and stops.
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self._close()

    def _close(self) -> None:
        self._enter("")
        if not self.transport.is_closing():
            self.transport.close()


def head_size(target: bytes, headers: Any) -> int:
    """The size of a request head as both parsers measure it against `header_bytes`."""
    return len(target) + sum(len(n) + len(v) + 4 for n, v in headers)


class _BoundedHead(h11.Connection):
    """h11 bounds only a head still arriving (its buffer); this also refuses a finished head
    beyond the bound that came in one read."""

    header_bytes = 0

    def next_event(self) -> Any:
        event = super().next_event()
        if isinstance(event, h11.Request) and (
            head_size(event.target, event.headers) > self.header_bytes
        ):
            raise h11.RemoteProtocolError("request head too large", error_status_hint=431)
        return event


class GuardedH11(_Deadlines, H11Protocol):
    """One HTTP/1.1 connection parsed by h11 (pure Python); see the module docstring."""

    header_bytes: int

    def __init__(
        self, config: Config, server_state: ServerState, app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:  # fmt: skip
        super().__init__(config, server_state, app_state, _loop)
        self.conn = _BoundedHead(h11.SERVER, max_incomplete_event_size=self.header_bytes)
        self.conn.header_bytes = self.header_bytes
        self._guard_init()

    def _theirs(self) -> str:
        theirs = self.conn.their_state
        if theirs is h11.IDLE:
            return "idle"
        return "body" if theirs is h11.SEND_BODY else "done"

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_Corked(transport, self.loop))  # type: ignore[arg-type]
        self._guard_connection_made()

    def connection_lost(self, exc: Exception | None) -> None:
        self._enter("")
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._guard_response_complete()


class _Corked:
    """A connection's transport that sends an answer's head and body in one write. uvicorn
    writes them with a call each: two system calls and two TCP segments per request, and the
    client reads twice (issue 14: with one small message per request, about a tenth of the
    sending station's event-loop time was these writes). A write is held until the next one,
    which takes it along at once, or at the latest until the loop's next turn; one of more than
    CORK_BYTES is never held. Closing or ending the stream sends what is held first; aborting
    drops it. Everything else is the transport's own."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held = b""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held, self._held = self._held, b""
        if held:  # an answer's body after its head: both leave now, in one write if small
            if len(data) <= CORK_BYTES:
                self._transport.write(held + bytes(data))
                return
            self._transport.write(held)
        if len(data) > CORK_BYTES or held:
            self._transport.write(data)
            return
        self._held = bytes(data)
        self._loop.call_soon(self.flush)

    def flush(self) -> None:
        held, self._held = self._held, b""
        if held and not self._transport.is_closing():
            self._transport.write(held)

    def writelines(self, parts: Iterable[bytes | bytearray | memoryview]) -> None:
        for data in parts:
            self.write(data)

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + len(self._held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._held = b""
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class GuardedHttpTools(_Deadlines, HttpToolsProtocol):
    """One HTTP/1.1 connection parsed by httptools (llhttp, in C); see the module docstring.

    llhttp bounds nothing by itself (h11 bounds an unfinished head to its buffer size), so the
    head is bounded here to `header_bytes`: the bytes received while a head is unfinished are
    counted (a client trickling an endless header gets 400 and the connection closes), and a
    finished head is measured before the request reaches the app."""

    header_bytes: int

    def __init__(
        self, config: Config, server_state: ServerState, app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:  # fmt: skip
        super().__init__(config, server_state, app_state, _loop)
        self._guard_init()
        self._side = "idle"
        self._head_seen = 0

    def _theirs(self) -> str:
        return self._side

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_Corked(transport, self.loop))  # type: ignore[arg-type]
        self._guard_connection_made()

    def connection_lost(self, exc: Exception | None) -> None:
        self._enter("")
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        reading_head = self._side in ("idle", "head")
        super().data_received(data)
        if reading_head and self._side in ("idle", "head") and not self.transport.is_closing():
            self._head_seen += len(data)
            if self._head_seen > self.header_bytes:
                self._refuse_head()
                return
        self._follow()

    def _refuse_head(self) -> None:
        msg = "Invalid HTTP request received."
        self.logger.warning(msg)
        self.send_400_response(msg)  # closes the connection
        self._enter("")

    # --- parser callbacks: where the client's side of the exchange is ---------------------------
    def on_message_begin(self) -> None:
        self._side = "head"
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        if head_size(self.url, self.headers) > self.header_bytes:
            # Raised inside a parser callback: httptools turns it into HttpParserCallbackError,
            # a HttpParserError, which uvicorn answers with 400 and closes.
            raise ValueError("request head too large")
        self._side = "body"
        self._head_seen = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._side = "idle" if self._side == "idle" else "done"
        super().on_message_complete()

    def on_response_complete(self) -> None:
        if self._side == "done" and not self.pipeline:
            self._side = "idle"
        super().on_response_complete()
        self._guard_response_complete()


def fd_budget() -> int:
    """Raise the soft open-file limit to the hard one; return how many connections fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return max(16, soft - FD_RESERVE)


PARSERS: dict[str, type[_Deadlines]] = {"httptools": GuardedHttpTools, "h11": GuardedH11}


def guarded(limits: Limits, parser: str = "httptools") -> type[_Deadlines]:
    """A guarded protocol class for one server (the waiting list is per server)."""
    cap = min(limits.max_connections, fd_budget())
    if cap < limits.max_connections:
        log.warning(
            "max_connections lowered from %d to %d by the open-file limit",
            limits.max_connections, cap,
        )  # fmt: skip
    attrs = {
        "header_timeout_s": limits.header_timeout_ms / 1000,
        "body_timeout_s": limits.body_timeout_ms / 1000,
        "header_bytes": limits.header_bytes,
        "max_connections": cap,
        "waiting": OrderedDict(),
    }
    base = PARSERS[parser]
    return type(base.__name__, (base,), attrs)


def server_config(app: Any, cfg: StationConfig) -> uvicorn.Config:
    """The uvicorn configuration every server of a station uses: the guarded protocol class on
    the parser and event loop station.json chooses (`http_parser`, `event_loop`), its limits,
    and X-Forwarded-For only from the proxies it names (by default from none)."""
    limits, proxies = cfg.limits, cfg.trusted_proxies
    loop, parser = cfg.event_loop, cfg.http_parser
    # A virtual environment made before these became dependencies lacks them (scripts/setup
    # installs them): serve on the pure-Python pair rather than not at all, and say so.
    for module, fallback in ((loop, "asyncio"), (parser, "h11")):
        if module != fallback and importlib.util.find_spec(module) is None:
            log.warning("%s is not installed (run scripts/setup): using %s", module, fallback)
            loop, parser = (fallback, parser) if module == loop else (loop, fallback)
    return uvicorn.Config(
        app, host=cfg.host, port=cfg.port, log_level="warning", access_log=False,
        log_config=None, backlog=BACKLOG, loop=loop,
        http=guarded(limits, parser),  # type: ignore[arg-type]
        h11_max_incomplete_event_size=limits.header_bytes,
        timeout_keep_alive=limits.keepalive_timeout_ms / 1000,  # type: ignore[arg-type]
        proxy_headers=bool(proxies), forwarded_allow_ips=proxies or None,
    )  # fmt: skip


class RateLimited(logging.Filter):
    """Let through at most `burst` records per `period_s` for each message; then one line that
    says how many were dropped, when the period ends and another arrives."""

    def __init__(self, burst: int = 5, period_s: float = 10.0) -> None:
        super().__init__()
        self.burst, self.period_s = burst, period_s
        self.windows: dict[str, tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        key = str(record.msg)[:120]
        start, n = self.windows.get(key, (now, 0))
        if now - start >= self.period_s:
            if n > self.burst:
                record.msg = f"{record.msg} (and {n - self.burst} more like it, not logged)"
            start, n = now, 0
        if len(self.windows) > 1000:
            self.windows.clear()
        self.windows[key] = (start, n + 1)
        return n < self.burst


_quiet = RateLimited()


def quiet_accept_errors() -> None:
    """Rate-limit the loggers that report failed accept() calls and connection errors."""
    for name in ("asyncio", "uvicorn.error"):
        logger = logging.getLogger(name)
        if _quiet not in logger.filters:
            logger.addFilter(_quiet)
