"""A channel's transcript for paper: every message of a channel or a date range as a person
reads it, with what proves it (signature check, hashes, checkpoint digests).

    printout(station, who, channel, from_ms=None, to_ms=None, lang=None) -> dict

Rules:
- The same gate as exporting the transcript: `transcript.export` in the role table, and the
  channel guard, so a back channel prints only for its named representatives.
- Bounded: at most MAX_MESSAGES messages; a longer range prints its first MAX_MESSAGES and says
  so (`truncated`), so a person narrows the range rather than getting a partial file unawares.
- Everything is read through the integrity check (station/integrity.py): a message whose stored
  bytes fail it prints as failed, with its text withheld, exactly as the console shows it.
- Notices are rendered from their fields in the reader's language with their map (the offline
  base map), as the channel page shows them; free text shows the original and the best
  translation per language, each labelled human (certified by whom) or machine (which engine).
- Printing is recorded in the audit log (who, channel, range).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from parley.domain import channels, describe, translation
from parley.domain.forms import inputs
from parley.errors import Code, LocalError, ParleyError
from parley.protocol.checkpoint import CHECKPOINT, COSIGN
from parley.station import checkpoints
from parley.station import talks as talks_station
from parley.station.node import Message, Station
from parley.station.notices import desk
from parley.station.roles import Action, authorize
from parley.station.users import User

MAX_MESSAGES = 2000
PAGE = 500


def _when(ms: int, tz: Any) -> dict[str, str]:
    utc = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return {
        "utc": f"{utc:%Y-%m-%d %H:%M:%S} UTC",
        "local": inputs.show_time(ms, tz) if inputs.zone_name(tz) != "UTC" else "",
    }


def printout(
    station: Station,
    who: User,
    channel: str,
    from_ms: int | None = None,
    to_ms: int | None = None,
    lang: str | None = None,
) -> dict[str, Any]:
    authorize(who, Action.TRANSCRIPT_EXPORT)
    state = station.guard(channel, who)
    if from_ms is not None and to_ms is not None and to_ms < from_ms:
        raise LocalError(Code.INVALID_REQUEST, "the range ends before it starts (to < from)")
    lang = lang or station.cfg.lang
    tz = desk(station).zone()
    picked: list[Message] = []
    translated: set[str] = set()  # originals with translations, wherever those fall
    truncated = False
    after = 0
    while not truncated:
        page = station.messages(channel, after, PAGE, user=who)
        if not page:
            break
        after = int(page[-1].extra["id"])
        for m in page:
            if m.body.get("type") == translation.TYPE:
                translated.add(str(m.body.get("ref")))
            if (from_ms is not None and m.ts < from_ms) or (to_ms is not None and m.ts > to_ms):
                continue
            if len(picked) == MAX_MESSAGES:
                truncated = True
                break
            picked.append(m)
    station.store.audit(
        who.name, "transcript.print", {"channel": channel, "from": from_ms, "to": to_ms},
        station.clock(),
    )  # fmt: skip
    return {
        "channel": channel,
        "title": state.title,
        "kind": state.kind,
        "state": state.state,
        "members": [station.peer_name(m) for m in state.members],
        "station": station.cfg.name,
        "printed_by": who.name,
        "printed": _when(station.clock(), tz),
        "timezone": inputs.zone_name(tz),
        "lang": lang,
        "from": _when(from_ms, tz) if from_ms is not None else None,
        "to": _when(to_ms, tz) if to_ms is not None else None,
        "truncated": truncated,
        "limit": MAX_MESSAGES,
        "messages": _items(station, who, picked, translated, lang, tz),
        "checkpoints": [
            cp | {"time": _when(cp["ts"], tz)} for cp in checkpoints.listing(station, channel)
        ],
        "digest": station.transcript_digest(channel),
    }


def _items(
    station: Station, who: User, msgs: list[Message], refs: set[str], lang: str, tz: Any
) -> list[dict[str, Any]]:
    out = []
    for m in msgs:
        t = str(m.body.get("type", ""))
        if t in (CHECKPOINT, COSIGN, translation.TYPE):
            continue  # checkpoints are listed at the end; translations beside their original
        item: dict[str, Any] = {
            "seq": m.seq,
            "hash": m.hash,
            "sender": m.sender_name,
            "time": _when(m.ts, tz),
            "precedence": m.prec,
            "verified": m.verified,
            "problem": m.problem,
            "type": t,
        }
        if not m.verified:
            item["kind"] = "failed"
        elif t == translation.ORIGINAL_TYPE:
            item |= {
                "kind": "text",
                "text": str(m.body.get("text", "")),
                "lang": str(m.body.get("lang", "")),
                "translations": _translations(station, m, lang) if m.hash in refs else [],
            }
        elif t == "notice":
            try:
                view = desk(station).notice_view(
                    who, m.channel, m.hash, _notice_lang(station, m, lang)
                )
            except ParleyError as exc:
                # A notice this station keeps but cannot render (a form it lacks): say so and
                # print the rest, rather than no transcript at all.
                item |= {"kind": "record", "text": f"notice ({exc.message})"}
                out.append(item)
                continue
            item |= {
                "kind": "notice",
                "title": view["title"],
                "form": f"{view['form']} v{view['version']}",
                "text": view["text"],
                "svg": view["svg"],
                "late": view["late"],
                "original_lang": view["original_lang"],
                "shown_lang": view["lang"],
            }
        elif t == "ack":
            item |= {
                "kind": "ack",
                "text": f"{m.body.get('answer', '')} — {m.body.get('by', '')}"
                + (f": {m.body.get('text')}" if m.body.get("text") else ""),
                "ref": str(m.body.get("ref", "")),
            }
        elif channels.is_control(m.body):
            item |= {"kind": "control", "text": describe.line(m.body, lang)}
        else:
            item |= {"kind": "record", "text": describe.line(m.body, lang)}
        out.append(item)
    return out


def _notice_lang(station: Station, m: Message, lang: str) -> str | None:
    try:
        form = desk(station).catalogue.get(str(m.body.get("form")), int(m.body.get("version", 0)))
    except ParleyError:  # an unknown form: the desk says so when asked to render it
        return None
    return lang if lang in form.languages else None


def _translations(station: Station, m: Message, lang: str) -> list[dict[str, str]]:
    by_lang = talks_station.translations(station, m.channel, m.hash).state.of(m.hash)
    out = []
    for code in sorted(by_lang, key=lambda lg: (lg.split("-")[0] != lang, lg)):
        best = by_lang[code].best
        if best is not None:
            out.append({"lang": best.lang, "text": best.text, "label": best.label(lang)})
    return out
