"""`parley links`, `parley checkcall …` and `parley crisis …`: link health, check calls and
incident threads, through the running station's operator API.

    parley links                                   per peer: state, RTT, last contact, and why
    parley checkcall schedule CH --at 09:00 --at 16:00 --tz Asia/Seoul --within 10m
    parley checkcall schedules                     schedules with their next call
    parley checkcall call CH --within 5m           a call now, outside the schedule
    parley checkcall list --pending                calls waiting for our answer
    parley checkcall answer CH [CALL_ID]           answer (default: the oldest pending call)
    parley crisis open CH --title "…" --severity high
    parley crisis status ID contained --note "…"
    parley crisis link ID HASH                     put a message, notice or ack in the thread
    parley crisis list | show ID                   incidents; one incident with its timeline

Channel ids, call ids and hashes may be abbreviated to a unique prefix.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from parley.cli import common as cli
from parley.cli.client import Api
from parley.cli.notices import HASH_CHARS, _resolve_hash
from parley.errors import Code, LocalError
from parley.station.config import load_config

checkcall_app = typer.Typer(help="Check calls: schedules, calls, answers by a person.")
crisis_app = typer.Typer(help="Crises: incident threads with severity, status and a timeline.")

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_PART = re.compile(r"(\d+)(ms|s|m|h)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}

Within = Annotated[str, typer.Option("--within", help="Time to answer: e.g. 10m, 90s, 1h30m.")]
Channel = Annotated[
    str | None, typer.Option("--channel", help="The incident's channel, if its id is not unique.")
]


def parse_duration(text: str) -> int:
    """'1h30m', '10m', '90s', '500ms' → milliseconds."""
    parts = _PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise LocalError(Code.INVALID_REQUEST, f"{text!r}: expected a duration like 10m or 1h30m")
    return sum(int(n) * _UNIT_MS[u] for n, u in parts)


def parse_days(text: str) -> list[int]:
    """'mon-fri', 'mon,wed,fri', 'sat-sun' → weekday numbers (Monday = 0)."""
    out: set[int] = set()
    for item in text.lower().split(","):
        first, _, last = item.strip().partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise LocalError(Code.INVALID_REQUEST, f"{text!r}: expected days like mon-fri")
        a, b = DAYS.index(first), DAYS.index(last or first)
        if b < a:
            raise LocalError(Code.INVALID_REQUEST, f"{item!r}: a range runs forward, mon-fri")
        out.update(range(a, b + 1))
    return sorted(out)


def _days(days: list[int]) -> str:
    return ",".join(DAYS[d] for d in days)


def _table(
    rows: list[dict[str, Any]],
    as_json: bool,
    headers: tuple[str, ...],
    cells: Callable[[dict[str, Any]], tuple[str, ...]],
) -> None:
    """The rows as JSON for programs (--json), or as a table of `cells` under `headers`."""
    if as_json:
        return cli.print_json(rows)
    t = Table(*headers)
    for r in rows:
        t.add_row(*cells(r))
    cli.out.print(t)


# --- links ---------------------------------------------------------------------------------


def links(data: cli.Data = Path("parley-data"), as_json: cli.AsJson = False) -> None:
    """Per peer: link state, round trip, last contact, and why (ok, degraded, silent, down)."""
    rows = Api(data).get("/links")
    _table(
        rows, as_json,
        ("peer", "link", "since", "rtt ms", "last contact", "why", "calls missed", "acks overdue"),
        lambda r: (
            r["name"], r["state"], cli.when(r["since"]), str(r["rtt_ms"] or "-"),
            cli.when(r["last_ok"]), r["why"], str(r["overdue_checkcalls"]), str(r["overdue_acks"]),
        ),
    )  # fmt: skip
    if as_json:
        return  # each row's explanation is in the JSON
    for r in rows:
        if r["why"] != "ok":
            cli.out.print(
                f"{r['name']}: {r['explain']['ko' if _lang(data) == 'ko' else 'en']}", markup=False
            )


def _lang(data: Path) -> str:
    return load_config(data).lang


# --- check calls ---------------------------------------------------------------------------


@checkcall_app.command("schedule")
def checkcall_schedule(
    channel: str,
    at: Annotated[list[str], typer.Option("--at", help="A call time HH:MM (repeatable).")],
    tz: Annotated[str, typer.Option("--tz", help="IANA time zone, e.g. Asia/Seoul.")],
    within: Within = "10m",
    days: Annotated[str, typer.Option("--days", help="e.g. mon-fri, or mon,wed,fri.")] = "mon-fri",
    holiday: Annotated[
        list[str] | None, typer.Option("--holiday", help="A date without calls, YYYY-MM-DD.")
    ] = None,
    data: cli.Data = Path("parley-data"),
    as_json: cli.AsJson = False,
) -> None:
    """Call the other members at these local times; each call must be answered in time."""
    api = Api(data)
    ch = cli.resolve_channel(api, channel)
    req = {
        "times": at, "tz": tz, "weekdays": parse_days(days),
        "answer_within_ms": parse_duration(within), "holidays": holiday or [],
    }  # fmt: skip
    s = api.call("PUT", f"/checkcalls/schedules/{ch}", json=req)
    if as_json:
        return cli.print_json(s)
    cli.out.print(
        f"Check calls on {ch}: {', '.join(s['times'])} {s['tz']} on {_days(s['weekdays'])}, "
        f"answer within {within}. Next call {cli.when(s['next_due_ms'])}.",
        markup=False,
    )


@checkcall_app.command("schedules")
def checkcall_schedules(data: cli.Data = Path("parley-data"), as_json: cli.AsJson = False) -> None:
    """Every channel's check-call schedule and its next call."""
    _table(
        Api(data).get("/checkcalls/schedules"), as_json,
        ("channel", "times", "zone", "days", "answer within", "next call"),
        lambda s: (
            s["channel"], " ".join(s["times"]), s["tz"], _days(s["weekdays"]),
            f"{s['answer_within_ms'] // 1000} s", cli.when(s["next_due_ms"]),
        ),
    )  # fmt: skip


