"""Connections no client can hold forever: uvicorn's h11 protocol with deadlines and a cap.

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
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections import OrderedDict
from typing import Any

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from parley.station.config import Limits

log = logging.getLogger("parley.station")

# asyncio accepts up to BACKLOG connections in one go before any of them reaches
# connection_made (where the cap is applied), so the cap leaves room for two such bursts besides
# the descriptors the station needs for its database, peers and logs.
BACKLOG = 128
FD_RESERVE = 128 + 2 * BACKLOG


class Guarded(H11Protocol):
    """One HTTP/1.1 connection; see the module docstring. Built by `guarded(limits)`."""

    header_timeout_s: float
    body_timeout_s: float
    max_connections: int
    waiting: OrderedDict[Guarded, None]  # head or idle phase, longest waiting first

    def __init__(
        self, config: Config, server_state: ServerState, app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:  # fmt: skip
        super().__init__(config, server_state, app_state, _loop)
        self._phase = ""
        self._deadline: asyncio.TimerHandle | None = None

    # --- asyncio.Protocol ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            victim = next((c for c in self.waiting if c is not self), None)
            if victim is None:
                self._close()
                return
            victim._close()
        self._enter("head")

    def connection_lost(self, exc: Exception | None) -> None:
        self._enter("")
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if self.conn.their_state is h11.IDLE and self.timeout_keep_alive_task is not None:
            self._enter("idle")  # uvicorn's keep-alive timer runs now
        else:
            self._follow()  # a pipelined request, or a body still arriving

    # --- phases ----------------------------------------------------------------------------------
    def _follow(self) -> None:
        if self.transport.is_closing():
            return
        theirs = self.conn.their_state
        if theirs is h11.IDLE:
            if self._phase != "head":
                self._enter("head")  # the first byte of a new request head
        elif theirs is h11.SEND_BODY:
            if self._phase != "body":
                self._enter("body")
        else:
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


def guarded(limits: Limits) -> type[Guarded]:
    """A `Guarded` class for one server (the waiting list is per server)."""
    cap = min(limits.max_connections, fd_budget())
    if cap < limits.max_connections:
        log.warning(
            "max_connections lowered from %d to %d by the open-file limit",
            limits.max_connections, cap,
        )  # fmt: skip
    attrs = {
        "header_timeout_s": limits.header_timeout_ms / 1000,
        "body_timeout_s": limits.body_timeout_ms / 1000,
        "max_connections": cap,
        "waiting": OrderedDict(),
    }
    return type("GuardedH11", (Guarded,), attrs)


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
