"""The forms catalogue (the Python side of the `catalogue/` folder next to this module).

Forms by (id, version), loaded from one or more folders.

Rules:
- A folder holds one sub-folder per form version: `form.json` (metadata), `schema.json`
  (JSON Schema draft 2020-12), one `<lang>.j2` template per language (English and Korean
  required) and optionally `example.json`. The sub-folder's name is free (e.g.
  `launch_notice/`, `launch_notice@2/`); identity is `id` + `version` in form.json.
- Sub-folders whose names start with "_" hold shared schemas (`*.json` with a `$id`, e.g.
  `urn:parley:forms:common:1`) that forms `$ref`; a shared schema never changes under the same
  `$id` (publish a new one instead), or old notices would re-validate differently.
- Adding a form is dropping such a folder into any catalogue folder; no code changes.
- The same (id, version) found twice with different files is refused: two stations rendering
  one notice from different templates is exactly what the catalogue exists to prevent.
- Loading is the only I/O: files are read once and everything is kept in memory.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from jinja2 import TemplateError
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from parley.domain.forms.model import REQUIRED_LANGS, Form, LeadTime
from parley.domain.forms.render import compile_template
from parley.domain.precedence import Precedence
from parley.errors import Code, LocalError, NotFound, ParleyError
from parley.protocol import crypto
from parley.protocol.encoding import parse

# A form file larger than this is a mistake, not a form.
MAX_FILE_BYTES = 256 * 1024

_LANG_FILE = re.compile(r"^([a-z]{2,3}(?:-[A-Z]{2})?)\.j2$")
_LOCALIZED = {
    "type": "object",
    "required": ["en", "ko"],
    "additionalProperties": {"type": "string", "minLength": 1, "maxLength": 400},
}
# The shape of form.json itself.
FORM_META_SCHEMA: Mapping[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["id", "version", "title", "precedence", "ack_deadline_hours"],
    "additionalProperties": False,
    "properties": {
        "$comment": {"type": "string"},
        "id": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,63}$"},
        "version": {"type": "integer", "minimum": 1},
        "title": _LOCALIZED,
        "description": _LOCALIZED,
        "precedence": {"enum": [p.value for p in Precedence]},
        "ack_deadline_hours": {"type": "integer", "minimum": 1, "maximum": 8760},
        "lead_time": {
            "type": "object",
            "required": ["field", "min_hours"],
            "additionalProperties": False,
            "properties": {
                "field": {"type": "string", "pattern": "^[a-z0-9_]+(\\.[a-z0-9_]+)*$"},
                "min_hours": {"type": "integer", "minimum": 0, "maximum": 8760},
                "when": {
                    "type": "object",
                    "required": ["field", "equals"],
                    "additionalProperties": False,
                    "properties": {"field": {"type": "string"}, "equals": {}},
                },
                "basis": {"type": "string"},
            },
        },
        "labels": {"type": "object", "additionalProperties": _LOCALIZED},
    },
}
_META = Draft202012Validator(FORM_META_SCHEMA)


def packaged_folder() -> Traversable:
    """The catalogue shipped inside the package."""
    return files("parley.domain.forms").joinpath("catalogue")


class Catalogue:
    """Forms by (id, version). Build with `Catalogue.load`; immutable afterwards."""

    def __init__(self, forms: Mapping[tuple[str, int], Form]) -> None:
        self._forms = dict(sorted(forms.items()))

    @classmethod
    def load(
        cls, path: Path | str | Traversable | None = None, *, extra: Iterable[Path | str] = ()
    ) -> Catalogue:
        """Load forms from `path` (default: the packaged catalogue) and each `extra` folder."""
        roots: list[Traversable] = [packaged_folder() if path is None else _folder(path)]
        roots += [_folder(p) for p in extra]
        # The packaged shared schemas are always there, so a folder of forms can $ref them
        # even when loaded on its own.
        registry = _load_shared(packaged_folder(), Registry())
        for root in roots:
            registry = _load_shared(root, registry)
        forms: dict[tuple[str, int], Form] = {}
        for root in roots:
            for sub in sorted(root.iterdir(), key=lambda t: t.name):
                if sub.name.startswith(("_", ".")) or not sub.is_dir():
                    continue
                if not sub.joinpath("form.json").is_file():
                    continue
                form = load_form(sub, registry)
                key = (form.id, form.version)
                if key in forms and forms[key].digest != form.digest:
                    raise LocalError(
                        Code.CONFLICT,
                        f"form {form.id} v{form.version} found twice with different files "
                        f"(second copy in {sub.name!r}); give the changed one a new version",
                    )
                forms.setdefault(key, form)
        return cls(forms)

    def list(self, *, all_versions: bool = False) -> list[Form]:
        """Forms sorted by id (then version); by default only each form's latest version."""
        if all_versions:
            return list(self._forms.values())
        latest: dict[str, Form] = {}
        for (form_id, _), form in self._forms.items():
            latest[form_id] = form  # sorted by version, so the last one wins
        return list(latest.values())

    def get(self, form_id: str, version: int | None = None) -> Form:
        """The form `form_id` at `version` (default: its latest), or NotFound."""
        if version is not None:
            form = self._forms.get((form_id, version))
            if form is None:
                raise NotFound(Code.NOT_FOUND, f"no form {form_id!r} version {version}")
            return form
        found = [f for (fid, _), f in self._forms.items() if fid == form_id]
        if not found:
            known = ", ".join(sorted({fid for fid, _ in self._forms}))
            raise NotFound(Code.NOT_FOUND, f"no form {form_id!r}; known forms: {known}")
        return found[-1]

    def __contains__(self, form_id: object) -> bool:
        return any(fid == form_id for fid, _ in self._forms)

    def __len__(self) -> int:
        return len(self._forms)


