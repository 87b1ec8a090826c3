"""The `parley` command. Every flag has an environment default (PARLEY_DATA for --data).

`station init` and `station run` work on the data directory; every other command talks to the
running station's operator API, so the CLI and the console see and do exactly the same things.
Errors print their stable code and a message, and exit with status 1 (2 for usage errors).
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer
from typer.exceptions import TyperException

from parley.cli.bundle import bundle_app, peer_route
from parley.cli.client import Api, ApiError
from parley.cli.common import (
    AsJson,
    Data,
    err,
    out,
    print_json,
    resolve_channel,
    table,
    when,
)
from parley.cli.demo import demo_command
from parley.cli.login import login, logout, whoami
from parley.cli.modelpacks import install_model, list_models  # noqa: F401 (their commands)
from parley.cli.notices import ack, forms_app, notice_app
from parley.cli.notify import notify_app
from parley.cli.reading import alarms_app, history, print_messages, search
from parley.cli.talks import roadmap_app, talks_app, translate_app
from parley.cli.transcript import transcript_app
from parley.cli.users import audit_app, user_app
from parley.cli.vigil import checkcall_app, crisis_app, links
from parley.cli.witness import witness_app
from parley.errors import Code, LocalError, ParleyError
from parley.protocol.identity import fingerprint, parse_invitation, station_id
from parley.station import config as station_config
from parley.station.boot import offline_station
from parley.station.overview import StationDesk
from parley.station.users import BOOTSTRAP

app = typer.Typer(help="Parley: a verifiable hotline for parties who do not trust each other.")
station_app = typer.Typer(help="Create and run this station.")
peer_app = typer.Typer(help="Known peer stations.")
channel_app = typer.Typer(help="Channels: propose, consent, suspend, reopen, close.")
app.add_typer(station_app, name="station")
app.add_typer(peer_app, name="peer")
app.add_typer(channel_app, name="channel")
app.add_typer(bundle_app, name="bundle")
peer_app.command("route")(peer_route)
app.add_typer(forms_app, name="forms")
app.add_typer(notice_app, name="notice")
app.command("ack")(ack)
app.add_typer(talks_app, name="talks")
app.add_typer(roadmap_app, name="roadmap")
app.add_typer(translate_app, name="translate")
app.add_typer(transcript_app, name="transcript")
app.add_typer(user_app, name="user")
app.add_typer(audit_app, name="audit")
app.add_typer(checkcall_app, name="checkcall")
app.add_typer(crisis_app, name="crisis")
app.add_typer(notify_app, name="notify")
app.command("links")(links)
app.add_typer(witness_app, name="witness")
app.command("history")(history)
app.command("search")(search)
app.add_typer(alarms_app, name="alarms")
app.command("login")(login)
app.command("logout")(logout)
app.command("whoami")(whoami)

# --- station -----------------------------------------------------------------------------------


@station_app.command("init")
def station_init(
    data: Data = Path("parley-data"),
    name: Annotated[str, typer.Option(help="A name people recognise, e.g. 'Seoul MND'.")] = "",
    lang: Annotated[str, typer.Option(help="Working language: en, ko, …")] = "en",
    listen: Annotated[str, typer.Option(help="host:port to serve on.")] = "127.0.0.1:8701",
    timezone: Annotated[
        str, typer.Option(help="Zone people here type and read times in, e.g. Asia/Seoul.")
    ] = "UTC",
    public_url: Annotated[str, typer.Option(help="URL peers use to reach us.")] = "",
    inbound: Annotated[
        bool, typer.Option(help="Serve the peer API; --no-inbound: pull from peers instead.")
    ] = True,
    database: Annotated[
        str,
        typer.Option(
            envvar="PARLEY_DATABASE",
            help="A postgresql:// URL (needed for --workers); empty: SQLite in the data directory.",
        ),
    ] = "",
) -> None:
    """Create a station: identity key, first signed medium-term key, API token, database."""
    from parley.station.boot import open_station, open_store

    if not name:
        raise LocalError(Code.INVALID_REQUEST, "give the station a --name")
    if database:
        open_store(data, database).close()  # unreachable or unsupported: fail before writing
    cfg = station_config.Config(
        name=name, lang=lang, listen=listen, public_url=public_url, database=database,
        inbound=inbound, timezone=timezone,
    )  # fmt: skip
    station_config.check_timezone(timezone)  # fails before anything is written
    key = station_config.init_dir(data, cfg)
    st = open_station(data)
    st.store.audit("admin", "station.init", {"name": name, "lang": lang}, st.clock())
    out.print(f"Station [bold]{name}[/bold] created in {data}")
    out.print(f"  station id   {station_id(key.public)}")
    out.print(f"  fingerprint  {fingerprint(key.public)}")
    out.print("Read the fingerprint aloud to your peer; they compare it with `parley peer add`.")
    _print_qr(f"parley-fp:{station_id(key.public)}:{fingerprint(key.public).replace(' ', '')}")


def _print_qr(text: str) -> None:
    import io

    import qrcode

    qr = qrcode.QRCode(border=1)
    qr.add_data(text)
    buf = io.StringIO()
    qr.print_ascii(out=buf)
    out.print(buf.getvalue())


@station_app.command("run")
def station_run(
    data: Data = Path("parley-data"),
    workers: Annotated[
        int,
        typer.Option(
            envvar="PARLEY_WORKERS",
            min=1,
            help="API worker processes sharing the port; above 1 needs PostgreSQL.",
        ),
    ] = 1,
    log_format: Annotated[
        str,
        typer.Option(
            envvar="PARLEY_LOG_FORMAT",
            help="json (one object per line), text, or auto: text on a terminal, else json.",
        ),
    ] = "auto",
    log_level: Annotated[
        str,
        typer.Option(envvar="PARLEY_LOG_LEVEL", help="debug, info, warning or error."),
    ] = "info",
    worker: Annotated[bool, typer.Option("--worker", hidden=True)] = False,
) -> None:
    """Serve the peer API and operator API, and run delivery in the background."""
    from parley.app.serve import serve

    serve(data, workers, log_format, log_level, worker)


@station_app.command("show")
def station_show(data: Data = Path("parley-data"), as_json: AsJson = False) -> None:
    """This station's id, fingerprint and address."""
    info = Api(data).get("/station")
    if as_json:
        return print_json(info)
    for k in ("name", "station", "lang", "url", "fingerprint"):
        out.print(f"{k:12} {info[k]}")


