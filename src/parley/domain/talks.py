"""Talks: negotiating a meeting as signed records on a channel (DESIGN.md §5 "Talks").

Records (envelope bodies; fields are required unless marked `?`; no nulls, no floats):

    talks.propose   {negotiation_id, terms}           opens a negotiation with its first version
    talks.counter   {negotiation_id, parent, terms}   a new version that changes an earlier one
    talks.withdraw  {negotiation_id, version}         the author takes an open version off the table
    talks.accept    {negotiation_id, version}         a party accepts one exact version (its hash)

    terms = {date_options: [{start, end?}], venue_options: [str], format: {table, seating},
             delegation_size: {max}, agenda: [str],
             preconditions: {"none": true} | {"items": [str]}}

Rules (everything that decides what a talks record means lives in this file):
 1. Members are the `parties` and at most one `facilitator`; a record from anyone else is
    RejectedInput(NOT_A_MEMBER). A malformed body is RejectedInput(BAD_BODY). A well-formed move
    that the current state does not allow is Conflict(CONFLICT). Either way the state is unchanged.
 2. A version's hash is b64url(sha256(canonical({"type": "talks.version", "negotiation_id",
    "parent", "author", "terms"}))), `parent` null for a proposal: anyone can recompute it from the
    record, and it names exactly one set of terms. The same version twice is a Conflict.
 3. Any member may propose or counter; a proposal by the facilitator is "tabled" for the parties.
    A party that authors a version thereby accepts it (its signed envelope is its acceptance);
    the facilitator never accepts.
 4. A version is open, superseded (countered by anyone; permanent) or withdrawn (by its author,
    only while open). Only an open version can be accepted, so nobody is bound to terms someone
    has since moved on from. A counter may name any version of its negotiation as parent (so a
    withdrawn or superseded branch can be picked up again), but a counter to an open version must
    change something (to agree, accept it instead).
 5. When every party has accepted the same open version, the negotiation is agreed and holds an
    `Agreement`: the version, its terms and, per party, the hash of the envelope that carries its
    signature. After that every move in that negotiation is a Conflict.
 6. Bodies are validated strictly (JSON types, sizes, no unknown fields) and must be in normal form
    (optional fields omitted, never null), so one meaning has one encoding.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Annotated, Any, Literal, Protocol, TypeAlias

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from parley.errors import Code, Conflict, LocalError, RejectedInput
from parley.protocol.crypto import HASH_BYTES, sha256
from parley.protocol.encoding import b64d, b64e, canonical

# --- shared by the domain record modules (talks, roadmap) -----------------------------------------


class Event(Protocol):
    """One decrypted, verified record of a channel, as the transport layer hands it over."""

    @property
    def author(self) -> str: ...
    @property
    def envelope_hash(self) -> str: ...
    @property
    def ts_ms(self) -> int: ...
    @property
    def body(self) -> Mapping[str, Any]: ...


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be blank")
    return text


def _is_hash(text: str) -> str:
    try:
        b64d(text, size=HASH_BYTES)
    except RejectedInput as exc:
        raise ValueError(exc.message) from exc
    return text


def _unique(items: tuple[Any, ...]) -> tuple[Any, ...]:
    if len(set(items)) != len(items):
        raise ValueError("items must be distinct")
    return items


# Short labels (a table shape, a venue) and longer text (an agenda item, a step description).
Label = Annotated[
    StrictStr, StringConstraints(min_length=1, max_length=200), AfterValidator(_not_blank)
]
Text = Annotated[
    StrictStr, StringConstraints(min_length=1, max_length=2000), AfterValidator(_not_blank)
]
# Ids are chosen by the author of the record that creates the thing (e.g. 16 random bytes, b64url).
RecordId = Annotated[StrictStr, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
Hash = Annotated[StrictStr, AfterValidator(_is_hash)]


def validate_record(adapter: TypeAdapter[Any], body: Mapping[str, Any]) -> Any:
    """Validate a body strictly as JSON and require its normal form; RejectedInput(BAD_BODY)."""
    if not isinstance(body, Mapping):
        raise RejectedInput(Code.BAD_BODY, "a record body must be a JSON object")
    try:
        raw = canonical(dict(body))
    except RejectedInput as exc:
        raise RejectedInput(Code.BAD_BODY, exc.message) from exc
    try:
        record = adapter.validate_json(raw, strict=True)
    except ValidationError as exc:
        raise RejectedInput(Code.BAD_BODY, _describe(exc)) from exc
    if record.model_dump(mode="json", exclude_none=True) != dict(body):
        raise RejectedInput(Code.BAD_BODY, "record is not in normal form (omit absent fields)")
    return record


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"{where}: {err['msg']}" if where else err["msg"])
    return "; ".join(parts)


def build_record(adapter: TypeAdapter[Any], model: type[Frozen], **fields: Any) -> dict[str, Any]:
    """A body for our operator to send, checked as every member will check it.

    Bad values are our caller's mistake: LocalError(INVALID_REQUEST), not RejectedInput.
    """
    try:
        body = model.model_validate(fields).model_dump(mode="json", exclude_none=True)
        validate_record(adapter, body)
    except ValidationError as exc:
        raise LocalError(Code.INVALID_REQUEST, _describe(exc)) from exc
    except RejectedInput as exc:
        raise LocalError(Code.INVALID_REQUEST, exc.message) from exc
    return body


def check_parties(parties: frozenset[str], facilitator: str | None) -> None:
    if len(parties) < 2:
        raise LocalError(Code.INVALID_REQUEST, "talks need at least two parties")
    if facilitator is not None and facilitator in parties:
        raise LocalError(Code.INVALID_REQUEST, "the facilitator cannot also be a party")


# --- terms ----------------------------------------------------------------------------------------

KNOWN_TABLES = ("round", "square", "rectangular", "none")  # suggestions; any label is allowed

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?(Z|[+-]\d{2}:\d{2})")


def _when(text: str) -> date | datetime:
    if _DATE.fullmatch(text):
        return date.fromisoformat(text)
    if _DATETIME.fullmatch(text):
        return datetime.fromisoformat(text)
    raise ValueError("expected YYYY-MM-DD, or YYYY-MM-DDTHH:MM[:SS] with Z or ±HH:MM")


class DateOption(Frozen):
    """A day (`2025-03-01`) or a moment with its UTC offset; `end`, if given, of the same kind."""

    start: StrictStr
    end: StrictStr | None = None

    @model_validator(mode="after")
    def _check(self) -> DateOption:
        start = _when(self.start)
        if self.end is not None:
            end = _when(self.end)
            if type(end) is not type(start):
                raise ValueError("start and end must both be dates or both be date-times")
            if end < start:
                raise ValueError("end is before start")
        return self


class Format(Frozen):
    table: Label  # "round", "square", "rectangular", "none" or another shape
    seating: Text


class DelegationSize(Frozen):
    max: Annotated[StrictInt, Field(ge=1, le=1000)]


class Preconditions(Frozen):
    """Explicit either way: `{"none": true}` or `{"items": [...]}`; never left out."""

    none: Literal[True] | None = None
    items: Annotated[tuple[Text, ...], Field(min_length=1, max_length=20)] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Preconditions:
        if (self.none is None) == (self.items is None):
            raise ValueError('preconditions must be {"none": true} or {"items": [...]}')
        if self.items is not None:
            _unique(self.items)
        return self


NO_PRECONDITIONS = Preconditions(none=True)


class MeetingTerms(Frozen):
    date_options: Annotated[tuple[DateOption, ...], Field(min_length=1, max_length=20)]
    venue_options: Annotated[
        tuple[Label, ...], Field(min_length=1, max_length=20), AfterValidator(_unique)
    ]
    format: Format
    delegation_size: DelegationSize
    agenda: Annotated[tuple[Text, ...], Field(max_length=50), AfterValidator(_unique)]
    preconditions: Preconditions

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


# --- records --------------------------------------------------------------------------------------


class Propose(Frozen):
    type: Literal["talks.propose"] = "talks.propose"
    negotiation_id: RecordId
    terms: MeetingTerms


class Counter(Frozen):
    type: Literal["talks.counter"] = "talks.counter"
    negotiation_id: RecordId
    parent: Hash
    terms: MeetingTerms


class Withdraw(Frozen):
    type: Literal["talks.withdraw"] = "talks.withdraw"
    negotiation_id: RecordId
    version: Hash


class Accept(Frozen):
    type: Literal["talks.accept"] = "talks.accept"
    negotiation_id: RecordId
    version: Hash


Record: TypeAlias = Propose | Counter | Withdraw | Accept
_Tagged: TypeAlias = Annotated[Record, Field(discriminator="type")]
_RECORD: TypeAdapter[Record] = TypeAdapter(_Tagged)
BODY_TYPES = ("talks.propose", "talks.counter", "talks.withdraw", "talks.accept")


def parse_body(body: Mapping[str, Any]) -> Record:
    """The talks record in `body`, or RejectedInput(BAD_BODY)."""
    record: Record = validate_record(_RECORD, body)
    return record


def propose_body(negotiation_id: str, terms: MeetingTerms) -> dict[str, Any]:
    return build_record(_RECORD, Propose, negotiation_id=negotiation_id, terms=terms)


def counter_body(negotiation_id: str, parent: str, terms: MeetingTerms) -> dict[str, Any]:
    return build_record(_RECORD, Counter, negotiation_id=negotiation_id, parent=parent, terms=terms)


def withdraw_body(negotiation_id: str, version: str) -> dict[str, Any]:
    return build_record(_RECORD, Withdraw, negotiation_id=negotiation_id, version=version)


def accept_body(negotiation_id: str, version: str) -> dict[str, Any]:
    return build_record(_RECORD, Accept, negotiation_id=negotiation_id, version=version)


def terms_from_json(data: Mapping[str, Any]) -> MeetingTerms:
    """Terms typed in by an operator (API, CLI); LocalError(INVALID_REQUEST) if not valid."""
    try:
        return MeetingTerms.model_validate_json(canonical(dict(data)), strict=True)
    except (ValidationError, RejectedInput) as exc:
        message = _describe(exc) if isinstance(exc, ValidationError) else exc.message
        raise LocalError(Code.INVALID_REQUEST, f"terms: {message}") from exc


def version_hash(negotiation_id: str, parent: str | None, author: str, terms: MeetingTerms) -> str:
    doc = {
        "type": "talks.version",
        "negotiation_id": negotiation_id,
        "parent": parent,
        "author": author,
        "terms": terms.to_json(),
    }
    return b64e(sha256(canonical(doc)))


# --- what changed ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One difference between two versions; `None` means the field is absent on that side."""

    path: str  # "format.table", "venue_options[0]", "preconditions.none"
    before: object
    after: object


