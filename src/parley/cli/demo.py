"""`parley demo`: three stations on loopback as real processes, and the story behind Parley
played through their operator APIs.

South (English) and North (Korean) are the parties; the UN station facilitates. Every act in the
story is done by a named person logging in with the password the demo prints, as they would in
the console, so the logins shown at the end are known to work. Everything is written under one
directory (default ./parley-demo): a station directory per party (SQLite), their logs, and
`demo.json` (mode 0600: addresses, logins, channel ids) for programs and tests.

The other helpers here (`free_port`, `init`, `start`, `wait_for`) start real stations for tests
and benchmarks too.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from textwrap import indent
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from parley.cli.client import Api, ApiError
from parley.errors import Code, LocalError, ParleyError
from parley.station import config as station_config
from parley.station import passwords

out = Console(highlight=False, soft_wrap=True)

# Liveness bounds, not expectations: a wait returns as soon as its condition holds (a station
# that exits is reported at once), and a loaded 2-core machine took longer than 30 s for both.
START_S = 120  # a station process answering its API
WAIT_S = 120  # one delivery (or a few) between stations on loopback
MARKER = ".parley-demo"  # only a directory holding it is ever deleted by the demo
SEOUL = ZoneInfo("Asia/Seoul")


# --- stations as processes (used by tests and benchmarks too) -----------------------------------


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (outgoing connections, binds to port 0)."""
    with suppress(OSError, ValueError, IndexError):
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    return 32768


_next_port: list[int] = []  # where this process's next free_port() search starts


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now, for a station to bind a moment later.

    It lies below the ephemeral range: a port-0 bind would be handed back to the kernel before
    the station binds it, and in between any outgoing connection (from this machine's tests, a
    peer's retries) could take it as its source port (a station then fails to start, as the demo
    did in CI). Each call in a process gives a different port, so no test is handed the port of
    a station that is stopped for a restart. The search starts at a random point, so two
    processes rarely meet."""
    high = _ephemeral_low()
    low = min(10_000, high // 2)
    if not _next_port:
        _next_port.append(random.randrange(low, high))  # a spread, not a secret
    for _ in range(2_000):
        port = _next_port[0]
        _next_port[0] = port + 1 if port + 1 < high else low
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue  # a listener, or a recent connection's TIME_WAIT
            return port
    raise LocalError(Code.INTERNAL, f"no free port on 127.0.0.1 between {low} and {high}")


def claim_port(port: int) -> int:
    """`port` if nothing on this machine listens on it; else a clear error, before any station
    is started."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            raise LocalError(
                Code.INVALID_REQUEST,
                f"port {port} on 127.0.0.1 is taken ({exc.strerror}); choose another --port-base",
            ) from exc
    return port


def init(
    data: Path,
    name: str,
    lang: str,
    timings: station_config.Timings | None = None,
    port: int | None = None,
) -> None:
    cfg = station_config.Config(
        name=name,
        lang=lang,
        listen=f"127.0.0.1:{port or free_port()}",
        timings=timings or station_config.Timings(),
        timezone="Asia/Seoul",  # the notice forms take and show times in it beside UTC
    )
    station_config.init_dir(data, cfg)


def start(data: Path, log: Path) -> subprocess.Popen[bytes]:
    """Start `parley station run` for `data` and wait until its API answers."""
    return _await_up(_spawn(data, log), data, log)


def _spawn(data: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "parley.cli", "station", "run", "--data", str(data)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C reaches the demo, which stops the stations
        )


def _await_up(proc: subprocess.Popen[bytes], data: Path, log: Path) -> subprocess.Popen[bytes]:
    api = _api(data, station_config.load_token(data), timeout_s=2)
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LocalError(Code.STATION_UNREACHABLE, f"station in {data} exited; see {log}")
        try:
            api.get("/station")
            return proc
        except ApiError as exc:
            if exc.code != Code.STATION_UNREACHABLE:
                raise
            time.sleep(0.1)
    stop(proc)
    raise LocalError(Code.STATION_UNREACHABLE, f"station in {data} did not start; see {log}")


def stop(p: subprocess.Popen[bytes]) -> None:
    """Stop a station started here: SIGTERM to its process group, SIGKILL if it lingers."""
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=10)


