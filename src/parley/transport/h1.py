"""A small HTTP/1.1 client for the dispatcher's requests to peers: keep-alive connections per
origin over asyncio streams, answers read to a cap, no redirects, no compression.

Why not httpx here: per push, its request and response models, connection pool and h11 parser
were a third of the sending station's event-loop CPU when messages arrive one per API request
(issue 14). The CLI, webhooks and translation servers keep httpx (transport/clients.py).
The answers are parsed by httptools (llhttp, the parser the station's own server uses); what is
ours is the pool, the caps and the retry rule below.

Rules:
- http and https only; https verifies the peer's certificate with httpx's context (the same
  CA bundle, SSL_CERT_FILE and SSL_CERT_DIR as before).
- A connection goes back to the pool only after a whole answer was read from it and neither
  side asked to close; one the server has closed while idle (EOF seen) is dropped, not reused.
  A request that fails on a reused connection before any byte of an answer came back is sent
  once more on a new one (a keep-alive timeout racing our request; every peer request is
  idempotent at the peer). At most MAX_IDLE idle connections per origin (a load generator keeping
  one per client asks for more), MAX_CONNECTIONS open (or as many as may idle).
- The connect and the answer's head each within `timeout_s`; the caller bounds the whole.
- Heads are at most MAX_HEAD bytes; bodies at most the caller's limit: refused from
  Content-Length before reading, else as they arrive (chunked, or read to the close).
- Every failure is a TransportError, and the connection it happened on is closed.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools
import httpx

from parley.errors import Code
from parley.transport.base import TransportError

MAX_HEAD = 64 * 1024  # status line and headers of one answer
MAX_IDLE = 8
MAX_CONNECTIONS = 16
MAX_INFORMATIONAL = 4  # 1xx heads skipped before the answer's own
_DEFAULT_PORT = {"http": 80, "https": 443}

Origin = tuple[str, str, int]
_Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case; repeated ones joined with ", "
    body: bytes


class H1Client:
    def __init__(self, timeout_s: float, max_idle: int = MAX_IDLE) -> None:
        self.timeout_s = timeout_s
        self.max_idle = max_idle
        self.idle: dict[Origin, list[_Conn]] = {}
        self.slots = asyncio.Semaphore(max(MAX_CONNECTIONS, max_idle))
        self._tls: ssl.SSLContext | None = None

    async def aclose(self) -> None:
        for conns in self.idle.values():
            for _, w in conns:
                w.close()
        self.idle.clear()

    async def request(
        self, method: str, url: str, headers: dict[str, str], body: bytes, limits: tuple[int, int]
    ) -> Answer:
        """One request; `limits`: the most body bytes taken in a 200 answer, and in any other."""
        u = urlsplit(url)
        scheme = u.scheme.lower()
        if scheme not in _DEFAULT_PORT or not u.hostname:
            raise TransportError(Code.STATION_UNREACHABLE, f"{url}: not an http(s) address")
        port = u.port or _DEFAULT_PORT[scheme]
        origin = (scheme, u.hostname, port)
        host = u.hostname if ":" not in u.hostname else f"[{u.hostname}]"
        host += "" if u.port is None else f":{u.port}"
        head = _head(method, (u.path or "/") + (f"?{u.query}" if u.query else ""), host, headers)
        async with self.slots:
            conn = self._reuse(origin)
            if conn is not None:
                answer = await self._exchange(conn, origin, head, body, limits, url, again=True)
                if answer is not None:
                    return answer
            conn = await self._connect(origin, url)
            answer = await self._exchange(conn, origin, head, body, limits, url, again=False)
            assert answer is not None  # not asked to tell a failure before the answer apart
            return answer

    def _reuse(self, origin: Origin) -> _Conn | None:
        conns = self.idle.get(origin)
        while conns:
            r, w = conns.pop()
            if not (r.at_eof() or w.is_closing()):
                return r, w
            w.close()
        return None

    async def _connect(self, origin: Origin, url: str) -> _Conn:
        scheme, host, port = origin
        tls = self._context() if scheme == "https" else None
        try:
            async with asyncio.timeout(self.timeout_s):
                return await asyncio.open_connection(host, port, ssl=tls, limit=MAX_HEAD)
        except (OSError, TimeoutError) as exc:
            raise _failure(url, exc) from exc

    def _context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = httpx.create_ssl_context()
        return self._tls

    async def _exchange(
        self, conn: _Conn, origin: Origin, head: bytes, body: bytes, limits: tuple[int, int],
        url: str, again: bool,
    ) -> Answer | None:  # fmt: skip
        """The answer, or None if `again` and the connection failed before any of it came."""
        r, w = conn
        answer = _Answer(limits)
        try:
            w.write(head + body if len(body) < 65536 else head)
            if len(body) >= 65536:
                w.write(body)
            await w.drain()
            keep = await _read_answer(r, answer, self.timeout_s)
        except TransportError as exc:  # refused from what came: named here with the address
            w.close()
            raise TransportError(exc.code, f"{url}: {exc.message}") from None
        except (OSError, EOFError, ValueError, TimeoutError) as exc:
            w.close()
            if again and not answer.seen and not isinstance(exc, TimeoutError):
                return None
            raise _failure(url, exc) from exc
        if keep and len(self.idle.setdefault(origin, [])) < self.max_idle:
            self.idle[origin].append(conn)
        else:
            w.close()
        return Answer(answer.status, answer.headers, bytes(answer.body))


def _head(method: str, target: str, host: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    for k, v in headers.items():
        if "\r" in v or "\n" in v or "\r" in k or "\n" in k:
            raise TransportError(Code.INVALID_REQUEST, f"header {k!r} holds a line break")
        lines.append(f"{k}: {v}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class _Answer:
    """httptools' parser callbacks for one answer: its head, then its body up to `limit` bytes
    (1xx heads skipped), `limits` for a 200 answer and for any other. A refusal raised here comes
    out of feed_data as its context."""

    def __init__(self, limits: tuple[int, int]) -> None:
        self.limits = limits
        self.limit = limits[1]
        self.seen = 0  # bytes received
        self.parser = httptools.HttpResponseParser(self)
        self.headers: dict[str, str] = {}
        self.body = bytearray()
        self.status = 0
        self.informational = 0
        self.head_done = False
        self.done = False
        self.keep = False
        self.more = False  # bytes of another answer followed this one: never reuse the connection

    def on_message_begin(self) -> None:
        if self.done:
            self.more = True
        self.headers = {}

    def on_header(self, name: bytes, value: bytes) -> None:
        key, text = name.decode("latin-1").lower(), value.decode("latin-1")
        self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:
            self.informational += 1
            if self.informational > MAX_INFORMATIONAL:
                raise TransportError(Code.MALFORMED, "too many informational answers")
            return
        self.limit = self.limits[0 if status == 200 else 1]
        if self.headers.get("content-encoding", "identity").lower() != "identity":
            raise TransportError(Code.MALFORMED, "the answer is compressed; we asked not")
        length = self.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            raise TransportError(Code.OVERSIZED, f"the answer exceeds {self.limit} bytes")
        self.status, self.head_done = status, True

    def on_body(self, body: bytes) -> None:
        if len(self.body) + len(body) > self.limit:
            raise TransportError(Code.OVERSIZED, f"the answer exceeds {self.limit} bytes")
        self.body += body

    def on_message_complete(self) -> None:
        if self.head_done:
            # Asked here: once the callback returns, the parser is set for the next message.
            self.keep, self.done = self.parser.should_keep_alive(), True

    def feed(self, data: bytes) -> None:
        self.seen += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, TransportError):
                raise exc.__context__ from None
            raise TransportError(Code.MALFORMED, "the answer is not HTTP/1.x") from None
        except httptools.HttpParserError:
            if not self.done:
                raise TransportError(Code.MALFORMED, "the answer is not HTTP/1.x") from None
            self.more = True  # junk after a whole answer: the answer stands, the connection not

    def to_the_close(self) -> bool:
        """At the end of the stream: whether the answer was one delimited by the close."""
        framed = (
            "content-length" in self.headers
            or "chunked" in self.headers.get("transfer-encoding", "").lower()
        )
        return self.head_done and not framed


async def _read_answer(r: asyncio.StreamReader, a: _Answer, timeout_s: float) -> bool:
    """Reads `a` whole; whether the connection may carry another request. The head must come
    within `timeout_s` and in at most MAX_HEAD bytes; what follows it, within the body's cap
    and as much again for framing (chunk sizes, trailers)."""
    async with asyncio.timeout(timeout_s):
        while not a.head_done:
            data = await r.read(65536)
            if not data:
                if a.seen:
                    raise TransportError(Code.STATION_UNREACHABLE, "the answer's head was cut off")
                raise EOFError("the connection closed before an answer")
            a.feed(data)
            if not a.head_done and a.seen > MAX_HEAD:
                raise TransportError(Code.OVERSIZED, f"the answer's head exceeds {MAX_HEAD} bytes")
    most = a.seen + MAX_HEAD + 2 * a.limit
    while not a.done:
        data = await r.read(65536)
        if not data:
            if a.to_the_close():
                return False
            raise TransportError(Code.STATION_UNREACHABLE, "the answer's body was cut off")
        a.feed(data)
        if a.seen > most:  # also ends the loop: each turn reads a byte at least
            raise TransportError(Code.OVERSIZED, f"the answer exceeds {a.limit} bytes")
    return a.keep and not a.more


def _failure(url: str, exc: BaseException) -> TransportError:
    if isinstance(exc, TimeoutError):
        return TransportError(Code.STATION_UNREACHABLE, f"{url}: no answer within the timeout")
    return TransportError(Code.STATION_UNREACHABLE, f"{url}: {type(exc).__name__}: {exc}")
