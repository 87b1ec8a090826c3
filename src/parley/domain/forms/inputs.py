"""What a person types into a notice form, turned into the integers a notice carries.

    parse_time("2030-03-01 15:00", zone) -> Unix ms      (zone: the one given, else `zone`)
    parse_duration("2 h 30 min") -> ms                   parse_length("20 km") -> metres
    parse_point("37°30'N 127°E") -> {"lat_e6", "lon_e6"}
    parse_area("circle 37.5N 127E 20 km") / parse_area("38N 124E; 38N 125E; 37N 125E")
    parse_window("2030-03-01 06:00 / +4h", zone)
    parse_inputs(form, {"launch_window": "…", "launch_area.name": "Site A", …}, zone)
        -> Parsed(fields, errors, echo)

Rules:
- Pure: no clock, no I/O. The same text and zone give the same integers on every machine.
  Decimal degrees and degrees-minutes-seconds are computed as exact fractions and rounded half
  to even to a micro-degree once, at the end; lengths likewise to a metre.
- Time zones are IANA names ("Asia/Seoul"), "UTC"/"Z", or offsets ("+09:00"). A time without one
  is in the zone the caller passes (the station's `timezone` setting, or the one the form asked
  for). A local time that happens twice (a DST fold) is the first one; one that never happens
  (a DST gap) is refused.
- Latitude comes first unless hemisphere letters say otherwise ("127E 37.5N" is fine).
- Every input is bounded (MAX_INPUT_CHARS, MAX_INPUTS) before it is looked at; a problem is a
  FieldError (code, message in the asked language) on the top-level field it came from, so the
  console can put it beside that field. Nothing here decides validity beyond the form of the
  text: the form's own validation runs afterwards on the parsed fields.
- A structured field may still be given as JSON (text starting with "{" or "["): the old,
  exact way, for programs and for shapes no text syntax covers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from parley.domain.forms import messages
from parley.domain.forms.model import FieldError, Form

MAX_INPUT_CHARS = 16_000  # a 256-corner polygon in DMS fits
MAX_INPUTS = 128
MAX_TIME_MS = 253_402_300_799_999  # 9999-12-31, as the common schema

_E6 = 1_000_000


class InputError(ValueError):
    """A piece of text that is not the kind of value asked for; `code` is a FieldError code."""

    def __init__(self, code: str, **params: object) -> None:
        super().__init__(code)
        self.code = code
        self.params = params


# --- time zones and times ------------------------------------------------------------------------

_OFFSET = re.compile(r"^(?:UTC|GMT)?([+-])(\d{1,2})(?::?(\d{2}))?$")


def zone(name: str) -> tzinfo:
    """A time zone by IANA name, "UTC"/"Z", or offset ("+09:00", "UTC+9"); InputError if none."""
    text = name.strip()
    if text.upper() in ("Z", "UTC", "GMT"):
        return UTC
    m = _OFFSET.match(text)
    if m:
        hours, minutes = int(m.group(2)), int(m.group(3) or 0)
        if hours > 14 or minutes > 59:
            raise InputError("bad_zone", zone=text)
        delta = timedelta(hours=hours, minutes=minutes)
        return timezone(-delta if m.group(1) == "-" else delta)
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}", text) or ".." in text:
        raise InputError("bad_zone", zone=text[:40])
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InputError("bad_zone", zone=text[:40]) from None


def zone_name(tz: tzinfo) -> str:
    """An IANA zone's name; a fixed offset as "+05:30" (what `zone` reads back); "UTC"."""
    key = getattr(tz, "key", None)
    if key:
        return str(key)
    off = tz.utcoffset(None)
    if not off:
        return "UTC"
    minutes = int(off.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


_DATE_TIME = re.compile(
    r"^(?P<y>\d{4})-(?P<mo>\d{1,2})-(?P<d>\d{1,2})"
    r"(?:[T ]+(?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2}))?)?"
    r"\s*(?P<zone>Z|[A-Za-z][A-Za-z0-9_/+-]*|[+-]\d{1,2}(?::?\d{2})?)?$"
)
# The Korean reading a notice renders ("2025년 3월 1일 06:00 UTC") is accepted back.
_DATE_TIME_KO = re.compile(
    r"^(?P<y>\d{4})년\s*(?P<mo>\d{1,2})월\s*(?P<d>\d{1,2})일"
    r"(?:\s*(?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2}))?)?"
    r"\s*(?P<zone>[A-Za-z][A-Za-z0-9_/+-]*|[+-]\d{1,2}(?::?\d{2})?)?$"
)
_CLOCK = re.compile(
    r"^(?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2}))?"
    r"\s*(?P<zone>Z|[A-Za-z][A-Za-z0-9_/+-]*|[+-]\d{1,2}(?::?\d{2})?)?$"
)


def parse_time(text: str, default_zone: tzinfo, *, same_day_as: int | None = None) -> int:
    """Unix ms of a date and time as people write it; `same_day_as` (ms) lets "10:00" alone
    mean that time on the day of an earlier time (the end of a window), in the same zone."""
    raw = " ".join(text.split())
    m = _DATE_TIME.match(raw) or _DATE_TIME_KO.match(raw)
    clock_only = None
    if m is None and same_day_as is not None:
        clock_only = _CLOCK.match(raw)
    if m is None and clock_only is None:
        raise InputError("bad_time", value=raw[:60])
    g = (m or clock_only).groupdict()  # type: ignore[union-attr]
    tz = zone(g["zone"]) if g.get("zone") else default_zone
    try:
        if clock_only is not None:
            assert same_day_as is not None
            day = datetime.fromtimestamp(same_day_as / 1000, tz=tz)
            y, mo, d = day.year, day.month, day.day
        else:
            y, mo, d = int(g["y"]), int(g["mo"]), int(g["d"])
        h, mi, s = int(g["h"] or 0), int(g["mi"] or 0), int(g["s"] or 0)
        local = datetime(y, mo, d, h, mi, s, tzinfo=tz)
    except (ValueError, OverflowError):
        raise InputError("bad_time", value=raw[:60]) from None
    # A wall time that does not exist in the zone (a DST gap) does not survive the round trip.
    back = local.astimezone(UTC).astimezone(tz)
    if (back.year, back.month, back.day, back.hour, back.minute) != (y, mo, d, h, mi):
        raise InputError("bad_time_gap", value=raw[:60], zone=zone_name(tz))
    ms = int(local.astimezone(UTC).timestamp()) * 1000
    if not 0 <= ms <= MAX_TIME_MS:
        raise InputError("bad_time", value=raw[:60])
    return ms


def show_time(ms: int, tz: tzinfo) -> str:
    """ "2030-03-01 15:00 Asia/Seoul (+09:00)": a time in a zone, for echoing what was read."""
    t = datetime.fromtimestamp(ms // 1000, tz=tz)
    off = t.strftime("%z")
    name = zone_name(tz)
    return f"{t:%Y-%m-%d %H:%M} {name} ({off[:3]}:{off[3:]})"


# --- durations and lengths -----------------------------------------------------------------------

_DURATION_UNITS: Mapping[str, int] = {
    **dict.fromkeys(("d", "day", "days", "일"), 86_400_000),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours", "시간"), 3_600_000),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes", "분"), 60_000),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds", "초"), 1_000),
}
_DUR_TERM = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+|일|시간|분|초)")
_ISO_DUR = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


