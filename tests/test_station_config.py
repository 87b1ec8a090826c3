"""station.json is checked when it is read: every timing and limit has a range a station can run
with, and a file that is not what it should be gets a clear error naming the field."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest

from parley.errors import LocalError
from parley.station import config
from parley.station.config import Config, Limits, Timings, init_dir, load_config


def test_every_timing_and_limit_has_a_range() -> None:
    """A new field without a range fails here."""
    assert {f.name for f in fields(Timings)} == set(config._TIMING_RANGES)
    assert {f.name for f in fields(Limits)} == set(config._LIMIT_RANGES)
    for ranges in (config._TIMING_RANGES, config._LIMIT_RANGES):
        assert all(lo <= hi for lo, hi in ranges.values())


@pytest.mark.parametrize(
    ("section", "cls", "ranges"),
    [("timings", Timings, config._TIMING_RANGES), ("limits", Limits, config._LIMIT_RANGES)],
)
def test_the_defaults_fit_and_each_bound_is_checked(section, cls, ranges) -> None:
    cls()  # the defaults are in range
    for name, (lo, hi) in ranges.items():
        cls(**{name: lo})
        cls(**{name: hi})
        for bad in (lo - 1, hi + 1, str(lo), float(lo), True):
            with pytest.raises(LocalError, match=rf"{section}\.{name} must be an integer"):
                cls(**{name: bad})


@pytest.fixture
def station_dir(tmp_path: Path) -> Path:
    data = tmp_path / "st"
    data.mkdir(mode=0o700)
    init_dir(data, Config(name="South", lang="en"))
    return data


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda raw: raw["timings"].update(heartbeat_ms=0), r"timings\.heartbeat_ms"),
        (lambda raw: raw["timings"].update(retry_base_ms=-5), r"timings\.retry_base_ms"),
        (lambda raw: raw["limits"].update(peer_body_bytes=10**13), r"limits\.peer_body_bytes"),
        (lambda raw: raw["limits"].update(max_connectons=5), r"max_connectons"),
        (lambda raw: raw.update(folders={"North": "relative/dir"}), r"folders maps a peer"),
        (lambda raw: raw.update(folders=["/mnt/x"]), r"folders maps a peer"),
        (lambda raw: raw.update(folders={"": "/mnt/x"}), r"folders maps a peer"),
        (lambda raw: raw.update(event_loop="trio"), r"event_loop is one of uvloop, asyncio"),
        (lambda raw: raw.update(http_parser="h2"), r"http_parser is one of httptools, h11"),
        (lambda raw: raw["limits"].update(header_bytes=512), r"limits\.header_bytes"),
    ],
)
def test_a_station_json_out_of_range_is_refused_by_name(station_dir: Path, edit, message) -> None:
    path = station_dir / config.CONFIG
    raw = json.loads(path.read_text())
    edit(raw)
    path.write_text(json.dumps(raw))
    with pytest.raises(LocalError, match=message) as err:
        load_config(station_dir)
    assert str(path) in err.value.message


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", "\xff"])
def test_a_station_json_that_is_not_an_object_is_refused(station_dir: Path, text: str) -> None:
    (station_dir / config.CONFIG).write_bytes(text.encode("latin-1"))
    with pytest.raises(LocalError, match="JSON"):
        load_config(station_dir)


def test_a_peer_folder_is_found_by_id_or_name(station_dir: Path) -> None:
    path = station_dir / config.CONFIG
    raw = json.loads(path.read_text())
    raw["folders"] = {"North": "/mnt/north", "stabc": "/mnt/abc"}
    path.write_text(json.dumps(raw))
    cfg = load_config(station_dir)
    assert cfg.folder_for("stxyz", "North") == "/mnt/north"
    assert cfg.folder_for("stabc", "UN") == "/mnt/abc"
    assert cfg.folder_for("stxyz", "UN") is None
