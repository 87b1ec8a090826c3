"""What every HTTP answer of a station tells a browser, and which browser requests it refuses.

Checked by the app's one middleware (app/gate.py), outermost around the whole app (peer API,
operator API, console, /metrics, errors and 404s alike):
- Security headers on every response: HEADERS below. The Content-Security-Policy lets a page load
  scripts, styles and images from the station itself only (the console has no inline script or
  style), no page may frame a station page, and no address leaks in a Referer to another origin.
  A response that set its own value of one of them keeps it.
- Origin check: a request that changes something (any method but GET, HEAD, OPTIONS) that names
  an Origin must name the station's own: the address it was reached at (the Host header) or the
  configured public URL. `Origin: null` (a sandboxed or opaque page) is foreign. A page on another
  port of the same host is another origin, though the same "site" to SameSite cookies. A request
  without Origin (the CLI, a peer station, curl) is not a browser's cross-origin request and
  passes; Sec-Fetch-Site, which browsers send with every request, must then not say
  cross-site or same-site. Refusals are 403 `forbidden` before the app sees the request.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from starlette.types import Scope

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)
HEADERS: dict[str, str] = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Not "no-referrer": under it a browser sends `Origin: null` even with the station's own
    # forms, and the Origin check could no longer tell them from a foreign page's.
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORT = {"http": 80, "https": 443}


def _netloc(scheme: str, host: str) -> str:
    """host[:port] in lower case with the scheme's default port dropped."""
    host = host.strip().lower()
    default = _DEFAULT_PORT.get(scheme)
    if default is not None and host.endswith(f":{default}") and not host.endswith("]"):
        host = host[: -len(f":{default}")]
    return host


def same_origin(origin: str, host: str, also: Iterable[str] = ()) -> bool:
    """Whether `origin` (an Origin header) is the station's own: the host it was reached at, or
    one of the origins in `also` (e.g. the public URL)."""
    try:
        o = urlsplit(origin)
    except ValueError:
        return False
    if o.scheme not in _DEFAULT_PORT or not o.netloc or o.path not in ("", "/"):
        return False
    mine = _netloc(o.scheme, o.netloc)
    if host and mine == _netloc(o.scheme, host):
        return True
    for url in also:
        u = urlsplit(url)
        if u.scheme == o.scheme and u.netloc and _netloc(u.scheme, u.netloc) == mine:
            return True
    return False


_RAW = tuple((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in HEADERS.items())
_NAMES = frozenset(k for k, _ in _RAW)


def with_security_headers(headers: Iterable[Any]) -> list[Any]:
    """An answer's headers with HEADERS added, except those it set itself."""
    out = list(headers)
    if any(bytes(k).lower() in _NAMES for k, _ in out):
        have = {bytes(k).lower() for k, _ in out}
        return out + [(k, v) for k, v in _RAW if k not in have]
    return out + list(_RAW)


class Origins:
    """The Origin check; `public_urls`: origins besides the Host header that are the station's."""

    def __init__(self, public_urls: Iterable[str] = ()) -> None:
        self.public_urls = tuple(u for u in public_urls if u)

    def refusal(self, scope: Scope) -> str | None:
        """Why the request is refused, or None."""
        if scope.get("method", "GET") in SAFE_METHODS:
            return None
        headers = {bytes(k).lower(): bytes(v).decode("latin-1") for k, v in scope["headers"]}
        origin = headers.get(b"origin")
        if origin is not None:
            if not same_origin(origin, headers.get(b"host", ""), self.public_urls):
                return f"requests from another origin ({origin[:100]}) may not change anything"
            return None
        if headers.get(b"sec-fetch-site", "").lower() in ("cross-site", "same-site"):
            return "requests from another site may not change anything"
        return None