def parse_duration(text: str) -> int:
    """Milliseconds of "2h 30min", "1 d", "90 min", "1:30" (h:mm), "PT2H30M", "2시간 30분"."""
    raw = " ".join(text.strip().lower().split())
    if not raw:
        raise InputError("bad_duration", value="")
    if re.fullmatch(r"\d{1,5}:\d{2}", raw):
        hours, minutes = (int(x) for x in raw.split(":"))
        if minutes > 59:
            raise InputError("bad_duration", value=raw)
        return (hours * 60 + minutes) * 60_000
    iso = _ISO_DUR.match(raw.upper())
    if iso and raw.upper() not in ("P", "PT") and not raw.upper().endswith("T"):
        d, h, m, s = (int(x or 0) for x in iso.groups())
        return ((d * 24 + h) * 60 + m) * 60_000 + s * 1000
    total = Fraction(0)
    pos = 0
    for term in _DUR_TERM.finditer(raw):
        if raw[pos : term.start()].strip(" ,") or term.group(2) not in _DURATION_UNITS:
            raise InputError("bad_duration", value=raw[:60])
        total += Fraction(term.group(1)) * _DURATION_UNITS[term.group(2)]
        pos = term.end()
    if pos == 0 or raw[pos:].strip():
        raise InputError("bad_duration", value=raw[:60])
    if total.denominator != 1 or total > 100 * 365 * 86_400_000:
        raise InputError("bad_duration", value=raw[:60])
    return int(total)