def diff(before: MeetingTerms, after: MeetingTerms) -> tuple[Change, ...]:
    """Field-by-field changes. Lists of equal length compare item by item; otherwise whole."""
    return tuple(_diff(before.to_json(), after.to_json(), ""))


def _diff(a: object, b: object, path: str) -> list[Change]:
    if a == b:
        return []
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[Change] = []
        for key in sorted(a.keys() | b.keys()):
            sub = f"{path}.{key}" if path else key
            out += _diff(a.get(key), b.get(key), sub)
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        pairs = enumerate(zip(a, b, strict=True))
        return [c for i, (x, y) in pairs for c in _diff(x, y, f"{path}[{i}]")]
    return [Change(path, a, b)]


# --- state ----------------------------------------------------------------------------------------

VersionStatus = Literal["open", "superseded", "withdrawn"]


@dataclass(frozen=True)
class Version:
    hash: str
    parent: str | None
    author: str
    terms: MeetingTerms
    ts_ms: int
    envelope_hash: str
    status: VersionStatus
    acceptances: Mapping[str, str]  # party -> hash of the envelope carrying its acceptance


@dataclass(frozen=True)
class Agreement:
    """Every party accepted `version`; each party's signature is on the envelope named for it."""

    negotiation_id: str
    version: str
    parent: str | None
    author: str
    terms: MeetingTerms
    acceptances: Mapping[str, str]
    facilitator: str | None
    agreed_at_ms: int

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "talks.agreement",
            "negotiation_id": self.negotiation_id,
            "version": self.version,
            "parent": self.parent,
            "author": self.author,
            "terms": self.terms.to_json(),
            "acceptances": dict(self.acceptances),
            "agreed_at_ms": self.agreed_at_ms,
        }
        if self.facilitator is not None:
            out["facilitator"] = self.facilitator
        return out

    @property
    def hash(self) -> str:
        return b64e(sha256(canonical(self.to_json())))


