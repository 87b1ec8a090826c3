"""POSTing a notification to a webhook: one request, its answer read bounded.

Rules:
- The client is handed in (transport/clients.py builds the station's; a test hands its own), so
  its timeouts, connection cap and no-redirects rule apply here.
- Only the status matters. At most MAX_ANSWER_BYTES of the answer are read (streamed, then the
  connection is dropped), and never past the deadline: a receiver that answers slowly or without
  end holds nothing of ours but one connection for `deadline_s`.
- Any status outside 2xx, any transport error, and a deadline passed are failures, returned as
  a short text for the delivery log; nothing here raises for a receiver's behaviour.
"""

from __future__ import annotations

import time

import httpx

from parley import __version__

MAX_ANSWER_BYTES = 4096


def post(
    client: httpx.Client, url: str, payload: bytes, delivery: str, deadline_s: float
) -> str | None:
    """POST `payload` (JSON) to `url`; None if the receiver took it, else why not."""
    end = time.monotonic() + deadline_s
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"parley/{__version__}",
        "Parley-Delivery": delivery,
    }
    try:
        with client.stream("POST", url, content=payload, headers=headers) as resp:
            read = 0
            # An in-memory transport (a test's) hands over an answer already read.
            for chunk in () if resp.is_stream_consumed else resp.iter_raw():
                read += len(chunk)
                if read >= MAX_ANSWER_BYTES or time.monotonic() > end:
                    break
            if not 200 <= resp.status_code < 300:
                return f"HTTP {resp.status_code}"
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {str(exc)[:200]}"
    if time.monotonic() > end:
        return f"no answer within {deadline_s:g} s"
    return None
