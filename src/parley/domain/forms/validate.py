"""Validating a notice's fields against its form, before it is sealed and again when received.

Rules:
- `validate` never raises for bad fields: it returns every problem it finds as a FieldError
  (field path, stable code, message in the asked language), sorted by field then code.
- Three passes: the form's JSON Schema (draft 2020-12); then structural checks that apply to any
  form wherever the shapes occur: no floats, no control or bidi characters in text, coordinate
  ranges, polygon rings (closed, ≥ 4 points, not self-intersecting), windows (end after start);
  then the lead time. Ring checks are skipped for a ring whose points the schema already
  faulted, so one mistake gives one error.
- Validity does not depend on the clock; only lateness does. A late notice is valid and marked
  late, never refused (a late warning is better than none). The sender passes its current time;
  a receiver or auditor passes the envelope's sealed timestamp and gets the same answer.
"""

from __future__ import annotations

import json
import re
from typing import Any

from jsonschema.exceptions import ValidationError, best_match

from parley.domain.forms import geo, messages
from parley.domain.forms.model import HOUR_MS, FieldError, Form, Lateness, Validation
from parley.domain.forms.paths import MISSING, Path, format_path, lookup, walk
from parley.domain.forms.timefmt import signed_degrees

# C0 controls except newline, DEL, C1 controls, and the Unicode bidi/line controls that can make
# text display differently from its bytes (a "Trojan Source" style trick on a notice).
_BAD_CHARS = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)

_SIMPLE_CODES = {
    "minLength": "min_length",
    "maxLength": "max_length",
    "minItems": "min_items",
    "maxItems": "max_items",
    "minimum": "minimum",
    "maximum": "maximum",
    "exclusiveMinimum": "minimum",
    "exclusiveMaximum": "maximum",
    "pattern": "pattern",
    "uniqueItems": "unique_items",
    "not": "not_allowed",
}


def validate(form: Form, fields: Any, lang: str, now_ms: int) -> Validation:
    """Every problem of `fields` as a notice of `form`, in `lang`; and its lateness at `now_ms`."""
    found: dict[tuple[str, str], FieldError] = {}

    def add(parts: Path, code: str, **params: object) -> None:
        key = (format_path(parts), code)
        if key not in found:
            message = messages.field_message(form, parts, code, lang, **params)
            found[key] = FieldError(key[0], code, message)

    for err in form.validator.iter_errors(fields):
        _from_schema_error(err, lang, add)
    faulted = {path for path, _ in found}
    _structural(fields, faulted, add)
    errors = sorted(found.values(), key=lambda e: (e.field, e.code))
    return Validation(tuple(errors), assess_lateness(form, fields, now_ms))


def assess_lateness(form: Form, fields: Any, now_ms: int) -> Lateness:
    """Lead time of the notice at `now_ms` against the form's minimum; never an error."""
    rule = form.lead_time
    if rule is None:
        return Lateness.not_applicable()
    if rule.when_field is not None and lookup(fields, rule.when_field) != rule.when_equals:
        return Lateness.not_applicable()
    at = lookup(fields, rule.field)
    if at is MISSING or type(at) is not int:
        return Lateness.not_applicable()
    required = rule.min_hours * HOUR_MS
    lead = at - now_ms
    return Lateness(
        applies=True, late=lead < required, required_ms=required, lead_ms=lead, field=rule.field
    )


def _from_schema_error(err: ValidationError, lang: str, add: Any) -> None:
    path: Path = tuple(err.absolute_path)
    kind, inst, limit = err.validator, err.instance, err.validator_value
    if kind in ("anyOf", "oneOf") and err.context:
        # Report the most relevant branch rather than "matches none of the options".
        inner = best_match(err.context)
        if inner is not None:
            _from_schema_error(inner, lang, add)
            return
    if kind == "required" and isinstance(inst, dict):
        for name in limit:
            if name not in inst:
                add((*path, name), "required")
    elif kind == "additionalProperties" and isinstance(inst, dict):
        known = err.schema.get("properties", {}) if isinstance(err.schema, dict) else {}
        patterns = err.schema.get("patternProperties", {}) if isinstance(err.schema, dict) else {}
        for name in sorted(inst):
            if name not in known and not any(re.search(p, name) for p in patterns):
                add((*path, name), "unknown_field")
    elif kind == "type":
        if isinstance(inst, float):
            add(path, "float")
        else:
            names = [limit] if isinstance(limit, str) else list(limit)
            expected = " / ".join(messages.type_name(n, lang) for n in names)
            add(path, "type", expected=expected)
    elif kind in ("enum", "const"):
        values = limit if kind == "enum" else [limit]
        allowed = ", ".join(json.dumps(v, ensure_ascii=False) for v in values)
        add(path, kind, allowed=allowed)
    elif kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum") and path:
        # A coordinate out of range gets the message in degrees, not the raw bound.
        if path[-1] in ("lat_e6", "lon_e6") and type(inst) is int:
            add(
                path,
                "lat_range" if path[-1] == "lat_e6" else "lon_range",
                value=signed_degrees(inst),
            )
        else:
            add(path, _SIMPLE_CODES[kind], limit=limit)
    elif kind in _SIMPLE_CODES:
        add(path, _SIMPLE_CODES[kind], limit=limit)
    elif kind is None:
        add(path, "not_allowed")  # a `false` schema
    else:
        add(path, "invalid")


def _structural(fields: Any, faulted: set[str], add: Any) -> None:
    for path, value in walk(fields):
        if isinstance(value, float):
            add(path, "float")
        elif isinstance(value, str) and _BAD_CHARS.search(value):
            add(path, "control_chars")
        elif isinstance(value, dict):
            _point_range(path, value, add)
            _ring(path, value, faulted, add)
            _window(path, value, add)


def _point_range(path: Path, value: dict[str, Any], add: Any) -> None:
    p = geo.as_point(value)
    if p is None:
        return
    if not -geo.LAT_MAX <= p[0] <= geo.LAT_MAX:
        add((*path, "lat_e6"), "lat_range", value=signed_degrees(p[0]))
    if not -geo.LON_MAX <= p[1] <= geo.LON_MAX:
        add((*path, "lon_e6"), "lon_range", value=signed_degrees(p[1]))


def _ring(path: Path, value: dict[str, Any], faulted: set[str], add: Any) -> None:
    ring = geo.as_ring(value)
    if ring is None:
        return
    prefix = format_path(path)
    if any(
        f == prefix or f.startswith(prefix + ".") or f.startswith(prefix + "[") for f in faulted
    ):
        return
    if not all(geo.in_range(p) for p in ring):
        return
    for problem in geo.ring_problems(ring):
        where: Path = (
            (*path, "points") if problem.index is None else (*path, "points", problem.index)
        )
        add(where, problem.code, **problem.params)


def _window(path: Path, value: dict[str, Any], add: Any) -> None:
    start, end = value.get("start_ms"), value.get("end_ms")
    if type(start) is int and type(end) is int and end <= start:
        add((*path, "end_ms"), "window_order")