@dataclass(frozen=True)
class HistoryEntry:
    action: Literal["propose", "counter", "withdraw", "accept"]
    author: str
    ts_ms: int
    envelope_hash: str
    version: str
    parent: str | None = None
    changes: tuple[Change, ...] = ()  # for a counter: what it changed relative to `parent`


@dataclass(frozen=True)
class Negotiation:
    negotiation_id: str
    versions: Mapping[str, Version]  # in transcript order
    log: tuple[HistoryEntry, ...]
    agreement: Agreement | None = None

    @property
    def status(self) -> Literal["open", "idle", "agreed"]:
        """`idle`: nothing open is on the table (withdrawn); any member may still counter."""
        if self.agreement is not None:
            return "agreed"
        return "open" if self.open_versions else "idle"

    @property
    def open_versions(self) -> tuple[Version, ...]:
        return tuple(v for v in self.versions.values() if v.status == "open")


@dataclass(frozen=True)
class Talks:
    """All negotiations of one channel."""

    parties: frozenset[str]
    facilitator: str | None = None
    negotiations: Mapping[str, Negotiation] = field(default_factory=dict)

    @classmethod
    def start(cls, parties: frozenset[str] | set[str], facilitator: str | None = None) -> Talks:
        check_parties(frozenset(parties), facilitator)
        return cls(frozenset(parties), facilitator)

    @property
    def members(self) -> frozenset[str]:
        return self.parties | ({self.facilitator} if self.facilitator is not None else set())

    def apply(self, event: Event) -> Talks:
        return apply(self, event)


