"""The station's Prometheus metrics, read from its database when they are scraped.

Rules:
- Every figure comes from the store, not from process memory, so with several API workers on one
  PostgreSQL database any worker answers a scrape with the same numbers (DESIGN.md §5 "Scale").
- Delivery latency runs from queued to receipted: an outbox row's `delivered` minus its
  envelope's `stored`, both on the station clock. Receipted rows are folded into a cumulative
  histogram kept in `meta` (key `metrics.delivery`) once they are SETTLE_MS old, inside a write
  transaction: writers are serialized on both backends, so each delivery is folded exactly once
  whichever worker is scraped, and the totals never go down. SETTLE_MS covers the moment between
  the dispatcher reading the clock and committing the receipt; a delivery appears in the
  metrics that long after its receipt.
- A peer that asks for part of a chain again (a gap after it lost data) gets it delivered twice;
  both deliveries count.
- Labels name peers, alarm kinds and severities, never channels: a back channel stays invisible.
- A scrape is the action `metrics.read` of the role table (`scrape` checks the acting user).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable
from typing import Any

from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import CollectorRegistry

from parley import __version__
from parley.station.node import Station
from parley.station.roles import Action, authorize
from parley.station.users import User
from parley.store import metrics as q

SETTLE_MS = 5_000
STATE_KEY = "metrics.delivery"
HOLDER_KEY = "dispatcher.holder"
# Upper bounds of the latency buckets, ms: from a loopback round trip to a peer down for a day.
BOUNDS_MS = (
    5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000,
    900_000, 3_600_000, 21_600_000, 86_400_000,
)  # fmt: skip
LINK_STATES = ("up", "degraded", "down", "unknown")


def _empty_state() -> dict[str, Any]:
    return {"bounds_ms": list(BOUNDS_MS), "upto": 0, "peers": {}}


def settle(station: Station) -> dict[str, Any]:
    """Fold deliveries receipted more than SETTLE_MS ago into the stored histogram; return it."""
    store = station.store
    upto = station.clock() - SETTLE_MS
    with store.tx():
        raw = store.get_meta(STATE_KEY)
        state = json.loads(raw) if raw else _empty_state()
        if state.get("bounds_ms") != list(BOUNDS_MS):
            state = _empty_state()  # buckets changed between versions: count everything again
        after = int(state["upto"])
        if upto <= after:
            return state
        changed = False
        for p in store.list_peers():
            n, total_ms, cumulative = q.deliveries_between(store, p.station, after, upto, BOUNDS_MS)
            if not n:
                continue
            h = state["peers"].setdefault(
                p.station, {"count": 0, "sum_ms": 0, "le": [0] * len(BOUNDS_MS)}
            )
            h["count"] += n
            h["sum_ms"] += total_ms
            h["le"] = [a + b for a, b in zip(h["le"], cumulative, strict=True)]
            changed = True
        # With nothing new, `upto` may stay where it is: the next fold covers the same empty
        # span again, and a receipt committed late inside it is still counted.
        if changed:
            state["upto"] = upto
            store.set_meta(STATE_KEY, json.dumps(state, sort_keys=True))
    return state


def record_holder(station: Station) -> None:
    """Note which process runs the dispatcher, for operators and the metrics."""
    holder = {"host": socket.gethostname(), "pid": os.getpid(), "since": station.clock()}
    station.store.set_meta(HOLDER_KEY, json.dumps(holder, sort_keys=True))


def holder(station: Station) -> dict[str, Any] | None:
    raw = station.store.get_meta(HOLDER_KEY)
    return json.loads(raw) if raw else None


class StationCollector:
    """A prometheus_client collector; `collect` runs the queries at every scrape."""

    def __init__(self, station: Station) -> None:
        self.station = station

    def collect(self) -> Iterable[Metric]:
        st = self.station
        store = st.store
        peers = store.list_peers()
        names = {p.station: p.name for p in peers}
        labels = ["peer", "peer_id"]

        state = settle(st)
        deliveries = CounterMetricFamily(
            "parley_deliveries",
            "Envelopes receipted by a peer (counted once settled, see parley_delivery_latency).",
            labels=labels,
        )
        latency = HistogramMetricFamily(
            "parley_delivery_latency_seconds",
            "Time from queued to receipted by the peer.",
            labels=labels,
        )
        for pid, h in sorted(state["peers"].items()):
            lv = [names.get(pid, pid), pid]
            deliveries.add_metric(lv, h["count"])
            buckets = [(_seconds(b), float(c)) for b, c in zip(BOUNDS_MS, h["le"], strict=True)]
            latency.add_metric(lv, [*buckets, ("+Inf", float(h["count"]))], h["sum_ms"] / 1000)

        depth = GaugeMetricFamily(
            "parley_queue_depth",
            "Envelopes queued for a peer and not yet receipted.",
            labels=labels,
        )
        oldest = GaugeMetricFamily(
            "parley_queue_oldest_age_seconds",
            "Age of the oldest envelope waiting for a peer (0 when none waits).",
            labels=labels,
        )
        link = GaugeMetricFamily(
            "parley_link_state", "1 for the link's current state, 0 for the others.",
            labels=[*labels, "state"],
        )  # fmt: skip
        rtt = GaugeMetricFamily(
            "parley_link_rtt_seconds", "Round trip of the last successful exchange.", labels=labels
        )
        now = st.clock()
        for p in peers:
            lv = [p.name, p.station]
            n, first = q.queue(store, p.station)
            depth.add_metric(lv, n)
            oldest.add_metric(lv, max(0, now - first) / 1000 if first is not None else 0)
            row = store.link(p.station)
            current = row.state if row else "unknown"
            for s in LINK_STATES:
                link.add_metric([*lv, s], 1 if s == current else 0)
            if row is not None and row.rtt_ms is not None:
                rtt.add_metric(lv, row.rtt_ms / 1000)

        alarms = GaugeMetricFamily(
            "parley_alarms", "Alarms not yet cleared.", labels=["kind", "severity"]
        )
        for kind, severity, n in q.open_alarms(store):
            alarms.add_metric([kind, severity], n)

        stored = GaugeMetricFamily(
            "parley_envelopes_stored", "Envelopes in the database, by sender.", labels=["sender"]
        )
        for sender, n in q.envelopes_by_sender(store):
            stored.add_metric([st.cfg.name if sender == st.id else names.get(sender, sender)], n)

        # Group commit (station/writer.py): sends per commit is the grouping achieved.
        counts = store.counters()
        groups = CounterMetricFamily(
            "parley_writer_commits",
            "Durable transactions the send writer committed (each holds one or more sends).",
        )
        groups.add_metric([], counts.get("writer.groups", 0))
        sends = CounterMetricFamily(
            "parley_writer_sends", "Sends committed by the send writer, over all its commits."
        )
        sends.add_metric([], counts.get("writer.sends", 0))

        info = InfoMetricFamily("parley_station", "This station.")
        info.add_metric([], {"name": st.cfg.name, "station": st.id, "version": __version__})
        out: list[Metric] = [
            info,
            deliveries,
            latency,
            depth,
            oldest,
            link,
            rtt,
            alarms,
            stored,
            groups,
            sends,
        ]
        h = holder(st)
        if h is not None:
            who = InfoMetricFamily("parley_dispatcher", "The process running the dispatcher.")
            who.add_metric([], {"host": str(h["host"]), "pid": str(h["pid"])})
            out.append(who)
        return out


def _seconds(ms: int) -> str:
    return repr(ms / 1000)


def registry(station: Station) -> CollectorRegistry:
    reg = CollectorRegistry()
    reg.register(StationCollector(station))
    return reg


def scrape(reg: CollectorRegistry, who: User, accept: str) -> tuple[bytes, str]:
    """The metrics of `reg` for `who`, in the format `accept` asks for: (body, content type)."""
    authorize(who, Action.METRICS_READ)
    encode, content_type = choose_encoder(accept)
    return encode(reg), content_type
