"""`parley bundle …` and `parley peer route`: offline bundle files and routes through a relay,
through the running station's operator API.

    parley bundle export --peer North --out north.bundle   what North has not receipted, signed
    parley bundle import north.bundle                       apply a bundle from a peer
    parley bundle list                                      bundles exported and imported
    parley peer route North --via UN [--fallback]           deliver to North through relay UN
    parley peer route North --direct                        back to direct push
    parley peer route                                       this station's paths

`bundle import` also works with the station stopped (an air-gapped station need not run to take
a courier's file in): it then applies the bundle to the SQLite database directly, as the
bootstrap admin, holding the data directory's lock so no station starts meanwhile.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from parley.cli import common as cli
from parley.cli.client import Api, ApiError
from parley.errors import Code, LocalError
from parley.protocol.bundle import MAX_BUNDLE_BYTES
from parley.station import paths
from parley.station.boot import offline_station
from parley.station.users import BOOTSTRAP

bundle_app = typer.Typer(help="Offline bundle files: carry envelopes across an air gap.")


@bundle_app.command("export")
def bundle_export(
    peer: Annotated[str, typer.Option("--peer", help="The peer the bundle is for.")],
    out_file: Annotated[Path, typer.Option("--out", help="The file to write.")],
    data: cli.Data = Path("parley-data"),
    as_json: cli.AsJson = False,
) -> None:
    """Write what PEER has not yet receipted (and what we hold of its chains) to a signed file."""
    api = Api(data)
    res = api.post("/bundles/export", json={"peer": peer})
    out_file.write_bytes(res.pop("bundle").encode())
    if as_json:
        return cli.print_json(res | {"file": str(out_file)})
    cli.out.print(
        f"wrote {out_file}: {res['envelopes']} envelopes, {res['receipts']} receipts, "
        f"digest {res['digest']}"
    )


@bundle_app.command("import")
def bundle_import(
    file: Annotated[Path, typer.Argument(help="A bundle file from a peer.")],
    data: cli.Data = Path("parley-data"),
    as_json: cli.AsJson = False,
) -> None:
    """Verify a bundle's signature, then apply it as if its envelopes had been pushed."""
    if not file.is_file():
        raise LocalError(Code.NOT_FOUND, f"no file {file}")
    if file.stat().st_size > MAX_BUNDLE_BYTES:
        raise LocalError(
            Code.OVERSIZED, f"{file} is larger than a bundle may be ({MAX_BUNDLE_BYTES} bytes)"
        )
    raw = file.read_bytes()
    try:
        res = Api(data).post(
            "/bundles/import", content=raw, headers={"Content-Type": "application/x-ndjson"}
        )
    except ApiError as exc:
        if exc.code != Code.STATION_UNREACHABLE:
            raise
        with offline_station(data) as st:  # stopped: apply it to the database directly
            res = paths.import_bundle(st, raw, BOOTSTRAP)
    if as_json:
        return cli.print_json(res)
    cli.out.print(import_summary(res))
    for p in res["problems"]:
        cli.out.print(f"  {p['status']} {p['hash']}: {p.get('code', '')} {p.get('message', '')}")


def import_summary(res: dict[str, Any]) -> str:
    """What an import did, in words: what was applied, what was already here, what waits for
    earlier messages (which bundle or push must bring them), what was refused."""
    parts = [f"applied {res['accepted']} of {res['envelopes']} envelopes"]
    if res.get("applied_late"):
        parts[0] += f" ({res['applied_late']} after an earlier one later in the file)"
    if res["duplicate"]:
        parts.append(f"{res['duplicate']} already here")
    waiting = res["gap"] + res["wait"]
    if waiting:
        parts.append(f"{waiting} held until the messages before them arrive")
    if res["rejected"] or res.get("equivocation"):
        parts.append(f"{res['rejected'] + res.get('equivocation', 0)} refused (listed below)")
    parts.append(f"{res['delivered']} of ours newly receipted by {res['from_name']}")
    return f"bundle from {res['from_name']} ({cli.when(res['created'])}): " + "; ".join(parts)


@bundle_app.command("list")
def bundle_list(data: cli.Data = Path("parley-data"), as_json: cli.AsJson = False) -> None:
    rows = Api(data).get("/bundles")
    if as_json:
        return cli.print_json(rows)
    t = Table("when", "direction", "peer", "envelopes", "receipts", "outcome")
    for b in rows:
        t.add_row(
            cli.when(b["at"]), b["direction"], b["peer_name"], str(b["envelopes"]),
            str(b["receipts"]), b["outcome"],
        )  # fmt: skip
    cli.out.print(t)


def peer_route(
    peer: Annotated[str, typer.Argument(help="The peer to route; omit to list routes.")] = "",
    via: Annotated[str, typer.Option("--via", help="A relay station both peers know.")] = "",
    fallback: Annotated[
        bool, typer.Option("--fallback", help="Use the relay only while the direct link is down.")
    ] = False,
    direct: Annotated[bool, typer.Option("--direct", help="Push directly again.")] = False,
    data: cli.Data = Path("parley-data"),
    as_json: cli.AsJson = False,
) -> None:
    """Deliver to PEER through a relay station (a facilitator that knows both), or directly."""
    api = Api(data)
    if peer:
        if bool(via) == direct:
            raise LocalError(Code.INVALID_REQUEST, "give either --via RELAY or --direct")
        body = {"via": via or None, "fallback": fallback}
        api.post(f"/peers/{peer}/route", json=body)
    info = api.get("/paths")
    if as_json:
        return cli.print_json(info)
    mode = "accepts inbound pushes" if info["inbound"] else "accepts no inbound: it pulls"
    cli.out.print(f"this station {mode}")
    for r in info["routes"]:
        how = "while the direct link is down" if r["fallback"] else "always"
        cli.out.print(f"  to {r['peer_name']}: through {r['via_name']} ({how})")
    for p in info["pulls"]:
        cli.out.print(f"  {p['name']} pulls from us; last pull {cli.when(p['last_pull'])}")
    for q in info["relaying"]:
        cli.out.print(f"  relaying {q['queued']} envelopes to {q['name']}")