@checkcall_app.command("unschedule")
def checkcall_unschedule(channel: str, data: cli.Data = Path("parley-data")) -> None:
    """Stop the channel's scheduled check calls."""
    api = Api(data)
    ch = cli.resolve_channel(api, channel)
    r = api.call("DELETE", f"/checkcalls/schedules/{ch}")
    cli.out.print(
        f"Schedule of {ch} removed." if r["deleted"] else f"{ch} had no schedule.", markup=False
    )


@checkcall_app.command("call")
def checkcall_call(
    channel: str,
    within: Within = "10m",
    data: cli.Data = Path("parley-data"),
    as_json: cli.AsJson = False,
) -> None:
    """Call the other members now, outside the schedule."""
    api = Api(data)
    ch = cli.resolve_channel(api, channel)
    c = api.post(f"/checkcalls/{ch}/call", json={"answer_within_ms": parse_duration(within)})
    if as_json:
        return cli.print_json(c)
    cli.out.print(
        f"called: {c['call_id']} on {ch}, answer by {cli.when(c['answer_by_ms'])}", markup=False
    )


@checkcall_app.command("list")
def checkcall_list(
    channel: Annotated[str | None, typer.Option("--channel", help="Only this channel.")] = None,
    pending: Annotated[
        bool, typer.Option("--pending", help="Only calls waiting for our answer.")
    ] = False,
    limit: int = 50,
    data: cli.Data = Path("parley-data"),
    as_json: cli.AsJson = False,
) -> None:
    """Check calls, oldest first: ours (outgoing) and the other stations' (incoming)."""
    api = Api(data)
    params: dict[str, Any] = {"limit": limit}
    if channel:
        params["channel"] = cli.resolve_channel(api, channel)
    if pending:
        params.update(direction="incoming", status="pending")
    _table(
        api.get("/checkcalls", params=params), as_json,
        ("call", "channel", "from", "due", "answer by", "status", "answered by"),
        lambda c: (
            c["call_id"], c["channel"][:8], c["caller_name"], cli.when(c["due_ms"]),
            cli.when(c["answer_by_ms"]), c["status"], escape(_answerers(c)) or "-",
        ),
    )  # fmt: skip


def _answerers(call: dict[str, Any]) -> str:
    return ", ".join(f"{a['by']} ({a['name']})" for a in call["answers"] if a["by"] is not None)


@checkcall_app.command("answer")
def checkcall_answer(
    channel: str,
    call_id: Annotated[
        str | None, typer.Argument(help="The call (default: the oldest pending one).")
    ] = None,
    data: cli.Data = Path("parley-data"),
    as_json: cli.AsJson = False,
) -> None:
    """Answer another station's check call, as the person the API credentials name."""
    api = Api(data)
    ch = cli.resolve_channel(api, channel)
    incoming = api.get("/checkcalls", params={"channel": ch, "direction": "incoming"})
    if call_id is None:
        waiting = [c["call_id"] for c in incoming if c["status"] in ("pending", "missed")]
        if not waiting:
            raise LocalError(Code.NOT_FOUND, f"no check call on {ch} is waiting for an answer")
        cid = waiting[0]
    else:
        cid = _resolve_hash([c["call_id"] for c in incoming], call_id, "check call")
    c = api.post(f"/checkcalls/{ch}/{cid}/answer")
    if as_json:
        return cli.print_json(c)
    mine = [a for a in c["answers"] if a["by"] is not None and a["status"] != "pending"]
    late = " (late)" if c["status"] == "answered_late" else ""
    cli.out.print(f"answered {cid}{late}" + (f" as {mine[-1]['by']}" if mine else ""), markup=False)


# --- crises --------------------------------------------------------------------------------


