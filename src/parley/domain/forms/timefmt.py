"""Times and coordinates as people read them, from the integers a notice carries.

Rules:
- Notice times are integer Unix milliseconds; they are always shown in UTC with the zone named,
  in both languages, so the two sides never convert time zones differently.
- Coordinates are integer micro-degrees; they are shown with all six decimals, formatted from the
  integer (no float rounding), so the text shows exactly the value that was signed.
"""

from __future__ import annotations

from datetime import UTC, datetime

_E6 = 1_000_000


def when(ms: int, lang: str) -> str:
    """ "2025-03-01 06:00 UTC" (en) or "2025년 3월 1일 06:00 UTC" (ko); seconds only if non-zero."""
    t = datetime.fromtimestamp(ms // 1000, tz=UTC)
    clock = t.strftime("%H:%M:%S" if t.second else "%H:%M")
    if lang == "ko":
        return f"{t.year}년 {t.month}월 {t.day}일 {clock} UTC"
    return f"{t.year:04d}-{t.month:02d}-{t.day:02d} {clock} UTC"


def degrees(e6: int) -> str:
    """Unsigned decimal degrees from micro-degrees: 37500000 -> "37.500000"."""
    whole, frac = divmod(abs(e6), _E6)
    return f"{whole}.{frac:06d}"


def signed_degrees(e6: int) -> str:
    return ("-" if e6 < 0 else "") + degrees(e6)


def coordinate(lat_e6: int, lon_e6: int, lang: str) -> str:
    """ "37.500000°N 127.000000°E" (en) or "북위 37.500000° 동경 127.000000°" (ko)."""
    if lang == "ko":
        ns = "북위" if lat_e6 >= 0 else "남위"
        ew = "동경" if lon_e6 >= 0 else "서경"
        return f"{ns} {degrees(lat_e6)}° {ew} {degrees(lon_e6)}°"
    ns = "N" if lat_e6 >= 0 else "S"
    ew = "E" if lon_e6 >= 0 else "W"
    return f"{degrees(lat_e6)}°{ns} {degrees(lon_e6)}°{ew}"


def duration(ms: int, lang: str) -> str:
    """Hours and minutes ("23 h 05 min" / "23시간 05분"), or seconds below a minute ("30 s" /
    "30초"), so a short deadline never reads as zero; a leading "-" if negative."""
    sign = "-" if ms < 0 else ""
    seconds = abs(ms) // 1000
    if seconds < 60:
        return f"{sign}{seconds}초" if lang == "ko" else f"{sign}{seconds} s"
    h, m = divmod(seconds // 60, 60)
    if lang == "ko":
        return f"{sign}{h}시간 {m:02d}분"
    return f"{sign}{h} h {m:02d} min"
