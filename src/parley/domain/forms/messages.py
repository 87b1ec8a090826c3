"""What a person reads about a field error or a late notice, in English or Korean.

Rules:
- Every FieldError code has a text in every language of MESSAGES; a test enforces it. A language
  with no texts here falls back to English (forms may ship more template languages than this).
- A message starts with the field's human name ("Launch area › points[3] › latitude"), built
  from the form's own labels, then the common labels below, else the raw key, so an error names
  the field in the sender's language.
- Texts are written, never machine-translated (DESIGN §5).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from parley.domain.forms.model import Form, Lateness
from parley.domain.forms.timefmt import duration

FALLBACK_LANG = "en"

MESSAGES: Mapping[str, Mapping[str, str]] = {
    "en": {
        "required": "is required",
        "unknown_field": "is not a field of this form",
        "not_allowed": "is not allowed here",
        "type": "must be {expected}",
        "enum": "must be one of: {allowed}",
        "const": "must be {allowed}",
        "min_length": "must be at least {limit} characters long",
        "max_length": "must be at most {limit} characters long",
        "min_items": "must have at least {limit} items",
        "max_items": "must have at most {limit} items",
        "minimum": "must be at least {limit}",
        "maximum": "must be at most {limit}",
        "pattern": "has the wrong format",
        "unique_items": "must not repeat an item",
        "invalid": "is invalid",
        "float": "must not be a fractional number: use integers (coordinates in micro-degrees, "
        "times in Unix milliseconds)",
        "control_chars": "contains control or text-direction characters",
        "lat_range": "must be between -90° and 90° "
        "(integer micro-degrees, -90000000 to 90000000); got {value}°",
        "lon_range": "must be between -180° and 180° "
        "(integer micro-degrees, -180000000 to 180000000); got {value}°",
        "polygon_open": "polygon is not closed: the last point must repeat the first",
        "polygon_too_few_points": "polygon needs at least 4 points (3 corners and the first "
        "point again); got {count}",
        "polygon_repeated_point": "point repeats the one before it",
        "polygon_degenerate": "polygon has no area (all points on one line)",
        "polygon_self_intersects": "polygon edge from point [{i}] crosses the edge from "
        "point [{j}]",
        "polygon_antimeridian": "edge crosses the 180° meridian; split the area in two",
        "window_order": "end must be after the start",
        "bad_time": "{value!r} is not a date and time: write 2030-03-01 15:00, optionally with a "
        "zone (UTC, Asia/Seoul, +09:00)",
        "bad_time_gap": "{value!r} does not exist in {zone} (the clocks skip it)",
        "bad_zone": "{zone!r} is not a time zone: write UTC, an offset (+09:00) or a name "
        "(Asia/Seoul)",
        "bad_duration": "{value!r} is not a duration: write 4h, 2 h 30 min, 90 min, 1 d or 1:30",
        "bad_length": "{value!r} is not a length: write 500 m, 20 km or 3 nmi",
        "bad_number": "{value!r} is not a whole number",
        "whole_units": "must be a whole number of {unit}",
        "bad_coordinate": "{value!r} is not a position: write 37.5, 127.25 or 37.5N 127.25E or "
        "37°30'N 127°15'E (latitude first)",
        "bad_area": "{value!r} is not an area: write corners separated by ';' (38N 124E; 38N 125E;"
        " 37N 125E) or circle 37.5N 127E 20 km",
        "bad_window": "{value!r} is not a time window: write START / END or START / +4h",
        "bad_waypoint": "{value!r} is not a waypoint: write one per line, Name: POSITION [@ TIME]",
        "bad_boolean": "{value!r}: answer yes or no",
        "bad_json": "is not valid JSON ({where})",
        "unknown_part": "has no part {part!r}",
        "too_many_inputs": "too many inputs (at most {limit})",
    },
    "ko": {
        "required": "필수 항목이 없습니다",
        "unknown_field": "이 양식에 없는 항목입니다",
        "not_allowed": "여기에 쓸 수 없는 항목입니다",
        "type": "{expected} 형식이어야 합니다",
        "enum": "다음 값 중 하나여야 합니다: {allowed}",
        "const": "값은 {allowed}이어야 합니다",
        "min_length": "{limit}자 이상이어야 합니다",
        "max_length": "{limit}자 이하여야 합니다",
        "min_items": "{limit}개 이상이어야 합니다",
        "max_items": "{limit}개 이하여야 합니다",
        "minimum": "{limit} 이상이어야 합니다",
        "maximum": "{limit} 이하여야 합니다",
        "pattern": "형식이 올바르지 않습니다",
        "unique_items": "같은 값이 중복되었습니다",
        "invalid": "올바르지 않은 값입니다",
        "float": "소수는 쓸 수 없습니다. 정수를 사용하십시오 (좌표는 마이크로도, "
        "시각은 유닉스 밀리초)",
        "control_chars": "제어 문자 또는 텍스트 방향 문자가 들어 있습니다",
        "lat_range": "-90°에서 90° 사이여야 합니다 "
        "(정수 마이크로도, -90000000 ~ 90000000). 입력값: {value}°",
        "lon_range": "-180°에서 180° 사이여야 합니다 "
        "(정수 마이크로도, -180000000 ~ 180000000). 입력값: {value}°",
        "polygon_open": "다각형이 닫혀 있지 않습니다. 마지막 지점은 첫 지점과 같아야 합니다",
        "polygon_too_few_points": "다각형에는 지점이 4개 이상 필요합니다 "
        "(꼭짓점 3개와 다시 첫 지점). 입력된 지점: {count}개",
        "polygon_repeated_point": "바로 앞 지점과 같은 지점입니다",
        "polygon_degenerate": "다각형의 넓이가 없습니다 (모든 지점이 한 직선 위에 있음)",
        "polygon_self_intersects": "[{i}]번 지점에서 시작하는 변이 [{j}]번 지점에서 시작하는 "
        "변과 교차합니다",
        "polygon_antimeridian": "변이 180° 경선을 넘습니다. 구역을 둘로 나누십시오",
        "window_order": "종료 시각은 시작 시각보다 뒤여야 합니다",
        "bad_time": "{value!r}은(는) 날짜와 시각이 아닙니다. 2030-03-01 15:00 형식으로 쓰고, "
        "필요하면 시간대를 붙이십시오 (UTC, Asia/Seoul, +09:00)",
        "bad_time_gap": "{value!r}은(는) {zone}에 존재하지 않는 시각입니다",
        "bad_zone": "{zone!r}은(는) 시간대가 아닙니다. UTC, +09:00 또는 Asia/Seoul처럼 쓰십시오",
        "bad_duration": "{value!r}은(는) 기간이 아닙니다. 4h, 2시간 30분, 90 min, 1:30처럼 "
        "쓰십시오",
        "bad_length": "{value!r}은(는) 거리가 아닙니다. 500 m, 20 km, 3 nmi처럼 쓰십시오",
        "bad_number": "{value!r}은(는) 정수가 아닙니다",
        "whole_units": "{unit} 단위의 정수여야 합니다",
        "bad_coordinate": "{value!r}은(는) 위치가 아닙니다. 37.5, 127.25 또는 37.5N 127.25E 또는 "
        "37°30'N 127°15'E처럼 쓰십시오 (위도 먼저)",
        "bad_area": "{value!r}은(는) 구역이 아닙니다. 꼭짓점을 ';'로 구분하거나 (38N 124E; "
        "38N 125E; 37N 125E) circle 37.5N 127E 20 km처럼 쓰십시오",
        "bad_window": "{value!r}은(는) 시간대가 아닙니다. 시작 / 종료 또는 시작 / +4h처럼 쓰십시오",
        "bad_waypoint": "{value!r}은(는) 경유지가 아닙니다. 한 줄에 하나씩 이름: 위치 [@ 시각]",
        "bad_boolean": "{value!r}: 예 또는 아니오로 답하십시오",
        "bad_json": "올바른 JSON이 아닙니다 ({where})",
        "unknown_part": "{part!r} 항목이 없습니다",
        "too_many_inputs": "입력이 너무 많습니다 (최대 {limit}개)",
    },
}

# JSON Schema type names as a person reads them.
TYPE_NAMES: Mapping[str, Mapping[str, str]] = {
    "en": {
        "integer": "a whole number",
        "string": "text",
        "object": "a group of fields",
        "array": "a list",
        "boolean": "true or false",
        "null": "empty",
        "number": "a number",
    },
    "ko": {
        "integer": "정수",
        "string": "문자열",
        "object": "항목 묶음",
        "array": "목록",
        "boolean": "참/거짓",
        "null": "빈 값",
        "number": "숫자",
    },
}

# Labels for the building blocks every form shares (the `_common` schema); a form's own
# labels (form.json "labels") take precedence.
COMMON_LABELS: Mapping[str, Mapping[str, str]] = {
    "lat_e6": {"en": "latitude", "ko": "위도"},
    "lon_e6": {"en": "longitude", "ko": "경도"},
    "points": {"en": "points", "ko": "지점"},
    "center": {"en": "centre", "ko": "중심"},
    "radius_m": {"en": "radius (m)", "ko": "반경(m)"},
    "shape": {"en": "shape", "ko": "형태"},
    "name": {"en": "name", "ko": "명칭"},
    "start_ms": {"en": "start", "ko": "시작"},
    "end_ms": {"en": "end", "ko": "종료"},
    "remarks": {"en": "Remarks", "ko": "비고"},
}

_NOTICE = {"en": "notice", "ko": "통보문"}


def text(lang: str) -> Mapping[str, str]:
    return MESSAGES.get(lang, MESSAGES[FALLBACK_LANG])


def type_name(name: str, lang: str) -> str:
    names = TYPE_NAMES.get(lang, TYPE_NAMES[FALLBACK_LANG])
    return names.get(name, name)


def label(form: Form, key_path: str, key: str, lang: str) -> str:
    """The human name of one key: form label by full key path, then by key, then common."""
    for table in (form.labels.get(key_path), form.labels.get(key), COMMON_LABELS.get(key)):
        if table:
            return table.get(lang) or table.get(FALLBACK_LANG) or key
    return key


def human_path(form: Form, parts: Sequence[str | int], lang: str) -> str:
    """ "Launch area › points[3] › latitude"; index numbers stay as in the machine path."""
    if not parts:
        return _NOTICE.get(lang, _NOTICE[FALLBACK_LANG])
    out: list[str] = []
    keys: list[str] = []
    for p in parts:
        if isinstance(p, int):
            out[-1:] = [f"{out[-1]}[{p}]"] if out else [f"[{p}]"]
        else:
            keys.append(p)
            out.append(label(form, ".".join(keys), p, lang))
    return " › ".join(out)


def field_message(
    form: Form, parts: Sequence[str | int], code: str, lang: str, **params: object
) -> str:
    template = text(lang).get(code) or text(lang)["invalid"]
    return f"{human_path(form, parts, lang)}: {template.format(**params)}"


def lateness_note(lateness: Lateness, lang: str) -> str:
    """One line for the top of a rendered late notice; "" when it is not late."""
    if not lateness.late:
        return ""
    need = duration(lateness.required_ms, lang)
    given = "?" if lateness.lead_ms is None else duration(lateness.lead_ms, lang)
    if lang == "ko":
        return f"*** 기한 경과 통보: {given} 전에 통보됨 (최소 {need} 전 통보 필요) ***"
    return f"*** LATE NOTICE: given {given} ahead (at least {need} required) ***"