def _incident(api: Api, path: str, channel: str | None) -> Any:
    """GET /crises/PATH; --channel names the incident's channel when its id is not unique."""
    params = {"channel": cli.resolve_channel(api, channel)} if channel else {}
    return api.get(f"/crises/{path}", params=params)


def _incident_line(i: dict[str, Any]) -> str:
    return (
        f"{i['incident_id']} [{i['severity']}] {i['status']}: {i['title']} "
        f"(channel {i['channel'][:8]}, opened by {i['opened_by_name']} {cli.when(i['opened_ms'])})"
    )


@crisis_app.command("open")
def crisis_open(
    channel: str,
    title: Annotated[str, typer.Option("--title", help="What happened, in one line.")],
    severity: Annotated[str, typer.Option(help="low, medium, high or critical")] = "high",
    description: Annotated[str, typer.Option(help="What is known so far.")] = "",
    incident_id: Annotated[
        str | None, typer.Option("--id", help="An id (default: inc-<date>-<random>).")
    ] = None,
    data: cli.Data = Path("parley-data"),
    as_json: cli.AsJson = False,
) -> None:
    """Open an incident thread on a channel; every member sees it."""
    api = Api(data)
    req: dict[str, Any] = {
        "channel": cli.resolve_channel(api, channel), "title": title, "severity": severity,
        "description": description,
    }  # fmt: skip
    if incident_id:
        req["incident_id"] = incident_id
    i = api.post("/crises", json=req)
    if as_json:
        return cli.print_json(i)
    cli.out.print("opened " + _incident_line(i), markup=False)


@crisis_app.command("status")
def crisis_status(
    incident_id: str,
    status: Annotated[str, typer.Argument(help="open, contained or closed")],
    note: Annotated[str, typer.Option(help="Why.")] = "",
    channel: Channel = None,
    data: cli.Data = Path("parley-data"),
    as_json: cli.AsJson = False,
) -> None:
    """Move an incident: open → contained → closed, or reopen it."""
    api = Api(data)
    req: dict[str, Any] = {"status": status, "note": note}
    if channel:
        req["channel"] = cli.resolve_channel(api, channel)
    i = api.post(f"/crises/{incident_id}/status", json=req)
    if as_json:
        return cli.print_json(i)
    cli.out.print(_incident_line(i), markup=False)


@crisis_app.command("link")
def crisis_link(
    incident_id: str,
    ref: Annotated[str, typer.Argument(help="The envelope hash (or a unique prefix).")],
    channel: Channel = None,
    data: cli.Data = Path("parley-data"),
    as_json: cli.AsJson = False,
) -> None:
    """Put a message, notice or acknowledgement of the incident's channel in its thread."""
    api = Api(data)
    inc = _incident(api, incident_id, channel)
    h = ref
    if len(ref) != HASH_CHARS:
        msgs = api.get(f"/channels/{inc['channel']}/messages", params={"limit": 10_000})
        h = _resolve_hash([m["hash"] for m in msgs], ref, "message")
    i = api.post(f"/crises/{incident_id}/link", json={"ref": h, "channel": inc["channel"]})
    if as_json:
        return cli.print_json(i)
    cli.out.print(f"linked {h} to {i['incident_id']} ({len(i['links'])} linked)", markup=False)


@crisis_app.command("list")
def crisis_list(
    status: Annotated[
        str | None, typer.Option(help="Only incidents in this status: open, contained, closed.")
    ] = None,
    channel: Annotated[str | None, typer.Option("--channel", help="Only this channel.")] = None,
    data: cli.Data = Path("parley-data"),
    as_json: cli.AsJson = False,
) -> None:
    """Incidents, oldest first."""
    api = Api(data)
    params: dict[str, Any] = {}
    if status:
        params["status"] = status
    if channel:
        params["channel"] = cli.resolve_channel(api, channel)
    _table(
        api.get("/crises", params=params), as_json,
        ("incident", "severity", "status", "title", "channel", "opened", "by"),
        lambda i: (
            i["incident_id"], i["severity"], i["status"], escape(i["title"]), i["channel"][:8],
            cli.when(i["opened_ms"]), i["opened_by_name"],
        ),
    )  # fmt: skip


@crisis_app.command("show")
def crisis_show(
    incident_id: str,
    channel: Channel = None,
    data: cli.Data = Path("parley-data"),
    as_json: cli.AsJson = False,
) -> None:
    """One incident and its timeline: its moves, linked envelopes, answers and link changes."""
    tl = _incident(Api(data), f"{incident_id}/timeline", channel)
    if as_json:
        return cli.print_json(tl)
    i = tl["incident"]
    cli.out.print(_incident_line(i), markup=False)
    if i["description"]:
        cli.out.print(f"  {i['description']}", markup=False)
    for item in tl["items"]:
        cli.out.print(f"{cli.when(item['ts'])}  {item['kind']:<13} {item['summary']}", markup=False)
