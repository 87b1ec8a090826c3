"""Argos model packages carried in by hand: every rule of station/modelpacks.py with small
crafted zips, `parley translate install-model` / `models` on a real data directory, and the
Argos engine running a tiny real CTranslate2 model built here (tests/argos_package.py)."""

from __future__ import annotations

import importlib.util
import json
import stat
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from parley.cli.main import main
from parley.errors import Code, RejectedInput
from parley.station import modelpacks
from parley.station.boot import in_use
from parley.station.config import load_config
from parley.station.translators import ArgosEngine, UnsupportedPair, engine_from_config
from tests.argos_package import fake_package_dir, metadata, package_dir, zip_dir

HAS_RUNTIME = all(importlib.util.find_spec(m) for m in ("ctranslate2", "sentencepiece"))
needs_runtime = pytest.mark.skipif(
    not HAS_RUNTIME, reason="the `translate` extra (ctranslate2, sentencepiece) is not installed"
)


def good_zip(tmp: Path, meta: dict[str, object] | None = None) -> Path:
    return zip_dir(fake_package_dir(tmp / "src", meta), tmp / "en_ko.argosmodel")


def crafted(tmp: Path, members: dict[str, bytes], links: tuple[str, ...] = ()) -> Path:
    """A zip holding exactly `members` (names as given, even hostile ones) and symlinks."""
    out = tmp / "crafted.argosmodel"
    with zipfile.ZipFile(out, "w") as z:
        for name, body in members.items():
            z.writestr(name, body)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, "/etc/passwd")
    return out


def package_members(root: str = "pkg/", meta: object = None) -> dict[str, bytes]:
    return {
        root + "metadata.json": json.dumps(metadata() if meta is None else meta).encode(),
        root + "model/model.bin": b"x",
        root + "sentencepiece.model": b"x",
    }


def refused(path: Path, data: Path, lang: str = "ko") -> RejectedInput:
    data.mkdir(exist_ok=True)
    with pytest.raises(RejectedInput) as err:
        modelpacks.install(path, data, lang)
    assert not list((data / "models").glob("*")) if (data / "models").exists() else True
    return err.value


# --- the rules, one crafted zip each -------------------------------------------------------------