_LENGTH_UNITS: Mapping[str, Fraction] = {
    "m": Fraction(1),
    "km": Fraction(1000),
    "nm": Fraction(1852),
    "nmi": Fraction(1852),
    "해리": Fraction(1852),
}
_LENGTH = re.compile(r"^(\d+(?:[.,]\d+)?)\s*(m|km|nmi|nm|해리)?$", re.IGNORECASE)


def parse_length(text: str) -> int:
    """Whole metres of "500 m", "20 km", "3 nmi" (nautical miles); a bare number is metres."""
    raw = text.strip()
    m = _LENGTH.match(raw)
    if m is None:
        raise InputError("bad_length", value=raw[:40])
    value = Fraction(m.group(1).replace(",", ".")) * _LENGTH_UNITS[(m.group(2) or "m").lower()]
    return round(value)


def parse_integer(text: str) -> int:
    """A whole number, with thousands written "1,200", "1 200" or "1_200"."""
    raw = text.strip()
    if not re.fullmatch(r"[-+]?\d{1,3}(?:[ ,_]?\d{3})*|[-+]?\d{1,15}", raw):
        raise InputError("bad_number", value=raw[:40])
    digits = re.sub(r"[ ,_]", "", raw)
    if len(digits.lstrip("+-")) > 15:
        raise InputError("bad_number", value=raw[:40])
    return int(digits)


# --- coordinates ---------------------------------------------------------------------------------

_HEMI = {"N": "N", "S": "S", "E": "E", "W": "W", "북위": "N", "남위": "S", "동경": "E", "서경": "W"}
_TOKEN = re.compile(
    r"\s*(?:(북위|남위|동경|서경|[NSEWnsew](?![a-z]))|([-+]?\d+(?:\.\d+)?)|([°'\"]))"
)
_NORMALISE = str.maketrans({"º": "°", "˚": "°", "′": "'", "’": "'", "″": '"', "”": '"'})


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        if text.startswith("''", pos):  # two primes for seconds
            out.append(("mark", '"'))
            pos += 2
            continue
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise InputError("bad_coordinate", value=text[:60])
        if m.group(1):
            out.append(("hemi", _HEMI[m.group(1).upper() if len(m.group(1)) == 1 else m.group(1)]))
        elif m.group(2):
            out.append(("num", m.group(2)))
        else:
            out.append(("mark", m.group(3)))
        pos = m.end()
    return out


def _component(tokens: list[tuple[str, str]], raw: str) -> tuple[Fraction, str | None]:
    """One latitude or longitude: (signed degrees, hemisphere letter or None)."""
    hemi = [v for k, v in tokens if k == "hemi"]
    nums: list[tuple[str, str | None]] = []
    for i, (k, v) in enumerate(tokens):
        if k == "num":
            nxt = tokens[i + 1] if i + 1 < len(tokens) else None
            nums.append((v, nxt[1] if nxt and nxt[0] == "mark" else None))
    if len(hemi) > 1 or not 1 <= len(nums) <= 3:
        raise InputError("bad_coordinate", value=raw[:60])
    expected = ("°", "'", '"')
    for i, (_, mark) in enumerate(nums):
        if mark is not None and mark != expected[i]:
            raise InputError("bad_coordinate", value=raw[:60])
    parts = [Fraction(v) for v, _ in nums]
    negative = parts[0] < 0 or nums[0][0].startswith("-")
    parts[0] = abs(parts[0])
    for i, p in enumerate(parts[1:], start=1):
        if p < 0 or p >= 60 or nums[i][0].startswith(("-", "+")):
            raise InputError("bad_coordinate", value=raw[:60])
        if parts[i - 1].denominator != 1:  # "37.5° 30'" mixes two ways of writing
            raise InputError("bad_coordinate", value=raw[:60])
    value = parts[0] + sum((p / 60**i for i, p in enumerate(parts[1:], start=1)), start=Fraction(0))
    h = hemi[0] if hemi else None
    if h is not None and negative:
        raise InputError("bad_coordinate", value=raw[:60])  # "-37 S": which one is meant?
    if negative or h in ("S", "W"):
        value = -value
    return value, h


