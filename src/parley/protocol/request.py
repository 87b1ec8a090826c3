"""Signed peer requests: every station-to-station HTTP request carries who sent it and when.

Header `Parley-Auth: <station id>.<ts ms>.<base64url sig>` where sig is Ed25519 by that station
over "parley/request/v1\\0" || canonical({"method","path","ts","body": sha256(body) b64url}).
A request outside the skew window is refused (clock_skew): this is what makes live traffic fresh
and a captured request useless later, while envelopes themselves may be arbitrarily late.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from parley.errors import Code, RejectedInput
from parley.protocol import crypto
from parley.protocol.delivery import DEFAULT_SKEW_MS
from parley.protocol.encoding import b64d, b64e, canonical
from parley.protocol.identity import is_station_id

REQUEST_LABEL = b"parley/request/v1\x00"
HEADER = "Parley-Auth"


def _signed(method: str, path: str, ts: int, body: bytes) -> bytes:
    return canonical(
        {"method": method.upper(), "path": path, "ts": ts, "body": b64e(crypto.sha256(body))}
    )


def sign_request(
    identity: crypto.SigningKey, station: str, method: str, path: str, body: bytes, now_ms: int
) -> str:
    sig = identity.sign(REQUEST_LABEL, _signed(method, path, now_ms, body))
    return f"{station}.{now_ms}.{b64e(sig)}"


@dataclass(frozen=True)
class RequestAuth:
    station: str
    ts: int
    sig: bytes


def parse_auth(header: str | None) -> RequestAuth:
    if not header:
        raise RejectedInput(Code.UNKNOWN_SENDER, f"missing {HEADER} header")
    parts = header.split(".")
    if len(parts) != 3 or not is_station_id(parts[0]):
        raise RejectedInput(Code.MALFORMED, f"{HEADER} header is malformed")
    if not re.fullmatch(r"0|[1-9][0-9]{0,15}", parts[1]):
        raise RejectedInput(Code.MALFORMED, f"{HEADER} timestamp is malformed")
    return RequestAuth(parts[0], int(parts[1]), b64d(parts[2], field=HEADER, size=64))


def verify_request(
    auth: RequestAuth,
    public: bytes,
    method: str,
    path: str,
    body: bytes,
    now_ms: int,
    skew_ms: int = DEFAULT_SKEW_MS,
) -> None:
    if abs(auth.ts - now_ms) > skew_ms:
        raise RejectedInput(
            Code.CLOCK_SKEW,
            f"request time differs from ours by {auth.ts - now_ms} ms (allowed ±{skew_ms} ms); "
            "check both stations' clocks",
        )
    if not crypto.verify(public, REQUEST_LABEL, _signed(method, path, auth.ts, body), auth.sig):
        raise RejectedInput(Code.BAD_SIGNATURE, "request signature does not verify")
