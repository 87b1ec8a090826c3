"""app/conn.py `_Corked`: an answer's head waits for its body and both leave in one write; a lone
write leaves at the loop's next turn; order kept, bounded, and closing sends what waits. Real
loop, real socket pair."""

from __future__ import annotations

import asyncio
import socket

from parley.app.conn import CORK_BYTES, _Corked


class _Sink(asyncio.Protocol):
    pass


async def _pair() -> tuple[_Corked, asyncio.Transport, socket.socket]:
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_accepted_socket(_Sink, ours)
    return _Corked(transport, loop), transport, theirs  # type: ignore[arg-type]


def _read(sock: socket.socket) -> bytes:
    try:
        return sock.recv(1 << 20)
    except BlockingIOError:
        return b""


def test_a_head_waits_for_its_body_and_both_leave_as_one() -> None:
    async def go() -> None:
        corked, transport, peer = await _pair()
        corked.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        assert corked.get_write_buffer_size() == 38
        assert _read(peer) == b""  # held for the body
        corked.write(b"{}")  # leaves with the head at once, not a turn later
        assert _read(peer) == b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"
        corked.write(b"alone")  # nothing follows it: it leaves at the loop's next turn
        assert _read(peer) == b""
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert _read(peer) == b"alone"
        transport.close()
        peer.close()

    asyncio.run(go())


def test_a_large_write_goes_at_once_after_what_waits() -> None:
    async def go() -> None:
        corked, transport, peer = await _pair()
        big = b"b" * (CORK_BYTES + 1)
        corked.write(b"head")
        corked.write(big)
        got = b""
        for _ in range(1000):  # bounded: the kernel may hand the bytes over in pieces
            got += _read(peer)
            if len(got) >= 4 + len(big):
                break
            await asyncio.sleep(0.001)
        assert got == b"head" + big
        transport.close()
        peer.close()

    asyncio.run(go())


def test_writelines_and_the_end_of_the_stream_keep_the_order() -> None:
    async def go() -> None:
        corked, transport, peer = await _pair()
        corked.write(b"a")
        corked.writelines([b"b", b"c"])
        corked.write_eof()
        await asyncio.sleep(0.01)
        assert _read(peer) == b"abc"
        transport.close()
        peer.close()

    asyncio.run(go())


def test_close_sends_what_waits_and_abort_drops_it() -> None:
    async def go() -> None:
        corked, _, peer = await _pair()
        corked.write(b"last words")
        corked.close()
        await asyncio.sleep(0.01)
        assert _read(peer) == b"last words"
        assert _read(peer) == b""  # then the end of the stream
        peer.close()

        corked, _, peer = await _pair()
        corked.write(b"never sent")
        corked.abort()
        await asyncio.sleep(0.01)
        assert _read(peer) == b""
        peer.close()

    asyncio.run(go())
