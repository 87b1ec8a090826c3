"""The one place that builds HTTP clients: station to station (transport/h1.py, a small
keep-alive client: the dispatcher's pushes are on every message's path), escalation webhooks,
translation servers, witnesses and the `parley` command (its own station's operator API; these
use httpx) get theirs from here, each with a deadline, a connection cap and no redirects.

Rules:
- Every client has a timeout (connect, read, write, pool): nothing waits on a peer forever.
- Redirects are never followed: a peer, a webhook or a translation server that answers 3xx is
  answering, not pointing us at a third party we did not configure.
- Connections are capped (MAX_CONNECTIONS) so one slow endpoint cannot pile up sockets.
- `transport` lets a test hand in an httpx transport (httpx.MockTransport) instead of the network.
"""

from __future__ import annotations

import httpx

from parley.transport.h1 import MAX_CONNECTIONS, MAX_IDLE, H1Client

MAX_KEEPALIVE = MAX_IDLE


def _limits() -> httpx.Limits:
    return httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_KEEPALIVE)


def peer_client(timeout_s: float) -> H1Client:
    """For the dispatcher's requests to peers."""
    return H1Client(timeout_s)


def sync_client(
    timeout_s: float,
    *,
    base_url: str = "",
    headers: dict[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    """For webhooks and translation servers (called from worker threads), and for the CLI's
    calls to its own station's operator API (`headers` carries its credential)."""
    return httpx.Client(
        base_url=base_url,
        headers=headers,
        timeout=timeout_s,
        limits=_limits(),
        follow_redirects=False,
        transport=transport,
    )