# --- peers -------------------------------------------------------------------------------------


@peer_app.command("invite")
def peer_invite(data: Data = Path("parley-data")) -> None:
    """Print this station's invitation for a peer to `parley peer add`. Works with the station
    stopped too (SQLite): the invitation is made from the data directory."""
    try:
        text = Api(data).get("/invitation")["invitation"]
    except ApiError as exc:
        if exc.code != Code.STATION_UNREACHABLE:
            raise
        with offline_station(data) as st:
            text = StationDesk(st).invitation(BOOTSTRAP)
    sys.stdout.write(text + "\n")


@peer_app.command("add")
def peer_add(
    invitation: Annotated[str, typer.Argument(help="The invitation text, or @FILE.")],
    data: Data = Path("parley-data"),
    yes: Annotated[bool, typer.Option("--yes", help="Skip the fingerprint confirmation.")] = False,
) -> None:
    """Verify an invitation, show its fingerprint to compare by voice, and record the peer."""
    if invitation.startswith("@"):
        invitation = Path(invitation[1:]).read_text()
    inv = parse_invitation(invitation)
    out.print(f"Peer [bold]{inv.name}[/bold] ({inv.lang}) at {', '.join(inv.addresses)}")
    out.print(f"  station id   {inv.station}")
    out.print(f"  fingerprint  {inv.fingerprint}")
    if not yes and not typer.confirm("Does this fingerprint match the one your peer read out?"):
        raise typer.Exit(1)
    try:
        Api(data).post("/peers", json={"invitation": invitation})
    except ApiError as exc:
        if exc.code != Code.STATION_UNREACHABLE:
            raise
        with offline_station(data) as st:  # the station is stopped: record it in its database
            StationDesk(st).add_peer(BOOTSTRAP, invitation)
    out.print("Peer recorded.")


@peer_app.command("list")
def peer_list(data: Data = Path("parley-data"), as_json: AsJson = False) -> None:
    peers = Api(data).get("/peers")
    if as_json:
        return print_json(peers)
    # One block per peer: a fingerprint (71 characters) and an id do not share an 80-column row.
    for p in peers:
        state = "" if p.get("state", "active") == "active" else f"  [{p['state'].upper()}]"
        out.print(f"{p['name']} ({p['lang']}){state}", markup=False)
        out.print(f"  station      {p['station']}", markup=False)
        out.print(f"  fingerprint\n    {p['fingerprint']}", markup=False)
        out.print(f"  addresses    {' '.join(p['addresses']) or '-'}", markup=False)
        for k in ("removed", "revoked"):
            if p.get(k):
                out.print(f"  {k:12} {when(p[k])}", markup=False)
    if not peers:
        out.print("No peers yet: `parley peer add`.")


