"""The forms catalogue: loading, validation (field-named errors in en and ko), lateness,
rendering in both languages, the map picture, and forms dropped into a folder."""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import parley.domain.forms as forms_pkg
from parley.domain.forms import (
    Catalogue,
    FieldError,
    Form,
    Lateness,
    geo,
    messages,
    render,
    render_map_svg,
    timefmt,
    validate,
)
from parley.domain.forms.paths import walk
from parley.errors import Code, LocalError, NotFound, RejectedInput

FORM_IDS = [
    "exercise_notice",
    "explanation_answer",
    "explanation_request",
    "humanitarian_movement",
    "incident_report",
    "launch_notice",
    "statement_of_intention",
]
HOUR = 3_600_000
# Well before every example's dates, so no example is late.
NOW = int(datetime(2030, 1, 1, tzinfo=UTC).timestamp()) * 1000
# Enumerated values are translated by the templates, so they do not appear verbatim.
ENUM_KEYS = {
    "vehicle_kind",
    "domains",
    "category",
    "activity_status",
    "domain",
    "severity",
    "movement_kind",
    "shape",
}


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue.load()


def example(catalogue: Catalogue, form_id: str) -> tuple[Form, dict[str, Any]]:
    form = catalogue.get(form_id)
    assert form.example is not None
    return form, copy.deepcopy(dict(form.example))


def codes(errors: tuple[FieldError, ...]) -> set[tuple[str, str]]:
    return {(e.field, e.code) for e in errors}


def square(lat: int, lon: int, d: int = 100_000) -> dict[str, Any]:
    pts = [(lat, lon), (lat, lon + d), (lat - d, lon + d), (lat - d, lon), (lat, lon)]
    return {"shape": "polygon", "points": [{"lat_e6": a, "lon_e6": b} for a, b in pts]}


# --- catalogue -------------------------------------------------------------------------------


def test_catalogue_lists_every_form_with_titles_in_both_languages(catalogue: Catalogue) -> None:
    listed = catalogue.list()
    assert [f.id for f in listed] == FORM_IDS
    for form in listed:
        assert form.version == 1
        assert set(form.languages) >= {"en", "ko"}
        assert form.title("en") and form.title("ko") and form.title("en") != form.title("ko")
        assert form.ack_deadline_hours >= 1
        json.dumps(form.summary())  # plain JSON for `parley forms list`


def test_launch_notice_metadata_follows_the_1988_agreement(catalogue: Catalogue) -> None:
    form = catalogue.get("launch_notice")
    assert form.title("ko") == "발사 통보"
    assert form.lead_time is not None and form.lead_time.min_hours == 24
    assert catalogue.get("exercise_notice").lead_time.min_hours == 14 * 24  # type: ignore[union-attr]


def test_unknown_form_is_not_found(catalogue: Catalogue) -> None:
    with pytest.raises(NotFound) as exc:
        catalogue.get("no_such_form")
    assert exc.value.code == Code.NOT_FOUND
    with pytest.raises(NotFound):
        catalogue.get("launch_notice", version=99)
    assert catalogue.get("launch_notice", version=1).id == "launch_notice"
    assert "launch_notice" in catalogue and "nope" not in catalogue


def test_exported_members_exist() -> None:
    for name in forms_pkg.__all__:
        assert hasattr(forms_pkg, name), name
    assert {"Catalogue", "FieldError", "validate", "render", "render_map_svg"} <= set(
        forms_pkg.__all__
    )
    assert callable(forms_pkg.render) and callable(forms_pkg.validate)


def test_every_error_code_has_a_text_in_every_language() -> None:
    assert set(messages.MESSAGES["en"]) == set(messages.MESSAGES["ko"])


# --- validation: good examples, missing and mistyped fields ----------------------------------


@pytest.mark.parametrize("form_id", FORM_IDS)
@pytest.mark.parametrize("lang", ["en", "ko"])
def test_each_example_is_valid(catalogue: Catalogue, form_id: str, lang: str) -> None:
    form, fields = example(catalogue, form_id)
    result = validate(form, fields, lang, NOW)
    assert result.errors == ()
    assert result.ok
    assert not result.lateness.late
    result.raise_for_errors()


