"""Notice inputs a person types (domain/forms/inputs.py), and their use by the notice desk and
the operator API: times in a zone, durations, lengths, positions in decimal degrees and DMS,
areas, windows; the preview every member would read (issue 15)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from parley.app.build import build_app
from parley.domain import notices
from parley.domain.forms import Catalogue, basemap, inputs, messages, render_map_svg, svgmap
from parley.domain.forms.inputs import InputError, parse_point, parse_time, zone
from parley.domain.notices import InvalidNotice
from parley.errors import Forbidden
from parley.station.node import Station
from parley.station.notices import desk
from parley.station.users import BOOTSTRAP, User
from tests.net import Stations, wait
from tests.pair import Clock, Net, introduce, make_station, open_channel

SEOUL = zone("Asia/Seoul")
ZONES = [UTC, SEOUL, timezone(timedelta(hours=5, minutes=30)), zone("-03:00")]
HOUR = 3_600_000

lat_e6 = st.integers(-90_000_000, 90_000_000)
lon_e6 = st.integers(-180_000_000, 180_000_000)


# --- positions ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "lat", "lon"),
    [
        ("37.5, 127.25", 37_500_000, 127_250_000),
        ("37.5 127.25", 37_500_000, 127_250_000),
        ("37.5N 127.25E", 37_500_000, 127_250_000),
        ("127.25E 37.5N", 37_500_000, 127_250_000),
        ("N37.5 E127.25", 37_500_000, 127_250_000),
        ("-33.9, 151.2", -33_900_000, 151_200_000),
        ("33.9S 70.1W", -33_900_000, -70_100_000),
        ("37°30'N 127°15'E", 37_500_000, 127_250_000),
        ("37°30'15\"N 127°0'0\"E", 37_504_167, 127_000_000),
        ("37º30′15″N, 127º00′00″E", 37_504_167, 127_000_000),
        ("37 30 15 N, 127 0 0 E", 37_504_167, 127_000_000),
        ("37.500000°N 127.000000°E", 37_500_000, 127_000_000),  # as a notice shows it (en)
        ("북위 37.500000° 동경 127.000000°", 37_500_000, 127_000_000),  # (ko)
        ("0.0000005, 0", 0, 0),  # half a micro-degree rounds to even
        ("0.0000015, 0", 2, 0),
    ],
)
def test_positions_in_decimal_degrees_and_dms(text: str, lat: int, lon: int) -> None:
    assert parse_point(text) == {"lat_e6": lat, "lon_e6": lon}


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "bad_coordinate"),
        ("Seoul", "bad_coordinate"),
        ("37.5", "bad_coordinate"),
        ("37 61 0 N, 127 E", "bad_coordinate"),  # 61 minutes
        ("37.5° 30' N, 127 E", "bad_coordinate"),  # decimal degrees and minutes at once
        ("-37 S, 127 E", "bad_coordinate"),  # sign and hemisphere: which?
        ("37N 38N", "bad_coordinate"),
        ("91N 127E", "lat_range"),
        ("37N 181E", "lon_range"),
        ("1, 2, 3", "bad_coordinate"),
    ],
)
def test_what_is_not_a_position_is_refused_with_a_code(text: str, code: str) -> None:
    with pytest.raises(InputError) as err:
        parse_point(text)
    assert err.value.code == code


@given(lat_e6, lon_e6)
def test_a_position_as_shown_reads_back_exactly(lat: int, lon: int) -> None:
    p = {"lat_e6": lat, "lon_e6": lon}
    assert parse_point(inputs.point_text(p)) == p


@given(
    st.integers(0, 89), st.integers(0, 59), st.integers(0, 59), st.integers(0, 179),
    st.integers(0, 59), st.integers(0, 59), st.booleans(), st.booleans(),
)  # fmt: skip
def test_dms_is_exact_fraction_arithmetic(
    d: int, m: int, s: int, d2: int, m2: int, s2: int, south: bool, west: bool
) -> None:
    text = f"{d}°{m}'{s}\"{'S' if south else 'N'} {d2}°{m2}'{s2}\"{'W' if west else 'E'}"
    want_lat = round((d + Fraction(m, 60) + Fraction(s, 3600)) * 1_000_000)
    want_lon = round((d2 + Fraction(m2, 60) + Fraction(s2, 3600)) * 1_000_000)
    got = parse_point(text)
    assert got == {
        "lat_e6": -want_lat if south else want_lat,
        "lon_e6": -want_lon if west else want_lon,
    }


@settings(max_examples=300)
@given(st.text(max_size=80))
def test_any_text_is_a_value_or_an_input_error(text: str) -> None:
    for parse in (
        parse_point,
        inputs.parse_area,
        inputs.parse_duration,
        inputs.parse_length,
        inputs.parse_integer,
        lambda t: parse_time(t, SEOUL),
        lambda t: inputs.parse_window(t, SEOUL),
    ):
        try:
            parse(text)
        except InputError as exc:
            assert exc.code in messages.MESSAGES["en"] and exc.code in messages.MESSAGES["ko"]


# --- times, durations, lengths ------------------------------------------------------------------


def test_times_are_read_in_the_zone_given_or_named() -> None:
    utc_six = 1_898_575_200_000  # 2030-03-01 06:00 UTC
    assert parse_time("2030-03-01 15:00", SEOUL) == utc_six
    assert parse_time("2030-03-01 06:00 UTC", SEOUL) == utc_six
    assert parse_time("2030-03-01T06:00Z", SEOUL) == utc_six
    assert parse_time("2030-03-01 15:00 +09:00", UTC) == utc_six
    assert parse_time("2030-03-01 15:00 Asia/Seoul", UTC) == utc_six
    assert parse_time("2030년 3월 1일 06:00 UTC", SEOUL) == utc_six  # as a notice shows it
    for bad in ("2030-02-30 10:00", "2030-03-01 24:00", "tomorrow", "2030-03-01 10:00 Mars/Base"):
        with pytest.raises(InputError):
            parse_time(bad, SEOUL)
    with pytest.raises(InputError) as gap:  # clocks in New York skip 02:00-03:00 that night
        parse_time("2030-03-10 02:30", zone("America/New_York"))
    assert gap.value.code == "bad_time_gap"


@given(st.integers(0, 4_102_444_800).map(lambda s: s * 1000), st.sampled_from(ZONES))
def test_a_time_as_shown_reads_back_exactly(ms: int, tz: Any) -> None:
    assert parse_time(inputs.time_text(ms, tz), UTC) == ms


def test_windows_take_an_end_time_a_clock_time_or_a_duration() -> None:
    start = parse_time("2030-03-01 15:00", SEOUL)
    for text in (
        "2030-03-01 15:00 / 2030-03-01 19:00",
        "2030-03-01 15:00 / 19:00",
        "2030-03-01 15:00 / +4h",
        "2030-03-01 15:00 ~ +240 min",
        "2030-03-01 15:00 Asia/Seoul to 2030-03-01 10:00 UTC",
        "2030-03-01 06:00 UTC / 10:00",  # the end in the start's zone
    ):
        assert inputs.parse_window(text, SEOUL) == {"start_ms": start, "end_ms": start + 4 * HOUR}


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("4h", 4 * HOUR),
        ("2 h 30 min", 9_000_000),
        ("2h30m", 9_000_000),
        ("90 min", 5_400_000),
        ("1 d", 24 * HOUR),
        ("1:30", 5_400_000),
        ("PT2H30M", 9_000_000),
        ("2시간 30분", 9_000_000),
        ("1.5 h", 5_400_000),
        ("45 s", 45_000),
    ],
)
def test_durations(text: str, ms: int) -> None:
    assert inputs.parse_duration(text) == ms


def test_lengths_and_numbers_with_units() -> None:
    assert inputs.parse_length("20 km") == 20_000
    assert inputs.parse_length("3 nmi") == 5_556
    assert inputs.parse_length("2.5 NM") == 4_630
    assert inputs.parse_length("500") == 500
    assert inputs.parse_integer("12,000") == 12_000
    assert inputs.parse_value("integer", "2 d", UTC, "answer_within_hours") == 48
    with pytest.raises(InputError) as err:
        inputs.parse_value("integer", "90 min", UTC, "answer_within_hours")
    assert err.value.code == "whole_units"
    for bad in ("twelve", "1.5", "1,2,3"):
        with pytest.raises(InputError):
            inputs.parse_integer(bad)


# --- areas --------------------------------------------------------------------------------------


def test_areas_are_circles_or_corner_lists_closed_for_you() -> None:
    circle = inputs.parse_area("Bay C: circle 38.1N 124.6E 20 km")
    assert circle == {
        "shape": "circle",
        "name": "Bay C",
        "center": {"lat_e6": 38_100_000, "lon_e6": 124_600_000},
        "radius_m": 20_000,
    }
    poly = inputs.parse_area("38N 124E; 38N 125E\n37N 125E")
    assert poly["shape"] == "polygon" and poly["points"][0] == poly["points"][-1]
    assert len(poly["points"]) == 4
    with pytest.raises(InputError):
        inputs.parse_area("38N 124E; 38N 125E")  # two corners are not an area


@given(st.lists(st.tuples(lat_e6, lon_e6), min_size=3, max_size=12, unique=True))
def test_an_area_as_shown_reads_back_exactly(corners: list[tuple[int, int]]) -> None:
    pts = [{"lat_e6": a, "lon_e6": b} for a, b in corners]
    area = {"shape": "polygon", "points": [*pts, pts[0]], "name": "A"}
    assert inputs.parse_area(inputs.area_text(area)) == area


def test_every_example_of_every_form_reads_back_from_its_text() -> None:
    for form in Catalogue.load().list():
        for name, spec in form.schema["properties"].items():
            if form.example and name in form.example:
                kind = inputs.kind_of(spec)
                text = inputs.as_text(kind, form.example[name], SEOUL)
                assert inputs.parse_value(kind, text, SEOUL, name) == form.example[name], name


def test_parse_inputs_names_each_bad_field_in_the_asked_language() -> None:
    form = Catalogue.load().get("launch_notice")
    parsed = inputs.parse_inputs(
        form,
        {
            "launch_window": "2030-03-01 25:00 / +4h",
            "launch_area": "38N 124E; somewhere",
            "impact_area": "circle 40N 131E 50 km",
            "vehicle_kind": "rocket",
            "launch_count": "one",
            "colour": "red",
        },
        SEOUL,
        "ko",
    )
    assert {e.field: e.code for e in parsed.errors} == {
        "launch_window": "bad_time",
        "launch_area": "bad_coordinate",
        "vehicle_kind": "enum",
        "launch_count": "bad_number",
        "colour": "unknown_field",
    }
    assert parsed.fields == {
        "impact_area": {
            "shape": "circle",
            "center": {"lat_e6": 40_000_000, "lon_e6": 131_000_000},
            "radius_m": 50_000,
        }
    }
    assert next(e for e in parsed.errors if e.field == "launch_window").message.startswith(
        "발사 예정 시간대:"
    )
    with pytest.raises(InputError):
        inputs.parse_inputs(form, {f"x{i}": "1" for i in range(200)}, SEOUL, "en")


# --- the notice desk and the API ----------------------------------------------------------------


LAUNCH_INPUTS = {
    "launch_window.start": "2030-03-01 15:00",
    "launch_window.end": "+4h",
    "launch_area": "39°39'N 124°42'E; 39°39'N 124°45'E; 39°36'N 124°45'E; 39°36'N 124°42'E",
    "launch_area.name": "Sohae",
    "impact_area": "circle 40N 131.5E 60 km",
    "vehicle_kind": "space launch vehicle",
    "launch_count": "1",
}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Net, Clock, Station, Station, str]]:
    clock = Clock()
    a = make_station(tmp_path / "a", "South", "en", clock)
    a.cfg.timezone = "Asia/Seoul"
    b = make_station(tmp_path / "b", "North", "ko", clock)
    introduce(a, b)
    net = Net()
    yield net, clock, a, b, open_channel(net, a, b)
    notices.use_catalogue(Catalogue.load())


def test_a_notice_sent_from_typed_inputs_carries_the_integers(
    world: tuple[Net, Clock, Station, Station, str],
) -> None:
    net, _, a, b, ch = world
    sent = desk(a).send_notice(BOOTSTRAP, ch, "launch_notice", None, texts=LAUNCH_INPUTS)
    net.deliver(a, b)
    seen = desk(b).notice_view(BOOTSTRAP, ch, sent["hash"])
    start = 1_898_575_200_000  # 15:00 in Seoul is 06:00 UTC
    assert seen["fields"]["launch_window"] == {"start_ms": start, "end_ms": start + 4 * HOUR}
    assert seen["fields"]["launch_area"]["points"][0] == {"lat_e6": 39_650_000,
                                                          "lon_e6": 124_700_000}  # fmt: skip
    assert seen["fields"]["launch_area"]["name"] == "Sohae"
    assert "2030년 3월 1일 06:00 UTC" in seen["text"]

    with pytest.raises(InvalidNotice) as err:
        desk(a).send_notice(
            BOOTSTRAP, ch, "launch_notice", None, texts=LAUNCH_INPUTS | {"launch_count": "x"}
        )
    assert [f["field"] for f in err.value.details["fields"]] == ["launch_count"]


def test_preview_shows_each_member_its_language_and_warns_when_late(
    world: tuple[Net, Clock, Station, Station, str],
) -> None:
    _, clock, a, _, ch = world
    soon = inputs.time_text(clock() + 3 * HOUR, SEOUL)
    before = a.store.q("SELECT COUNT(*) FROM envelopes")
    p = desk(a).preview(
        BOOTSTRAP, ch, "launch_notice", texts=LAUNCH_INPUTS | {"launch_window.start": soon}
    )
    assert p["ok"] and p["late"] and p["warning"].startswith("*** LATE NOTICE")
    by_name = {r["name"]: r for r in p["readers"]}
    assert by_name["North"]["lang"] == "ko" and by_name["South"]["lang"] == "en"
    assert by_name["North"]["text"].startswith("*** 기한 경과 통보")
    assert "<svg" in by_name["North"]["svg"] and "낙하 구역" in by_name["North"]["svg"]
    assert "Asia/Seoul" in p["times"]["launch_window"] and "UTC" in p["times"]["launch_window"]
    assert a.store.q("SELECT COUNT(*) FROM envelopes") == before  # nothing sent

    bad = desk(a).preview(BOOTSTRAP, ch, "launch_notice", texts={"launch_count": "0"})
    assert not bad["ok"] and not bad["readers"]
    assert {e["field"] for e in bad["errors"]} >= {"launch_count", "launch_window"}

    reader = User("watcher", frozenset({"auditor"}))
    with pytest.raises(Forbidden):  # the same role as sending
        desk(a).preview(reader, ch, "launch_notice", texts=LAUNCH_INPUTS)


def test_api_sends_and_previews_from_inputs_and_bounds_them(
    world: tuple[Net, Clock, Station, Station, str],
) -> None:
    _, _, a, _, ch = world
    api = TestClient(build_app(a, "tok-a"), headers={"Authorization": "Bearer tok-a"})
    form = api.get("/api/v1/forms/launch_notice").json()
    assert form["timezone"] == "Asia/Seoul"
    kinds = {f["name"]: f["input"] for f in form["inputs"]}
    assert kinds["launch_window"] == "window" and kinds["impact_area"] == "area"
    example = {f["name"]: f["example"] for f in form["inputs"]}
    assert example["launch_window"].endswith("Asia/Seoul")

    p = api.post(
        f"/api/v1/channels/{ch}/notices/preview",
        json={"form": "launch_notice", "inputs": LAUNCH_INPUTS, "timezone": "UTC"},
    )
    assert p.status_code == 200, p.text
    assert p.json()["fields"]["launch_window"]["start_ms"] == 1_898_575_200_000 + 9 * HOUR

    sent = api.post(
        f"/api/v1/channels/{ch}/notices", json={"form": "launch_notice", "inputs": LAUNCH_INPUTS}
    )
    assert sent.status_code == 200, sent.text
    both = api.post(
        f"/api/v1/channels/{ch}/notices",
        json={"form": "launch_notice", "inputs": LAUNCH_INPUTS, "fields": {}},
    )
    assert both.status_code == 400
    huge = api.post(
        f"/api/v1/channels/{ch}/notices",
        json={"form": "launch_notice", "inputs": {"remarks": "x" * 20_000}},
    )
    assert huge.status_code == 422
    bad_zone = api.post(
        f"/api/v1/channels/{ch}/notices/preview",
        json={"form": "launch_notice", "inputs": LAUNCH_INPUTS, "timezone": "Mars/Base"},
    )
    assert bad_zone.status_code == 400 and bad_zone.json()["code"] == "invalid_request"


# --- the base map -------------------------------------------------------------------------------


def test_the_map_draws_the_korean_coast_from_the_packaged_base_map() -> None:
    form = Catalogue.load().get("launch_notice")
    assert form.example is not None
    svg = render_map_svg(form, form.example, "ko")
    root = ET.fromstring(svg)
    land = [e for e in root.iter() if e.get("fill") == svgmap.LAND]
    assert land and len(land[0].get("d", "")) > 1000  # a coastline, not a box
    assert render_map_svg(form, form.example, "ko") == svg  # same bytes every time
    assert len(svg) < 200_000
    # Seoul (37.57N 126.98E) is on land and the middle of the East Sea is not.
    rings = basemap.land_rings(37, 38, 126.5, 127.5)
    assert rings
    assert not basemap.land_rings(39.5, 40.0, 133.0, 133.5)
    packaged = files("parley.domain.forms").joinpath("mapdata/world-50m.bin").read_bytes()
    assert len(packaged) < 250_000  # the wheel stays small


def test_a_point_in_the_open_ocean_still_gets_a_readable_map() -> None:
    form = Catalogue.load().get("incident_report")
    assert form.example is not None
    fields = dict(form.example) | {"position": {"lat_e6": 0, "lon_e6": -140_000_000}}
    fields.pop("area", None)
    root = ET.fromstring(render_map_svg(form, fields, "en"))
    assert root.tag.endswith("svg")  # no land to draw, and no error either


# --- the command line, against real stations ----------------------------------------------------


def test_cli_previews_and_sends_a_notice_typed_field_by_field(tmp_path: Path) -> None:
    with Stations(tmp_path, [("South", "en"), ("North", "ko")]) as net:
        ch = net.open_channel("South", ["North"])
        start = datetime.now(UTC) + timedelta(days=3)
        sets = [
            f"launch_window={start:%Y-%m-%d} 09:00 UTC / +4h",
            "launch_area=39°39'N 124°42'E; 39°39'N 124°45'E; 39°36'N 124°45'E",
            "launch_area.name=Sohae",
            "impact_area=circle 40N 131.5E 60 km",
            "vehicle_kind=space launch vehicle",
        ]
        args = [a for s in sets for a in ("--set", s)]
        shown = net.cli("South", "notice", "send", *args, "--preview", "--", ch,
                        "launch_notice").stdout  # fmt: skip
        assert "North reads (ko)" in shown and "발사 통보" in shown and "nothing was sent" in shown
        assert not net.api("South").get(f"/channels/{ch}/notices")
        bad = net.cli("South", "notice", "send", *args, "--set", "launch_count=many", "--",
                      ch, "launch_notice", ok=False)  # fmt: skip
        assert bad.returncode == 1 and "launch_count" in bad.stderr
        out = net.cli("South", "notice", "send", *args, "--", ch, "launch_notice").stdout
        h = out.split(" hash ")[1].split()[0]
        north = net.api("North")
        wait(lambda: any(n["hash"] == h for n in north.get(f"/channels/{ch}/notices")),
             what="North to receive the notice")  # fmt: skip
        map_file = tmp_path / "map.svg"
        net.cli("North", "notice", "show", "--map", str(map_file), "--", ch, h[:10])
        root = ET.parse(map_file).getroot()
        assert any(e.get("fill") == svgmap.LAND for e in root.iter())
        [n] = north.get(f"/channels/{ch}/notices")
        seen = north.get(f"/channels/{ch}/notices/{n['hash']}")
        assert seen["fields"]["launch_area"]["points"][1] == {"lat_e6": 39_650_000,
                                                              "lon_e6": 124_750_000}  # fmt: skip