def history(negotiation: Negotiation) -> tuple[HistoryEntry, ...]:
    """Every accepted record of the negotiation, in order; counters carry their changes."""
    return negotiation.log


# --- moves ----------------------------------------------------------------------------------------


def apply(state: Talks, event: Event) -> Talks:
    """The state after `event`, or RejectedInput / Conflict (and `state` stays as it was)."""
    if event.author not in state.members:
        raise RejectedInput(Code.NOT_A_MEMBER, f"{event.author} is not a member of these talks")
    record = parse_body(event.body)
    if isinstance(record, Propose):
        negotiation = _propose(state, event, record)
    elif isinstance(record, Counter):
        negotiation = _counter(state, event, record)
    elif isinstance(record, Withdraw):
        negotiation = _withdraw(state, event, record)
    else:
        negotiation = _accept(state, event, record)
    negotiations = {**state.negotiations, negotiation.negotiation_id: negotiation}
    return replace(state, negotiations=negotiations)


def check_move(state: Talks, author: str, body: Mapping[str, Any]) -> None:
    """Raise what `apply` would raise if `author` sent `body` now (for the operator, pre-send)."""
    apply(state, Probe(author, b64e(bytes(HASH_BYTES)), 0, body))


@dataclass(frozen=True)
class Probe:
    """An Event for a move not yet sent: what `check_move` feeds to a fold."""

    author: str
    envelope_hash: str
    ts_ms: int
    body: Mapping[str, Any]


def _own_acceptance(state: Talks, event: Event) -> dict[str, str]:
    return {event.author: event.envelope_hash} if event.author in state.parties else {}


def _new_version(
    state: Talks, event: Event, negotiation_id: str, parent: str | None, terms: MeetingTerms
) -> Version:
    return Version(
        hash=version_hash(negotiation_id, parent, event.author, terms),
        parent=parent,
        author=event.author,
        terms=terms,
        ts_ms=event.ts_ms,
        envelope_hash=event.envelope_hash,
        status="open",
        acceptances=_own_acceptance(state, event),
    )