@pytest.mark.parametrize("form_id", FORM_IDS)
def test_each_missing_required_field_is_named_in_en_and_ko(
    catalogue: Catalogue, form_id: str
) -> None:
    form, good = example(catalogue, form_id)
    for name in form.schema["required"]:
        fields = copy.deepcopy(good)
        del fields[name]
        for lang in ("en", "ko"):
            errors = validate(form, fields, lang, NOW).errors
            assert [(e.field, e.code) for e in errors] == [(name, "required")]
            assert errors[0].message.startswith(form.labels[name][lang] + ": ")
        assert "필수 항목" in validate(form, fields, "ko", NOW).errors[0].message
        assert "required" in validate(form, fields, "en", NOW).errors[0].message


@pytest.mark.parametrize("form_id", FORM_IDS)
def test_each_form_rejects_wrong_types_and_unknown_fields(
    catalogue: Catalogue, form_id: str
) -> None:
    form, fields = example(catalogue, form_id)
    first = form.schema["required"][0]
    fields[first] = ["not", "this"]
    fields["smuggled"] = "x"
    for lang in ("en", "ko"):
        found = codes(validate(form, fields, lang, NOW).errors)
        assert ("smuggled", "unknown_field") in found
        assert any(field == first for field, _ in found)


def test_enum_error_lists_the_allowed_values(catalogue: Catalogue) -> None:
    form, fields = example(catalogue, "incident_report")
    fields["domain"] = "space"
    (err,) = validate(form, fields, "ko", NOW).errors
    assert (err.field, err.code) == ("domain", "enum")
    assert err.message.startswith("발생 영역: ") and '"sea"' in err.message


def test_floats_are_refused_even_when_whole(catalogue: Catalogue) -> None:
    form, fields = example(catalogue, "launch_notice")
    fields["launch_count"] = 1.0  # JSON Schema alone would call this an integer
    fields["launch_area"]["points"][1]["lat_e6"] = 39.65
    found = codes(validate(form, fields, "en", NOW).errors)
    assert ("launch_count", "float") in found
    assert ("launch_area.points[1].lat_e6", "float") in found


def test_control_and_bidi_characters_are_refused(catalogue: Catalogue) -> None:
    form, fields = example(catalogue, "statement_of_intention")
    fields["subject"] = "safe\u202eefas"
    fields["statement"] = "ring\x07bell"
    found = codes(validate(form, fields, "ko", NOW).errors)
    assert found == {("subject", "control_chars"), ("statement", "control_chars")}


# --- coordinates and areas -------------------------------------------------------------------


def test_latitude_91_degrees_is_refused_in_both_languages(catalogue: Catalogue) -> None:
    form, fields = example(catalogue, "launch_notice")
    fields["launch_area"]["points"][1]["lat_e6"] = 91_000_000
    en = validate(form, fields, "en", NOW).errors
    ko = validate(form, fields, "ko", NOW).errors
    assert [(e.field, e.code) for e in en] == [("launch_area.points[1].lat_e6", "lat_range")]
    assert en[0].message.startswith("Launch area › points[1] › latitude: ")
    assert "91.000000°" in en[0].message
    assert ko[0].message.startswith("발사 구역 › 지점[1] › 위도: ")


def test_point_out_of_range_in_incident_position(catalogue: Catalogue) -> None:
    form, fields = example(catalogue, "incident_report")
    fields["position"] = {"lat_e6": -91_000_000, "lon_e6": 181_000_000}
    found = codes(validate(form, fields, "en", NOW).errors)
    assert found == {("position.lat_e6", "lat_range"), ("position.lon_e6", "lon_range")}


