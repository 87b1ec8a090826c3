"""Notices and acknowledgements as channel bodies: building them, checking them, reading them.

`notice` body (a form from the catalogue, filled in):

    {"type": "notice", "form": "launch_notice", "version": 1, "form_digest": "<sha-256 hex>",
     "lang": "en", "fields": {…}, "deadline_ms": 1790007200000}

Rules:
- `fields` are validated against the form's JSON Schema (and the structural checks of
  domain/forms) before the body is sealed; every error names its field in the sender's `lang`
  and nothing is sealed (`InvalidNotice`, HTTP 422). A receiver validates them again before
  storing (`check_notice`, bad_body); validity never depends on the clock.
- `deadline_ms` is when the acknowledgement is due: the sender's clock plus the form's
  `ack_deadline_hours`, unless the sender gives one explicitly (after now, within a year).
- Lateness is not carried in the body: it is derived from the fields and the envelope's signed
  timestamp (`assess_lateness(form, fields, ts)`), so sender, receiver and auditor agree on it
  without trusting a flag.
- Reading is a pure function of the stored body and the envelope timestamp (`read_notice`):
  each side renders the same fields with its own language's template, never a translation.
- `form_digest` pins the exact form files the sender used; a receiver whose copy differs still
  validates with its own copy, and the station raises an alarm (renderings may then differ).
- The forms a receiver knows are this process's catalogue (`use_catalogue`, set by the station
  at start: packaged forms plus configured folders). A notice of a form it lacks is refused.

`ack` body (domain/deadlines.py): {"type": "ack", "ref", "answer", "text", "by"}.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from parley.domain import deadlines
from parley.domain.forms import Catalogue, Form, Lateness, assess_lateness, render, render_map_svg
from parley.domain.forms import validate as validate_fields
from parley.domain.forms.messages import label
from parley.domain.forms.model import HOUR_MS
from parley.errors import Code, LocalError, ParleyError, RejectedInput

TYPE = "notice"
TYPE_ACK = deadlines.KIND_ACK

MAX_MS = 2**53 - 1  # the largest integer every JSON implementation holds exactly
MAX_DEADLINE_AHEAD_MS = 8760 * HOUR_MS  # a year: the longest ack deadline a form may set

_FORM_ID = re.compile(r"[a-z][a-z0-9_]{0,63}")
_LANG = re.compile(r"[a-z]{2,3}(?:-[A-Z]{2})?")
_DIGEST = re.compile(r"[0-9a-f]{64}")
_KEYS = {"type", "form", "version", "form_digest", "lang", "fields", "deadline_ms"}

_catalogue: Catalogue | None = None


class InvalidNotice(LocalError):
    """Our own notice's fields are invalid; nothing was sealed. details["fields"] lists every
    field error as {field, code, message}, in the sender's language."""

    status = 422


def use_catalogue(catalogue: Catalogue) -> None:
    """Set the forms this process validates and renders notices with."""
    global _catalogue
    _catalogue = catalogue


def catalogue() -> Catalogue:
    """This process's forms (the packaged catalogue until a station sets another)."""
    global _catalogue
    if _catalogue is None:
        _catalogue = Catalogue.load()
    return _catalogue


@dataclass(frozen=True)
class NoticeBody:
    form: Form
    lang: str
    fields: Mapping[str, Any]
    deadline_ms: int
    form_digest: str

    @property
    def digest_matches(self) -> bool:
        return self.form_digest == self.form.digest


def _bad(message: str, **details: object) -> RejectedInput:
    return RejectedInput(Code.BAD_BODY, f"notice: {message}", **details)


def _int(value: object) -> bool:
    return type(value) is int


def parse_notice(body: object, cat: Catalogue | None = None) -> NoticeBody:
    """Validate a `notice` body (shape, known form, fields); RejectedInput(bad_body) otherwise."""
    if not isinstance(body, dict) or set(body) != _KEYS or body.get("type") != TYPE:
        raise _bad(f"expected exactly the fields {', '.join(sorted(_KEYS))}")
    form_id, version, lang = body["form"], body["version"], body["lang"]
    if not isinstance(form_id, str) or not _FORM_ID.fullmatch(form_id):
        raise _bad("form: a form id (a-z, 0-9, _)")
    if not _int(version) or not 1 <= version <= MAX_MS:
        raise _bad("version: a positive integer")
    if not isinstance(body["form_digest"], str) or not _DIGEST.fullmatch(body["form_digest"]):
        raise _bad("form_digest: 64 lower-case hex digits (SHA-256)")
    if not isinstance(lang, str) or not _LANG.fullmatch(lang):
        raise _bad("lang: a language code such as en or ko")
    if not isinstance(body["fields"], dict):
        raise _bad("fields: expected an object")
    deadline = body["deadline_ms"]
    if not _int(deadline) or not 0 < deadline <= MAX_MS:
        raise _bad("deadline_ms: Unix milliseconds")
    try:
        form = (cat or catalogue()).get(form_id, version)
    except ParleyError:
        raise _bad(
            f"form {form_id} version {version} is not in this station's catalogue; "
            "both stations need the same forms"
        ) from None
    # Validity does not depend on the clock, so any `now` gives the same errors.
    result = validate_fields(form, body["fields"], lang, 0)
    if result.errors:
        raise _bad(
            f"fields invalid: {result.errors[0].message}",
            fields=[e.to_json() for e in result.errors],
        )
    return NoticeBody(form, lang, body["fields"], deadline, body["form_digest"])