def _split(tokens: list[tuple[str, str]], raw: str) -> tuple[list[Any], list[Any]]:
    if ("sep", ",") in tokens:
        i = tokens.index(("sep", ","))
        return tokens[:i], tokens[i + 1 :]
    hemis = [i for i, (k, _) in enumerate(tokens) if k == "hemi"]
    if len(hemis) == 2:
        # "37N 127E" (suffixes) or "N37 E127" (prefixes)
        cut = hemis[0] + 1 if hemis[0] > 0 else hemis[1]
        return tokens[:cut], tokens[cut:]
    degrees = [i for i, t in enumerate(tokens) if t == ("mark", "°")]
    if len(degrees) == 2:
        first_num = degrees[1] - 1
        return tokens[:first_num], tokens[first_num:]
    nums = [i for i, (k, _) in enumerate(tokens) if k == "num"]
    if len(nums) in (2, 4, 6) and len(nums) == len(tokens):
        half = len(nums) // 2
        return tokens[:half], tokens[half:]
    raise InputError("bad_coordinate", value=raw[:60])


def parse_point(text: str) -> dict[str, int]:
    """A position from decimal degrees ("37.5, 127.25", "37.5N 127.25E", "-33.9 151.2") or
    degrees-minutes-seconds ("37°30'15\\"N 127°0'0\\"E", "37 30 15 N, 127 0 0 E"), or the way a
    notice shows it ("37.500000°N 127.000000°E", "북위 37.5° 동경 127°")."""
    raw = " ".join(text.split())
    if not raw or len(raw) > 200:
        raise InputError("bad_coordinate", value=raw[:60])
    tokens: list[tuple[str, str]] = []
    for n, piece in enumerate(re.split(r"\s*[,;/]\s*", raw.translate(_NORMALISE))):
        if n:
            tokens.append(("sep", ","))
        tokens += _tokens(piece)
    if sum(1 for t in tokens if t == ("sep", ",")) > 1:
        raise InputError("bad_coordinate", value=raw[:60])
    first, second = _split(tokens, raw)
    (a, ha), (b, hb) = _component(first, raw), _component(second, raw)
    if ha in ("E", "W") or hb in ("N", "S"):
        (a, ha), (b, hb) = (b, hb), (a, ha)
    if ha in ("E", "W") or hb in ("N", "S"):
        raise InputError("bad_coordinate", value=raw[:60])
    lat, lon = round(a * _E6), round(b * _E6)
    if abs(lat) > 90 * _E6:
        raise InputError("lat_range", value=_deg(lat))
    if abs(lon) > 180 * _E6:
        raise InputError("lon_range", value=_deg(lon))
    return {"lat_e6": lat, "lon_e6": lon}


def _deg(e6: int) -> str:
    whole, frac = divmod(abs(e6), _E6)
    return ("-" if e6 < 0 else "") + f"{whole}.{frac:06d}"


# --- areas and windows ---------------------------------------------------------------------------

_CIRCLE = re.compile(
    r"^(?:circle|원형|원)\s+(?P<center>.+?)\s*(?:,\s*)?(?:r(?:adius)?\s*=?\s*|반경\s*)?"
    r"(?P<radius>\d+(?:[.,]\d+)?\s*(?:km|nmi|nm|m|해리))$",
    re.IGNORECASE,
)


def _named(text: str) -> tuple[str | None, str]:
    """ "Site A: 38N 124E; …" -> ("Site A", "38N 124E; …"); the name ends at the first ": "."""
    head, sep, rest = text.partition(": ")
    if sep:
        return head.strip() or None, rest.strip()
    return None, text.strip()


def parse_area(text: str) -> dict[str, Any]:
    """An area: "circle CENTER RADIUS" ("circle 37.5N 127E 20 km") or a polygon's corners
    separated by ";" or new lines (the ring is closed for you). "Name: …" in front names it."""
    name, body = _named(" ".join(text.replace("\n", " ; ").split()))
    if not body:
        raise InputError("bad_area", value="")
    circle = _CIRCLE.match(body)
    area: dict[str, Any]
    if circle:
        area = {
            "shape": "circle",
            "center": parse_point(circle.group("center")),
            "radius_m": parse_length(circle.group("radius")),
        }
    else:
        body = re.sub(r"^(?:polygon|다각형)\s*:?\s*", "", body, flags=re.IGNORECASE)
        corners = [c for c in (p.strip() for p in body.split(";")) if c]
        if len(corners) > 257:
            raise InputError("bad_area", value=body[:60])
        points = [parse_point(c) for c in corners]
        if len(points) < 3:
            raise InputError("bad_area", value=body[:60])
        if points[0] != points[-1]:
            points.append(points[0])
        area = {"shape": "polygon", "points": points}
    if name:
        area["name"] = name
    return area