def _folder(path: Path | str | Traversable) -> Traversable:
    folder = Path(path) if isinstance(path, str) else path
    if not folder.is_dir():
        raise LocalError(Code.INVALID_REQUEST, f"forms folder {str(folder)!r} is not a directory")
    return folder


def _read(item: Traversable) -> bytes:
    data = item.read_bytes()
    if len(data) > MAX_FILE_BYTES:
        raise LocalError(
            Code.INVALID_REQUEST, f"form file {item.name!r} exceeds {MAX_FILE_BYTES} bytes"
        )
    return data


def _json(item: Traversable, where: str) -> Any:
    try:
        # Parley's own parser: no floats, no duplicate keys, same rules as the wire.
        return parse(_read(item), require_canonical=False)
    except ParleyError as exc:
        raise LocalError(Code.INVALID_REQUEST, f"{where}/{item.name}: {exc.message}") from exc


def _load_shared(root: Traversable, registry: Registry[Any]) -> Registry[Any]:
    for sub in sorted(root.iterdir(), key=lambda t: t.name):
        if not (sub.name.startswith("_") and sub.is_dir()):
            continue
        for item in sorted(sub.iterdir(), key=lambda t: t.name):
            if not item.name.endswith(".json"):
                continue
            schema = _json(item, sub.name)
            uri = schema.get("$id") if isinstance(schema, dict) else None
            if not isinstance(uri, str):
                raise LocalError(Code.INVALID_REQUEST, f"{sub.name}/{item.name}: no $id")
            resource = Resource.from_contents(schema, default_specification=DRAFT202012)
            if uri in registry and registry[uri].contents != schema:
                raise LocalError(Code.CONFLICT, f"shared schema {uri} defined twice differently")
            registry = registry.with_resource(uri, resource)
    return registry


def _digest(folder: Traversable) -> str:
    # Every file of the folder, by name: any change to schema, template or metadata changes it.
    h = crypto.sha256_hasher()
    for item in sorted(folder.iterdir(), key=lambda t: t.name):
        if item.is_file() and not item.name.startswith("."):
            data = _read(item)
            h.update(f"{item.name}\0{len(data)}\0".encode())
            h.update(data)
    return h.hexdigest()


def load_form(folder: Traversable, registry: Registry[Any] | None = None) -> Form:
    """One form from its folder, fully checked: metadata, schema, templates, example."""
    where = folder.name
    meta = _json(folder.joinpath("form.json"), where)
    problems = sorted(_META.iter_errors(meta), key=lambda e: list(map(str, e.absolute_path)))
    if problems:
        p = problems[0]
        at = "/".join(map(str, p.absolute_path)) or "(top)"
        raise LocalError(Code.INVALID_REQUEST, f"{where}/form.json at {at}: {p.message}")
    if not folder.joinpath("schema.json").is_file():
        raise LocalError(Code.INVALID_REQUEST, f"{where}: schema.json missing")
    schema = _json(folder.joinpath("schema.json"), where)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise LocalError(Code.INVALID_REQUEST, f"{where}/schema.json: {exc.message}") from exc
    validator = Draft202012Validator(schema, registry=registry or Registry())

    templates: dict[str, str] = {}
    for item in sorted(folder.iterdir(), key=lambda t: t.name):
        m = _LANG_FILE.match(item.name)
        if m and item.is_file():
            source = _read(item).decode("utf-8")
            try:
                compile_template(source)
                compile_template(source, html=True)
            except TemplateError as exc:
                raise LocalError(Code.INVALID_REQUEST, f"{where}/{item.name}: {exc}") from exc
            templates[m.group(1)] = source
    missing = [lang for lang in REQUIRED_LANGS if lang not in templates]
    if missing:
        raise LocalError(Code.INVALID_REQUEST, f"{where}: no template for {', '.join(missing)}")

    lead = meta.get("lead_time")
    when = lead.get("when") if lead else None
    example_file = folder.joinpath("example.json")
    return Form(
        id=meta["id"],
        version=meta["version"],
        titles=meta["title"],
        descriptions=meta.get("description", {}),
        precedence=Precedence(meta["precedence"]),
        ack_deadline_hours=meta["ack_deadline_hours"],
        lead_time=LeadTime(
            field=lead["field"],
            min_hours=lead["min_hours"],
            when_field=when["field"] if when else None,
            when_equals=when["equals"] if when else None,
        )
        if lead
        else None,
        schema=schema,
        templates=templates,
        labels=meta.get("labels", {}),
        digest=_digest(folder),
        example=_json(example_file, where) if example_file.is_file() else None,
        validator=validator,
    )
