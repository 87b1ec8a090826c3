"""Value objects of the forms catalogue: a form, a field error, a lateness assessment.

Rules:
- All are frozen: a `Form` is loaded once from its folder and then only read.
- A `Form` is identified by (`id`, `version`); `digest` is a SHA-256 over every file of its folder,
  so a notice (and an auditor) can pin the exact schema and templates it was written against.
- `FieldError.field` is a dotted path with zero-based list indices, e.g. "launch_area.points[3]";
  "" names the whole notice. `code` is stable for programs; `message` is for a person, in the
  language that was asked for.
- Times inside notice fields are integer Unix milliseconds (UTC), fields named `*_ms`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from parley.domain.precedence import Precedence
from parley.errors import Code, LocalError, RejectedInput

# The working languages (DESIGN §1). Every form must have a template for each; a form may add more.
REQUIRED_LANGS: tuple[str, ...] = ("en", "ko")

HOUR_MS = 3_600_000


@dataclass(frozen=True)
class LeadTime:
    """How far ahead a notice must be given: `min_hours` before the time at `field`.

    `when_field`/`when_equals`, if set, restrict the rule to notices where that field has that
    value (a "major" exercise, not every exercise).
    """

    field: str
    min_hours: int
    when_field: str | None = None
    when_equals: object = None


@dataclass(frozen=True)
class Form:
    """One version of one form: metadata, JSON Schema and a template per language."""

    id: str
    version: int
    titles: Mapping[str, str]
    precedence: Precedence
    ack_deadline_hours: int
    lead_time: LeadTime | None
    schema: Mapping[str, Any]
    templates: Mapping[str, str]
    labels: Mapping[str, Mapping[str, str]]
    digest: str
    example: Mapping[str, Any] | None = None
    descriptions: Mapping[str, str] = field(default_factory=dict)
    # The compiled JSON Schema validator (jsonschema, with the shared `_common` schemas
    # registered); built once by the catalogue, not part of the form's identity.
    validator: Any = field(default=None, compare=False, repr=False)

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(sorted(self.templates))

    def title(self, lang: str) -> str:
        return self.titles.get(lang) or self.titles["en"]

    def require_lang(self, lang: str) -> None:
        """Refuse a language this form has no template for: never fall back silently."""
        if lang not in self.templates:
            raise LocalError(
                Code.INVALID_REQUEST,
                f"form {self.id} v{self.version} has no {lang!r} template; "
                f"languages: {', '.join(self.languages)}",
            )

    def summary(self) -> dict[str, object]:
        """Plain JSON (no floats) for `parley forms list` / `show` and the operator API."""
        return {
            "id": self.id,
            "version": self.version,
            "title": dict(self.titles),
            "precedence": str(self.precedence),
            "ack_deadline_hours": self.ack_deadline_hours,
            "min_lead_hours": self.lead_time.min_hours if self.lead_time else 0,
            "languages": list(self.languages),
            "digest": self.digest,
        }


@dataclass(frozen=True)
class FieldError:
    """One problem with one field of a notice."""

    field: str
    code: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "message": self.message}


@dataclass(frozen=True)
class Lateness:
    """Whether a notice came later than its form asks. Late notices are marked, never refused.

    `lead_ms` is (event time − `now_ms` given to `validate`); negative when the event is past.
    For the auditor, `now_ms` is the envelope's sealed timestamp, so the result is reproducible.
    """

    applies: bool
    late: bool
    required_ms: int = 0
    lead_ms: int | None = None
    field: str | None = None

    @classmethod
    def not_applicable(cls) -> Lateness:
        return cls(applies=False, late=False)


@dataclass(frozen=True)
class Validation:
    """The result of `validate`: every field error found, and the lead-time assessment."""

    errors: tuple[FieldError, ...]
    lateness: Lateness

    @property
    def ok(self) -> bool:
        return not self.errors

    def raise_for_errors(self, *, from_peer: bool = False) -> None:
        """Raise `bad_body` if there are errors: LocalError for our own notice, RejectedInput
        for one a peer sent (nothing is stored then). Details carry every FieldError."""
        if not self.errors:
            return
        first = self.errors[0].message
        more = f" (+{len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
        cls = RejectedInput if from_peer else LocalError
        raise cls(
            Code.BAD_BODY,
            f"notice fields invalid: {first}{more}",
            errors=[e.to_json() for e in self.errors],
        )
