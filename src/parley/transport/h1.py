"""A small HTTP/1.1 client for the dispatcher's requests to peers: keep-alive connections per
origin over asyncio streams, answers read to a cap, no redirects, no compression.

Why not httpx here: per push, its request and response models, connection pool and h11 parser
were a third of the sending station's event-loop CPU when messages arrive one per API request
(issue 14). The CLI, webhooks and translation servers keep httpx (transport/clients.py).

Rules:
- http and https only; https verifies the peer's certificate with httpx's context (the same
  CA bundle, SSL_CERT_FILE and SSL_CERT_DIR as before).
- A connection goes back to the pool only after a whole answer was read from it and neither
  side asked to close; one the server has closed while idle (EOF seen) is dropped, not reused.
  A request that fails on a reused connection before any byte of an answer came back is sent
  once more on a new one (a keep-alive timeout racing our request; every peer request is
  idempotent at the peer). At most MAX_IDLE idle connections per origin, MAX_CONNECTIONS open.
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
    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.idle: dict[Origin, list[_Conn]] = {}
        self.slots = asyncio.Semaphore(MAX_CONNECTIONS)
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
        started = False
        try:
            w.write(head + body if len(body) < 65536 else head)
            if len(body) >= 65536:
                w.write(body)
            await w.drain()
            async with asyncio.timeout(self.timeout_s):
                status, headers, started = await _read_head(r)
            data, keep = await _read_body(r, status, headers, limits[0 if status == 200 else 1])
        except TransportError as exc:  # refused from what came: named here with the address
            w.close()
            raise TransportError(exc.code, f"{url}: {exc.message}") from None
        except (OSError, EOFError, ValueError, TimeoutError) as exc:
            w.close()
            if again and not started and not isinstance(exc, TimeoutError):
                return None
            raise _failure(url, exc) from exc
        if keep and len(self.idle.setdefault(origin, [])) < MAX_IDLE:
            self.idle[origin].append(conn)
        else:
            w.close()
        return Answer(status, headers, data)


def _head(method: str, target: str, host: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    for k, v in headers.items():
        if "\r" in v or "\n" in v or "\r" in k or "\n" in k:
            raise TransportError(Code.INVALID_REQUEST, f"header {k!r} holds a line break")
        lines.append(f"{k}: {v}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _read_head(r: asyncio.StreamReader) -> tuple[int, dict[str, str], bool]:
    """The status and headers of the answer (1xx heads skipped); True once a byte came."""
    for _ in range(MAX_INFORMATIONAL + 1):
        try:
            raw = await r.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                raise  # nothing came back: the caller may try a new connection
            raise TransportError(
                Code.STATION_UNREACHABLE, "the answer's head was cut off"
            ) from None
        except asyncio.LimitOverrunError:
            raise TransportError(
                Code.OVERSIZED, f"the answer's head exceeds {MAX_HEAD} bytes"
            ) from None
        lines = raw[:-4].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or parts[0] not in ("HTTP/1.1", "HTTP/1.0") or not parts[1].isdigit():
            raise TransportError(Code.MALFORMED, "the answer is not HTTP/1.x")
        status = int(parts[1])
        headers: dict[str, str] = {"": parts[0]}  # the version, for _read_body
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise TransportError(Code.MALFORMED, "a header line of the answer is malformed")
            key, value = name.lower(), value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        if status >= 200:
            return status, headers, True
    raise TransportError(Code.MALFORMED, "too many informational answers")


async def _read_body(
    r: asyncio.StreamReader, status: int, headers: dict[str, str], limit: int
) -> tuple[bytes, bool]:
    """The body, and whether the connection may carry another request."""
    version = headers.pop("")
    if headers.get("content-encoding", "identity").lower() != "identity":
        raise TransportError(Code.MALFORMED, "the answer is compressed; we asked not")
    keep = version == "HTTP/1.1" and "close" not in headers.get("connection", "").lower()
    if status in (204, 304):
        return b"", keep
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return await _chunked(r, limit), keep
    length = headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise TransportError(Code.MALFORMED, "the answer's Content-Length is not a number")
        if int(length) > limit:
            raise TransportError(Code.OVERSIZED, f"the answer exceeds {limit} bytes")
        return await r.readexactly(int(length)), keep
    data = bytearray()
    for _ in range(limit + 2):  # each turn reads at least a byte, or ends
        chunk = await r.read(65536)
        if not chunk:
            return bytes(data), False
        _add(data, chunk, limit)
    raise TransportError(Code.OVERSIZED, f"the answer exceeds {limit} bytes")


async def _chunked(r: asyncio.StreamReader, limit: int) -> bytes:
    data = bytearray()
    for _ in range(limit + 2):  # each chunk but the last adds a byte at least
        line = await r.readuntil(b"\r\n")
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise TransportError(
                Code.MALFORMED, "a chunk size of the answer is malformed"
            ) from None
        if size == 0:
            for _ in range(MAX_INFORMATIONAL * 8):  # trailers, up to the empty line
                if await r.readuntil(b"\r\n") == b"\r\n":
                    return bytes(data)
            raise TransportError(Code.MALFORMED, "too many trailers")
        if len(data) + size > limit:
            raise TransportError(Code.OVERSIZED, f"the answer exceeds {limit} bytes")
        _add(data, await r.readexactly(size), limit)
        if await r.readexactly(2) != b"\r\n":
            raise TransportError(Code.MALFORMED, "a chunk of the answer is malformed")
    raise TransportError(Code.OVERSIZED, f"the answer exceeds {limit} bytes")


def _add(data: bytearray, chunk: bytes, limit: int) -> None:
    data += chunk
    if len(data) > limit:
        raise TransportError(Code.OVERSIZED, f"the answer exceeds {limit} bytes")


def _failure(url: str, exc: BaseException) -> TransportError:
    if isinstance(exc, TimeoutError):
        return TransportError(Code.STATION_UNREACHABLE, f"{url}: no answer within the timeout")
    return TransportError(Code.STATION_UNREACHABLE, f"{url}: {type(exc).__name__}: {exc}")