# "/" between letters belongs to a zone name (Asia/Seoul), not to the window.
_WINDOW_SEP = re.compile(r"\s*(?:(?<![A-Za-z])/(?![A-Za-z])|→|–|~|\bto\b|\buntil\b|부터)\s*")


def parse_window(text: str, tz: tzinfo) -> dict[str, int]:
    """ "START / END", "START / +4h" (a duration after the start) or "START / 10:00" (that
    time on the start's day); also "to", "~", "→" between the two."""
    raw = " ".join(text.split())
    parts = _WINDOW_SEP.split(raw, maxsplit=1)
    if len(parts) != 2 or not parts[1]:
        raise InputError("bad_window", value=raw[:80])
    start = parse_time(parts[0], tz)
    return {"start_ms": start, "end_ms": window_end(parts[1], start, zone_in(parts[0], tz))}


def zone_in(text: str, default: tzinfo) -> tzinfo:
    """The zone a time's text names, else `default`: "10:00" after "06:00 UTC" is UTC too."""
    raw = " ".join(text.split())
    m = _DATE_TIME.match(raw) or _DATE_TIME_KO.match(raw)
    return zone(m.group("zone")) if m and m.group("zone") else default


def window_end(text: str, start_ms: int, tz: tzinfo) -> int:
    raw = text.strip().removesuffix("까지").strip()
    if raw.startswith("+"):
        return start_ms + parse_duration(raw[1:])
    return parse_time(raw, tz, same_day_as=start_ms)


# --- booleans and choices ------------------------------------------------------------------------

_TRUE = {"yes", "y", "true", "1", "on", "예", "네", "참"}
_FALSE = {"no", "n", "false", "0", "off", "아니오", "아니요", "거짓"}


def parse_boolean(text: str) -> bool:
    raw = text.strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise InputError("bad_boolean", value=raw[:20])


def parse_choice(text: str, allowed: list[Any]) -> Any:
    """One of `allowed`, matched exactly, then ignoring case and with spaces for "_"."""
    raw = text.strip()
    for v in allowed:
        if raw == str(v):
            return v
    key = raw.lower().replace(" ", "_").replace("-", "_")
    for v in allowed:
        if key == str(v).lower():
            return v
    raise InputError("enum", allowed=", ".join(str(v) for v in allowed))


# --- a whole form --------------------------------------------------------------------------------


def kind_of(spec: Mapping[str, Any]) -> Any:
    """The input kind of a schema node: a shared block's name ("window", "area", "point",
    "time_ms", "count", "free_text", …), {"enum": [...]}, a JSON type, "list of X", "object"."""
    if "$ref" in spec:
        return str(spec["$ref"]).rsplit("/", 1)[-1]
    if "enum" in spec:
        return {"enum": list(spec["enum"])}
    kind = spec.get("type", "")
    if kind == "array" and isinstance(spec.get("items"), dict):
        inner = kind_of(spec["items"])
        return {"list": inner} if isinstance(inner, dict) else f"list of {inner}"
    return kind


def _unit(name: str) -> str | None:
    for suffix in ("_hours", "_minutes", "_ms", "_m", "_km"):
        if name.endswith(suffix):
            return suffix[1:]
    return None