def test_open_polygon_is_refused(catalogue: Catalogue) -> None:
    form, fields = example(catalogue, "launch_notice")
    fields["launch_area"]["points"][-1] = {"lat_e6": 39_610_000, "lon_e6": 124_690_000}
    for lang, word in (("en", "not closed"), ("ko", "닫혀 있지 않습니다")):
        (err,) = validate(form, fields, lang, NOW).errors
        assert (err.field, err.code) == ("launch_area.points[4]", "polygon_open")
        assert word in err.message


def test_polygon_with_too_few_points_is_refused(catalogue: Catalogue) -> None:
    form, fields = example(catalogue, "launch_notice")
    fields["impact_area"]["points"] = fields["impact_area"]["points"][:3]
    (err,) = validate(form, fields, "en", NOW).errors
    assert err.field == "impact_area.points" and err.code == "min_items"


def test_self_intersecting_polygon_is_refused(catalogue: Catalogue) -> None:
    form, fields = example(catalogue, "launch_notice")
    pts = fields["impact_area"]["points"]
    pts[1], pts[2] = pts[2], pts[1]  # a bow-tie
    found = codes(validate(form, fields, "en", NOW).errors)
    assert ("impact_area.points[0]", "polygon_self_intersects") in found


def test_repeated_and_collinear_points_are_refused(catalogue: Catalogue) -> None:
    form, fields = example(catalogue, "statement_of_intention")
    p = [(0, 0), (0, 0), (1_000, 1_000), (0, 2_000), (0, 0)]
    fields["area"] = {"shape": "polygon", "points": [{"lat_e6": a, "lon_e6": b} for a, b in p]}
    assert codes(validate(form, fields, "en", NOW).errors) == {
        ("area.points[1]", "polygon_repeated_point")
    }
    p = [(0, 0), (1_000, 1_000), (2_000, 2_000), (0, 0)]
    fields["area"] = {"shape": "polygon", "points": [{"lat_e6": a, "lon_e6": b} for a, b in p]}
    assert codes(validate(form, fields, "en", NOW).errors) == {
        ("area.points", "polygon_degenerate")
    }


def test_polygon_across_the_antimeridian_must_be_split(catalogue: Catalogue) -> None:
    form, fields = example(catalogue, "statement_of_intention")
    p = [(0, 179_000_000), (0, -179_000_000), (1_000_000, -179_000_000), (0, 179_000_000)]
    fields["area"] = {"shape": "polygon", "points": [{"lat_e6": a, "lon_e6": b} for a, b in p]}
    assert ("area.points[0]", "polygon_antimeridian") in codes(
        validate(form, fields, "en", NOW).errors
    )


def test_circle_needs_a_radius_and_no_points(catalogue: Catalogue) -> None:
    form, fields = example(catalogue, "explanation_request")
    del fields["activity_area"]["radius_m"]
    fields["activity_area"]["points"] = square(38_000_000, 124_000_000)["points"]
    found = codes(validate(form, fields, "ko", NOW).errors)
    assert ("activity_area.radius_m", "required") in found
    assert ("activity_area.points", "not_allowed") in found


def test_segment_intersection_counts_touching() -> None:
    assert geo.segments_intersect((0, 0), (2, 2), (0, 2), (2, 0))
    assert geo.segments_intersect((0, 0), (2, 0), (2, 0), (3, 5))
    assert not geo.segments_intersect((0, 0), (1, 0), (0, 1), (1, 1))


# --- time windows and lead time --------------------------------------------------------------


def test_window_end_must_follow_start(catalogue: Catalogue) -> None:
    form, fields = example(catalogue, "exercise_notice")
    window = fields["exercise_window"]
    window["end_ms"] = window["start_ms"] - 1
    (err,) = validate(form, fields, "ko", NOW).errors
    assert (err.field, err.code) == ("exercise_window.end_ms", "window_order")
    assert err.message.startswith("훈련 기간 › 종료: ")


