"""A station's data directory: its configuration, secrets and database.

DIR/station.json   name, working language, listen address, public URL, timings
DIR/identity.key   the Ed25519 seed (hex), mode 0600; never leaves the machine
DIR/api.token      the operator API token for the CLI, mode 0600
DIR/parley.db      the SQLite database (unless `database` names a PostgreSQL URL)
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from parley.errors import Code, LocalError
from parley.protocol import crypto

CONFIG = "station.json"
IDENTITY = "identity.key"
TOKEN = "api.token"


@dataclass
class Timings:
    """Intervals in milliseconds; tests shorten them, operators rarely need to."""

    retry_base_ms: int = 250
    retry_max_ms: int = 15_000
    heartbeat_ms: int = 5_000
    down_after_failures: int = 3
    # Link health (domain/liveness.py), in heartbeat intervals without a successful contact or
    # in failed sends; the defaults agree with down_after_failures. 0: RTT never degrades a link.
    degraded_after_missed: int = 2
    down_after_missed: int = 3
    degraded_rtt_ms: int = 5_000
    skew_ms: int = 5 * 60 * 1000
    prekey_rotation_ms: int = 24 * 3600 * 1000
    prekey_grace_ms: int = 7 * 24 * 3600 * 1000
    # The self-audit (station/selfaudit.py): a pass over the whole store at start, then this long
    # after the previous one ended (0: off), in chunks of this many envelopes, using at most this
    # share of one core.
    selfaudit_period_ms: int = 6 * 3600 * 1000
    selfaudit_chunk: int = 256
    selfaudit_cpu_percent: int = 20

    def __post_init__(self) -> None:
        for name, lo, hi in (
            ("selfaudit_period_ms", 0, 366 * 24 * 3600 * 1000),
            ("selfaudit_chunk", 1, 100_000),
            ("selfaudit_cpu_percent", 1, 100),
        ):
            value = getattr(self, name)
            if type(value) is not int or not lo <= value <= hi:
                raise LocalError(
                    Code.INVALID_REQUEST, f"timings.{name} must be an integer in {lo}..{hi}"
                )


@dataclass
class Config:
    name: str
    lang: str
    listen: str = "127.0.0.1:8701"
    public_url: str = ""
    database: str = ""
    # False: no peer API is served and the invitation names no address; the station pulls.
    inbound: bool = True
    timings: Timings = field(default_factory=Timings)
    # Folders of extra forms beside the packaged catalogue (also PARLEY_FORMS_DIR, ":"-separated).
    forms_dirs: list[str] = field(default_factory=list)
    # Overdue acknowledgements escalate in levels: [{"after_overdue_ms": 0, "action":
    # "console_alarm"}, {"after_overdue_ms": 3600000, "action": "webhook", "target": URL}, …].
    # Empty: one level, a console alarm as soon as an acknowledgement is overdue.
    escalation: list[dict[str, Any]] = field(default_factory=list)
    # Machine translation engine (station/translators.py engine_from_config): {} for none,
    # {"engine": "libretranslate", "url": …} or {"engine": "argos", "model_dir": …}.
    translation: dict[str, Any] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    @property
    def url(self) -> str:
        return self.public_url or f"http://{self.listen}"


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def init_dir(data: Path, cfg: Config) -> crypto.SigningKey:
    data.mkdir(parents=True, exist_ok=True)
    if (data / CONFIG).exists():
        raise LocalError(Code.STATION_EXISTS, f"{data} already holds a station")
    key = crypto.SigningKey.generate()
    _write_secret(data / IDENTITY, key.seed.hex())
    _write_secret(data / TOKEN, secrets.token_urlsafe(32))
    (data / CONFIG).write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    return key


def load_config(data: Path) -> Config:
    path = data / CONFIG
    if not path.exists():
        raise LocalError(
            Code.NO_STATION, f"no station in {data}; create one with `parley station init`"
        )
    raw = json.loads(path.read_text())
    timings = Timings(**raw.pop("timings", {}))
    return Config(**raw, timings=timings)


def save_config(data: Path, cfg: Config) -> None:
    (data / CONFIG).write_text(json.dumps(asdict(cfg), indent=2) + "\n")


def load_identity(data: Path) -> crypto.SigningKey:
    return crypto.SigningKey(bytes.fromhex((data / IDENTITY).read_text().strip()))


def load_token(data: Path) -> str:
    return (data / TOKEN).read_text().strip()
