"""Pictures as geometry: the console's charts are computed here and drawn by templates.

Templates draw the SVG (so every label goes through autoescaping); this module only turns data
into numbers and short strings. Nothing here reads the store.

Link-health chart: one sample per tick of the sampler (`LinkHistory`), kept in memory for the
chart's window. The line is the round-trip time; the band below it is the link state, coloured
and also labelled by pattern-free text in the table beside it, so colour is never the only cue.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from parley.station.node import Station

WINDOW_MS = 30 * 60 * 1000
SAMPLE_EVERY_MS = 5_000
_CAP = WINDOW_MS // SAMPLE_EVERY_MS + 1


@dataclass(frozen=True)
class Sample:
    ts: int
    state: str
    rtt_ms: int | None


class LinkHistory:
    """Recent link samples per peer, taken by a scheduled task of the station (in memory: the
    chart shows the time since the station started, up to its window)."""

    def __init__(self, every_ms: int = SAMPLE_EVERY_MS) -> None:
        self.every_ms = every_ms
        self.last = -every_ms
        self.samples: dict[str, deque[Sample]] = {}

    def sample(self, station: Station, now_ms: int) -> None:
        if now_ms - self.last < self.every_ms:
            return
        self.last = now_ms
        for p in station.store.list_peers():
            link = station.store.link(p.station)
            s = Sample(now_ms, link.state if link else "unknown", link.rtt_ms if link else None)
            self.samples.setdefault(p.station, deque(maxlen=_CAP)).append(s)

    def series(self, peer: str) -> list[Sample]:
        return list(self.samples.get(peer, ()))


@dataclass(frozen=True)
class Band:
    x: float
    width: float
    state: str


@dataclass(frozen=True)
class Tick:
    pos: float
    label: str


@dataclass(frozen=True)
class LinkChart:
    width: int
    height: int
    left: int
    top: int
    plot_w: int
    plot_h: int
    band_y: int
    band_h: int
    points: str  # SVG polyline points of the RTT line ("" when no RTT was measured)
    bands: tuple[Band, ...]
    y_ticks: tuple[Tick, ...]
    x_ticks: tuple[Tick, ...]
    minutes: int
    empty: bool


def _ceiling(v: int) -> int:
    """A round upper bound for the RTT axis: 10, 20, 50, 100, 200, 500 …"""
    step = 10
    while True:
        for m in (1, 2, 5):
            if v <= step * m:
                return step * m
        step *= 10


def link_chart(
    samples: list[Sample],
    now_ms: int,
    changes: list[tuple[int, str]] | None = None,
    window_ms: int = WINDOW_MS,
) -> LinkChart:
    """RTT line from `samples`; the state band from `changes` ((at_ms, new state), oldest
    first, the recorded link events) when given, else from the samples' states."""
    width, height, left, top, right = 600, 170, 48, 10, 10
    plot_w, plot_h, band_h = width - left - right, 110, 14
    band_y = top + plot_h + 8
    start = now_ms - window_ms
    shown = [s for s in samples if start <= s.ts <= now_ms]

    def x(ts: int) -> float:
        return round(left + (ts - start) * plot_w / window_ms, 1)

    rtts = [s.rtt_ms for s in shown if s.rtt_ms is not None]
    top_rtt = _ceiling(max(rtts)) if rtts else 10
    points = " ".join(
        f"{x(s.ts)},{round(top + plot_h - s.rtt_ms * plot_h / top_rtt, 1)}"
        for s in shown
        if s.rtt_ms is not None
    )
    if changes is not None:
        # The state in force at the window's start is the last change before it.
        before = [c for c in changes if c[0] < start]
        steps = [(start, before[-1][1])] if before else []
        steps += [c for c in changes if start <= c[0] <= now_ms]
    else:
        steps = [(s.ts, s.state) for s in shown]
    bands = []
    for i, (at, state) in enumerate(steps):
        end = steps[i + 1][0] if i + 1 < len(steps) else now_ms
        bands.append(Band(x(at), max(1.0, round(x(end) - x(at), 1)), state))
    minutes = window_ms // 60_000
    y_ticks = tuple(
        Tick(round(top + plot_h - v * plot_h / top_rtt, 1), str(v))
        for v in (0, top_rtt // 2, top_rtt)
    )
    x_ticks = tuple(
        Tick(x(now_ms - m * 60_000), f"-{m} min" if m else "0") for m in (minutes, minutes // 2, 0)
    )
    return LinkChart(
        width, height, left, top, plot_w, plot_h, band_y, band_h, points, tuple(bands),
        y_ticks, x_ticks, minutes, not shown and not bands,
    )  # fmt: skip


# --- crisis timeline ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Mark:
    x: float
    y: float
    lane: str
    label: str  # shown as the mark's tooltip (<title>); the list beside the chart has it too


@dataclass(frozen=True)
class TimelineChart:
    width: int
    height: int
    left: int
    plot_w: int
    lanes: tuple[Tick, ...]  # y position and lane name
    marks: tuple[Mark, ...]
    status_bands: tuple[Band, ...]  # the incident's status over time
    band_y: int
    x_ticks: tuple[Tick, ...]


def _lane(kind: str) -> str:
    if kind.startswith("crisis."):
        return "incident"
    if kind.startswith("link"):
        return "link"
    if kind == "ack":
        return "answers"
    return "messages"


LANES = ("incident", "messages", "answers", "link")


def timeline_chart(
    items: list[tuple[int, str, str]],
    statuses: list[tuple[int, str]],
    now_ms: int,
    fmt: Callable[[int], str],
) -> TimelineChart:
    """`items` (ts, kind, summary) on lanes by kind; `statuses` (ts, status) oldest first, the
    incident's status changes, drawn as a band that ends at the last item or now if not closed."""
    width, left, right, top, lane_h = 720, 90, 16, 12, 34
    plot_w = width - left - right
    band_y = top + lane_h * len(LANES) + 6
    height = band_y + 14 + 26
    times = [t for t, _, _ in items] + [t for t, _ in statuses]
    start = min(times) if times else now_ms
    closed = bool(statuses) and statuses[-1][1] == "closed"
    end = max(times) if closed and times else max([now_ms, *times])
    if end - start < 120_000:  # a burst within two minutes: centre it in a two-minute frame
        mid = (start + end) // 2
        start, end = mid - 60_000, mid + 60_000
    span = end - start
    lo, hi = start, end
    start -= span // 20
    span += span // 10

    def x(ts: int) -> float:
        return round(left + (ts - start) * plot_w / span, 1)

    lanes = tuple(Tick(top + lane_h * i + lane_h / 2, name) for i, name in enumerate(LANES))
    ys = {t.label: t.pos for t in lanes}
    marks = tuple(Mark(x(ts), ys[_lane(kind)], _lane(kind), summary) for ts, kind, summary in items)
    bands = []
    for i, (ts, status) in enumerate(statuses):
        stop = statuses[i + 1][0] if i + 1 < len(statuses) else (ts if status == "closed" else hi)
        bands.append(Band(x(ts), max(2.0, round(x(stop) - x(ts), 1)), status))
    x_ticks = tuple(Tick(x(t), fmt(t)) for t in (lo, hi))
    return TimelineChart(width, height, left, plot_w, lanes, marks, tuple(bands), band_y, x_ticks)
