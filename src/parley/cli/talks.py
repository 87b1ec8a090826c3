"""`parley talks …`, `parley roadmap …` and `parley translate …`: the operator API's talks routes.

The station decides who may do what (its role table): with the bootstrap token you act as the
station's `admin`; set PARLEY_TOKEN to your own API token to act as yourself (a human translation
needs the translator role, and is signed in your own name). A refusal prints as
`error [forbidden]: …` and exits 1.

Versions and messages are named by their hash; a unique prefix of a version hash is enough (the
full hash is what is signed). Terms come from a JSON file (`--file`, the API's `terms` object),
from flags, or both (flags win); a counter starts from the terms it counters.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from parley.cli import common as cli
from parley.cli.client import Api
from parley.errors import Code, LocalError

talks_app = typer.Typer(help="Talks about talks: propose, counter, accept, withdraw a meeting.")
roadmap_app = typer.Typer(help="Road map: reciprocal steps, their conditions and status.")
translate_app = typer.Typer(help="Translations of a message: human, machine, certified.")

TermsFile = Annotated[
    Path | None, typer.Option("--file", "-f", help="JSON terms (the API's `terms` object).")
]
Dates = Annotated[
    list[str] | None,
    typer.Option("--date", help="A date option: START or START/END (repeatable)."),
]
Venues = Annotated[list[str] | None, typer.Option("--venue", help="A venue option (repeatable).")]
TableShape = Annotated[str | None, typer.Option("--table", help="Table shape: round, square, …")]
Seating = Annotated[str | None, typer.Option("--seating", help="How delegations are seated.")]
Delegation = Annotated[int | None, typer.Option("--delegation", help="Delegation size, at most.")]
Agenda = Annotated[list[str] | None, typer.Option("--agenda", help="An agenda item (repeatable).")]
Preconds = Annotated[
    list[str] | None, typer.Option("--precondition", help="A precondition (repeatable).")
]
NoPreconds = Annotated[
    bool, typer.Option("--no-preconditions", help="Explicitly: no preconditions.")
]


def _terms(
    base: dict[str, Any],
    file: Path | None,
    dates: list[str] | None,
    venues: list[str] | None,
    table: str | None,
    seating: str | None,
    delegation: int | None,
    agenda: list[str] | None,
    preconditions: list[str] | None,
    no_preconditions: bool,
) -> dict[str, Any]:
    terms = dict(base)
    if file is not None:
        try:
            terms.update(json.loads(file.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise LocalError(Code.INVALID_REQUEST, f"{file}: not readable JSON ({exc})") from exc
    if dates:
        terms["date_options"] = [_date(d) for d in dates]
    if venues:
        terms["venue_options"] = venues
    if table is not None or seating is not None:
        fmt = dict(terms.get("format", {}))
        fmt.update({k: v for k, v in (("table", table), ("seating", seating)) if v is not None})
        terms["format"] = fmt
    if delegation is not None:
        terms["delegation_size"] = {"max": delegation}
    if agenda:
        terms["agenda"] = agenda
    if no_preconditions and preconditions:
        raise LocalError(Code.INVALID_REQUEST, "either --no-preconditions or --precondition")
    if no_preconditions:
        terms["preconditions"] = {"none": True}
    elif preconditions:
        terms["preconditions"] = {"items": preconditions}
    terms.setdefault("agenda", [])
    return terms


def _date(text: str) -> dict[str, str]:
    start, _, end = text.partition("/")
    return {"start": start, "end": end} if end else {"start": start}


def _version(negotiation: dict[str, Any], ref: str) -> str:
    hashes = [v["hash"] for v in negotiation["versions"]]
    found = [h for h in hashes if h.startswith(ref)] if ref else []
    if len(found) != 1:
        raise LocalError(
            Code.NOT_FOUND if not found else Code.INVALID_REQUEST,
            f"no version of {negotiation['negotiation_id']} starts with {ref!r}"
            if not found
            else f"{ref!r} names several versions; give more of the hash",
        )
    return str(found[0])


def say(text: str) -> None:
    """Print text as it is: names, notes and translations may hold brackets rich would eat."""
    cli.out.print(text, markup=False)


def _name(who: dict[str, Any] | None) -> str:
    return str(who["name"]) if who else "-"


def _names(people: list[dict[str, Any]]) -> str:
    return ", ".join(_name(p) for p in people) or "-"


def _value(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False)


def _api_channel(data: Path, channel: str) -> tuple[Api, str]:
    """A client of the running station, and the full id of the channel CHANNEL abbreviates."""
    api = Api(data)
    return api, cli.resolve_channel(api, channel)


def _show(r: Any, as_json: bool, human: Callable[[Any], None]) -> None:
    """The API's answer as it is for programs (--json), or `human`'s reading of it."""
    if as_json:
        cli.print_json(r)
    else:
        human(r)


def _view(data: Path, channel: str, path: str, as_json: bool, human: Callable[[Any], None]) -> None:
    api, ch = _api_channel(data, channel)
    _show(api.get(f"/channels/{ch}/{path}"), as_json, human)


def _queued(r: dict[str, Any]) -> None:
    e = r["envelope"]
    say(f"queued: envelope seq {e['seq']} {e['hash']}")


def _say_ignored(items: list[dict[str, Any]], indent: str = "") -> None:
    for i in items:
        say(f"{indent}ignored: {i['type']} by {_name(i['author'])}: {i['reason']}")


# --- talks ---------------------------------------------------------------------------------------


@talks_app.command("propose")
def talks_propose(
    channel: str,
    file: TermsFile = None,
    negotiation_id: Annotated[str | None, typer.Option("--id", help="Negotiation id.")] = None,
    date: Dates = None,
    venue: Venues = None,
    table: TableShape = None,
    seating: Seating = None,
    delegation: Delegation = None,
    agenda: Agenda = None,
    precondition: Preconds = None,
    no_preconditions: NoPreconds = False,
    data: cli.Data = Path("parley-data"),
    as_json: cli.AsJson = False,
) -> None:
    """Propose a meeting (or table one, as the facilitator)."""
    api, ch = _api_channel(data, channel)
    terms = _terms(
        {}, file, date, venue, table, seating, delegation, agenda, precondition, no_preconditions
    )
    req: dict[str, Any] = {"terms": terms}
    if negotiation_id:
        req["negotiation_id"] = negotiation_id
    r = api.post(f"/channels/{ch}/talks", json=req)
    _show(r, as_json, _moved("proposed"))


@talks_app.command("counter")
def talks_counter(
    channel: str,
    negotiation_id: str,
    parent: Annotated[
        str | None, typer.Option("--parent", help="The version countered (default: the open one).")
    ] = None,
    file: TermsFile = None,
    date: Dates = None,
    venue: Venues = None,
    table: TableShape = None,
    seating: Seating = None,
    delegation: Delegation = None,
    agenda: Agenda = None,
    precondition: Preconds = None,
    no_preconditions: NoPreconds = False,
    data: cli.Data = Path("parley-data"),
    as_json: cli.AsJson = False,
) -> None:
    """Counter a version: its terms, changed by the file and flags given."""
    api, ch = _api_channel(data, channel)
    n = api.get(f"/channels/{ch}/talks/{negotiation_id}")
    if parent is None:
        if len(n["open_versions"]) != 1:
            raise LocalError(
                Code.INVALID_REQUEST,
                f"{len(n['open_versions'])} versions are open; say which with --parent",
            )
        parent_hash = str(n["open_versions"][0])
    else:
        parent_hash = _version(n, parent)
    base = next(v["terms"] for v in n["versions"] if v["hash"] == parent_hash)
    terms = _terms(
        base, file, date, venue, table, seating, delegation, agenda, precondition, no_preconditions
    )
    r = api.post(
        f"/channels/{ch}/talks/{negotiation_id}/counter",
        json={"parent": parent_hash, "terms": terms},
    )
    _show(r, as_json, _moved("countered"))


def _version_move(
    action: str, channel: str, negotiation_id: str, version: str, data: Path, as_json: bool
) -> None:
    api, ch = _api_channel(data, channel)
    n = api.get(f"/channels/{ch}/talks/{negotiation_id}")
    r = api.post(
        f"/channels/{ch}/talks/{negotiation_id}/{action}", json={"version": _version(n, version)}
    )
    _show(r, as_json, _moved({"accept": "accepted", "withdraw": "withdrew"}[action]))


@talks_app.command("accept")
def talks_accept(
    channel: str,
    negotiation_id: str,
    version: Annotated[str, typer.Argument(help="The exact version (hash, or a unique prefix).")],
    data: cli.Data = Path("parley-data"),
    as_json: cli.AsJson = False,
) -> None:
    """Accept one exact version; when every party has, it is the agreement."""
    _version_move("accept", channel, negotiation_id, version, data, as_json)


@talks_app.command("withdraw")
def talks_withdraw(
    channel: str,
    negotiation_id: str,
    version: Annotated[str, typer.Argument(help="A version this station authored.")],
    data: cli.Data = Path("parley-data"),
    as_json: cli.AsJson = False,
) -> None:
    """Take a version this station put on the table off it again."""
    _version_move("withdraw", channel, negotiation_id, version, data, as_json)


def _moved(verb: str) -> Callable[[dict[str, Any]], None]:
    """Prints the answer to a move in a negotiation, named by `verb`."""

    def human(r: dict[str, Any]) -> None:
        n = r["negotiation"]
        e = r["envelope"]
        say(f"{verb}: negotiation {n['negotiation_id']} (envelope seq {e['seq']} {e['hash']})")
        if r.get("version"):
            say(f"version {r['version']}")
        say(f"status: {n['status']}")
        if n["agreement"]:
            say(f"agreement {n['agreement']['hash']}")

    return human


@talks_app.command("list")
def talks_list(
    channel: str, data: cli.Data = Path("parley-data"), as_json: cli.AsJson = False
) -> None:
    """Every negotiation on a channel."""
    _view(data, channel, "talks", as_json, _print_talks)


def _print_talks(r: dict[str, Any]) -> None:
    say(f"parties: {_names(r['parties'])}; facilitator: {_name(r['facilitator'])}")
    t = Table("negotiation", "status", "versions", "latest", "by", "table", "updated")
    for n in r["negotiations"]:
        latest = n["latest"]
        t.add_row(
            n["negotiation_id"], n["status"], str(n["versions"]), latest["hash"],
            _name(latest["author"]), latest["terms"]["format"]["table"], cli.when(n["updated"]),
        )  # fmt: skip
    cli.out.print(t)
    _say_ignored(r["ignored"])


@talks_app.command("show")
def talks_show(
    channel: str,
    negotiation_id: str,
    data: cli.Data = Path("parley-data"),
    as_json: cli.AsJson = False,
) -> None:
    """One negotiation: its versions, its history with what each counter changed, the agreement."""
    _view(data, channel, f"talks/{negotiation_id}", as_json, _print_negotiation)


def _print_negotiation(n: dict[str, Any]) -> None:
    say(f"negotiation {n['negotiation_id']} on {n['channel']}: {n['status']}")
    say(f"parties: {_names(n['parties'])}; facilitator: {_name(n['facilitator'])}")
    say("versions:")
    for v in n["versions"]:
        accepted = _names(v["acceptances"])
        say(f"  {v['hash']}  by {_name(v['author'])}  {v['status']}")
        say(f"    accepted by: {accepted}; awaiting: {_names(v['awaiting'])}")
    terms = {v["hash"]: v["terms"] for v in n["versions"]}
    say("history:")
    for e in n["history"]:
        who = _name(e["author"])
        if e["action"] == "propose":
            verb = "tabled" if n["facilitator"] and e["author"] == n["facilitator"] else "proposed"
            say(f"  {cli.when(e['ts'])}  {who} {verb} {e['version']}")
            for key, value in terms[e["version"]].items():
                say(f"      {key}: {_value(value)}")
        elif e["action"] == "counter":
            say(f"  {cli.when(e['ts'])}  {who} countered {e['parent']}")
            say(f"    with {e['version']}")
            for c in e["changes"] or [{"path": "(nothing changed)", "before": "", "after": ""}]:
                say(f"      {c['path']}: {_value(c['before'])} → {_value(c['after'])}")
        else:
            say(f"  {cli.when(e['ts'])}  {who} {e['action']}ed {e['version']}")
    _say_ignored(n["ignored"], "  ")
    a = n["agreement"]
    if a:
        say(f"agreement {a['hash']} on version {a['record']['version']}, signed by:")
        for s in a["signatures"]:
            say(f"  {s['name']}: envelope {s['envelope_hash']} (seq {s['seq']})")


# --- road map ------------------------------------------------------------------------------------


def _step_move(
    data: Path, channel: str, path: str, req: dict[str, Any] | None, as_json: bool
) -> None:
    api, ch = _api_channel(data, channel)
    r = api.post(f"/channels/{ch}/roadmap/steps{path}", json=req)
    _show(r, as_json, _print_mapped)


def _print_mapped(r: dict[str, Any]) -> None:
    _queued(r)
    _print_roadmap(r["roadmap"])


@roadmap_app.command("add")
def roadmap_add(
    channel: str,
    owner: Annotated[str, typer.Option(help="The party that takes the step (name or id).")],
    description: Annotated[str, typer.Option(help="What the step is.")],
    step_id: Annotated[str | None, typer.Option("--id", help="Step id, e.g. 3.")] = None,
    after: Annotated[
        list[str] | None,
        typer.Option(help="A condition STEP[:done|verified] (repeatable; default verified)."),
    ] = None,
    data: cli.Data = Path("parley-data"),
    as_json: cli.AsJson = False,
) -> None:
    """Put a step on the road map; every party agrees to it before it can start."""
    conditions = []
    for c in after or []:
        step, _, state = c.partition(":")
        conditions.append({"after_step": step, "state": state or "verified"})
    req: dict[str, Any] = {"owner": owner, "description": description, "conditions": conditions}
    if step_id:
        req["step_id"] = step_id
    _step_move(data, channel, "", req, as_json)


@roadmap_app.command("agree")
def roadmap_agree(
    channel: str, step: str, data: cli.Data = Path("parley-data"), as_json: cli.AsJson = False
) -> None:
    """Agree to a proposed step."""
    _step_move(data, channel, f"/{step}/agree", None, as_json)


@roadmap_app.command("update")
def roadmap_update(
    channel: str,
    step: str,
    status: Annotated[str, typer.Argument(help="in_progress, done, verified or disputed")],
    note: Annotated[str | None, typer.Option(help="Why, for the record.")] = None,
    data: cli.Data = Path("parley-data"),
    as_json: cli.AsJson = False,
) -> None:
    """The owner starts a step or claims it done; another party verifies or disputes it."""
    req: dict[str, Any] = {"status": status}
    if note:
        req["note"] = note
    _step_move(data, channel, f"/{step}/update", req, as_json)


@roadmap_app.command("show")
def roadmap_show(
    channel: str, data: cli.Data = Path("parley-data"), as_json: cli.AsJson = False
) -> None:
    """Every step, its status history, and what is unlocked."""
    _view(data, channel, "roadmap", as_json, _print_roadmap)


def _print_roadmap(r: dict[str, Any]) -> None:
    for s in r["steps"]:
        mark = "  (unlocked: may start)" if s["unlocked"] else ""
        say(f"step {s['step_id']} [{s['status']}] {_name(s['owner'])}: {s['description']}{mark}")
        for c in s["conditions"]:
            holds = "holds" if c["holds"] else "waiting"
            say(f"    after step {c['after_step']} is {c['state']} ({holds})")
        for w in s["awaiting"]:
            say(f"    {w['move']} awaits: {_names(w['stations'])}")
        for h in s["history"]:
            note = f" — {h['note']}" if h["note"] else ""
            say(f"    {cli.when(h['ts'])}  {_name(h['by'])}: {h['move']} → {h['status']}{note}")
    say(f"unlocked: {', '.join(r['unlocked']) or '-'}")
    _say_ignored(r["ignored"])


# --- translation ---------------------------------------------------------------------------------

Translator = Annotated[
    str | None,
    typer.Option(
        help="Your own user name (the default); a translator signs only in their own name, "
        "so the station refuses any other (403 forbidden). Act as yourself with PARLEY_TOKEN."
    ),
]


def _message(api: Api, channel: str, ref: str) -> str:
    """A text message of the channel by its hash or a unique prefix of it."""
    if len(ref) == 43:
        return ref
    hashes = [
        m["hash"]
        for m in api.get(f"/channels/{channel}/messages", params={"limit": 10_000})
        if m["body"].get("type") == "text" and m["hash"].startswith(ref)
    ]
    if len(hashes) != 1:
        raise LocalError(
            Code.NOT_FOUND if not hashes else Code.INVALID_REQUEST,
            f"no text message starts with {ref!r}" if not hashes else f"{ref!r} is ambiguous",
        )
    return str(hashes[0])


def _translation_call(
    path: str,
    channel: str,
    message: str,
    req: dict[str, Any],
    data: Path,
    as_json: bool,
    translator: str | None = None,
) -> None:
    if translator:
        req = {**req, "translator": translator}
    api, ch = _api_channel(data, channel)
    r = api.post(f"/channels/{ch}/messages/{_message(api, ch, message)}/{path}", json=req)
    _show(r, as_json, _print_translated)


def _print_translated(r: dict[str, Any]) -> None:
    _queued(r)
    t = r["translation"]
    if t:
        say(f"[{t['lang']}] {t['label']}\n  {t['text']}")


@translate_app.command("add")
def translate_add(
    channel: str,
    message: str,
    lang: Annotated[str, typer.Option(help="The translation's language, e.g. ko.")],
    text: Annotated[str, typer.Option(help="The translated text.")],
    translator: Translator = None,
    certify: Annotated[bool, typer.Option(help="Certify it as it is sent.")] = False,
    data: cli.Data = Path("parley-data"),
    as_json: cli.AsJson = False,
) -> None:
    """Attach a human translation (a draft, or certified at once)."""
    status = "certified" if certify else "draft"
    req = {"lang": lang, "text": text, "status": status}
    _translation_call("translations", channel, message, req, data, as_json, translator)


@translate_app.command("correct")
def translate_correct(
    channel: str,
    message: str,
    supersedes: Annotated[str, typer.Argument(help="The translation corrected (its hash).")],
    text: Annotated[str, typer.Option(help="The corrected text.")],
    translator: Translator = None,
    data: cli.Data = Path("parley-data"),
    as_json: cli.AsJson = False,
) -> None:
    """Correct a translation (machine or human); the earlier one stays in the history."""
    req = {"status": "corrected", "supersedes": supersedes, "text": text}
    _translation_call("translations", channel, message, req, data, as_json, translator)


@translate_app.command("certify")
def translate_certify(
    channel: str,
    message: str,
    supersedes: Annotated[str, typer.Argument(help="The human translation certified (hash).")],
    translator: Translator = None,
    data: cli.Data = Path("parley-data"),
    as_json: cli.AsJson = False,
) -> None:
    """Certify a human translation, exactly as it stands."""
    req = {"status": "certified", "supersedes": supersedes}
    _translation_call("translations", channel, message, req, data, as_json, translator)


@translate_app.command("machine")
def translate_machine(
    channel: str,
    message: str,
    lang: Annotated[str, typer.Option(help="Target language, e.g. ko.")],
    data: cli.Data = Path("parley-data"),
    as_json: cli.AsJson = False,
) -> None:
    """Translate with the station's configured engine; recorded as a machine translation."""
    _translation_call("translate", channel, message, {"lang": lang}, data, as_json)