def wait_for(pred: Callable[[], object], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise LocalError(Code.STATION_UNREACHABLE, "the demo timed out waiting for delivery")


def _api(data: Path, token: str, timeout_s: float = 30.0) -> Api:
    """An API client acting with `token` (not PARLEY_TOKEN, whoever runs the demo)."""
    api = Api(data, timeout_s=timeout_s)
    api.http.headers["Authorization"] = f"Bearer {token}"
    return api


def _until(what: str, pred: Callable[[], object], timeout_s: float = WAIT_S) -> None:
    """Wait for `pred`; an API error while waiting (say, not found yet) counts as not yet."""
    last: list[str] = []

    def ready() -> bool:
        try:
            return bool(pred())
        except ParleyError as exc:
            last[:] = [f" (last answer: {exc.code}: {exc.message})"]
            return False

    try:
        wait_for(ready, timeout_s)
    except LocalError:
        raise LocalError(
            Code.STATION_UNREACHABLE,
            f"the demo timed out after {timeout_s:g} s waiting for {what}{''.join(last)}",
        ) from None


# --- the cast ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Site:
    key: str
    name: str
    lang: str


@dataclass(frozen=True)
class Person:
    site: str
    name: str
    roles: tuple[str, ...]
    does: str


SOUTH, NORTH, UN = (
    Site("south", "Hotline South", "en"),
    Site("north", "Hotline North", "ko"),
    Site("un", "UN Facilitation", "en"),
)
SITES = (SOUTH, NORTH, UN)
PEOPLE = (
    Person("south", "south.duty", ("operator",), "duty operator"),
    Person("south", "south.rep", ("representative",), "personal representative (back channel)"),
    Person("south", "south.translator", ("translator",), "translator"),
    Person("south", "south.auditor", ("auditor",), "auditor"),
    Person("south", "south.admin", ("admin", "operator"), "station admin"),
    Person("north", "north.duty", ("operator",), "duty operator"),
    Person("north", "north.rep", ("representative",), "personal representative (back channel)"),
    Person("north", "north.translator", ("translator",), "translator"),
    Person("north", "north.admin", ("admin", "operator"), "station admin"),
    Person("un", "un.facilitator", ("facilitator", "operator"), "facilitator"),
    Person("un", "un.admin", ("admin", "operator"), "station admin"),
)

# (sender site, sender, reader site, reader's translator, original, lang, certified translation)
HOTLINE_LINES = (
    (
        SOUTH,
        "south.duty",
        NORTH,
        "north.translator",
        "This is the South duty officer on the reopened line. Do you read me?",
        "en",
        "재개된 회선의 남측 당직관입니다. 제 말이 들립니까?",
    ),
    (
        NORTH,
        "north.duty",
        SOUTH,
        "south.translator",
        "북측 당직관입니다. 잘 들립니다. 통신선 복원에 동의합니다.",
        "ko",
        "This is the North duty officer. We read you clearly. We agree to restore the line.",
    ),
)

# (sender, text, lang, gloss printed by the demo: nobody but the two is named on this channel)
BACK_LINES = (
    (
        "south.rep",
        "Personally, from the South representative: we are ready to meet without "
        "preconditions. Could your side accept the UN as facilitator?",
        "en",
        "",
    ),
    (
        "north.rep",
        "북측 대표입니다. 유엔의 중재를 받아들일 수 있습니다. 다만 탁자는 원탁을 제안합니다.",
        "ko",
        "This is the North representative. We can accept UN facilitation. "
        "But we propose a round table.",
    ),
)


def _password() -> str:
    return passwords.generate()


def _day(days_ahead: int) -> str:
    return (datetime.now(SEOUL) + timedelta(days=days_ahead)).date().isoformat()


def _seoul(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, SEOUL).strftime("%a %Y-%m-%d %H:%M Asia/Seoul")


def _ok(text: str) -> str:
    return f"[green]✓[/green] {text}"


def _step(n: int, en: str, ko: str) -> None:
    out.print()
    out.rule(f"[bold]{n}. {en}[/bold]  ·  {ko}", align="left")


def _say(text: str) -> None:
    out.print(f"  {text}")


# --- the demo ------------------------------------------------------------------------------------


class Demo:
    """Three running stations and the people on them; each method plays one part of the story."""

    def __init__(self, root: Path, port_base: int | None = None) -> None:
        self.root = root
        self.port_base = port_base
        self.procs: list[subprocess.Popen[bytes]] = []
        self.admin: dict[str, Api] = {}  # the bootstrap token of each station
        self.ids: dict[str, str] = {}
        self.base: dict[str, str] = {}
        self.passwords: dict[str, str] = {}
        self.sessions: dict[str, Api] = {}
        self.channels: dict[str, str] = {}
        self.witness_name = ""

    # --- set-up ----------------------------------------------------------------------------------
    def start(self) -> None:
        spawned = []
        ports: list[int | None] = [None] * len(SITES)
        if self.port_base is not None:
            ports = [claim_port(self.port_base + i) for i in range(len(SITES))]
        for site, port in zip(SITES, ports, strict=True):
            init(self.root / site.key, site.name, site.lang, port=port)
            if site is UN:  # the UN also witnesses its peers' checkpoints (C2SP tlog-witness)
                cfg = station_config.load_config(self.root / site.key)
                cfg.witness = {"peers": True}
                station_config.save_config(self.root / site.key, cfg)
            log = self.root / f"{site.key}.log"
            spawned.append((site, _spawn(self.root / site.key, log), log))
            self.procs.append(spawned[-1][1])
        for site, proc, log in spawned:
            data = self.root / site.key
            _await_up(proc, data, log)
            self.admin[site.key] = _api(data, station_config.load_token(data))
            info = self.admin[site.key].get("/station")
            self.ids[site.key] = info["station"]
            self.base[site.key] = self.admin[site.key].base
            out.print(
                f"[bold]{site.name}[/bold] ({site.lang}) at {self.base[site.key]}, data in {data}"
            )
            _say(f"fingerprint {info['fingerprint']}")

    def introduce(self) -> None:
        invitations = {k: a.get("/invitation")["invitation"] for k, a in self.admin.items()}
        for a in SITES:
            for b in SITES:
                if a != b:
                    self.admin[a.key].post("/peers", json={"invitation": invitations[b.key]})
        _say(
            "The stations exchanged signed invitations; in real life each side reads its "
            "fingerprint aloud and the other compares it."
        )

    def add_people(self) -> None:
        for p in PEOPLE:
            self.passwords[p.name] = _password()
            self.admin[p.site].post(
                "/users",
                json={"name": p.name, "roles": list(p.roles), "password": self.passwords[p.name]},
            )
        self.save()

    def save(self) -> None:
        """demo.json: what a program (or a test) needs to carry on; it holds the passwords."""
        doc = {
            "stations": {
                s.key: {
                    "name": s.name,
                    "lang": s.lang,
                    "station": self.ids[s.key],
                    "data": str(self.root / s.key),
                    "url": self.base[s.key],
                    "console": self.console(s.key),
                }
                for s in SITES
            },
            "users": [
                {
                    "station": p.site,
                    "name": p.name,
                    "roles": list(p.roles),
                    "password": self.passwords[p.name],
                }
                for p in PEOPLE
            ],
            "channels": self.channels,
        }
        path = self.root / "demo.json"
        path.touch(mode=0o600)
        path.write_text(json.dumps(doc, indent=2) + "\n")

    def console(self, key: str) -> str:
        return f"{self.base[key]}/console/"

    def as_(self, name: str) -> Api:
        """The API as person `name`, logged in with their password like at the console."""
        if name not in self.sessions:
            site = next(p.site for p in PEOPLE if p.name == name)
            login = self.admin[site].post(
                "/login", json={"name": name, "password": self.passwords[name]}
            )
            self.sessions[name] = _api(self.root / site, login["token"])
        return self.sessions[name]

    def print_logins(self) -> None:
        for s in SITES:
            t = Table(
                title=f"{s.name} ({s.lang}) — console {self.console(s.key)}",
                title_justify="left",
                title_style="bold",
            )
            t.add_column("user")
            t.add_column("password")
            t.add_column("roles")
            t.add_column("who")
            for p in PEOPLE:
                if p.site == s.key:
                    t.add_row(p.name, self.passwords[p.name], ", ".join(p.roles), p.does)
            out.print(t)

    def _name(self, key: str) -> str:
        return next(s.name for s in SITES if s.key == key)

    # --- 1. the hotline reopened -----------------------------------------------------------------
    def hotline(self) -> None:
        _step(1, "The hotline reopened", "핫라인 재개")
        sd, nd = self.as_("south.duty"), self.as_("north.duty")
        # The UN's witness key, as its admin would read it out; both sides compare it.
        witness = self.admin["un"].http.get(self.base["un"] + "/witness").json()
        self.witness_name = str(witness["name"])
        ch = sd.post(
            "/channels",
            json={
                "kind": "hotline", "title": "Military hotline", "peers": [self.ids["north"]],
                "witnesses": [{"vkey": witness["vkey"], "url": witness["url"]}], "witness_k": 1,
            },
        )["channel"]  # fmt: skip
        self.channels["hotline"] = ch
        _say(
            f"south.duty proposes the military hotline to North (channel {ch}), witnessed by "
            "the UN: it cosigns each checkpoint and cannot read the line."
        )
        _until("North to receive the proposal", lambda: nd.get(f"/channels/{ch}"))
        nd.post(f"/channels/{ch}/consent", json={})
        _until("South to see the hotline open", lambda: _state(sd, ch) == "open")
        _say(_ok("north.duty consents: both signed consents are on record, the line is open."))
        for site, sender, reader_site, translator, text, lang, translated in HOTLINE_LINES:
            sent = self.as_(sender).post(
                f"/channels/{ch}/messages", json={"text": text, "lang": lang}
            )
            ref = f"/channels/{ch}/messages/{sent['hash']}/translations"
            tr = self.as_(translator)
            _until(f"{reader_site.name} to receive the message", partial(tr.get, ref))
            tr.post(ref, json={"lang": reader_site.lang, "text": translated, "status": "certified"})
            shown = tr.get(ref, params={"lang": reader_site.lang})["shown"]
            out.print(
                f"  [bold]{site.name}[/bold] #{sent['seq']} ({lang}, original): {escape(text)}"
            )
            out.print(
                f"    {reader_site.name} reads ({reader_site.lang}, {escape(shown['label'])}): "
                f"{escape(shown['text'])}"
            )
        uf = self.as_("un.facilitator")
        fc = uf.post(
            "/channels",
            json={
                "kind": "facilitated",
                "title": "Talks about talks",
                "peers": [self.ids["south"], self.ids["north"]],
                "facilitator": self.ids["un"],
            },
        )["channel"]
        self.channels["facilitated"] = fc
        _say(f"un.facilitator proposes a facilitated channel for all three (channel {fc}).")
        for api in (sd, nd):
            _until("the parties to receive it", partial(api.get, f"/channels/{fc}"))
            api.post(f"/channels/{fc}/consent", json={})
        _until("the UN to see the channel open", lambda: _state(uf, fc) == "open")
        _say(_ok("South and North consent: the facilitated channel is open, the UN facilitating."))

    # --- 2. check calls --------------------------------------------------------------------------
    def check_calls(self) -> None:
        _step(2, "Check calls", "정기 점검 통화")
        ch = self.channels["hotline"]
        sa, sd, nd = self.as_("south.admin"), self.as_("south.duty"), self.as_("north.duty")
        sched = sa.call(
            "PUT",
            f"/checkcalls/schedules/{ch}",
            json={"times": ["09:00", "16:00"], "tz": "Asia/Seoul", "answer_within_ms": 600_000},
        )
        _say(
            "south.admin schedules check calls on the hotline at 09:00 and 16:00 Asia/Seoul, "
            "Monday to Friday, to be answered within 10 minutes."
        )
        _say(f"next scheduled call: {_seoul(sched['next_due_ms'])}")
        call = sd.post(f"/checkcalls/{ch}/call", json={"answer_within_ms": 300_000})
        cid = call["call_id"]
        _say(f"south.duty makes a check call now ({cid}); North has 5 minutes to answer.")

        def pending_at_north() -> bool:
            calls = nd.get("/checkcalls", params={"channel": ch, "direction": "incoming"})
            return any(c["call_id"] == cid and c["status"] == "pending" for c in calls)

        _until("North to see the check call", pending_at_north)
        nd.post(f"/checkcalls/{ch}/{cid}/answer")

        def answered() -> dict[str, Any] | None:
            calls = sd.get("/checkcalls", params={"channel": ch, "direction": "outgoing"})
            done = [c for c in calls if c["call_id"] == cid and c["status"] == "answered"]
            return done[0] if done else None

        _until("South to receive the answer", answered)
        got = answered()
        assert got is not None
        a = got["answers"][0]
        _say(_ok(f"answered by {a['by']} at {a['name']} after {a['answered_ms'] - got['ts']} ms."))

        def link() -> dict[str, Any]:
            return next(x for x in sd.get("/links") if x["station"] == self.ids["north"])

        # Pushes and heartbeats bring a new link up within a heartbeat or two; say what it is.
        with suppress(LocalError):
            _until("the link to North to be up", lambda: link()["state"] == "up", timeout_s=12)
        state = link()
        said = f"South's view of the link to North: {state['state']} — "
        _say(said + escape(state["explain"]["en"]))
        _say(" " * len(said) + escape(state["explain"]["ko"]))

    # --- 3. a launch notice ----------------------------------------------------------------------
    def launch_notice(self) -> None:
        _step(3, "Launch notice", "발사 통보")
        ch = self.channels["hotline"]
        sd, nd = self.as_("south.duty"), self.as_("north.duty")
        start = (datetime.now(UTC) + timedelta(hours=26)).replace(minute=0, second=0)
        # Typed as a duty officer would, in the station's zone and in degrees; the station turns
        # it into the signed integers (Unix ms, micro-degrees).
        inputs = {
            "launch_window.start": f"{start.astimezone(SEOUL):%Y-%m-%d %H:%M}",
            "launch_window.end": "+4h",
            "launch_area": "39°39'N 124°42'E; 39°39'N 124°45'E; 39°36'N 124°45'E; 39°36'N 124°42'E",
            "launch_area.name": "Sohae launch site",
            "impact_area": "40N 131E; 40N 132E; 39N 132E; 39N 131E",
            "impact_area.name": "East Sea area B",
            "vehicle_kind": "space launch vehicle",
            "launch_count": "1",
            "remarks": "위성 발사. 잔해가 낙하 구역에 떨어질 수 있음.",
        }
        _say("north.duty types the notice field by field (times in Asia/Seoul, degrees):")
        for name, text in inputs.items():
            _say(f"  {name}: {escape(text)}")
        req = {"form": "launch_notice", "inputs": inputs}
        preview = nd.post(f"/channels/{ch}/notices/preview", json=req)
        readers = ", ".join(f"{r['name']} ({r['lang']})" for r in preview["readers"])
        _say(f"The preview shows the notice as {readers} will read it; then north.duty sends it.")
        sent = nd.post(f"/channels/{ch}/notices", json=req)
        ref = sent["hash"]
        _say(
            f"north.duty sends a launch notice, 26 hours ahead "
            f"({'late' if sent['late'] else 'on time'}), precedence {sent['precedence']}."
        )
        path = f"/channels/{ch}/notices/{ref}"
        _until("South to receive the notice", lambda: sd.get(path))
        ko = nd.get(path, params={"lang": "ko"})
        en = sd.get(path, params={"lang": "en"})
        views = [
            ("North reads (한국어, as written)", ko["text"].strip()),
            ("South reads (English, rendered from the same fields)", en["text"].strip()),
        ]
        if out.width >= 120:  # side by side only where the lines need not wrap
            t = Table(*(title for title, _ in views))
            t.add_row(*(escape(text) for _, text in views))
            out.print(t)
        else:
            for title, text in views:
                out.print(f"  [bold]{title}[/bold]")
                out.print(indent(escape(text), "  │ ", lambda _: True))
        _say(
            "Both are rendered by each side's own template from the signed fields: nothing is "
            "machine-translated; the free-text remarks stay as the sender wrote them."
        )
        due = en["deadline_ms"] - en["ts"]
        _say(f"The form asks for an acknowledgement within {round(due / 3_600_000)} h.")
        sd.post(
            f"/channels/{ch}/messages/{ref}/ack",
            json={
                "answer": "acknowledged",
                "text": "Received. We will warn shipping and aircraft in the impact area.",
            },
        )

        def acked() -> bool:
            answers = nd.get(path)["answers"]
            return bool(answers) and all(a["status"] == "answered" for a in answers)

        _until("North to receive the acknowledgement", acked)
        _say(_ok("south.duty acknowledges; North sees the notice answered, before its deadline."))

    # --- 4. the back channel ---------------------------------------------------------------------
    def back_channel(self) -> None:
        _step(4, "Back channel between representatives", "대표 간 비공개 채널")
        sr, nr = self.as_("south.rep"), self.as_("north.rep")
        bc = sr.post(
            "/channels",
            json={
                "kind": "backchannel",
                "title": "Personal representatives",
                "peers": [self.ids["north"]],
                "representatives": {
                    self.ids["south"]: ["south.rep"],
                    self.ids["north"]: ["north.rep"],
                },
            },
        )["channel"]
        self.channels["backchannel"] = bc
        self.save()
        _say("south.rep proposes a back channel naming south.rep and north.rep only.")
        _until("north.rep to receive the proposal", lambda: nr.get(f"/channels/{bc}"))
        nr.post(f"/channels/{bc}/consent", json={})
        _until("the back channel to open", lambda: _state(sr, bc) == "open")
        _say(_ok("north.rep consents: the back channel is open."))
        for seen, (sender, text, lang, gloss) in enumerate(BACK_LINES, start=1):
            me, other = (sr, nr) if sender == "south.rep" else (nr, sr)
            me.post(f"/channels/{bc}/messages", json={"text": text, "lang": lang})
            _until(
                "the other representative to receive it",
                partial(_has_texts, other, bc, seen),
            )
            out.print(f"  [bold]{sender}[/bold] ({lang}): {escape(text)}")
            if gloss:
                out.print(
                    f"    [dim](gloss for this demo, not a Parley record: {escape(gloss)})[/dim]"
                )
        for person in ("south.duty", "south.admin", "north.duty"):
            try:
                self.as_(person).get(f"/channels/{bc}")
            except ApiError as exc:
                if exc.code != Code.FORBIDDEN:
                    raise
                listed = [c["channel"] for c in self.as_(person).get("/channels")]
                assert bc not in listed, f"{person} sees the back channel in the channel list"
                _say(
                    _ok(
                        f"{person} asks for the back channel: {exc.code} ({exc.message}); "
                        "it is not in their channel list either."
                    )
                )
            else:
                raise LocalError(Code.CONFLICT, f"the back channel is visible to {person}")

    # --- 5. talks about talks and a road map -----------------------------------------------------
    def talks(self) -> None:
        _step(5, "Talks about talks", "회담을 위한 회담")
        fc = self.channels["facilitated"]
        sd, nd, uf = self.as_("south.duty"), self.as_("north.duty"), self.as_("un.facilitator")
        nid = "first-meeting"
        terms: dict[str, Any] = {
            "date_options": [{"start": _day(21)}, {"start": _day(28)}],
            "venue_options": ["Panmunjom, Peace House", "Geneva, Palais des Nations"],
            "format": {"table": "square", "seating": "each delegation on its own side; UN chairs"},
            "delegation_size": {"max": 5},
            "agenda": [
                "Keeping the military hotline open",
                "Notification of launches and exercises",
                "A road map of reciprocal steps",
            ],
            "preconditions": {"none": True},
        }
        path = f"/channels/{fc}/talks/{nid}"
        tabled = uf.post(f"/channels/{fc}/talks", json={"negotiation_id": nid, "terms": terms})
        v0 = tabled["version"]
        _say(f"un.facilitator tables a first meeting (version {v0[:10]}…):")
        _say(
            f"  dates {', '.join(d['start'] for d in terms['date_options'])}; venues "
            f"{' or '.join(terms['venue_options'])}; a square table; up to 5 per delegation"
        )
        _say(f"  agenda: {'; '.join(terms['agenda'])}")
        _say("  preconditions: [bold]none[/bold] — 전제 조건 없음")
        _until("North to receive the proposal", lambda: _has_version(nd, path, v0))
        round_terms = {
            **terms,
            "format": {"table": "round", "seating": "all delegations around one table; UN chairs"},
        }
        countered = nd.post(f"{path}/counter", json={"parent": v0, "terms": round_terms})
        v1 = countered["version"]
        changes = countered["negotiation"]["history"][-1]["changes"]
        _say(f"north.duty counters (version {v1[:10]}…), changing:")
        for c in changes:
            _say(
                f"  {c['path']}: {escape(json.dumps(c['before'], ensure_ascii=False))} → "
                f"{escape(json.dumps(c['after'], ensure_ascii=False))}"
            )
        _say("  (사각 탁자 대신 원탁) — a counter is North's signed acceptance of its own version.")
        _until("South to receive the counter", lambda: _has_version(sd, path, v1))
        sd.post(f"{path}/accept", json={"version": v1})
        _say(f"south.duty accepts exactly version {v1[:10]}… by its hash.")

        def agreement(api: Api) -> str | None:
            a = api.get(path)["agreement"]
            return a["hash"] if a else None

        for api in (sd, nd, uf):
            _until("every member to derive the agreement", partial(agreement, api))
        hashes = {agreement(api) for api in (sd, nd, uf)}
        shown = uf.get(path)["agreement"]
        if len(hashes) != 1:
            raise LocalError(Code.CONFLICT, f"the members derive different agreements: {hashes}")
        _say(_ok(f"[bold]Agreement[/bold] {shown['hash']} — identical at South, North and the UN;"))
        for s in shown["signatures"]:
            _say(f"  signed by {s['name']} (envelope {s['envelope_hash'][:10]}…, seq {s['seq']})")
        _say(
            f"  table: {shown['record']['terms']['format']['table']}, "
            f"preconditions: none. 합의 성립."
        )
        self.road_map()

    def road_map(self) -> None:
        fc = self.channels["facilitated"]
        sd, nd, uf = self.as_("south.duty"), self.as_("north.duty"), self.as_("un.facilitator")
        north, south = self.ids["north"], self.ids["south"]
        steps = [
            ("1", north, "Keep the western military line open and answer every check call", []),
            (
                "2",
                south,
                "Suspend loudspeaker broadcasts along the border",
                [{"after_step": "1", "state": "verified"}],
            ),
            (
                "3",
                north,
                "Send a delegation to the first working-level meeting",
                [{"after_step": "2", "state": "verified"}],
            ),
        ]
        out.print()
        _say("[bold]A first road map[/bold] (첫 로드맵), tabled by the UN: reciprocal steps.")
        for sid, owner, text, after in steps:
            uf.post(
                f"/channels/{fc}/roadmap/steps",
                json={"step_id": sid, "owner": owner, "description": text, "conditions": after},
            )
        for api in (sd, nd):
            _until("the parties to receive the steps", partial(_has_steps, api, fc, 3))
            for sid, *_ in steps:
                api.post(f"/channels/{fc}/roadmap/steps/{sid}/agree")
        _until(
            "every party's agreement to every step",
            lambda: all(s["status"] == "agreed" for s in _steps(uf, fc).values()),
        )
        nd.post(
            f"/channels/{fc}/roadmap/steps/1/update",
            json={"status": "done", "note": "The line is open; both calls answered each day."},
        )
        _until("South to see step 1 claimed done", lambda: _steps(sd, fc)["1"]["status"] == "done")
        sd.post(
            f"/channels/{fc}/roadmap/steps/1/update",
            json={"status": "verified", "note": "Confirmed by our duty officers."},
        )
        _until(
            "the UN to see step 1 verified",
            lambda: "2" in uf.get(f"/channels/{fc}/roadmap")["unlocked"],
        )
        board = uf.get(f"/channels/{fc}/roadmap")
        t = Table("step", "owner", "after", "status", "what")
        for s in board["steps"]:
            waits = ", ".join(f"{c['after_step']} {c['state']}" for c in s["conditions"]) or "-"
            status = s["status"] + (" (unlocked)" if s["unlocked"] else "")
            t.add_row(s["step_id"], s["owner"]["name"], waits, status, escape(s["description"]))
        out.print(t)
        _say(
            _ok(
                "Both parties agreed to all three steps; North claimed step 1 done and South "
                "verified it, which unlocks step 2 for South."
            )
        )

    # --- 6. summary ------------------------------------------------------------------------------
    def summary(self) -> None:
        _step(6, "Summary", "요약")
        self.settle()
        members = {
            "hotline": ("south.duty", "north.duty"),
            "facilitated": ("south.duty", "north.duty", "un.facilitator"),
            "backchannel": ("south.rep", "north.rep"),
        }

        def digests(kind: str) -> dict[str, str]:
            ch = self.channels[kind]
            return {
                p: self.as_(p).get(f"/channels/{ch}/transcript")["digest"] for p in members[kind]
            }

        differ = []
        for kind in members:
            got: dict[str, str] = {}

            def agree(kind: str = kind, got: dict[str, str] = got) -> bool:
                got.clear()
                got.update(digests(kind))
                return len(set(got.values())) == 1

            with suppress(LocalError):
                _until(f"the {kind} transcripts to agree", agree)
            out.print(f"  [bold]{kind}[/bold] channel {self.channels[kind]}")
            for person, digest in got.items():
                out.print(f"    {self._name(_site(person)):<16} {digest}")
            if len(set(got.values())) == 1:
                out.print("    [green]✓ identical[/green]")
            else:
                out.print("    [red]✗ DIFFERENT[/red]")
                differ.append(kind)
        if differ:
            raise LocalError(Code.CONFLICT, f"transcripts differ between members: {differ}")
        self.witnessed()
        _say(
            _ok(
                "Transcript digests are identical at every member: everyone holds the same "
                "signed record (모든 당사자의 기록이 동일함)."
            )
        )
        out.print()
        self.print_logins()
        out.print()
        out.print(
            "[bold]Carry on in the browser[/bold] (브라우저에서 계속하세요): open a console "
            "above and sign in as one of its users."
        )
        _say(
            "The back channel appears only for south.rep and north.rep; the talks, road map, "
            "notice and check calls for everyone on the channels."
        )
        _say(
            f"The CLI works too, e.g. `parley inbox --data {self.root / 'north'}`; "
            f"logins and channel ids are in {self.root / 'demo.json'}, logs in {self.root}/*.log."
        )

    def witnessed(self) -> None:
        """Checkpoint the hotline now at both ends; every checkpoint gets the UN's cosignature."""
        ch = self.channels["hotline"]
        sd, nd = self.as_("south.duty"), self.as_("north.duty")
        for api in (sd, nd):
            api.post(f"/channels/{ch}/checkpoint")

        def rows(api: Api) -> list[dict[str, Any]]:
            got: list[dict[str, Any]] = api.get(f"/channels/{ch}/checkpoints")
            return got

        def all_witnessed() -> bool:
            listed = [rows(api) for api in (sd, nd)]
            return all(
                len({r["sender"] for r in got}) == 2
                and all(r["cosigners"] and r["witnessed_by"] for r in got)
                for got in listed
            )

        with suppress(LocalError):
            _until("the UN to cosign every hotline checkpoint", all_witnessed)
        complete = True
        for key, api in (("south", sd), ("north", nd)):
            got = rows(api)
            bare = [r for r in got if self.witness_name not in r["witnessed_by"]]
            complete = complete and not bare
            mark = "[green]✓[/green]" if not bare else "[red]✗[/red]"
            out.print(
                f"    {self._name(key):<16} {len(got) - len(bare)} of {len(got)} hotline "
                f"checkpoints carry the UN's cosignature {mark}"
            )
        if complete:
            _say(
                _ok(
                    "Every checkpoint of the hotline carries the UN's cosignature: not even "
                    "South and North together can rewrite it "
                    "(유엔이 모든 체크포인트에 공동 서명함)."
                )
            )

    def settle(self) -> None:
        """Every station has delivered everything it queued (each has every peer's receipt)."""

        def quiet() -> bool:
            return all(
                p["pending"] == 0 for a in self.admin.values() for p in a.get("/status")["peers"]
            )

        _until("every outbox to empty", quiet)

    def stop(self) -> None:
        for p in self.procs:
            stop(p)


def _site(person: str) -> str:
    return next(p.site for p in PEOPLE if p.name == person)


def _state(api: Api, channel: str) -> str:
    return str(api.get(f"/channels/{channel}")["state"])


def _has_texts(api: Api, channel: str, n: int) -> bool:
    msgs = api.get(f"/channels/{channel}/messages")
    return sum(1 for m in msgs if m["body"].get("type") == "text") >= n


def _has_version(api: Api, path: str, version: str) -> bool:
    return any(v["hash"] == version for v in api.get(path)["versions"])


def _has_steps(api: Api, channel: str, n: int) -> bool:
    return len(_steps(api, channel)) >= n


def _steps(api: Api, channel: str) -> dict[str, dict[str, Any]]:
    return {s["step_id"]: s for s in api.get(f"/channels/{channel}/roadmap")["steps"]}


def _prepare(root: Path) -> None:
    """An empty directory for the demo; a directory an earlier demo made is replaced."""
    if root.exists() and any(root.iterdir()):
        if not (root / MARKER).exists():
            raise LocalError(
                Code.INVALID_REQUEST,
                f"{root} exists and was not made by `parley demo`; choose another --dir",
            )
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text("made by `parley demo`; the next demo replaces this directory\n")


@contextmanager
def _interruptible() -> Iterator[None]:
    """SIGINT (Ctrl-C) and SIGTERM end the demo, which then stops its stations. SIGINT is set
    explicitly because a shell starts a background job with it ignored."""

    def bye(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    old = {sig: signal.signal(sig, bye) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def run_demo(root: Path, keep_running: bool, port_base: int | None = None) -> None:
    _prepare(root)
    demo = Demo(root, port_base)
    began = time.monotonic()
    with _interruptible():
        try:
            out.rule("[bold]Parley demo[/bold]: three stations on loopback · 루프백의 세 스테이션")
            demo.start()
            demo.introduce()
            demo.add_people()
            _say(
                f"The consoles and their logins are printed at the end (also in {root}/demo.json)."
            )
            demo.hotline()
            demo.check_calls()
            demo.launch_notice()
            demo.back_channel()
            demo.talks()
            demo.summary()
            out.print(f"\nThe story took {time.monotonic() - began:.1f} s.")
            out.rule("[bold]The consoles[/bold] · 콘솔")
            demo.print_logins()
            if keep_running:
                out.print("Stations keep running; press Ctrl-C to stop them.")
                while True:
                    signal.pause()
        except KeyboardInterrupt:
            out.print("\nStopping the stations.")
        except ParleyError:
            out.print(f"\nThe demo stopped; station logs are in {root}/*.log.")
            raise
        finally:
            demo.stop()


def demo_command(
    dir: Annotated[
        Path, typer.Option("--dir", help="Where the demo's stations live (replaced each run).")
    ] = Path("parley-demo"),
    keep_running: Annotated[
        bool,
        typer.Option(
            "--keep-running/--exit",
            "--wait/--no-wait",
            help="After the story, keep the stations running until Ctrl-C, or stop them.",
        ),
    ] = True,
    port_base: Annotated[
        int | None,
        typer.Option(
            "--port-base",
            min=1024,
            max=65533,
            help="South listens on this port, North on the next, the UN on the one after "
            "(default: free ports chosen at random).",
        ),
    ] = None,
) -> None:
    """Start three stations on loopback (South, North, the UN) and play the story behind Parley."""
    run_demo(dir, keep_running, port_base)
