"""`parley witness …`: a party that runs nothing but a C2SP witness (docs/protocol.md §24).

    parley witness init --name NAME [--listen H:P] [--public-url URL] [--database URL]
    parley witness add-log VKEY [--origin ORIGIN]   (no origin: every Parley chain of a station)
    parley witness show                             name, vkey, submission prefix, logs
    parley witness run                              serve POST /witness/add-checkpoint

All of it works on the data directory, as its admin: there are no other users. A full station
witnesses too, through the `witness` section of its own station.json (same keys).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from parley.cli.common import AsJson, Data, out, print_json
from parley.errors import Code, LocalError, RejectedInput
from parley.protocol import note
from parley.protocol.identity import INVITE_PREFIX, parse_invitation
from parley.station import config as station_config
from parley.station import witness

witness_app = typer.Typer(help="Run a witness-only party: cosign others' checkpoints (C2SP).")


@witness_app.command("init")
def init(
    data: Data = Path("parley-data"),
    name: Annotated[str, typer.Option(help="A name people recognise, e.g. 'UN witness'.")] = "",
    listen: Annotated[str, typer.Option(help="host:port to serve on.")] = "127.0.0.1:8703",
    public_url: Annotated[str, typer.Option(help="URL logs use to reach us.")] = "",
    database: Annotated[
        str, typer.Option(envvar="PARLEY_DATABASE", help="postgresql:// URL; empty: SQLite.")
    ] = "",
) -> None:
    """Create a witness-only data directory: its key (made on first use) and empty log list."""
    from parley.station.boot import open_station, open_store

    if not name:
        raise LocalError(Code.INVALID_REQUEST, "give the witness a --name")
    if database:
        open_store(data, database).close()
    cfg = station_config.Config(
        name=name, lang="en", listen=listen, public_url=public_url, database=database,
        inbound=False, witness={"logs": []},
    )  # fmt: skip
    station_config.init_dir(data, cfg)
    st = open_station(data)
    st.store.audit("admin", "witness.init", {"name": name}, st.clock())
    _show(data, as_json=False)


@witness_app.command("add-log")
def add_log(
    vkey: Annotated[
        str,
        typer.Argument(
            help="The log's Ed25519 verifier key (name+id+key), or a Parley station's "
            "invitation (`parley peer invite`): then every chain that station signs."
        ),
    ],
    origin: Annotated[
        str, typer.Option(help="The log's origin line; omit for every chain of a Parley station.")
    ] = "",
    data: Data = Path("parley-data"),
) -> None:
    """Witness a log: its checkpoints signed by VKEY (for ORIGIN, or a Parley station's chains)."""
    cfg = station_config.load_config(data)
    if vkey.strip().startswith(INVITE_PREFIX):
        if origin:
            raise LocalError(Code.INVALID_REQUEST, "an invitation names a station, not an origin")
        inv = parse_invitation(vkey)
        vkey = note.Verifier(inv.station, inv.identity).vkey()
    entry: dict[str, Any] = {"vkey": vkey}
    if origin:
        entry["origin"] = origin
    section = dict(cfg.witness)
    section["logs"] = [*section.get("logs", []), entry]
    try:
        note.parse_vkey(vkey)
    except RejectedInput as exc:
        raise LocalError(Code.INVALID_REQUEST, f"VKEY: {exc.message}") from exc
    witness.parse_settings(section, "check")  # refuses a bad entry before it is written
    cfg.witness = section
    station_config.save_config(data, cfg)
    out.print(f"witnessing {origin or 'every Parley chain of ' + vkey.split('+')[0]}")
    out.print("Restart `parley witness run` for it to take effect.")


@witness_app.command("show")
def show(data: Data = Path("parley-data"), as_json: AsJson = False) -> None:
    """The witness's name, verifier key and submission prefix: what a channel's proposer names."""
    _show(data, as_json)


def _show(data: Path, as_json: bool) -> None:
    from parley.station.boot import open_station

    st = open_station(data)
    try:
        info = witness.describe(st, st.cfg.url)
    finally:
        st.store.close()
    if as_json:
        print_json(info)
        return
    out.print(f"witness  {info['name']}", markup=False)
    out.print(f"vkey     {info['vkey']}", markup=False)
    out.print(f"url      {info['url']}", markup=False)
    for o in info["logs"]:
        out.print(f"log      {o}", markup=False)
    for s in info["stations"]:
        out.print(f"station  {s} (every chain)", markup=False)


@witness_app.command("run")
def run(data: Data = Path("parley-data")) -> None:
    """Serve the witness API (POST /witness/add-checkpoint, GET /witness) and nothing else."""
    from parley.app.witness_only import serve_witness

    station_config.check_private(data)
    serve_witness(data)