@pytest.mark.parametrize(
    ("hours_ahead", "late"), [(23, True), (25, False), (24, False), (-1, True)]
)
def test_launch_notice_under_24_hours_ahead_is_marked_late_not_refused(
    catalogue: Catalogue, hours_ahead: int, late: bool
) -> None:
    form, fields = example(catalogue, "launch_notice")
    now = fields["launch_window"]["start_ms"] - hours_ahead * HOUR
    result = validate(form, fields, "en", now)
    assert result.ok
    assert result.lateness == Lateness(
        applies=True,
        late=late,
        required_ms=24 * HOUR,
        lead_ms=hours_ahead * HOUR,
        field="launch_window.start_ms",
    )


def test_late_launch_notice_is_marked_in_the_rendering(catalogue: Catalogue) -> None:
    form, fields = example(catalogue, "launch_notice")
    lateness = validate(
        form, fields, "en", fields["launch_window"]["start_ms"] - 23 * HOUR
    ).lateness
    en = render(form, fields, "en", lateness=lateness)
    ko = render(form, fields, "ko", lateness=lateness)
    assert en.startswith("*** LATE NOTICE: given 23 h 00 min ahead (at least 24 h 00 min")
    assert ko.startswith("*** 기한 경과 통보: 23시간 00분 전에 통보됨")
    on_time = validate(form, fields, "en", NOW).lateness
    assert render(form, fields, "en", lateness=on_time) == render(form, fields, "en")


def test_exercise_lead_time_applies_to_major_exercises_only(catalogue: Catalogue) -> None:
    form, fields = example(catalogue, "exercise_notice")
    now = fields["exercise_window"]["start_ms"] - 13 * 24 * HOUR
    assert validate(form, fields, "en", now).lateness.late
    fields["scale"]["category"] = "minor"
    assert validate(form, fields, "en", now).lateness == Lateness.not_applicable()


def test_raise_for_errors_uses_bad_body_and_names_every_field(catalogue: Catalogue) -> None:
    form, fields = example(catalogue, "launch_notice")
    del fields["impact_area"]
    fields["launch_count"] = 0
    result = validate(form, fields, "en", NOW)
    with pytest.raises(LocalError) as local:
        result.raise_for_errors()
    assert local.value.code == Code.BAD_BODY
    assert {e["field"] for e in local.value.details["errors"]} == {  # type: ignore[attr-defined]
        "impact_area",
        "launch_count",
    }
    with pytest.raises(RejectedInput) as remote:
        result.raise_for_errors(from_peer=True)
    assert remote.value.code == Code.BAD_BODY


# --- rendering -------------------------------------------------------------------------------


def shown_values(fields: dict[str, Any], lang: str) -> list[str]:
    """What a reader must find in the rendering: texts, coordinates, times, as formatted."""
    out: list[str] = []
    for path, value in walk(fields):
        key = next((p for p in reversed(path) if isinstance(p, str)), "")
        if isinstance(value, str) and key not in ENUM_KEYS:
            out += value.split("\n")
        elif isinstance(value, int) and not isinstance(value, bool) and key.endswith("_ms"):
            out.append(timefmt.when(value, lang))
        elif (p := geo.as_point(value)) is not None:
            out.append(timefmt.coordinate(p[0], p[1], lang))
    return out


@pytest.mark.parametrize("form_id", FORM_IDS)
@pytest.mark.parametrize("lang", ["en", "ko"])
def test_rendering_shows_every_field_value(catalogue: Catalogue, form_id: str, lang: str) -> None:
    form, fields = example(catalogue, form_id)
    text = render(form, fields, lang)
    for value in shown_values(fields, lang):
        assert value in text, value
    assert text.endswith("\n") and not text.endswith("\n\n")
    assert render(form, fields, lang) == text  # deterministic


def test_renderings_use_each_language_own_words(catalogue: Catalogue) -> None:
    form, fields = example(catalogue, "launch_notice")
    en, ko = render(form, fields, "en"), render(form, fields, "ko")
    assert "LAUNCH NOTICE" in en and "Impact area:" in en and "space launch vehicle" in en
    assert "발사 통보" in ko and "낙하 구역:" in ko and "우주발사체" in ko
    assert "2030년 3월 10일 01:00 UTC" in ko and "2030-03-10 01:00 UTC" in en
    assert "북위 39.650000° 동경 124.700000°" in ko and "39.650000°N 124.700000°E" in en


