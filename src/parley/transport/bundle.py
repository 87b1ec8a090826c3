"""The Transport over a shared folder of signed bundle files (docs/protocol.md §18.3): for a
courier, a synced drive or a one-way data diode, with the same bundles `parley bundle` writes.

An address is `file://<folder>`; the folder is the medium both stations write into and read
from, and `station_at(addr)` names the peer an address belongs to (from the peer table).

- push: writes one bundle of the envelopes for that peer, named by its signer, addressee and
  digest (`<from>.<to>.<digest>.bundle`), so offering the same batch again rewrites nothing.
  There is no answer on the spot: results and receipts come back in the peer's bundles, which
  `pull` collects (the dispatcher keeps the envelopes pending until then, as for a relay).
- pull: first writes our answer to the previous pull (its receipts) as a bundle, then reads the
  bundles addressed to us, oldest first, up to 512 envelopes, verifies each against its
  signer's keys at its time (`keys_of`: around an identity hand-over the old and the new one) and
  deletes it once read. Receipts and envelopes inside are checked by
  the receive path as on every other path.
- ping: the folder is there and writable; relay: no (a folder is not a station); prekeys: those
  in the newest bundle from the peer still in the folder, else in the newest one `pull` read.
  Every bundle we write carries our current prekeys (`own_prekeys`), as `parley bundle export`
  does, so peers that meet only in the folder keep each other's keys current.
- Our bundles are signed with the key `identity()` returns when each is written, so the folder
  follows a rotation of our identity key without a restart (docs/protocol.md §3.6).
Files are written under a temporary name and renamed, so a reader never sees half a bundle.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from parley.errors import Code, ParleyError
from parley.protocol import crypto
from parley.protocol.bundle import Bundle, make_bundle, parse_bundle, verify_bundle
from parley.protocol.encoding import b64e
from parley.transport.base import (
    MAX_FRAME_ENVELOPES,
    Pong,
    PullResponse,
    PushResponse,
    TransportError,
)

SCHEME = "file://"
SUFFIX = ".bundle"


class BundleTransport:
    def __init__(
        self,
        identity: Callable[[], crypto.SigningKey],
        station: str,
        clock: Callable[[], int],
        station_at: Callable[[str], str | None],
        keys_of: Callable[[str, int], list[bytes]],
        own_prekeys: Callable[[], list[dict[str, Any]]] = list,
    ) -> None:
        """`own_prekeys`: our current signed prekey records, put in every bundle we write (a
        peer reached only through the folder has no other way to learn them)."""
        self.identity = identity
        self.station = station
        self.clock = clock
        self.station_at = station_at
        self.keys_of = keys_of
        self.own_prekeys = own_prekeys
        self.seen_prekeys: dict[str, list[dict[str, Any]]] = {}  # peer -> from its newest bundle

    def _folder(self, addr: str) -> Path:
        if not addr.startswith(SCHEME):
            raise TransportError(Code.NO_ROUTE, f"{addr}: not a file:// folder")
        return Path(addr[len(SCHEME) :])

    def _peer(self, addr: str) -> str:
        peer = self.station_at(addr)
        if peer is None:
            raise TransportError(Code.NO_ROUTE, f"{addr}: no peer has this address")
        return peer

    def _write(self, folder: Path, b: Bundle) -> None:
        # Envelopes: named by their digest, so a batch offered again while the last copy is
        # still unread rewrites nothing. Receipts only: by the whole file, so none is dropped.
        digest = b.digest if b.envelopes else crypto.sha256(b.encode())
        name = f"{b.sender}.{b.to}.{b64e(digest)}{SUFFIX}"
        final = folder / name
        if final.exists():
            return  # the same batch, offered again
        tmp = folder / f".{name}.{os.getpid()}.tmp"
        try:
            tmp.write_bytes(b.encode())
            os.replace(tmp, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise TransportError(Code.STATION_UNREACHABLE, f"{folder}: {exc.strerror}") from exc

    def _mine(self, folder: Path, peer: str) -> list[tuple[Path, Bundle]]:
        """Bundles from `peer` to us, oldest first; one that does not verify is left alone."""
        found: list[tuple[Path, Bundle]] = []
        try:
            names = sorted(folder.glob(f"{peer}.{self.station}.*{SUFFIX}"))
        except OSError as exc:
            raise TransportError(Code.STATION_UNREACHABLE, f"{folder}: {exc.strerror}") from exc
        for path in names:
            try:
                b = parse_bundle(path.read_bytes())
                if b.sender != peer or b.to != self.station:
                    continue
                verify_bundle(b, *self.keys_of(peer, b.ts))
            except (OSError, ParleyError):
                continue
            found.append((path, b))
        found.sort(key=lambda pb: pb[1].ts)
        return found

    async def push(self, addr: str, raws: list[bytes]) -> PushResponse:
        folder, peer = self._folder(addr), self._peer(addr)
        self._write(folder, make_bundle(self.identity(), self.station, peer, raws, [],
                                        self.own_prekeys()[:4], self.clock()))  # fmt: skip
        return PushResponse([], [], 0)

    async def pull(self, addr: str, answer: dict[str, Any]) -> PullResponse:
        folder, peer = self._folder(addr), self._peer(addr)
        receipts = [r for r in answer.get("receipts", []) if isinstance(r, dict)]
        if receipts:
            self._write(folder, make_bundle(self.identity(), self.station, peer, [], receipts,
                                            self.own_prekeys()[:4], self.clock()))  # fmt: skip
        most = answer.get("max", MAX_FRAME_ENVELOPES)
        envelopes: list[bytes] = []
        got: list[dict[str, Any]] = []
        more = False
        for path, b in self._mine(folder, peer) if most else []:
            if envelopes and len(envelopes) + len(b.envelopes) > most:
                more = True
                break
            envelopes += b.envelopes
            got += b.receipts
            if b.prekeys:
                self.seen_prekeys[peer] = list(b.prekeys)
            with contextlib.suppress(OSError):
                path.unlink()
        return PullResponse(peer, got, more, envelopes, 0)

    async def relay(self, addr: str, to: str, raws: list[bytes]) -> PushResponse:
        raise TransportError(Code.NO_ROUTE, f"{addr}: a folder relays nothing")

    async def ping(self, addr: str) -> Pong:
        folder, peer = self._folder(addr), self._peer(addr)
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise TransportError(Code.STATION_UNREACHABLE, f"{folder}: not a writable folder")
        return Pong(peer, 0, 0)

    async def prekeys(self, addr: str, station: str | None = None) -> list[dict[str, Any]]:
        if station is not None:
            raise TransportError(Code.NO_ROUTE, f"{addr}: a folder relays nothing")
        peer = self._peer(addr)
        found = self._mine(self._folder(addr), peer)
        return list(found[-1][1].prekeys) if found else self.seen_prekeys.get(peer, [])

    async def close(self) -> None:
        return None