def parse_value(kind: Any, text: str, tz: tzinfo, name: str = "") -> Any:
    """The value of one field of `kind` from its text; InputError if the text is not one."""
    raw = text.strip()
    if isinstance(kind, dict) and "enum" in kind:
        return parse_choice(raw, kind["enum"])
    if isinstance(kind, dict) and "list" in kind:  # a list of choices: commas or lines
        return [parse_choice(p, kind["list"]["enum"]) for p in re.split(r"[,\n]", raw) if p.strip()]
    if raw[:1] in ("{", "[") and kind not in ("free_text", "short_text", "string"):
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise InputError("bad_json", where=str(exc.args[0])[:80]) from None
    if kind == "window":
        return parse_window(raw, tz)
    if kind == "area":
        return parse_area(raw)
    if kind == "point":
        return parse_point(raw)
    if kind == "time_ms":
        return parse_time(raw, tz)
    if kind in ("count", "integer", "number"):
        unit = _unit(name)
        if unit in ("hours", "minutes", "ms") and not re.fullmatch(r"[-+]?[\d ,_]+", raw):
            ms = parse_duration(raw)
            per = {"hours": 3_600_000, "minutes": 60_000, "ms": 1}[unit]
            if ms % per:
                raise InputError("whole_units", unit=unit)
            return ms // per
        if unit == "m" and not re.fullmatch(r"[-+]?[\d ,_]+", raw):
            return parse_length(raw)
        return parse_integer(raw)
    if kind == "boolean":
        return parse_boolean(raw)
    if isinstance(kind, str) and kind.startswith("list of "):
        inner = kind.removeprefix("list of ")
        lines = [ln for ln in raw.split("\n") if ln.strip()]
        if inner == "waypoint":
            return [_waypoint(ln, tz) for ln in lines]
        if inner == "area":
            return [parse_area(ln) for ln in lines]
        return [parse_value(inner, ln, tz) for ln in lines]
    if kind == "object":
        raise InputError("bad_json", where="{…}")
    return text.replace("\r\n", "\n").strip("\n") if "text" in str(kind) else raw


def _waypoint(line: str, tz: tzinfo) -> dict[str, Any]:
    """ "Name: POINT" or "Name: POINT @ TIME" (expected arrival)."""
    name, rest = _named(" ".join(line.split()))
    if not name:
        raise InputError("bad_waypoint", value=line[:60])
    where, _, eta = rest.partition("@")
    out: dict[str, Any] = {"name": name, "point": parse_point(where)}
    if eta.strip():
        out["eta_ms"] = parse_time(eta, tz)
    return out


@dataclass(frozen=True)
class Parsed:
    """Notice fields read from text inputs; `errors` keyed by the top-level field they are in;
    `echo` says, per top-level field, how a time was read (in UTC and the zone it was read in)."""

    fields: dict[str, Any]
    errors: tuple[FieldError, ...]
    echo: dict[str, str] = field(default_factory=dict)


_SUBKEYS = {
    "window": ("start", "end"),
    "area": ("name", "radius"),
}


def parse_inputs(form: Form, inputs: Mapping[str, str], tz: tzinfo, lang: str) -> Parsed:
    """Notice fields from text inputs named by field ("launch_area") or, for the parts a form
    shows apart, "launch_window.start", "launch_window.end", "launch_area.name",
    "scale.personnel" (a field of a group). Empty inputs are left out."""
    if len(inputs) > MAX_INPUTS:
        raise InputError("too_many_inputs", limit=MAX_INPUTS)
    props: Mapping[str, Any] = form.schema.get("properties", {})
    errors: list[FieldError] = []
    fields: dict[str, Any] = {}
    echo: dict[str, str] = {}

    def fail(name: str, exc: InputError) -> None:
        errors.append(
            FieldError(
                name, exc.code, messages.field_message(form, (name,), exc.code, lang, **exc.params)
            )
        )

    grouped: dict[str, dict[str, str]] = {}
    for key, value in inputs.items():
        if not isinstance(value, str) or len(value) > MAX_INPUT_CHARS:
            fail(key.partition(".")[0], InputError("max_length", limit=MAX_INPUT_CHARS))
            continue
        top, _, sub = key.partition(".")
        if top not in props:
            fail(top, InputError("unknown_field"))
            continue
        if value.strip():
            grouped.setdefault(top, {})[sub] = value
    for name, parts in grouped.items():
        spec = props[name]
        kind = kind_of(spec)
        try:
            value = _assemble(name, kind, spec, parts, tz)
        except InputError as exc:
            fail(name, exc)
            continue
        fields[name] = value
        shown = _echo(value, tz)
        if shown:
            echo[name] = shown
    return Parsed(fields, tuple(errors), echo)


