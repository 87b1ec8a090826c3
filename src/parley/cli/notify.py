"""`parley notify …`: where alarms are sent beyond the console (station/notify.py).

    parley notify targets                       targets, and per alarm kind who hears of it
    parley notify target NAME --webhook URL     add or replace a target (or --email ADDR …)
    parley notify target NAME --remove          remove one the API added
    parley notify set KIND [TARGET …]           route a kind (or '*') to targets; none: silence
    parley notify set KIND --default            drop the route set here (station.json's applies)
    parley notify test NAME                     send a test notification now
    parley notify log                           the newest deliveries and their state

Every command needs the admin role (`notify.manage`), like the API it calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from parley.cli import common as cli
from parley.cli.client import Api
from parley.errors import Code, LocalError

notify_app = typer.Typer(help="Alarm notifications: webhooks and e-mail, per alarm kind.")


@notify_app.command("targets")
def targets(data: cli.Data = Path("parley-data"), as_json: cli.AsJson = False) -> None:
    """The targets, and for each alarm kind the targets that hear of it."""
    view = Api(data).get("/notify")
    if as_json:
        return cli.print_json(view)
    if not view["targets"]:
        cli.out.print("No targets: alarms are shown in the console only.")
    for t in view["targets"]:
        where = t.get("url") or ", ".join(t.get("to", []))
        marks = " [every back channel]" if t.get("backchannels") else ""
        if t.get("channels"):
            marks += f" [back channels: {', '.join(c[:8] for c in t['channels'])}]"
        cli.out.print(f"{t['name']} ({t['type']}, {t['source']}): {where}{marks}", markup=False)
    table = cli.table("kind", "targets", "route", whole=("kind",))
    for k in view["kinds"]:
        table.add_row(
            ("! " if k["urgent"] else "  ") + k["kind"],
            ", ".join(k["targets"]) or "-",
            k["route"] or "-",
        )
    cli.out.print(table)
    smtp = view["smtp"]
    cli.out.print(
        f"SMTP: {smtp['host']}:{smtp['port']} ({smtp['security']}), from {smtp['from']}"
        if smtp
        else "SMTP: not set (e-mail targets fail until station.json sets notify.smtp)",
        markup=False,
    )
    cli.out.print(f"Pending deliveries: {view['pending']}")


@notify_app.command("target")
def target(
    name: str,
    webhook: Annotated[str | None, typer.Option(help="POST JSON to this URL.")] = None,
    email: Annotated[
        list[str] | None, typer.Option(help="Send e-mail to this address (repeatable).")
    ] = None,
    channel: Annotated[
        list[str] | None,
        typer.Option(help="A back channel this target may hear of (you must be named on it)."),
    ] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Remove the target.")] = False,
    data: cli.Data = Path("parley-data"),
) -> None:
    """Add or replace a target (a webhook or e-mail addresses), or remove one."""
    api = Api(data)
    if remove:
        api.call("DELETE", f"/notify/targets/{name}")
        cli.out.print(f"Removed target {name}.")
        return
    if bool(webhook) == bool(email):
        raise LocalError(Code.INVALID_REQUEST, "give --webhook URL or --email ADDRESS")
    spec: dict[str, Any] = (
        {"type": "webhook", "url": webhook} if webhook else {"type": "email", "to": email}
    )
    if channel:
        spec["channels"] = channel
    t = api.call("PUT", f"/notify/targets/{name}", json=spec)
    cli.out.print(f"Target {t['name']} ({t['type']}) saved.")


@notify_app.command("set")
def set_route(
    kind: Annotated[str, typer.Argument(help="An alarm kind (see `notify targets`) or '*'.")],
    names: Annotated[list[str] | None, typer.Argument(help="Target names; none: silence.")] = None,
    default: Annotated[
        bool, typer.Option("--default", help="Drop this route (station.json's or '*' applies).")
    ] = False,
    data: cli.Data = Path("parley-data"),
) -> None:
    """Route one alarm kind to targets."""
    body = {"targets": None if default else (names or [])}
    got = Api(data).call("PUT", f"/notify/routes/{kind}", json=body)
    cli.out.print(f"{got['kind']}: {', '.join(got['targets']) or 'no targets'}", markup=False)


@notify_app.command("test")
def test(name: str, data: cli.Data = Path("parley-data")) -> None:
    """Send a test notification to a target now and say how it went."""
    row = Api(data, timeout_s=90).post(f"/notify/targets/{name}/test")
    if row["state"] == "delivered":
        cli.out.print(f"Delivered to {name}.")
        return
    raise LocalError(Code.INVALID_REQUEST, f"not delivered to {name}: {row['last_error']}")


@notify_app.command("log")
def log(
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 30,
    data: cli.Data = Path("parley-data"),
    as_json: cli.AsJson = False,
) -> None:
    """The newest notifications and how their delivery went."""
    rows = Api(data).get("/notify/deliveries", params={"limit": limit})
    if as_json:
        return cli.print_json(rows)
    table = cli.table("id", "when", "kind", "target", "state", "tries", "error", whole=("id",))
    for r in rows:
        kind = r["kind"] + (f" (+{r['coalesced']})" if r["coalesced"] else "")
        table.add_row(str(r["id"]), cli.when(r["updated"]), kind, r["target"], r["state"],
                      str(r["attempts"]), r["last_error"] or "")  # fmt: skip
    cli.out.print(table)
    if not rows:
        cli.out.print("No notifications yet.")
