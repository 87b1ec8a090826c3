"""`parley forms …`, `parley notice …` and `parley ack`: the forms catalogue, notices, their
acknowledgements and deadlines, through the running station's operator API.

    parley forms list                      the forms, titled in the station's language
    parley forms show launch_notice        fields with labels, lead time, schema, example
    parley notice send CH launch_notice --fields @notice.json
    parley notice send CH launch_notice --set launch_window='2030-03-01 15:00 / +4h' \
        --set launch_area='39.65N 124.7E; 39.65N 124.75E; 39.6N 124.75E' … [--preview]
    parley notice show CH HASH --lang ko --map map.svg
    parley notice list CH                  the channel's notices and who answered
    parley notice deadlines                acknowledgements due, with time left
    parley ack CH HASH --answer acknowledged --text "Received." --by "Lt. Park"

HASH may be any unambiguous prefix of an envelope hash. A notice with invalid fields is not sent:
the error lists every field with what is wrong, in the notice's language.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from parley.cli import common as cli
from parley.cli.client import Api
from parley.domain.forms import timefmt
from parley.errors import Code, LocalError

forms_app = typer.Typer(help="The forms catalogue: the notices a station can send.")
notice_app = typer.Typer(help="Notices: send, show, list; acknowledgement deadlines.")

HASH_CHARS = 43  # unpadded base64url of 32 bytes

Lang = Annotated[
    str | None, typer.Option("--lang", help="Language to read in (default: the station's).")
]
Prec = Annotated[
    str | None,
    typer.Option(
        help="ROUTINE, PRIORITY, IMMEDIATE or FLASH (default: the form's / the message's)"
    ),
]


def _duration(ms: int) -> str:
    return timefmt.duration(ms, "en")


def _resolve_hash(candidates: list[str], ref: str, what: str) -> str:
    if len(ref) == HASH_CHARS:
        return ref
    matches = [h for h in candidates if h.startswith(ref)]
    if len(matches) != 1:
        raise LocalError(
            Code.NOT_FOUND if not matches else Code.INVALID_REQUEST,
            f"no {what} starts with {ref!r}" if not matches else f"{ref!r} is ambiguous",
        )
    return matches[0]


# --- forms ---------------------------------------------------------------------------------------


@forms_app.command("list")
def forms_list(
    data: cli.Data = Path("parley-data"),
    lang: Lang = None,
    all_versions: Annotated[bool, typer.Option("--all", help="Every version.")] = False,
    as_json: cli.AsJson = False,
) -> None:
    """The forms this station can send and read."""
    params: dict[str, Any] = {"all_versions": all_versions}
    if lang:
        params["lang"] = lang
    forms = Api(data).get("/forms", params=params)
    if as_json:
        return cli.print_json(forms)
    t = Table()
    t.add_column("form", no_wrap=True)  # an id to copy, so never broken across lines
    for name in ("v", "title", "precedence", "ack within", "lead time"):
        t.add_column(name)
    for f in forms:
        lead = f"{f['min_lead_hours']} h" if f["min_lead_hours"] else "-"
        t.add_row(
            f["id"], str(f["version"]), f["name"], f["precedence"],
            f"{f['ack_deadline_hours']} h", lead,
        )  # fmt: skip
    cli.out.print(t)


@forms_app.command("show")
def forms_show(
    form_id: str,
    data: cli.Data = Path("parley-data"),
    version: Annotated[int | None, typer.Option(help="A version (default: the latest).")] = None,
    lang: Lang = None,
    as_json: cli.AsJson = False,
) -> None:
    """One form: its fields (labelled in the station's language), lead time, schema, example."""
    params: dict[str, Any] = {}
    if version:
        params["version"] = version
    if lang:
        params["lang"] = lang
    f = Api(data).get(f"/forms/{form_id}", params=params)
    if as_json:
        return cli.print_json(f)
    cli.out.print(f"[bold]{f['name']}[/bold] — {f['id']} v{f['version']} ({f['precedence']})")
    if f["description"]:
        cli.out.print(f["description"], markup=False)
    cli.out.print(f"acknowledgement due within {f['ack_deadline_hours']} h", markup=False)
    if f["lead_time"]:
        lt = f["lead_time"]
        cli.out.print(f"notice at least {lt['min_hours']} h before {lt['field']}", markup=False)
    t = Table("field", "label", "required", "kind")
    for fld in f["fields"]:
        kind = fld["kind"]
        if isinstance(kind, dict):
            kind = "one of " + ", ".join(map(str, kind["enum"]))
        t.add_row(fld["name"], fld["label"], "yes" if fld["required"] else "", str(kind))
    cli.out.print(t)
    cli.out.print("schema:", markup=False)
    cli.out.print(json.dumps(f["schema"], indent=2, ensure_ascii=False), markup=False)
    if f["example"] is not None:
        cli.out.print("example fields:", markup=False)
        cli.out.print(json.dumps(f["example"], indent=2, ensure_ascii=False), markup=False)


# --- notices -------------------------------------------------------------------------------------


def _fields(value: str) -> Any:
    text = Path(value[1:]).read_text() if value.startswith("@") else value
    try:
        return json.loads(text)
    except ValueError as exc:
        raise LocalError(Code.INVALID_REQUEST, f"--fields is not JSON: {exc}") from None


@notice_app.command("send")
def notice_send(
    channel: str,
    form_id: Annotated[
        str, typer.Argument(metavar="FORM", help="A form id (`parley forms list`).")
    ],
    fields: Annotated[
        str | None, typer.Option(help="The notice's fields as JSON, or @FILE holding them.")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="FIELD=VALUE",
            help="A field as you would type it: launch_window='2030-03-01 15:00 / +4h', "
            "launch_area='39.65N 124.7E; 39.65N 124.75E; 39.6N 124.75E', "
            "launch_area.name='Site A', impact_area='circle 40N 131.5E 60 km'. Repeat.",
        ),
    ] = None,
    timezone: Annotated[
        str | None,
        typer.Option(help="Zone of times given without one (default: the station's)."),
    ] = None,
    preview: Annotated[
        bool, typer.Option(help="Show the notice as each member will read it; send nothing.")
    ] = False,
    data: cli.Data = Path("parley-data"),
    lang: Annotated[
        str | None, typer.Option(help="The language you write in (default: the station's).")
    ] = None,
    version: Annotated[int | None, typer.Option(help="Form version (default: latest).")] = None,
    deadline_hours: Annotated[
        int | None, typer.Option(help="Acknowledgement due in H hours (default: the form's).")
    ] = None,
    precedence: Prec = None,
) -> None:
    """Validate a notice against its form and send it; nothing is sent if a field is wrong."""
    api = Api(data)
    ch = cli.resolve_channel(api, channel)
    if (fields is None) == (not set_):
        raise LocalError(Code.INVALID_REQUEST, "give --fields JSON or --set FIELD=VALUE, not both")
    req: dict[str, Any] = {"form": form_id}
    if fields is not None:
        req["fields"] = _fields(fields)
    else:
        req["inputs"] = _inputs(set_ or [])
    if timezone:
        req["timezone"] = timezone
    if lang:
        req["lang"] = lang
    if version:
        req["version"] = version
    if preview:
        return _print_preview(api.post(f"/channels/{ch}/notices/preview", json=req))
    if precedence:
        req["precedence"] = precedence
    if deadline_hours is not None:
        req["deadline_hours"] = deadline_hours
    r = api.post(
        f"/channels/{ch}/notices", json=req, headers={"Idempotency-Key": str(uuid.uuid4())}
    )
    cli.out.print(f"queued: channel {ch} seq {r['seq']} hash {r['hash']}", markup=False)
    cli.out.print(f"acknowledgement due {cli.when(r['deadline_ms'])}", markup=False)
    if r["late"]:
        lt = r["lateness"]
        cli.out.print(
            f"LATE NOTICE: given {_duration(lt['lead_ms'])} ahead, "
            f"at least {_duration(lt['required_ms'])} required",
            markup=False,
        )


