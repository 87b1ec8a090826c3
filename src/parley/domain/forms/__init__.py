"""The forms catalogue: structured notices that both sides read from the same fields.

    Catalogue.load(path=None, *, extra=())    forms from folders (default: the packaged ones)
    catalogue.list() / catalogue.get(id, version=None) -> Form
    validate(form, fields, lang, now_ms)      -> Validation(errors: FieldError…, lateness)
    render(form, fields, lang, *, lateness=None, html=False) -> str
    render_map_svg(form, fields, lang="en")  -> str (SVG)

Conventions every form follows (see `catalogue/_common/common.schema.json`):
- coordinates are integer micro-degrees, {"lat_e6": 37500000, "lon_e6": 127000000}, because
  canonical JSON has no floats; areas are closed polygons or circles (radius in metres);
- times are integer Unix milliseconds in UTC, in fields named `*_ms`; windows are
  {"start_ms", "end_ms"} with end after start; texts are shown in UTC in every language;
- free text is shown exactly as the sender wrote it; everything else is rendered from the
  fields by each language's own template, never machine-translated (DESIGN §5).
"""

from parley.domain.forms.loader import Catalogue, load_form, packaged_folder
from parley.domain.forms.model import (
    REQUIRED_LANGS,
    FieldError,
    Form,
    Lateness,
    LeadTime,
    Validation,
)
from parley.domain.forms.render import render
from parley.domain.forms.svgmap import render_map_svg
from parley.domain.forms.validate import assess_lateness, validate

__all__ = [
    "REQUIRED_LANGS",
    "Catalogue",
    "FieldError",
    "Form",
    "Lateness",
    "LeadTime",
    "Validation",
    "assess_lateness",
    "load_form",
    "packaged_folder",
    "render",
    "render_map_svg",
    "validate",
]
