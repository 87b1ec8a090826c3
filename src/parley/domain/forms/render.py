"""Rendering a notice as text in one language, from its fields and its form's template.

Rules:
- The same fields give the same text, byte for byte, for the sender, the receiver and an
  auditor re-rendering from the transcript: no clock, no locale, no machine translation.
- Templates run in Jinja's immutable sandbox with StrictUndefined: a template cannot reach
  Python internals or change the fields, and a typo fails loudly in tests rather than printing "".
- Every `{{ value }}` passes through `_finalize`: a value spanning lines has its continuation
  lines indented, so free text can never pose as a heading or as another field of the notice.
- `html=True` renders with autoescaping on (templates never use `|safe`), for a `<pre>` block in
  the console; the text is otherwise identical.
- Filters available to templates: `when` (Unix ms → UTC time), `coord` (point), `area`
  (polygon/circle, one line per point), `duration` (ms), `count` (thousands separators).
- Templates see `f` (the fields), `lang`, `form_id`, `version`, `title`. `f.name` looks up a
  dict method before a key, so field names must not be `items`, `keys`, `values`, `get` …
"""

from __future__ import annotations

import html as htmllib
import re
from collections.abc import Mapping
from typing import Any

from jinja2 import StrictUndefined, Template, pass_context
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from parley.domain.forms import timefmt
from parley.domain.forms.messages import lateness_note
from parley.domain.forms.model import Form, Lateness

INDENT = "    "


def _finalize(value: Any) -> Any:
    if isinstance(value, str) and "\n" in value:
        return value.replace("\r", "").replace("\n", "\n" + INDENT)
    return value


@pass_context
def _when(ctx: Context, ms: int) -> str:
    return timefmt.when(ms, ctx["lang"])


@pass_context
def _coord(ctx: Context, point: Mapping[str, int]) -> str:
    return timefmt.coordinate(point["lat_e6"], point["lon_e6"], ctx["lang"])


@pass_context
def _duration(ctx: Context, ms: int) -> str:
    return timefmt.duration(ms, ctx["lang"])


def _count(n: int) -> str:
    return f"{n:,}"


@pass_context
def _area(ctx: Context, area: Mapping[str, Any]) -> str:
    """One header line, then one line per corner (the closing repeat of the first is implied)."""
    lang = ctx["lang"]
    name = area.get("name")
    named = (f"「{name}」 " if lang == "ko" else f'"{name}" ') if name else ""
    if area.get("shape") == "circle":
        c = timefmt.coordinate(area["center"]["lat_e6"], area["center"]["lon_e6"], lang)
        r = _count(area["radius_m"])
        if lang == "ko":
            return f"{named}원형 구역: 중심 {c}, 반경 {r} m"
        return f"{named}circle of radius {r} m around {c}"
    points = list(area.get("points", []))
    corners = points[:-1] if len(points) > 1 and points[0] == points[-1] else points
    head = (
        f"{named}다각형 구역, 꼭짓점 {len(corners)}개:"
        if lang == "ko"
        else f"{named}polygon with {len(corners)} corners:"
    )
    lines = [head]
    for i, p in enumerate(corners, start=1):
        lines.append(f"  {i}. {timefmt.coordinate(p['lat_e6'], p['lon_e6'], lang)}")
    return "\n".join(lines)


def _environment(autoescape: bool) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        autoescape=autoescape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=_finalize,
    )
    env.filters.update(when=_when, coord=_coord, area=_area, duration=_duration, count=_count)
    return env


_TEXT = _environment(autoescape=False)
_HTML = _environment(autoescape=True)
_cache: dict[tuple[bool, str], Template] = {}


def compile_template(source: str, *, html: bool = False) -> Template:
    """The compiled template for `source` (cached by source text); raises on syntax errors."""
    key = (html, source)
    if key not in _cache:
        _cache[key] = (_HTML if html else _TEXT).from_string(source)
    return _cache[key]


def _tidy(text: str) -> str:
    # Layout must not depend on template whitespace habits: no trailing spaces, at most one
    # blank line in a row, exactly one final newline.
    lines = [line.rstrip() for line in text.replace("\r", "").split("\n")]
    out = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")
    return out + "\n"


def render(
    form: Form,
    fields: Mapping[str, Any],
    lang: str,
    *,
    lateness: Lateness | None = None,
    html: bool = False,
) -> str:
    """The notice as text in `lang`. Pass `lateness` (from `validate`) to mark a late notice.

    `fields` should have passed `validate`; rendering invalid fields may raise jinja2 errors.
    """
    form.require_lang(lang)
    template = compile_template(form.templates[lang], html=html)
    body = template.render(
        f=fields, lang=lang, form_id=form.id, version=form.version, title=form.title(lang)
    )
    note = lateness_note(lateness, lang) if lateness is not None else ""
    if note:
        body = (htmllib.escape(note) if html else note) + "\n\n" + body
    return _tidy(body)