def _inputs(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise LocalError(Code.INVALID_REQUEST, f"--set {pair!r}: write FIELD=VALUE")
        if value.startswith("@"):
            value = Path(value[1:]).read_text()
        out[name.strip()] = value
    return out


def _print_preview(p: dict[str, Any]) -> None:
    if not p["ok"]:
        for e in p["errors"]:
            cli.err.print(f"{e['field'] or '-'}: {e['message']}", markup=False)
        raise LocalError(Code.BAD_BODY, f"{len(p['errors'])} field(s) to correct; nothing sent")
    for name, text in p["times"].items():
        cli.out.print(f"{name}: {text}", markup=False)
    if p["warning"]:
        cli.out.print(p["warning"], markup=False)
    for r in p["readers"]:
        cli.out.print(f"--- {r['name']} reads ({r['lang']}) ---", markup=False)
        cli.out.print(r["text"], markup=False)
    cli.out.print("preview only: nothing was sent", markup=False)


def _notice_hash(api: Api, ch: str, ref: str) -> str:
    if len(ref) == HASH_CHARS:
        return ref
    return _resolve_hash([n["hash"] for n in api.get(f"/channels/{ch}/notices")], ref, "notice")


def _answers_lines(answers: list[dict[str, Any]]) -> list[str]:
    out = []
    for a in answers:
        got = f", answer: {a['answer']}" if a["answer"] else ""
        out.append(f"  {a['answerer_name']}: {a['status']} (due {cli.when(a['deadline_ms'])}{got})")
    return out


@notice_app.command("show")
def notice_show(
    channel: str,
    ref: Annotated[str, typer.Argument(metavar="HASH", help="The notice's hash (or a prefix).")],
    data: cli.Data = Path("parley-data"),
    lang: Lang = None,
    svg: Annotated[
        Path | None,
        typer.Option("--map", "--svg", help="Write the map (SVG, over the base map) to this file."),
    ] = None,
    as_json: cli.AsJson = False,
) -> None:
    """A notice rendered in your language from its fields, with its answers."""
    api = Api(data)
    ch = cli.resolve_channel(api, channel)
    h = _notice_hash(api, ch, ref)
    n = api.get(f"/channels/{ch}/notices/{h}", params={"lang": lang} if lang else {})
    if svg is not None:
        svg.write_text(n["svg"])
    if as_json:
        return cli.print_json(n)
    cli.out.print(
        f"{n['sender_name']} #{n['seq']} {cli.when(n['ts'])} [{n['precedence']}] "
        f"{n['form']} v{n['version']} (written in {n['original_lang']}, shown in {n['lang']})",
        markup=False,
    )
    cli.out.print(n["text"], markup=False)
    for line in _answers_lines(n["answers"]):
        cli.out.print(line, markup=False)
    for a in n["acks"]:
        text = f": {a['text']}" if a["text"] else ""
        cli.out.print(
            f"  {cli.when(a['ts'])} {a['station_name']} ({a['by']}) {a['answer']}{text}",
            markup=False,
        )
    if svg is not None:
        cli.out.print(f"map written to {svg}", markup=False)


@notice_app.command("list")
def notice_list(
    channel: str, data: cli.Data = Path("parley-data"), as_json: cli.AsJson = False
) -> None:
    """The channel's notices, oldest first, with the state of their acknowledgements."""
    api = Api(data)
    ch = cli.resolve_channel(api, channel)
    rows = api.get(f"/channels/{ch}/notices")
    if as_json:
        return cli.print_json(rows)
    t = cli.table("hash", "from", "sent", "form", "late", "answers", whole=("hash",))
    for n in rows:
        answers = ", ".join(f"{a['answerer_name']}: {a['status']}" for a in n["answers"])
        t.add_row(
            n["hash"], n["sender_name"], cli.when(n["ts"]), n["title"],
            "LATE" if n["late"] else "", answers or "-",
        )  # fmt: skip
    cli.out.print(t)


@notice_app.command("deadlines")
def notice_deadlines(
    data: cli.Data = Path("parley-data"),
    all_: Annotated[bool, typer.Option("--all", help="Answered ones too.")] = False,
    as_json: cli.AsJson = False,
) -> None:
    """Acknowledgements due: the ones we owe and the ones we await, soonest first."""
    rows = Api(data).get("/deadlines", params={"all": all_})
    if as_json:
        return cli.print_json(rows)
    t = Table("notice", "from", "to answer", "due", "time left", "status", "level")
    for d in rows:
        t.add_row(
            f"{d['title'] or d['form'] or '?'} {d['ref'][:12]}", d["sender_name"],
            d["answerer_name"], cli.when(d["deadline_ms"]), _duration(d["time_left_ms"]),
            d["status"], str(d["escalation_level"] or "-"),
        )  # fmt: skip
    cli.out.print(t)


# --- acknowledgements ----------------------------------------------------------------------------


def ack(
    channel: str,
    ref: Annotated[
        str, typer.Argument(metavar="HASH", help="The message's or notice's hash (or a prefix).")
    ],
    answer: Annotated[
        str, typer.Option(help="acknowledged, questions or rejected")
    ] = "acknowledged",
    text: Annotated[str, typer.Option(help="What you answer (required for questions).")] = "",
    by: Annotated[
        str | None,
        typer.Option(envvar="PARLEY_USER", help="Who answers (default: the API user)."),
    ] = None,
    precedence: Prec = None,
    data: cli.Data = Path("parley-data"),
) -> None:
    """Answer a message or notice from another station; the answer is a signed envelope."""
    api = Api(data)
    ch = cli.resolve_channel(api, channel)
    h = ref
    if len(ref) != HASH_CHARS:
        msgs = api.get(f"/channels/{ch}/messages", params={"limit": 10_000})
        h = _resolve_hash([m["hash"] for m in msgs], ref, "message")
    req: dict[str, Any] = {"answer": answer, "text": text}
    if by:
        req["by"] = by
    if precedence:
        req["precedence"] = precedence
    r = api.post(
        f"/channels/{ch}/messages/{h}/ack", json=req, headers={"Idempotency-Key": str(uuid.uuid4())}
    )
    cli.out.print(
        f"queued: {r['answer']} to {h} — channel {ch} seq {r['seq']} hash {r['hash']}",
        markup=False,
    )