def _propose(state: Talks, event: Event, record: Propose) -> Negotiation:
    if record.negotiation_id in state.negotiations:
        raise Conflict(Code.CONFLICT, f"negotiation {record.negotiation_id} already exists")
    version = _new_version(state, event, record.negotiation_id, None, record.terms)
    entry = HistoryEntry("propose", event.author, event.ts_ms, event.envelope_hash, version.hash)
    return Negotiation(record.negotiation_id, {version.hash: version}, (entry,))


def _negotiating(state: Talks, negotiation_id: str) -> Negotiation:
    negotiation = state.negotiations.get(negotiation_id)
    if negotiation is None:
        raise Conflict(Code.CONFLICT, f"no negotiation {negotiation_id}")
    if negotiation.agreement is not None:
        raise Conflict(Code.CONFLICT, f"negotiation {negotiation_id} is already agreed")
    return negotiation


def _version(negotiation: Negotiation, version: str) -> Version:
    found = negotiation.versions.get(version)
    if found is None:
        raise Conflict(Code.CONFLICT, f"no version {version} in {negotiation.negotiation_id}")
    return found


def _counter(state: Talks, event: Event, record: Counter) -> Negotiation:
    negotiation = _negotiating(state, record.negotiation_id)
    parent = _version(negotiation, record.parent)
    if parent.status == "open" and parent.terms == record.terms:
        raise Conflict(Code.CONFLICT, "a counter-proposal must change something; accept instead")
    version = _new_version(state, event, record.negotiation_id, parent.hash, record.terms)
    if version.hash in negotiation.versions:
        raise Conflict(Code.CONFLICT, "this version was already proposed")
    versions = dict(negotiation.versions)
    if parent.status == "open":
        versions[parent.hash] = replace(parent, status="superseded")
    versions[version.hash] = version
    entry = HistoryEntry(
        "counter",
        event.author,
        event.ts_ms,
        event.envelope_hash,
        version.hash,
        parent.hash,
        diff(parent.terms, record.terms),
    )
    return replace(negotiation, versions=versions, log=(*negotiation.log, entry))


def _withdraw(state: Talks, event: Event, record: Withdraw) -> Negotiation:
    negotiation = _negotiating(state, record.negotiation_id)
    version = _version(negotiation, record.version)
    if version.author != event.author:
        raise Conflict(Code.CONFLICT, "only the author of a version can withdraw it")
    if version.status != "open":
        raise Conflict(Code.CONFLICT, f"version {version.hash} is {version.status}, not open")
    versions = {**negotiation.versions, version.hash: replace(version, status="withdrawn")}
    entry = HistoryEntry("withdraw", event.author, event.ts_ms, event.envelope_hash, version.hash)
    return replace(negotiation, versions=versions, log=(*negotiation.log, entry))


def _accept(state: Talks, event: Event, record: Accept) -> Negotiation:
    negotiation = _negotiating(state, record.negotiation_id)
    if event.author not in state.parties:
        raise Conflict(Code.CONFLICT, "only a party can accept; the facilitator tables and relays")
    version = _version(negotiation, record.version)
    if version.status != "open":
        raise Conflict(Code.CONFLICT, f"version {version.hash} is {version.status}, not open")
    if event.author in version.acceptances:
        raise Conflict(Code.CONFLICT, f"{event.author} has already accepted this version")
    accepted = replace(
        version, acceptances={**version.acceptances, event.author: event.envelope_hash}
    )
    entry = HistoryEntry("accept", event.author, event.ts_ms, event.envelope_hash, version.hash)
    agreement = None
    if state.parties <= accepted.acceptances.keys():
        agreement = Agreement(
            negotiation_id=negotiation.negotiation_id,
            version=accepted.hash,
            parent=accepted.parent,
            author=accepted.author,
            terms=accepted.terms,
            acceptances={p: accepted.acceptances[p] for p in sorted(state.parties)},
            facilitator=state.facilitator,
            agreed_at_ms=event.ts_ms,
        )
    return replace(
        negotiation,
        versions={**negotiation.versions, accepted.hash: accepted},
        log=(*negotiation.log, entry),
        agreement=agreement,
    )