def test_unknown_language_is_refused(catalogue: Catalogue) -> None:
    form, fields = example(catalogue, "launch_notice")
    with pytest.raises(LocalError) as exc:
        render(form, fields, "fr")
    assert exc.value.code == Code.INVALID_REQUEST


def test_multiline_free_text_cannot_pose_as_another_field(catalogue: Catalogue) -> None:
    form, fields = example(catalogue, "launch_notice")
    fields["remarks"] = "fine\nImpact area:\n    nowhere"
    text = render(form, fields, "en")
    assert "\nImpact area:\n" in text  # the real heading, once
    assert text.count("\nImpact area:") == 1
    assert "\n    Impact area:\n" in text


def test_html_rendering_escapes_markup_and_text_rendering_keeps_it(catalogue: Catalogue) -> None:
    form, fields = example(catalogue, "incident_report")
    fields["description"] = '<script>alert("x")</script> & co'
    html = render(form, fields, "ko", html=True)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; co" in html
    assert '<script>alert("x")</script> & co' in render(form, fields, "ko")


# --- map picture -----------------------------------------------------------------------------


@pytest.mark.parametrize("form_id", FORM_IDS)
def test_map_svg_parses_as_xml(catalogue: Catalogue, form_id: str) -> None:
    form, fields = example(catalogue, form_id)
    for lang in ("en", "ko"):
        svg = render_map_svg(form, fields, lang)
        root = ET.fromstring(svg)
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert render_map_svg(form, fields, lang) == svg


def test_map_draws_areas_with_labels_and_graticule(catalogue: Catalogue) -> None:
    form, fields = example(catalogue, "launch_notice")
    root = ET.fromstring(render_map_svg(form, fields, "ko"))
    ns = "{http://www.w3.org/2000/svg}"
    assert len(root.findall(f"{ns}polygon")) == 2
    texts = [t.text for t in root.iter(f"{ns}text")]
    assert "발사 구역: Launch site A" in texts and "낙하 구역: Sea area B" in texts
    assert any(t and t.endswith("°N") for t in texts) and any(t and t.endswith("°E") for t in texts)
    assert len(root.findall(f"{ns}line")) >= 4