def test_a_good_package_is_unpacked_privately_under_its_pair(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    info, dest = modelpacks.install(good_zip(tmp_path), data, "ko")
    assert (info.source, info.target, info.version, info.root) == (
        "en",
        "ko",
        "1.1",
        "translate-en_ko-1_1/",
    )
    assert dest == data / "models" / "en_ko"
    assert (dest / "model" / "model.bin").read_bytes() == b"not a model"
    for p in [dest, *dest.rglob("*")]:
        mode = p.stat().st_mode & 0o777
        assert mode == (0o700 if p.is_dir() else 0o600), p
    assert [m.pair for m in modelpacks.installed(data)] == ["en_ko"]
    assert ArgosEngine(dest).name == "Argos Translate Tiny test model 1.1 (en→ko)"


def test_a_package_at_the_top_of_the_zip_is_taken_too(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    info, dest = modelpacks.install(crafted(tmp_path, package_members("")), data, "en")
    assert info.root == "" and (dest / "metadata.json").is_file()


def test_installing_again_replaces_the_pair_whole(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    modelpacks.install(good_zip(tmp_path), data, "ko")
    (data / "models" / "en_ko" / "stale.txt").write_text("from the old package")
    newer = crafted(tmp_path, package_members(meta=metadata(package_version="1.2")))
    info, dest = modelpacks.install(newer, data, "ko")
    assert info.version == "1.2" and not (dest / "stale.txt").exists()
    assert sorted(p.name for p in (data / "models").iterdir()) == ["en_ko"]  # no leftovers


@pytest.mark.parametrize(
    "name",
    ["../evil.txt", "pkg/../../evil.txt", "/tmp/evil.txt", "pkg\\..\\evil.txt", "C:/evil.txt",
     "pkg/./model.bin", "pkg/\x1b[31mred"],
)  # fmt: skip
def test_a_member_outside_the_package_folder_is_refused(tmp_path: Path, name: str) -> None:
    data = tmp_path / "data"
    err = refused(crafted(tmp_path, package_members() | {name: b"pwned"}), data)
    assert err.code == Code.MALFORMED and err.details["reason"] == "unsafe_path"
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/evil.txt").exists()


def test_two_members_with_one_name_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "twice.argosmodel"
    with zipfile.ZipFile(out, "w") as z:
        for name, body in package_members().items():
            z.writestr(name, body)
        with pytest.warns(UserWarning, match="Duplicate name"):
            z.writestr("pkg/model/model.bin", b"second")
    assert refused(out, tmp_path / "data").details["reason"] == "unsafe_path"


def test_a_symlink_is_refused(tmp_path: Path) -> None:
    err = refused(crafted(tmp_path, package_members(), links=("pkg/model/vocab",)), tmp_path / "d")
    assert err.code == Code.MALFORMED and err.details["reason"] == "symlink"


def test_too_large_and_too_many_are_refused_before_extracting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = crafted(tmp_path, package_members() | {"pkg/stanza/big.bin": b"\0" * 4096})
    monkeypatch.setattr(modelpacks, "MAX_TOTAL_BYTES", 4000)
    err = refused(big, tmp_path / "d")
    assert err.code == Code.OVERSIZED and err.details["reason"] == "too_large"
    monkeypatch.setattr(modelpacks, "MAX_TOTAL_BYTES", 1 << 30)
    monkeypatch.setattr(modelpacks, "MAX_MEMBERS", 3)
    err = refused(big, tmp_path / "d")
    assert err.code == Code.OVERSIZED and err.details["reason"] == "too_many_members"


def test_a_member_that_unpacks_to_more_than_it_declares_is_cut_off(tmp_path: Path) -> None:
    """A zip bomb's central directory lies about sizes: extraction counts what it writes."""
    path = crafted(tmp_path, package_members() | {"pkg/stanza/big.bin": b"A" * 100_000})
    raw = bytearray(path.read_bytes())
    # Shrink the declared size in the central directory entry (offset 24 from its signature).
    cd = raw.rfind(b"PK\x01\x02", 0, raw.find(b"PK\x05\x06"))
    assert raw[cd + 46 : cd + 46 + 18] == b"pkg/stanza/big.bin"
    raw[cd + 24 : cd + 28] = (1000).to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    err = refused(path, tmp_path / "d")
    assert err.details["reason"] in ("too_large", "not_zip")
    assert not any(p.name == "big.bin" for p in (tmp_path / "d").rglob("*"))


@pytest.mark.parametrize(
    ("members", "reason"),
    [
        ({"pkg/model/model.bin": b"x", "pkg/sentencepiece.model": b"x"}, "no_metadata"),
        ({"a/b/metadata.json": json.dumps(metadata()).encode()}, "no_metadata"),
        (package_members() | {"pkg/metadata.json": b"{not json"}, "bad_metadata"),
        (package_members(meta=["en", "ko"]), "bad_metadata"),
        (package_members() | {"pkg/metadata.json": b" " * 70_000 + b"{}"}, "bad_metadata"),
        ({k: v for k, v in package_members().items() if "model.bin" not in k}, "missing_file"),
        ({k: v for k, v in package_members().items() if "sentencepiece" not in k}, "missing_file"),
    ],
)
def test_a_package_without_its_metadata_or_files_is_refused(
    tmp_path: Path, members: dict[str, bytes], reason: str
) -> None:
    err = refused(crafted(tmp_path, members), tmp_path / "d")
    assert err.code == Code.MALFORMED and err.details["reason"] == reason


@pytest.mark.parametrize(
    ("meta", "says"),
    [
        (metadata(source="ko", target="ko"), "into itself"),
        (metadata(source="english"), "not a language code"),
        ({"to_code": "ko"}, "from_code None"),
        (metadata(target="../../x"), "not a language code"),
        (metadata(source="fr", target="de"), "this station works in ko"),
    ],
)
def test_wrong_languages_are_refused(tmp_path: Path, meta: dict[str, object], says: str) -> None:
    err = refused(crafted(tmp_path, package_members(meta=meta)), tmp_path / "d")
    assert err.code == Code.INVALID_REQUEST and err.details["reason"] == "wrong_languages"
    assert says in err.message


def test_a_file_that_is_not_a_zip_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "x.argosmodel"
    bad.write_bytes(b"MZ\x90\x00 not a zip at all")
    err = refused(bad, tmp_path / "d")
    assert err.code == Code.MALFORMED and err.details["reason"] == "not_zip"


# --- the command ---------------------------------------------------------------------------------


class Ran:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def parley(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    """`parley ARGS --data DATA` run by its own entry point, in this process (quicker than a
    subprocess on a loaded machine; the same code, exit status and output)."""

    def run(data: Path, *args: str) -> Ran:
        monkeypatch.setattr(sys, "argv", ["parley", *args, "--data", str(data)])
        capsys.readouterr()
        try:
            main()
            rc = 0
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 1
        got = capsys.readouterr()
        return Ran(rc, got.out, got.err)

    return run


@pytest.fixture
def station(tmp_path: Path, parley: Any) -> Path:
    data = tmp_path / "north"
    res = parley(data, "station", "init", "--name", "North", "--lang", "ko")
    assert res.returncode == 0, res.stderr
    return data


def test_install_model_sets_the_engine_and_models_lists_it(
    tmp_path: Path, station: Path, parley: Any
) -> None:
    assert "no model installed" in parley(station, "translate", "models").stdout
    res = parley(station, "translate", "install-model", str(good_zip(tmp_path)), "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["pair"] == "en_ko" and out["in_use"] and out["loaded"] is False  # fake model
    cfg = load_config(station)
    assert cfg.translation == {"engine": "argos", "model_dir": str(station / "models" / "en_ko")}
    assert engine_from_config(cfg.translation).languages() == [("en", "ko")]
    listed = json.loads(parley(station, "translate", "models", "--json").stdout)
    assert [(m["pair"], m["in_use"]) for m in listed] == [("en_ko", True)]
    assert "en_ko" in parley(station, "translate", "models").stdout


def test_install_model_refuses_a_bad_file_and_changes_nothing(
    tmp_path: Path, station: Path, parley: Any
) -> None:
    before = (station / "station.json").read_text()
    hostile = crafted(tmp_path, package_members() | {"../../evil": b"x"})
    res = parley(station, "translate", "install-model", str(hostile))
    assert res.returncode == 1 and "error [malformed]" in res.stderr and "outside" in res.stderr
    res = parley(station, "translate", "install-model", str(tmp_path / "missing.argosmodel"))
    assert res.returncode == 1 and "error [not_found]" in res.stderr
    assert (station / "station.json").read_text() == before
    assert not (station / "models").exists() or not list((station / "models").iterdir())


def test_install_model_waits_for_the_station_to_stop(
    tmp_path: Path, station: Path, parley: Any
) -> None:
    with in_use(station):  # as `parley station run` holds it
        res = parley(station, "translate", "install-model", str(good_zip(tmp_path)))
    assert res.returncode == 1 and "error [conflict]" in res.stderr and "stop it" in res.stderr
    assert not (station / "models").exists()


def test_install_model_no_use_leaves_the_engine_alone(
    tmp_path: Path, station: Path, parley: Any
) -> None:
    res = parley(station, "translate", "install-model", str(good_zip(tmp_path)), "--no-use")
    assert res.returncode == 0, res.stderr
    assert load_config(station).translation == {}
    assert json.loads(parley(station, "translate", "models", "--json").stdout)[0]["in_use"] is False


# --- a real, tiny model --------------------------------------------------------------------------


@needs_runtime
def test_the_argos_engine_runs_a_real_ctranslate2_model(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    pkg = zip_dir(package_dir(tmp_path / "src"), tmp_path / "tiny.argosmodel")
    _, dest = modelpacks.install(pkg, data, "ko")
    engine = ArgosEngine(dest)
    engine.load()
    out = engine.translate("we propose talks. the hotline is open", "en", "ko")
    assert isinstance(out, str) and out.strip()
    assert out == ArgosEngine(dest).translate("we propose talks. the hotline is open", "en", "ko")
    two = engine.translate("the hotline\nis open", "en", "ko")
    assert two.count("\n") == 1  # paragraphs keep their breaks
    # Output is bounded even for a model that never ends a sentence.
    assert len(engine.translate("table", "en", "ko").split()) <= 2 * 1 + 16
    with pytest.raises(UnsupportedPair):
        engine.translate("hotline", "ko", "en")


@needs_runtime
def test_a_corrupt_model_is_an_engine_error_not_a_crash(
    tmp_path: Path, station: Path, parley: Any
) -> None:
    src = package_dir(tmp_path / "src")
    (src / "model" / "model.bin").write_bytes(b"\0" * 64)
    res = parley(station, "translate", "install-model", str(zip_dir(src, tmp_path / "c.zip")))
    assert res.returncode == 0, res.stderr
    assert "not loaded: cannot load" in res.stdout


@needs_runtime
def test_install_model_loads_a_real_model(tmp_path: Path, station: Path, parley: Any) -> None:
    pkg = zip_dir(package_dir(tmp_path / "src"), tmp_path / "tiny.argosmodel")
    res = parley(station, "translate", "install-model", str(pkg), "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["loaded"] is True
