"""docs/protocol.md §19–§22 (notices, acks, check calls, crises, body registry) against the code.

So that the document cannot drift from what a station accepts:
- every fenced block tagged `body:<type>` is the canonical JSON (§2) of a body of that type, and
  the reference checker (`domain/records.check`) accepts it;
- every block tagged `refused:<code>[ field:<path>=<field code>…]` is canonical and refused with
  that code (and those field errors);
- the body-type table is exactly `records.CHECKERS`, and each section it cites exists;
- the packaged-forms table matches the catalogue, and each form digest re-derives from the form's
  folder by the rule written in §19.1 (hashlib here, not the loader);
- the lateness table matches `assess_lateness` for the example launch notice;
- every field error code the validator can give is listed in §19.3.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest

from parley.domain import records
from parley.domain.forms import Catalogue, assess_lateness, packaged_folder
from parley.domain.forms.messages import MESSAGES
from parley.errors import Code, RejectedInput
from parley.protocol import encoding

DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"
TEXT = DOC.read_text("utf-8")

# The types §19–§21 specify; each needs at least one accepted example.
DOCUMENTED_HERE = {
    "notice",
    "ack",
    "checkcall.call",
    "checkcall.answer",
    "crisis.open",
    "crisis.status",
    "crisis.link",
}

_FENCE = re.compile(
    r"^```json (body|refused):([\w.]+)((?: field:[^\s=]+=\w+)*)\n(.*?)^```$", re.M | re.S
)


def _blocks(kind: str) -> list[tuple[str, list[tuple[str, str]], str]]:
    """(tag, [(field path, field code)…], content) of every block of one kind."""
    out = []
    for m in _FENCE.finditer(TEXT):
        if m[1] == kind:
            fields = [tuple(f.split("=", 1)) for f in m[3].split(" field:")[1:]]
            out.append((m[2], [(p, c) for p, c in fields], m[4]))
    return out


def _canonical(content: str) -> Any:
    raw = content.removesuffix("\n").encode("utf-8")
    value = encoding.parse(raw, require_canonical=True)
    assert encoding.canonical(value) == raw
    return value


def _table(marker: str) -> list[list[str]]:
    """The rows (cells stripped, header and rule dropped) of the table right after `marker`."""
    lines = TEXT.split(marker, 1)[1].lstrip("\n").splitlines()
    rows = []
    for line in lines:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    assert len(rows) > 2, f"no table after {marker}"
    return rows[2:]


def _code(cell: str) -> str:
    m = re.fullmatch(r"`([^`]*)`", cell)
    assert m, cell
    return m[1]


def test_every_tagged_fence_is_understood() -> None:
    # A body fence the pattern misses would escape every check below.
    fences = [
        ln
        for ln in TEXT.splitlines()
        if ln.startswith("```") and ("body:" in ln or "refused:" in ln)
    ]
    assert len(fences) == len(list(_FENCE.finditer(TEXT))), fences


def test_each_documented_type_has_an_accepted_example() -> None:
    tagged = {tag for tag, _, _ in _blocks("body")}
    assert tagged >= DOCUMENTED_HERE, sorted(DOCUMENTED_HERE - tagged)


@pytest.mark.parametrize("block", _blocks("body"), ids=lambda b: b[0])
def test_body_example_is_canonical_and_accepted(
    block: tuple[str, list[tuple[str, str]], str],
) -> None:
    tag, _, content = block
    body = _canonical(content)
    assert body["type"] == tag
    records.check(body)


@pytest.mark.parametrize(
    "block", _blocks("refused"), ids=lambda b: f"{b[0]}:{_canonical(b[2]).get('type')}"
)
def test_refused_example_is_refused_with_its_code(
    block: tuple[str, list[tuple[str, str]], str],
) -> None:
    code, fields, content = block
    body = _canonical(content)
    with pytest.raises(RejectedInput) as exc:
        records.check(body)
    assert exc.value.code == Code(code)
    errors = exc.value.details.get("fields", [])
    assert isinstance(errors, list)
    found = {(f["field"], f["code"]) for f in errors}
    assert set(fields) <= found, found


def test_body_type_table_is_the_registry() -> None:
    rows = _table("<!-- body-types -->")
    types = [_code(r[0]) for r in rows]
    assert len(types) == len(set(types)), "a type listed twice"
    assert set(types) == set(records.CHECKERS)


def test_body_type_table_cites_existing_sections() -> None:
    headings = set(re.findall(r"^## (\d+)\. |^### (\d+\.\d+) ", TEXT, re.M))
    sections = {a or b for a, b in headings}
    for row in _table("<!-- body-types -->"):
        cited = row[1].removeprefix("§")
        assert cited in sections, f"{row[0]} cites §{cited}, which does not exist"


def test_unknown_type_is_bad_body() -> None:
    with pytest.raises(RejectedInput) as exc:
        records.check({"type": "no.such.type"})
    assert exc.value.code is Code.BAD_BODY


def _digest_as_documented(folder: Any) -> str:
    """§19.1: SHA-256 over each file not starting with ".", by name: name 0 length 0 bytes."""
    h = hashlib.sha256()
    for item in sorted(folder.iterdir(), key=lambda t: t.name):
        if item.is_file() and not item.name.startswith("."):
            data = item.read_bytes()
            h.update(item.name.encode("utf-8") + b"\0" + str(len(data)).encode() + b"\0")
            h.update(data)
    return h.hexdigest()


def test_forms_table_matches_the_catalogue() -> None:
    cat = Catalogue.load()
    rows = _table("<!-- forms-table -->")
    listed = {(_code(r[0]), int(r[1])) for r in rows}
    assert listed == {(f.id, f.version) for f in cat.list(all_versions=True)}
    for form_id, version, prec, ack_hours, lead_hours, lead_field, when, digest in rows:
        form = cat.get(_code(form_id), int(version))
        assert prec == str(form.precedence)
        assert int(ack_hours) == form.ack_deadline_hours
        assert _code(digest) == form.digest
        rule = form.lead_time
        if rule is None:
            assert (lead_hours, lead_field, when) == ("—", "—", "—")
            continue
        assert int(lead_hours) == rule.min_hours
        assert _code(lead_field) == rule.field
        if rule.when_field is None:
            assert when == "—"
        else:
            assert when == f'`{rule.when_field}` = `"{rule.when_equals}"`'


def test_form_digests_follow_the_documented_rule() -> None:
    cat = Catalogue.load()
    folders = [
        sub
        for sub in packaged_folder().iterdir()
        if not sub.name.startswith(("_", ".")) and sub.joinpath("form.json").is_file()
    ]
    assert len(folders) == len(cat.list(all_versions=True))
    by_digest = {f.digest for f in cat.list(all_versions=True)}
    assert {_digest_as_documented(sub) for sub in folders} == by_digest


def test_lateness_table_matches_the_example_notice() -> None:
    [notice] = [
        body
        for tag, _, content in _blocks("body")
        if tag == "notice" and (body := _canonical(content))["form"] == "launch_notice"
    ]
    form = Catalogue.load().get(notice["form"], notice["version"])
    rows = _table("<!-- lateness-table -->")
    assert rows
    for ts, lead_ms, late in rows:
        got = assess_lateness(form, notice["fields"], int(ts))
        assert got.applies
        assert got.lead_ms == int(lead_ms)
        assert got.late is {"yes": True, "no": False}[late]


def test_every_field_error_code_is_listed() -> None:
    rows = _table("<!-- field-error-codes -->")
    listed = {c for r in rows for c in re.findall(r"`([a-z_]+)`", r[0])}
    for lang, texts in MESSAGES.items():
        assert set(texts) <= listed, (lang, sorted(set(texts) - listed))
