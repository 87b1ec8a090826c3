"""Argos model packages carried in by hand (an air-gapped station downloads nothing): checked
whole before one byte is extracted, then unpacked into DATA/models/<from>_<to>/.

An `.argosmodel` file is a zip of one directory holding `metadata.json` (from_code, to_code,
package_version …), `model/` (a CTranslate2 model: model.bin and its vocabularies) and
`sentencepiece.model`; Argos packages may also carry `stanza/` and a README, which are kept but
not used (ArgosEngine splits sentences itself). The file comes from outside, so it is input like
a bundle: every rule below is checked on the zip's central directory first, and extraction then
writes only what was checked, counting the bytes it writes.

Refused (RejectedInput, nothing written; `details.reason` says which rule):

    reason             code        rule
    not_zip            malformed   not a readable zip archive
    too_many_members   oversized   more than MAX_MEMBERS entries
    too_large          oversized   more than MAX_TOTAL_BYTES unpacked, or a member that unpacks
                                   to more than it declared (a zip bomb)
    unsafe_path        malformed   an absolute name, `..`, a backslash, a drive, a control
                                   character, or two members with one name
    symlink            malformed   a symbolic link (or any member that is not a file or folder)
    encrypted          malformed   a password-protected member
    no_metadata        malformed   no metadata.json at the package root
    bad_metadata       malformed   metadata.json not a JSON object, or larger than 64 KiB
    wrong_languages    invalid_request  from_code/to_code missing, not language codes, equal, or
                                   neither of them the station's working language
    missing_file       malformed   no model/model.bin or no sentencepiece.model

Installing replaces an older package for the same pair only once the new one is fully written
(it is unpacked beside it, then renamed into place).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from parley.errors import Code, RejectedInput

MODELS_DIR = "models"
MAX_MEMBERS = 2_000
MAX_TOTAL_BYTES = 2 * 1024**3  # real packages unpack to 100–400 MB
MAX_METADATA_BYTES = 64 * 1024
REQUIRED = ("model/model.bin", "sentencepiece.model")
_LANG = re.compile(r"^[a-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})?$")  # ISO 639, optionally a script
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class PackageInfo:
    """What a checked package holds: its pair, its own name and version, and its size."""

    source: str
    target: str
    name: str
    version: str
    members: int
    unpacked_bytes: int
    root: str  # the folder inside the zip that holds metadata.json ("" when at the top)

    @property
    def pair(self) -> str:
        return f"{self.source}_{self.target}"


def _refuse(code: Code, reason: str, message: str) -> RejectedInput:
    return RejectedInput(code, message, reason=reason)


def _safe_name(name: str) -> bool:
    if not name or "\\" in name or name.startswith("/") or any(ord(c) < 32 for c in name):
        return False
    parts = name.rstrip("/").split("/")
    return not any(p in ("", "..", ".") or (len(p) >= 2 and p[1] == ":") for p in parts)


def _kind(info: zipfile.ZipInfo) -> str:
    """'dir', 'file' or 'other' (a symlink, a device …) from the member's Unix file type, if
    the archiver recorded one (many record only permission bits, or nothing)."""
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind == 0:
        return "dir" if info.is_dir() else "file"
    if kind == stat.S_IFDIR:
        return "dir"
    return "file" if kind == stat.S_IFREG and not info.is_dir() else "other"


def inspect(path: Path, station_lang: str | None = None) -> PackageInfo:
    """Check the package at `path` against every rule of the module; nothing is extracted."""
    try:
        with zipfile.ZipFile(path) as z:
            return _inspect(z, station_lang)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
        raise _refuse(
            Code.MALFORMED,
            "not_zip",
            f"{path} is not an Argos model package (a zip archive): {exc}",
        ) from exc


def _inspect(z: zipfile.ZipFile, station_lang: str | None) -> PackageInfo:
    infos = z.infolist()
    if len(infos) > MAX_MEMBERS:
        raise _refuse(
            Code.OVERSIZED,
            "too_many_members",
            f"the package has {len(infos)} entries; at most {MAX_MEMBERS}",
        )
    seen: set[str] = set()
    total = 0
    for info in infos:
        name = info.filename
        if not _safe_name(name) or name.rstrip("/") in seen:
            raise _refuse(
                Code.MALFORMED,
                "unsafe_path",
                f"the package names a member {name!r} outside its folder "
                "(absolute, `..`, or twice): refused",
            )
        seen.add(name.rstrip("/"))
        if _kind(info) == "other":
            raise _refuse(
                Code.MALFORMED,
                "symlink",
                f"{name!r} is a link or special file; a package holds files only",
            )
        if info.flag_bits & 0x1:
            raise _refuse(Code.MALFORMED, "encrypted", f"{name!r} is password-protected")
        total += info.file_size
        if total > MAX_TOTAL_BYTES:
            raise _refuse(
                Code.OVERSIZED,
                "too_large",
                f"the package unpacks to more than {MAX_TOTAL_BYTES} bytes",
            )
    files = {i.filename for i in infos if not i.is_dir()}
    roots = sorted(
        n[: -len("metadata.json")]
        for n in files
        if PurePosixPath(n).name == "metadata.json" and n.count("/") <= 1
    )
    if not roots:
        raise _refuse(
            Code.MALFORMED,
            "no_metadata",
            "the package has no metadata.json at its root: not an Argos package",
        )
    root = roots[0]  # "" before "folder/": a top-level metadata.json wins
    meta = _metadata(z, root + "metadata.json")
    source, target = _languages(meta, station_lang)
    for need in REQUIRED:
        if root + need not in files:
            raise _refuse(
                Code.MALFORMED,
                "missing_file",
                f"the package has no {need}: the offline engine needs a CTranslate2 "
                "model and a SentencePiece model",
            )
    return PackageInfo(
        source=source,
        target=target,
        name=_text(meta.get("name")) or f"{source}→{target}",
        version=_text(meta.get("package_version")),
        members=len(infos),
        unpacked_bytes=total,
        root=root,
    )


def _metadata(z: zipfile.ZipFile, name: str) -> dict[str, Any]:
    if z.getinfo(name).file_size > MAX_METADATA_BYTES:
        raise _refuse(
            Code.MALFORMED,
            "bad_metadata",
            f"metadata.json is larger than {MAX_METADATA_BYTES} bytes",
        )
    try:
        with z.open(name) as f:
            data = json.loads(f.read(MAX_METADATA_BYTES + 1).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise _refuse(Code.MALFORMED, "bad_metadata", f"metadata.json is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise _refuse(Code.MALFORMED, "bad_metadata", "metadata.json is not a JSON object")
    return data


def _text(v: object) -> str:
    return v[:100] if isinstance(v, str) else ""


def _languages(meta: dict[str, Any], station_lang: str | None) -> tuple[str, str]:
    source, target = meta.get("from_code"), meta.get("to_code")
    for key, code in (("from_code", source), ("to_code", target)):
        if not isinstance(code, str) or not _LANG.match(code):
            raise _refuse(
                Code.INVALID_REQUEST,
                "wrong_languages",
                f"metadata.json: {key} {code!r} is not a language code such as 'en' or 'ko'",
            )
    assert isinstance(source, str) and isinstance(target, str)
    if source == target:
        raise _refuse(
            Code.INVALID_REQUEST,
            "wrong_languages",
            f"metadata.json: the package translates {source} into itself",
        )
    if station_lang and station_lang not in (source, target):
        raise _refuse(
            Code.INVALID_REQUEST,
            "wrong_languages",
            f"the package translates {source}→{target}, and this station works in "
            f"{station_lang}: a draft must be into or out of the working language",
        )
    return source, target


def install(path: Path, data: Path, station_lang: str | None = None) -> tuple[PackageInfo, Path]:
    """Check the package, unpack it into DATA/models/<from>_<to>/ (files 0600, folders 0700)
    and return what it holds and where it went. A package already installed for that pair is
    replaced only once the new one is complete."""
    info = inspect(path, station_lang)
    models = data / MODELS_DIR
    models.mkdir(mode=0o700, exist_ok=True)
    dest = models / info.pair
    work = models / f".{info.pair}.{os.getpid()}.partial"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(mode=0o700)
    try:
        with zipfile.ZipFile(path) as z:
            _extract(z, info, work)
        old = models / f".{info.pair}.{os.getpid()}.old"
        if dest.exists():
            os.replace(dest, old)
        os.replace(work, dest)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return info, dest


def _extract(z: zipfile.ZipFile, info: PackageInfo, work: Path) -> None:
    written = 0
    for member in z.infolist():
        name = member.filename
        if not name.startswith(info.root):
            continue  # beside the package's folder: not part of it
        rel = name[len(info.root) :]
        if not rel:
            continue
        target = work.joinpath(*PurePosixPath(rel).parts)
        if member.is_dir():
            target.mkdir(mode=0o700, parents=True, exist_ok=True)
            continue
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        left = member.file_size
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "wb") as out, z.open(member) as src:
                while chunk := src.read(min(_CHUNK, left + 1)):
                    left -= len(chunk)
                    written += len(chunk)
                    if left < 0 or written > info.unpacked_bytes:
                        raise _refuse(
                            Code.OVERSIZED,
                            "too_large",
                            f"{name!r} unpacks to more than it declares",
                        )
                    out.write(chunk)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise _refuse(Code.MALFORMED, "not_zip", f"{name!r} cannot be unpacked: {exc}") from exc


@dataclass(frozen=True)
class Installed:
    """A package found under DATA/models/."""

    pair: str
    path: Path
    name: str
    version: str
    source: str
    target: str


def installed(data: Path) -> list[Installed]:
    """The packages unpacked under DATA/models/, by pair; folders without readable metadata are
    skipped (a half-written one is named `.<pair>.*` and never listed)."""
    out: list[Installed] = []
    models = data / MODELS_DIR
    if not models.is_dir():
        return out
    for d in sorted(models.iterdir()):
        if d.name.startswith(".") or not d.is_dir():
            continue
        meta: object = None
        with contextlib.suppress(OSError, ValueError):
            meta = json.loads((d / "metadata.json").read_text(encoding="utf-8"))
        if not isinstance(meta, dict):
            continue
        out.append(
            Installed(
                pair=d.name,
                path=d,
                name=_text(meta.get("name")),
                version=_text(meta.get("package_version")),
                source=_text(meta.get("from_code")),
                target=_text(meta.get("to_code")),
            )
        )
    return out