def test_map_escapes_markup_in_text_fields(catalogue: Catalogue) -> None:
    form, fields = example(catalogue, "launch_notice")
    evil = '</text><script>alert(1)</script> & "q" \x01'
    fields["launch_area"]["name"] = evil
    svg = render_map_svg(form, fields, "en")
    assert "<script>" not in svg
    root = ET.fromstring(svg)
    texts = [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert any('</text><script>alert(1)</script> & "q" \ufffd' in t for t in texts)


def test_map_of_a_notice_without_positions(catalogue: Catalogue) -> None:
    form, fields = example(catalogue, "statement_of_intention")
    root = ET.fromstring(render_map_svg(form, fields, "ko"))
    assert "위치 정보가 없습니다" in "".join(root.itertext())


def test_map_draws_routes_circles_and_points(catalogue: Catalogue) -> None:
    ns = "{http://www.w3.org/2000/svg}"
    form, fields = example(catalogue, "humanitarian_movement")
    fields["destination_area"] = square(38_300_000, 126_500_000)
    root = ET.fromstring(render_map_svg(form, fields))
    assert root.find(f"{ns}polyline") is not None and root.find(f"{ns}polygon") is not None
    form, fields = example(catalogue, "explanation_request")
    fields["activity_position"] = {"lat_e6": 38_050_000, "lon_e6": 124_500_000}
    root = ET.fromstring(render_map_svg(form, fields))
    assert root.find(f"{ns}ellipse") is not None and root.find(f"{ns}circle") is not None


# --- property: valid notices always render ---------------------------------------------------

_CATALOGUE = Catalogue.load()  # hypothesis tests cannot take function-scoped fixtures
lat = st.integers(-90_000_000, 90_000_000)
lon = st.integers(-180_000_000, 180_000_000)
half_lon = st.integers(-90_000_000, 90_000_000)
names = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Cf", "Zl", "Zp")),
    min_size=1,
    max_size=40,
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(
    # Longitudes within half the globe: a wider edge is refused as crossing 180°.
    tri=st.lists(st.tuples(lat, half_lon), min_size=3, max_size=3, unique=True),
    center=st.tuples(lat, lon),
    radius=st.integers(1, 5_000_000),
    position=st.tuples(lat, lon),
    name=names,
    lang=st.sampled_from(["en", "ko"]),
)
def test_rendering_never_raises_for_valid_generated_points(
    tri: list[tuple[int, int]],
    center: tuple[int, int],
    radius: int,
    position: tuple[int, int],
    name: str,
    lang: str,
) -> None:
    catalogue = _CATALOGUE
    ring = [*tri, tri[0]]
    form, fields = example(catalogue, "launch_notice")
    fields["launch_area"] = {
        "shape": "polygon",
        "name": name,
        "points": [{"lat_e6": a, "lon_e6": b} for a, b in ring],
    }
    fields["impact_area"] = {
        "shape": "circle",
        "name": name,
        "center": {"lat_e6": center[0], "lon_e6": center[1]},
        "radius_m": radius,
    }
    result = validate(form, fields, lang, NOW)
    assume(result.ok)
    text = render(form, fields, lang)
    assert timefmt.coordinate(tri[1][0], tri[1][1], lang) in text
    ET.fromstring(render_map_svg(form, fields, lang))

    form, fields = example(catalogue, "incident_report")
    fields["position"] = {"lat_e6": position[0], "lon_e6": position[1]}
    assert validate(form, fields, lang, NOW).ok
    assert timefmt.coordinate(position[0], position[1], lang) in render(form, fields, lang)
    ET.fromstring(render_map_svg(form, fields, lang))


any_int = st.integers(-200_000_000, 200_000_000)
any_point = st.fixed_dictionaries({"lat_e6": any_int, "lon_e6": any_int})
any_leaf = st.one_of(
    st.none(),
    st.booleans(),
    any_int,
    st.text(max_size=5),
    any_point,
    st.fixed_dictionaries({"shape": st.just("polygon"), "points": st.lists(any_point, max_size=6)}),
    st.fixed_dictionaries(
        {"shape": st.just("circle"), "center": any_point, "radius_m": st.integers(-5, 10**9)}
    ),
)
any_json = st.recursive(
    any_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(fields=any_json)
def test_validate_and_map_never_raise_on_arbitrary_json(fields: Any) -> None:
    form = _CATALOGUE.get("launch_notice")
    result = validate(form, fields, "ko", NOW)
    assert all(isinstance(e, FieldError) for e in result.errors)
    ET.fromstring(render_map_svg(form, fields if isinstance(fields, dict) else {"x": fields}))


# --- adding a form is dropping files in a folder ---------------------------------------------

DROP_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["buoy", "position"],
    "additionalProperties": False,
    "properties": {
        "buoy": {"type": "string", "minLength": 1, "maxLength": 40},
        "position": {"$ref": "urn:parley:forms:common:1#/$defs/point"},
    },
}


def drop_form(
    root: Path, *, version: int = 1, folder: str = "buoy_notice", ko: bool = True
) -> Path:
    d = root / folder
    d.mkdir(parents=True)
    meta = {
        "id": "buoy_notice",
        "version": version,
        "title": {"en": "Buoy notice", "ko": "부표 통보"},
        "precedence": "ROUTINE",
        "ack_deadline_hours": 24,
        "labels": {"buoy": {"en": "Buoy", "ko": "부표"}},
    }
    (d / "form.json").write_text(json.dumps(meta), encoding="utf-8")
    (d / "schema.json").write_text(json.dumps(DROP_SCHEMA), encoding="utf-8")
    (d / "en.j2").write_text(
        f"BUOY NOTICE v{version}\nBuoy {{{{ f.buoy }}}} at {{{{ f.position | coord }}}}\n",
        encoding="utf-8",
    )
    if ko:
        (d / "ko.j2").write_text(
            "부표 통보\n부표 {{ f.buoy }}, 위치 {{ f.position | coord }}\n", encoding="utf-8"
        )
    return d


def test_a_form_dropped_into_a_folder_is_picked_up(tmp_path: Path) -> None:
    drop_form(tmp_path)
    catalogue = Catalogue.load(extra=[tmp_path])
    assert "buoy_notice" in [f.id for f in catalogue.list()]
    assert len(catalogue.list()) == len(FORM_IDS) + 1
    form = catalogue.get("buoy_notice")
    fields = {"buoy": "B-7", "position": {"lat_e6": 37_000_000, "lon_e6": 126_000_000}}
    assert validate(form, fields, "en", NOW).ok
    assert (
        render(form, fields, "ko") == "부표 통보\n부표 B-7, 위치 북위 37.000000° 동경 126.000000°\n"
    )
    fields["position"]["lat_e6"] = 91_000_000
    (err,) = validate(form, fields, "ko", NOW).errors
    assert err.field == "position.lat_e6" and err.message.startswith("position › 위도: ")
    # The folder alone (without the packaged forms) still resolves the shared schema.
    alone = Catalogue.load(tmp_path)
    assert [f.id for f in alone.list()] == ["buoy_notice"]


def test_a_newer_version_in_another_folder_becomes_the_default(tmp_path: Path) -> None:
    drop_form(tmp_path / "a")
    drop_form(tmp_path / "b", version=2, folder="buoy_notice@2")
    catalogue = Catalogue.load(tmp_path / "a", extra=[tmp_path / "b"])
    assert catalogue.get("buoy_notice").version == 2
    assert catalogue.get("buoy_notice", version=1).version == 1
    assert len(catalogue.list(all_versions=True)) == 2
    assert catalogue.get("buoy_notice", 1).digest != catalogue.get("buoy_notice", 2).digest


def test_same_version_with_different_files_is_a_conflict(tmp_path: Path) -> None:
    drop_form(tmp_path / "a")
    changed = drop_form(tmp_path / "b")
    (changed / "en.j2").write_text("changed {{ f.buoy }}\n", encoding="utf-8")
    with pytest.raises(LocalError) as exc:
        Catalogue.load(tmp_path / "a", extra=[tmp_path / "b"])
    assert exc.value.code == Code.CONFLICT


def test_a_form_without_a_korean_template_is_refused(tmp_path: Path) -> None:
    drop_form(tmp_path, ko=False)
    with pytest.raises(LocalError) as exc:
        Catalogue.load(extra=[tmp_path])
    assert exc.value.code == Code.INVALID_REQUEST and "ko" in exc.value.message


def test_a_form_with_floats_in_its_files_is_refused(tmp_path: Path) -> None:
    d = drop_form(tmp_path)
    meta = json.loads((d / "form.json").read_text(encoding="utf-8"))
    meta["ack_deadline_hours"] = 1.5
    (d / "form.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(LocalError) as exc:
        Catalogue.load(extra=[tmp_path])
    assert exc.value.code == Code.INVALID_REQUEST


@pytest.mark.parametrize(
    ("ms", "en", "ko"),
    [
        (30_000, "30 s", "30초"),  # a 30-second deadline never reads "0 h 00 min"
        (-5_000, "-5 s", "-5초"),  # overdue by five seconds, not by "0 min"
        (0, "0 s", "0초"),
        (59_999, "59 s", "59초"),
        (60_000, "0 h 01 min", "0시간 01분"),
        (26 * 3_600_000 + 5 * 60_000, "26 h 05 min", "26시간 05분"),
    ],
)
def test_durations_show_seconds_below_a_minute(ms: int, en: str, ko: str) -> None:
    assert timefmt.duration(ms, "en") == en
    assert timefmt.duration(ms, "ko") == ko
