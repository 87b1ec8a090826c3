"""The peers' HTTP/1.1 client (transport/h1.py) against a real loopback server that answers what
each test scripts: framing, caps, keep-alive and a server closing an idle connection."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from parley.errors import Code
from parley.transport.base import TransportError
from parley.transport.h1 import H1Client
from tests.net import LIVENESS_S

Script = Callable[[int], bytes]  # the n-th request on a connection -> the raw answer to it


def ok(body: bytes, extra: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


async def serve(script: Script, conns: list[int], close_after: int = 0) -> asyncio.Server:
    """A server answering each request with `script(n)`; `conns` counts its connections; with
    `close_after`, it closes a connection after that many answers."""

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        conns.append(1)
        for n in range(100):
            try:
                head = await r.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            length = [ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")]
            if length:
                await r.readexactly(int(length[0].split(b":")[1]))
            w.write(script(n))
            await w.drain()
            if close_after and n + 1 >= close_after:
                break
        w.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def run(script: Script, calls: int, close_after: int = 0, limit: int = 1 << 20) -> tuple:
    async def go() -> tuple[list[object], int]:
        conns: list[int] = []
        srv = await serve(script, conns, close_after)
        port = srv.sockets[0].getsockname()[1]
        client = H1Client(timeout_s=LIVENESS_S)
        out: list[object] = []
        try:
            for _ in range(calls):
                try:
                    a = await client.request(
                        "POST", f"http://127.0.0.1:{port}/p", {"X": "1"}, b"body", (limit, 100)
                    )
                    out.append((a.status, a.body))
                except TransportError as exc:
                    out.append(exc.code)
        finally:
            await client.aclose()
            srv.close()
        return out, len(conns)

    return asyncio.run(asyncio.wait_for(go(), LIVENESS_S))


def test_keep_alive_reuses_one_connection() -> None:
    out, conns = run(lambda n: ok(b"answer %d" % n), 3)
    assert out == [(200, b"answer 0"), (200, b"answer 1"), (200, b"answer 2")]
    assert conns == 1


def test_a_connection_the_server_closed_is_replaced() -> None:
    # The server closes after each answer without saying so: the next request finds the
    # connection gone (seen idle, or failing before any answer) and goes on a new one.
    out, conns = run(lambda n: ok(b"x"), 3, close_after=1)
    assert out == [(200, b"x")] * 3
    assert conns == 3


def test_connection_close_is_honoured() -> None:
    out, conns = run(lambda n: ok(b"x", "Connection: close\r\n"), 2, close_after=1)
    assert out == [(200, b"x")] * 2
    assert conns == 2


def test_chunked_answer() -> None:
    body = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n"
    )
    out, conns = run(lambda n: body, 2)
    assert out == [(200, b"abcde")] * 2
    assert conns == 1


def test_answer_read_to_the_close() -> None:
    out, conns = run(lambda n: b"HTTP/1.1 200 OK\r\n\r\nuntil the end", 2, close_after=1)
    assert out == [(200, b"until the end")] * 2
    assert conns == 2


@pytest.mark.parametrize(
    "answer",
    [
        ok(b"x" * 65),  # over the cap by its Content-Length
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n41\r\n"
        + b"x" * 65
        + b"\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 65,  # over the cap while read to the close
    ],
)
def test_an_answer_over_the_cap_is_refused(answer: bytes) -> None:
    out, _ = run(lambda n: answer, 1, close_after=1, limit=64)
    assert out == [Code.OVERSIZED]


def test_an_error_answer_has_its_own_cap() -> None:
    big = b"HTTP/1.1 500 Oops\r\nContent-Length: 101\r\n\r\n" + b"x" * 101
    out, _ = run(lambda n: big, 1, close_after=1)
    assert out == [Code.OVERSIZED]


@pytest.mark.parametrize(
    "answer",
    [
        ok(b"x", "Content-Encoding: gzip\r\n"),
        b"SPDY/3 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
def test_malformed_answers_are_refused(answer: bytes) -> None:
    out, _ = run(lambda n: answer, 1, close_after=1)
    assert out == [Code.MALFORMED]


def test_no_server_is_unreachable() -> None:
    async def go() -> Code:
        srv = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        srv.close()
        await srv.wait_closed()
        client = H1Client(timeout_s=LIVENESS_S)
        with pytest.raises(TransportError) as err:
            await client.request("GET", f"http://127.0.0.1:{port}/", {}, b"", (10, 10))
        return err.value.code

    assert asyncio.run(go()) == Code.STATION_UNREACHABLE


def test_a_header_with_a_line_break_is_not_sent() -> None:
    async def go() -> None:
        client = H1Client(timeout_s=LIVENESS_S)
        with pytest.raises(TransportError):
            await client.request("GET", "http://127.0.0.1:9/", {"X": "a\r\nY: b"}, b"", (10, 10))

    asyncio.run(go())


def test_informational_heads_are_skipped() -> None:
    answer = b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"after")
    out, conns = run(lambda n: answer, 2)
    assert out == [(200, b"after")] * 2
    assert conns == 1


def test_bytes_after_a_whole_answer_keep_it_but_not_the_connection() -> None:
    out, conns = run(lambda n: ok(b"one") + b"garbage that is no answer", 2)
    assert out == [(200, b"one")] * 2
    assert conns == 2


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", Code.STATION_UNREACHABLE),
        (b"HTTP/1.1 200 OK\r\nX: " + b"h" * (70 * 1024), Code.OVERSIZED),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx", Code.MALFORMED),
    ],
)
def test_cut_off_oversized_and_ambiguous_answers(answer: bytes, code: Code) -> None:
    out, _ = run(lambda n: answer, 1, close_after=1)
    assert out == [code]