def _assemble(
    name: str, kind: Any, spec: Mapping[str, Any], parts: Mapping[str, str], tz: tzinfo
) -> Any:
    whole = parts.get("", "")
    if kind == "window" and ("start" in parts or "end" in parts):
        if whole:
            raise InputError("bad_window", value=whole[:80])
        start = parse_time(parts.get("start", ""), tz)
        if not parts.get("end", "").strip():
            raise InputError("bad_window", value="")
        end_zone = zone_in(parts["start"], tz)
        return {"start_ms": start, "end_ms": window_end(parts["end"], start, end_zone)}
    if kind == "area":
        extra = {k: v for k, v in parts.items() if k}
        if set(extra) - {"name"}:
            raise InputError("unknown_part", part=", ".join(sorted(set(extra) - {"name"})))
        area = parse_value(kind, whole, tz, name) if whole.strip() else None
        if area is None:
            raise InputError("bad_area", value="")
        if "name" in extra and isinstance(area, dict):
            area["name"] = extra["name"].strip()
        return area
    if kind == "object" and isinstance(spec.get("properties"), dict) and not whole:
        inner: dict[str, Any] = {}
        for sub, text in parts.items():
            sub_spec = spec["properties"].get(sub)
            if sub_spec is None:
                raise InputError("unknown_part", part=sub)
            inner[sub] = parse_value(kind_of(sub_spec), text, tz, sub)
        return inner
    if set(parts) != {""}:
        raise InputError("unknown_part", part=", ".join(sorted(k for k in parts if k)))
    return parse_value(kind, whole, tz, name)


def _echo(value: Any, tz: tzinfo) -> str:
    if (
        isinstance(value, dict)
        and type(value.get("start_ms")) is int
        and type(value.get("end_ms")) is int
    ):
        return f"{_both(value['start_ms'], tz)} → {_both(value['end_ms'], tz)}"
    return ""


def _both(ms: int, tz: tzinfo) -> str:
    utc = datetime.fromtimestamp(ms // 1000, tz=UTC)
    text = f"{utc:%Y-%m-%d %H:%M} UTC"
    if zone_name(tz) != "UTC":
        text += f" = {show_time(ms, tz)}"
    return text


# --- the other way: a value as the text that reads back to it -----------------------------------


def point_text(p: Mapping[str, int]) -> str:
    """ "37.500000N 127.000000E": exact, and `parse_point` reads it back to the same integers."""
    lat, lon = p["lat_e6"], p["lon_e6"]
    return f"{_deg(abs(lat))}{'S' if lat < 0 else 'N'} {_deg(abs(lon))}{'W' if lon < 0 else 'E'}"


def time_text(ms: int, tz: tzinfo) -> str:
    t = datetime.fromtimestamp(ms // 1000, tz=tz)
    clock = f"{t:%H:%M:%S}" if t.second else f"{t:%H:%M}"
    return f"{t:%Y-%m-%d} {clock} {zone_name(tz)}"


def area_text(area: Mapping[str, Any], *, with_name: bool = True) -> str:
    name = area.get("name") if with_name else None
    head = f"{name}: " if name else ""
    if area.get("shape") == "circle":
        return f"{head}circle {point_text(area['center'])} {area['radius_m']} m"
    pts = list(area.get("points", []))
    if len(pts) > 1 and pts[0] == pts[-1]:
        pts = pts[:-1]
    return head + "; ".join(point_text(p) for p in pts)


def as_text(kind: Any, value: Any, tz: tzinfo) -> str:
    """The text a form input shows for `value` (an example, or fields given as JSON); for the
    kinds with a text syntax `parse_value(kind, as_text(kind, v), tz)` gives `v` back."""
    if isinstance(kind, dict) and "list" in kind and isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if kind == "window" and isinstance(value, dict):
        return f"{time_text(value['start_ms'], tz)} / {time_text(value['end_ms'], tz)}"
    if kind == "area" and isinstance(value, dict):
        return area_text(value)
    if kind == "point" and isinstance(value, dict):
        return point_text(value)
    if kind == "time_ms" and type(value) is int:
        return time_text(value, tz)
    if kind == "boolean" and isinstance(value, bool):
        return "yes" if value else "no"
    if kind == "list of waypoint" and isinstance(value, list):
        lines = []
        for w in value:
            eta = f" @ {time_text(w['eta_ms'], tz)}" if "eta_ms" in w else ""
            lines.append(f"{w['name']}: {point_text(w['point'])}{eta}")
        return "\n".join(lines)
    if kind == "list of area" and isinstance(value, list):
        return "\n".join(area_text(a) for a in value)
    if isinstance(kind, str) and kind.startswith("list of ") and isinstance(value, list):
        return "\n".join(str(v) for v in value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