@peer_app.command("remove")
def peer_remove(
    peer: Annotated[str, typer.Argument(help="The peer's name or station id.")],
    data: Data = Path("parley-data"),
    force: Annotated[
        bool,
        typer.Option(help="Also while it is a member of channels not closed: they stay read-only."),
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Stop talking to a peer (admin). Its history stays, still verified; what is queued for it
    is dropped."""
    r = Api(data).post(f"/peers/{quote(peer, safe='')}/remove", json={"force": force})
    if as_json:
        return print_json(r)
    out.print(f"Removed {r['name']} ({r['station']}); dropped {r['dropped']} queued.", markup=False)
    if r["read_only"]:
        out.print(f"Read-only here now: {len(r['read_only'])} channel(s).", markup=False)


@peer_app.command("revoke")
def peer_revoke(
    peer: Annotated[str, typer.Argument(help="The peer's name or station id.")],
    data: Data = Path("parley-data"),
    reason: Annotated[str, typer.Option(help="Why, for the audit log.")] = "",
    as_json: AsJson = False,
) -> None:
    """Revoke a peer's identity key (admin): nothing it signs from now on is accepted; what it
    signed before still verifies."""
    r = Api(data).post(f"/peers/{quote(peer, safe='')}/revoke", json={"reason": reason})
    if as_json:
        return print_json(r)
    out.print(f"Revoked the key of {r['name']} ({r['station']})", markup=False)
    out.print(f"  fingerprint\n    {r['fingerprint']}", markup=False)
    out.print(f"  dropped {r['dropped']} queued; {len(r['read_only'])} channel(s) read-only")


identity_app = typer.Typer(help="This station's own identity key.")
app.add_typer(identity_app, name="identity")


@identity_app.command("rotate")
def identity_rotate(
    data: Data = Path("parley-data"),
    grace_days: Annotated[
        int, typer.Option(help="Days the old key may still sign (late envelopes).")
    ] = 7,
    as_json: AsJson = False,
) -> None:
    """Replace this station's identity key with a hand-over signed by the old and the new key
    (admin). The station id stays; peers follow it at their next contact within the grace."""
    r = Api(data).post("/identity/rotate", json={"grace_days": grace_days})
    if as_json:
        return print_json(r)
    out.print(f"Identity key rotated (hand-over {r['seq']}); the station id stays {r['station']}.")
    out.print(f"  new fingerprint\n    {r['fingerprint']}", markup=False)
    out.print(f"  old key signs until {when(r['old_until'])}", markup=False)
    out.print("Read the new fingerprint to your peers' admins; their stations follow the signed")
    out.print("hand-over at the next contact.")


# --- channels ----------------------------------------------------------------------------------


@channel_app.command("open")
def channel_open(
    peers: Annotated[list[str], typer.Argument(help="Peer names or station ids.")],
    title: Annotated[str, typer.Option(help="What the channel is for.")],
    kind: Annotated[str, typer.Option(help="hotline, backchannel or facilitated")] = "hotline",
    facilitator: Annotated[
        str | None,
        typer.Option(help="facilitated: the member who facilitates ('me', a peer name or id)."),
    ] = None,
    rep: Annotated[
        list[str] | None,
        typer.Option(
            "--rep",
            help="backchannel: STATION=USER, a representative named for a member ('me', a peer"
            " name or id); repeatable. Every member names at least one.",
        ),
    ] = None,
    witness: Annotated[
        list[str] | None,
        typer.Option(
            "--witness",
            help="VKEY,URL: a witness that must cosign the channel's checkpoints (its "
            "cosignature/v1 vkey, compared out of band, and its submission prefix); repeatable.",
        ),
    ] = None,
    witness_k: Annotated[
        int, typer.Option(help="How many of the witnesses must cosign (default: all).")
    ] = 0,
    data: Data = Path("parley-data"),
) -> None:
    """Propose a channel; it opens when every member has consented.

    A back channel names its representatives, the only users each member station lets read it:
    `parley channel open "Hotline North" --kind backchannel --title "Quiet word" --rep me=kim
    --rep "Hotline North=lee"`. A facilitated channel names its facilitator: `--facilitator me`.
    """
    body: dict[str, Any] = {"kind": kind, "title": title, "peers": peers}
    if facilitator is not None:
        body["facilitator"] = facilitator
    if rep:
        reps: dict[str, list[str]] = {}
        for item in rep:
            station, sep, user = item.rpartition("=")
            if not sep or not station.strip() or not user.strip():
                raise LocalError(Code.INVALID_REQUEST, f"--rep {item!r}: expected STATION=USER")
            reps.setdefault(station.strip(), []).append(user.strip())
        body["representatives"] = reps
    if witness:
        pairs = [w.partition(",") for w in witness]
        if not all(sep and vkey and url for vkey, sep, url in pairs):
            raise LocalError(Code.INVALID_REQUEST, "--witness: expected VKEY,URL")
        body["witnesses"] = [{"vkey": v.strip(), "url": u.strip()} for v, _, u in pairs]
        body["witness_k"] = witness_k
    ch = Api(data).post("/channels", json=body)
    out.print(f"Proposed {ch['kind']} channel {ch['channel']} ({ch['state']}).")
    out.print(f"Awaiting consent from: {', '.join(_names(ch, ch['awaiting']))}")


def _names(ch: dict[str, Any], ids: list[str]) -> list[str]:
    names = {m["station"]: m["name"] for m in ch["members"]}
    return [names.get(i, i) for i in ids]


def _control(action: str, channel: str, reason: str, data: Path) -> None:
    api = Api(data)
    ch = api.post(f"/channels/{resolve_channel(api, channel)}/{action}", json={"reason": reason})
    out.print(f"Channel {ch['channel']} is now {ch['state']}.")


@channel_app.command("consent")
def channel_consent(channel: str, data: Data = Path("parley-data")) -> None:
    """Consent to a proposed (or reopening) channel."""
    _control("consent", channel, "", data)


@channel_app.command("suspend")
def channel_suspend(channel: str, reason: str = "", data: Data = Path("parley-data")) -> None:
    _control("suspend", channel, reason, data)


@channel_app.command("reopen")
def channel_reopen(channel: str, reason: str = "", data: Data = Path("parley-data")) -> None:
    _control("reopen", channel, reason, data)


@channel_app.command("close")
def channel_close(channel: str, reason: str = "", data: Data = Path("parley-data")) -> None:
    _control("close", channel, reason, data)


@channel_app.command("list")
def channel_list(data: Data = Path("parley-data"), as_json: AsJson = False) -> None:
    chans = Api(data).get("/channels")
    if as_json:
        return print_json(chans)
    t = table("channel", "kind", "state", "title", "members", whole=("channel",))
    for c in chans:
        t.add_row(
            c["channel"],
            c["kind"],
            c["state"],
            c["title"],
            ", ".join(_names(c, [m["station"] for m in c["members"]])),
        )
    out.print(t)


# --- messages ----------------------------------------------------------------------------------


@app.command("send")
def send(
    channel: str,
    text: str,
    precedence: Annotated[
        str, typer.Option(help="ROUTINE, PRIORITY, IMMEDIATE or FLASH")
    ] = "ROUTINE",
    data: Data = Path("parley-data"),
) -> None:
    """Seal and queue a text message; "queued" is printed only once it is durably stored."""
    api = Api(data)
    ch = resolve_channel(api, channel)
    r = api.post(
        f"/channels/{ch}/messages",
        json={"text": text, "precedence": precedence},
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    out.print(f"queued: channel {ch} seq {r['seq']} hash {r['hash']}")


@app.command("inbox")
def inbox(
    data: Data = Path("parley-data"),
    limit: int = 50,
    as_json: AsJson = False,
) -> None:
    """Messages received from other stations on every channel, newest last, decrypted, each
    checked against its signed envelope as it is read ("signature verified", or INTEGRITY CHECK
    FAILED), with its channel; `parley history CHANNEL` reads one channel."""
    api = Api(data)
    msgs = api.get("/inbox", params={"limit": limit})
    if as_json:
        return print_json(msgs)
    print_messages(msgs, {c["channel"]: c["title"] for c in api.get("/channels")})


@app.command("status")
def status(data: Data = Path("parley-data"), as_json: AsJson = False) -> None:
    """Per peer: link state, delivered, pending, last receipt."""
    st = Api(data).get("/status")
    if as_json:
        return print_json(st)
    out.print(f"{st['name']} ({st['station']}) — open alarms: {st['alarms']}")
    t = table("peer", "link", "since", "rtt ms", "delivered", "pending", "last receipt")
    for p in st["peers"]:
        lr = p["last_receipt"]
        t.add_row(
            p["name"], p["link"], when(p["since"]), str(p["rtt_ms"] or "-"), str(p["delivered"]),
            str(p["pending"]), f"seq {lr['seq']} at {when(lr['ts'])}" if lr else "-",
        )  # fmt: skip
    out.print(t)


app.command("demo")(demo_command)


def main() -> None:
    # Whatever the CLI writes (a data directory, the database and its -wal/-shm files, exports
    # of transcripts and bundles) is readable by this user only.
    os.umask(0o077)
    try:
        rc = app(standalone_mode=False)  # click returns an Exit's code instead of raising it
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except ParleyError as exc:
        err.print(f"error [{exc.code}]: {exc.message}", markup=False)
        fields = exc.details.get("fields")
        for f in fields if isinstance(fields, list) else []:
            err.print(f"  {f['field']}: {f['message']}", markup=False)
        sys.exit(1)
    except typer.Abort:
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except TyperException as exc:  # usage errors (typer bundles its own click)
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            err.print(f"error: {exc}", markup=False)
        if "No such option: -" in str(exc):
            err.print("  (a hash or id that begins with '-' goes after `--`: parley … -- ID)")
        sys.exit(2)
