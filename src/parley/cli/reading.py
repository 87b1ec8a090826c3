"""`parley history`, `parley search`, `parley alarms list|ack`, and the message lines that
`inbox`, `history` and `search` print alike: one head line (time, sender, seq, precedence,
channel, signature) and the message as a person reads it; control records (a proposal, a
suspension, a check call, an acknowledgement …) as a sentence, never raw JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from parley.cli import common as cli
from parley.cli.client import Api
from parley.domain.describe import line as describe_line
from parley.domain.describe import short as _short

alarms_app = typer.Typer(
    help="Alarms: list them (open, or all with how each was settled); acknowledge with a note.",
    invoke_without_command=True,
)


def describe(body: dict[str, Any]) -> str:
    """A body as one readable line (domain/describe.py; times as the CLI prints them)."""
    text = describe_line(body, "en", cli.when)
    if body.get("type") == "notice":
        text += " — `parley notice show` renders it"
    return text


def print_messages(msgs: list[dict[str, Any]], titles: dict[str, str] | None = None) -> None:
    """Each message: a head line that fits 80 columns, then its text indented."""
    for m in msgs:
        prec = f" [{m['precedence']}]" if m["precedence"] != "ROUTINE" else ""
        where = ""
        if titles is not None:
            where = f" · {escape(_short(titles.get(m['channel'], m['channel']), 24))}"
        id_ = f"id {m['id']} · " if "id" in m else ""
        if m["signature"] != "verified":  # the station's integrity check failed for this read
            mark = "[bold red]INTEGRITY CHECK FAILED[/bold red]"
            text = f"{m.get('problem', '')} (the stored text is withheld; see `parley alarms`)"
        else:
            mark = "signature verified"
            text = describe(m["body"])
        early = " (shown early)" if m.get("early") else ""
        cli.out.print(
            f"{cli.when(m['ts'])} [bold]{escape(m['sender_name'])}[/bold] "
            f"#{m['seq']}{escape(prec)}{where}{early}\n"
            f"  {id_}{mark}\n  {escape(text)}",
            markup=True,
        )


def _titles(api: Api) -> dict[str, str]:
    return {c["channel"]: c["title"] for c in api.get("/channels")}


def history(
    channel: Annotated[str, typer.Argument(help="The channel (its id, or the start of it).")],
    before: Annotated[
        int | None, typer.Option(help="Older messages: those before this id.")
    ] = None,
    after: Annotated[int | None, typer.Option(help="Newer messages: those after this id.")] = None,
    date: Annotated[
        str | None,
        typer.Option(help="From the first message sent at or after this date (2026-12-05, UTC)."),
    ] = None,
    hash: Annotated[
        str | None, typer.Option("--hash", help="Around this message (its hash).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Messages per page.")] = 50,
    data: cli.Data = Path("parley-data"),
    as_json: cli.AsJson = False,
) -> None:
    """One channel's messages, a page at a time (the newest page first); the last lines say how
    to read the page before and after."""
    api = Api(data)
    ch = cli.resolve_channel(api, channel)
    params: dict[str, Any] = {"limit": limit}
    for k, v in (("before", before), ("after", after), ("date", date), ("hash", hash)):
        if v is not None:
            params[k] = v
    page = api.get(f"/channels/{ch}/history", params=params)
    if as_json:
        return cli.print_json(page)
    print_messages(page["messages"])
    cli.out.print(f"— {len(page['messages'])} of {page['total']} envelopes of channel {ch}")
    if page["older"] is not None:
        cli.out.print(f"  older: parley history {ch} --before {page['older']}")
    if page["newer"] is not None:
        cli.out.print(f"  newer: parley history {ch} --after {page['newer']}")


def search(
    query: Annotated[str, typer.Argument(help="Words to find (all of them), e.g. 발사 or launch.")],
    channel: Annotated[str | None, typer.Option(help="Only this channel.")] = None,
    before: Annotated[int | None, typer.Option(help="Older results: before this id.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
    data: cli.Data = Path("parley-data"),
    as_json: cli.AsJson = False,
) -> None:
    """Messages and notices you may read that hold every word, newest first."""
    api = Api(data)
    params: dict[str, Any] = {"q": query, "limit": limit}
    if channel is not None:
        params["channel"] = cli.resolve_channel(api, channel)
    if before is not None:
        params["before"] = before
    found = api.get("/search", params=params)
    if as_json:
        return cli.print_json(found)
    print_messages(found["results"], _titles(api))
    if not found["results"]:
        cli.out.print("Nothing found.")
    if found["before"] is not None:
        cli.out.print(f"  more: parley search {query!r} --before {found['before']}")


# --- alarms ----------------------------------------------------------------------------------


def _alarm_lines(rows: list[dict[str, Any]]) -> None:
    for a in rows:
        cli.out.print(
            f"{a['id']:>5} {cli.when(a['ts'])} [{a['severity']}] {a['kind']}: {a['message']}",
            markup=False,
        )
        if a["cleared"] is not None:
            note = f": {a['note']}" if a.get("note") else ""
            cli.out.print(
                f"      {a['state']} by {a.get('cleared_by') or '?'} at {cli.when(a['cleared'])}"
                f"{note}",
                markup=False,
            )


@alarms_app.callback()
def alarms_default(
    ctx: typer.Context, data: cli.Data = Path("parley-data"), as_json: cli.AsJson = False
) -> None:
    """Without a subcommand: the open alarms (as `parley alarms list`)."""
    if ctx.invoked_subcommand is None:
        alarms_list(data=data, include_all=False, as_json=as_json)


@alarms_app.command("list")
def alarms_list(
    data: cli.Data = Path("parley-data"),
    include_all: Annotated[
        bool, typer.Option("--all", help="Also those resolved or acknowledged, and how.")
    ] = False,
    as_json: cli.AsJson = False,
) -> None:
    """Open alarms, newest first (with --all, every alarm and how it was settled)."""
    rows = Api(data).get("/alarms", params={"all": include_all})
    if as_json:
        return cli.print_json(rows)
    _alarm_lines(rows)
    if not rows:
        cli.out.print("No open alarms." if not include_all else "No alarms.")


@alarms_app.command("ack")
def alarms_ack(
    ids: Annotated[list[int] | None, typer.Argument(help="Alarm ids (see `alarms list`).")] = None,
    note: Annotated[str, typer.Option(help="Why, or what was done (kept with the alarm).")] = "",
    all_open: Annotated[
        bool, typer.Option("--all-open", help="Every open alarm you can see.")
    ] = False,
    kind: Annotated[
        str | None, typer.Option(help="With --all-open: only alarms of this kind.")
    ] = None,
    data: cli.Data = Path("parley-data"),
) -> None:
    """Acknowledge alarms with a note; each is recorded in the audit log under your name."""
    body: dict[str, Any] = {"ids": ids or [], "note": note, "all_open": all_open, "kind": kind}
    done = Api(data).post("/alarms/ack", json=body)["acknowledged"]
    cli.out.print(
        f"Acknowledged {len(done)} alarm(s)" + (f": {', '.join(map(str, done))}" if done else "")
    )