def check_notice(body: dict[str, Any]) -> None:
    """The records checker for `notice` bodies."""
    parse_notice(body)


def check_ack(body: dict[str, Any]) -> None:
    """The records checker for `ack` bodies (domain/deadlines.parse_ack without the type)."""
    deadlines.parse_ack({k: v for k, v in body.items() if k != "type"}, 0)


def parse_ack(body: dict[str, Any], ts_ms: int) -> deadlines.Ack:
    return deadlines.parse_ack({k: v for k, v in body.items() if k != "type"}, ts_ms)


def ack_body(ref: str, answer: str, text: str, by: str) -> dict[str, Any]:
    """The body of an `ack` envelope; LocalError(invalid_request) if it would be refused."""
    return {"type": TYPE_ACK, **deadlines.ack_body(ref, answer, text, by)}


def notice_body(
    cat: Catalogue,
    form_id: str,
    fields: object,
    lang: str,
    now_ms: int,
    *,
    version: int | None = None,
    deadline_ms: int | None = None,
) -> tuple[dict[str, Any], Lateness]:
    """A validated `notice` body from our operator's input, and its lateness at `now_ms`.

    Raises InvalidNotice (every field error, in `lang`) so that nothing is sealed, or
    LocalError/NotFound for an unknown form, language or an impossible deadline.
    """
    form = cat.get(form_id, version)
    form.require_lang(lang)
    result = validate_fields(form, fields, lang, now_ms)
    if result.errors:
        first = result.errors[0].message
        more = f" (+{len(result.errors) - 1} more)" if len(result.errors) > 1 else ""
        raise InvalidNotice(
            Code.BAD_BODY,
            f"notice fields invalid: {first}{more}",
            fields=[e.to_json() for e in result.errors],
        )
    if deadline_ms is None:
        deadline_ms = now_ms + form.ack_deadline_hours * HOUR_MS
    elif not _int(deadline_ms) or not now_ms < deadline_ms <= now_ms + MAX_DEADLINE_AHEAD_MS:
        raise LocalError(
            Code.INVALID_REQUEST, "deadline_ms: the acknowledgement deadline must be in the future"
        )
    assert isinstance(fields, dict)  # the form's schema says the fields are an object
    body = {
        "type": TYPE,
        "form": form.id,
        "version": form.version,
        "form_digest": form.digest,
        "lang": lang,
        "fields": fields,
        "deadline_ms": deadline_ms,
    }
    parse_notice(body, cat)  # what a receiver will check, checked before sealing
    return body, result.lateness


@dataclass(frozen=True)
class Reading:
    """A notice as one language reads it: text (and HTML for a <pre> block), map, lateness."""

    form: Form
    lang: str
    text: str
    html: str
    svg: str
    lateness: Lateness
    notice: NoticeBody


def read_notice(body: Mapping[str, Any], ts_ms: int, lang: str, cat: Catalogue) -> Reading:
    """Render a stored notice body in `lang`: a pure function of the body and the envelope's
    signed timestamp, so an auditor re-rendering from the transcript gets the same bytes."""
    notice = parse_notice(dict(body), cat)
    notice.form.require_lang(lang)
    lateness = assess_lateness(notice.form, notice.fields, ts_ms)
    return Reading(
        form=notice.form,
        lang=lang,
        text=render(notice.form, notice.fields, lang, lateness=lateness),
        html=render(notice.form, notice.fields, lang, lateness=lateness, html=True),
        svg=render_map_svg(notice.form, notice.fields, lang),
        lateness=lateness,
        notice=notice,
    )


def lateness_json(lateness: Lateness) -> dict[str, Any]:
    return {
        "applies": lateness.applies,
        "late": lateness.late,
        "required_ms": lateness.required_ms,
        "lead_ms": lateness.lead_ms,
        "field": lateness.field,
    }


def form_fields(form: Form, lang: str) -> list[dict[str, Any]]:
    """The top-level fields of a form as a person filling it in needs them: name, label in
    `lang`, whether required, and what kind of value (a shared building block, a type, or the
    allowed values)."""
    props = form.schema.get("properties", {})
    required = set(form.schema.get("required", []))
    out = []
    for name, spec in props.items():
        kind: Any = spec.get("type", "")
        if "$ref" in spec:
            kind = str(spec["$ref"]).rsplit("/", 1)[-1]
        elif "enum" in spec:
            kind = {"enum": list(spec["enum"])}
        elif kind == "array" and isinstance(spec.get("items"), dict) and "$ref" in spec["items"]:
            kind = "list of " + str(spec["items"]["$ref"]).rsplit("/", 1)[-1]
        out.append(
            {
                "name": name,
                "label": label(form, name, name, lang),
                "required": name in required,
                "kind": kind,
            }
        )
    return out