@translate_app.command("show")
def translate_show(
    channel: str,
    message: str,
    lang: Annotated[str | None, typer.Option(help="The reader's language.")] = None,
    data: cli.Data = Path("parley-data"),
    as_json: cli.AsJson = False,
) -> None:
    """The original, always, with what a reader of LANG sees and every translation."""
    api, ch = _api_channel(data, channel)
    params = {"lang": lang} if lang else {}
    r = api.get(f"/channels/{ch}/messages/{_message(api, ch, message)}/translations", params=params)
    _show(r, as_json, _print_translations)


def _print_translations(r: dict[str, Any]) -> None:
    o, shown = r["original"], r["shown"]
    say(f"original [{o['lang']}] by {_name(o['author'])}:\n  {o['text']}")
    if shown["text"] is not None:
        say(f"for a {r['reader_lang']} reader ({shown['label']}):\n  {shown['text']}")
    for lang_, lt in r["languages"].items():
        say(f"[{lang_}] history:")
        for t in lt["history"]:
            state = "current" if t["current"] else f"superseded by {t['superseded_by']}"
            say(f"  {t['envelope_hash']}  {t['label']}  ({state})")
            say(f"    {t['text']}")


@translate_app.command("engine")
def translate_engine(data: cli.Data = Path("parley-data"), as_json: cli.AsJson = False) -> None:
    """The machine translation engine this station is configured with (none by default)."""
    r = Api(data).get("/translation/engine")
    if as_json:
        return cli.print_json(r)
    say(r["engine"] if r["configured"] else "none: machine translation is off")
