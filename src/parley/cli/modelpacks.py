"""`parley translate install-model FILE` and `parley translate models`: an Argos model package
carried in by hand (station/modelpacks.py checks and unpacks it) and the ones installed.

Both work on the data directory, with the station stopped: the engine is chosen when the station
starts, and installing takes the data directory's lock (station/boot.in_use) so that no station
starts on a half-written model or configuration. Only whoever owns the data directory can do
this, as for `parley station init`: there is no operator API for it.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Any

import typer

from parley.cli import common as cli
from parley.cli.talks import translate_app
from parley.errors import Code, LocalError, ParleyError
from parley.station import modelpacks
from parley.station.boot import in_use
from parley.station.config import load_config, save_config
from parley.station.translators import ArgosEngine


@translate_app.command("install-model")
def install_model(
    file: Annotated[Path, typer.Argument(help="An Argos Translate package (.argosmodel).")],
    use: Annotated[
        bool, typer.Option(help="Make it the station's translation engine (station.json).")
    ] = True,
    data: cli.Data = Path("parley-data"),
    as_json: cli.AsJson = False,
) -> None:
    """Check an Argos model package carried in (air gap), unpack it into DATA/models/<from>_<to>/
    and, unless --no-use, make it the station's machine translation engine."""
    if not file.is_file():
        raise LocalError(Code.NOT_FOUND, f"no file {file}")
    cfg = load_config(data)
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(in_use(data))
        except ParleyError as exc:
            raise LocalError(
                Code.CONFLICT,
                f"{data} is in use by a running station: stop it, install the model, and start "
                "it again (the engine is chosen when the station starts)",
            ) from exc
        info, dest = modelpacks.install(file, data, cfg.lang)
        engine = ArgosEngine(dest)  # the files it needs are there (checked again)
        loaded = _try_load(engine)
        if use:
            cfg = load_config(data)
            cfg.translation = {"engine": "argos", "model_dir": str(dest.resolve())}
            save_config(data, cfg)
    res = {
        "pair": info.pair,
        "source": info.source,
        "target": info.target,
        "name": info.name,
        "version": info.version,
        "path": str(dest),
        "bytes": info.unpacked_bytes,
        "engine": engine.name,
        "in_use": use,
        "loaded": loaded is None,
        "load_error": loaded,
    }
    if as_json:
        return cli.print_json(res)
    cli.out.print(
        f"installed {info.name} {info.version} ({info.source}→{info.target}, "
        f"{info.unpacked_bytes // 1024 // 1024} MiB) in {dest}",
        markup=False,
    )
    if loaded is not None:
        cli.out.print(f"  not loaded: {loaded}", markup=False)
    if use:
        cli.out.print(
            f"  the station's engine is now {engine.name}; start the station to use it",
            markup=False,
        )


def _try_load(engine: ArgosEngine) -> str | None:
    """None if the model loads; else why not (the package is kept: the runtime may come later)."""
    try:
        engine.load()
    except ParleyError as exc:
        return exc.message
    return None


@translate_app.command("models")
def list_models(data: cli.Data = Path("parley-data"), as_json: cli.AsJson = False) -> None:
    """The Argos model packages installed under DATA/models/, and the one in use."""
    cfg = load_config(data)
    using = cfg.translation.get("model_dir") if cfg.translation.get("engine") == "argos" else None
    rows: list[dict[str, Any]] = [
        {
            "pair": m.pair,
            "source": m.source,
            "target": m.target,
            "name": m.name,
            "version": m.version,
            "path": str(m.path),
            "in_use": using is not None and Path(using).resolve() == m.path.resolve(),
        }
        for m in modelpacks.installed(data)
    ]
    if as_json:
        return cli.print_json(rows)
    if not rows:
        cli.out.print("no model installed (parley translate install-model FILE)")
        return
    t = cli.table("pair", "name", "version", "in use", whole=("pair",))
    for r in rows:
        t.add_row(r["pair"], r["name"], r["version"], "yes" if r["in_use"] else "")
    cli.out.print(t)
