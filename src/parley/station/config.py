"""A station's data directory: its configuration, secrets and database.

DIR/station.json   name, working language, listen address, public URL, timings
DIR/identity.key   the Ed25519 seed (hex), mode 0600; never leaves the machine
DIR/api.token      the operator API token for the CLI, mode 0600
DIR/parley.db      the SQLite database (unless `database` names a PostgreSQL URL)

The directory is the station's alone: mode 0700, every file in it 0600 (the CLI runs with umask
077), and `parley station run` refuses a directory that group or others may read or write.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from parley.domain.forms import inputs
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
        _check_ranges("timings", self, _TIMING_RANGES)


HOUR_MS = 3600 * 1000
DAY_MS = 24 * HOUR_MS
# The values a station can run with: a zero retry or heartbeat would spin, a negative skew
# would refuse every peer, an interval of years would never notice a dead link.
_TIMING_RANGES = {
    "retry_base_ms": (10, HOUR_MS),
    "retry_max_ms": (10, DAY_MS),
    "heartbeat_ms": (100, HOUR_MS),
    "down_after_failures": (1, 1000),
    "degraded_after_missed": (1, 1000),
    "down_after_missed": (1, 1000),
    "degraded_rtt_ms": (0, HOUR_MS),
    "skew_ms": (1000, DAY_MS),
    "prekey_rotation_ms": (60 * 1000, 366 * DAY_MS),
    "prekey_grace_ms": (60 * 1000, 366 * DAY_MS),
    "selfaudit_period_ms": (0, 366 * DAY_MS),
    "selfaudit_chunk": (1, 100_000),
    "selfaudit_cpu_percent": (1, 100),
}
MIB = 1024 * 1024
# The HTTP server's choices (app/conn.py), the default first.
EVENT_LOOPS = ("uvloop", "asyncio")
HTTP_PARSERS = ("httptools", "h11")
_LIMIT_RANGES = {
    "anonymous_body_bytes": (256, MIB),
    "console_body_bytes": (256, 64 * MIB),
    "operator_body_bytes": (256, 1024 * MIB),
    "upload_body_bytes": (256, 16 * 1024 * MIB),
    "peer_body_bytes": (256, 1024 * MIB),
    "bodies_in_flight_bytes": (64 * 1024, 64 * 1024 * MIB),
    "header_bytes": (1024, MIB),
    "header_timeout_ms": (100, HOUR_MS),
    "body_timeout_ms": (100, DAY_MS),
    "keepalive_timeout_ms": (100, HOUR_MS),
    "max_connections": (1, 1_000_000),
    "held_per_peer": (1, 10_000_000),
    "held_bytes_per_peer": (1024, 64 * 1024 * MIB),
}


def _check_ranges(section: str, obj: object, ranges: dict[str, tuple[int, int]]) -> None:
    """LocalError(invalid_request) naming the first field outside the range a station can run
    with (every field has one: a test enumerates them)."""
    for name, (lo, hi) in ranges.items():
        value = getattr(obj, name)
        if type(value) is not int or not lo <= value <= hi:
            raise LocalError(
                Code.INVALID_REQUEST, f"{section}.{name} must be an integer in {lo}..{hi}"
            )


@dataclass
class Limits:
    """What one client, connection or peer may make the station hold (docs/limits.md).

    Request bodies are refused with 413 `oversized` before they are read, by route class:
    anonymous (no credential at all, and the login routes), console forms, operator API,
    uploads (bundle import, transcript upload), peer API."""

    anonymous_body_bytes: int = 16 * 1024
    console_body_bytes: int = 256 * 1024
    operator_body_bytes: int = 8 * 1024 * 1024
    upload_body_bytes: int = 64 * 1024 * 1024
    peer_body_bytes: int = 16 * 1024 * 1024
    # All request bodies being received at once, in one process: a credential only chooses a
    # class and is checked by the route after the body is read, so this bounds what many
    # clients with made-up credentials can make the station hold together (503 `busy`).
    bodies_in_flight_bytes: int = 256 * 1024 * 1024
    # Connections: a request's head must arrive within header_timeout_ms of its first byte (or
    # of the connection), its body within body_timeout_ms after the head; an idle keep-alive
    # connection closes after keepalive_timeout_ms. Beyond max_connections (never more than
    # the process's file limit allows), the connection that has waited longest for a request
    # head is closed to make room; if none waits, the new one is closed.
    header_timeout_ms: int = 10_000
    # A request head (request line and headers) longer than this is refused with 400 and the
    # connection closed, however it arrives (h11's own bound was 16 KiB).
    header_bytes: int = 16 * 1024
    body_timeout_ms: int = 60_000
    keepalive_timeout_ms: int = 5_000
    max_connections: int = 10_000
    # Envelopes held ahead of their chain, per sending peer, over all its channels.
    held_per_peer: int = 8192
    held_bytes_per_peer: int = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        _check_ranges("limits", self, _LIMIT_RANGES)


@dataclass
class Config:
    name: str
    lang: str
    listen: str = "127.0.0.1:8701"
    # The zone people at this station read and type times in (IANA name, e.g. "Asia/Seoul"):
    # notice forms take times in it and show them in it beside UTC. Notices themselves always
    # carry and render UTC, so both sides read the same text.
    timezone: str = "UTC"
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
    limits: Limits = field(default_factory=Limits)
    # The HTTP server's event loop and request parser (app/conn.py): uvloop and httptools (C)
    # unless set to "asyncio" / "h11" (pure Python, slower; the same limits and deadlines).
    event_loop: str = "uvloop"
    http_parser: str = "httptools"
    # Reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (addresses or
    # networks, e.g. ["10.0.0.5"]). Empty: none, not even 127.0.0.1; the client address is the
    # connection's.
    trusted_proxies: list[str] = field(default_factory=list)
    # Serve the operator API's OpenAPI description (/openapi.json) and Swagger UI (/docs) to
    # signed-in users (api/docs.py). Off: neither exists.
    api_docs: bool = False
    # Notifications (station/notify.py): {"targets": {name: {"type": "webhook", "url": …} or
    # {"type": "email", "to": [...]}, …}, "routes": {alarm kind or "*": [target, …]},
    # "smtp": {"host", "port", "security", "username", "password_file", "from"}}.
    notify: dict[str, Any] = field(default_factory=dict)
    # Witnessing other parties' checkpoints (station/witness.py): {} witnesses nothing.
    witness: dict[str, Any] = field(default_factory=dict)
    # Shared folders of signed bundle files (transport/bundle.py), per peer: {peer id or name:
    # "/mnt/courier/north"}. A peer named here is reached through its folder only (a synced
    # drive, a courier's disk, a data diode), never at its network addresses.
    folders: dict[str, str] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    def folder_for(self, station: str, name: str) -> str | None:
        """The shared folder a peer is reached through (by its id, else its name), if any."""
        return self.folders.get(station) or self.folders.get(name)

    @property
    def url(self) -> str:
        return self.public_url or f"http://{self.listen}"


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def init_dir(data: Path, cfg: Config) -> crypto.SigningKey:
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    if (data / CONFIG).exists():
        raise LocalError(Code.STATION_EXISTS, f"{data} already holds a station")
    data.chmod(0o700)
    key = crypto.SigningKey.generate()
    _write_secret(data / IDENTITY, key.seed.hex())
    _write_secret(data / TOKEN, crypto.token(32))
    _write_private(data / CONFIG, json.dumps(asdict(cfg), indent=2) + "\n")
    return key


def load_config(data: Path) -> Config:
    path = data / CONFIG
    if not path.exists():
        raise LocalError(
            Code.NO_STATION, f"no station in {data}; create one with `parley station init`"
        )
    try:
        raw = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LocalError(Code.INVALID_REQUEST, f"{path} is not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise LocalError(Code.INVALID_REQUEST, f"{path} must hold a JSON object")
    try:
        timings = Timings(**raw.pop("timings", {}))
        limits = Limits(**raw.pop("limits", {}))
    except TypeError as exc:  # an unknown field name
        raise LocalError(Code.INVALID_REQUEST, f"{path}: {exc}") from exc
    except LocalError as exc:
        raise LocalError(exc.code, f"{path}: {exc.message}") from exc
    proxies = raw.get("trusted_proxies", [])
    if not isinstance(proxies, list) or not all(isinstance(p, str) for p in proxies):
        raise LocalError(Code.INVALID_REQUEST, f"{path}: trusted_proxies is a list of addresses")
    folders = raw.get("folders", {})
    if not isinstance(folders, dict) or not all(
        isinstance(k, str) and k and isinstance(v, str) and os.path.isabs(v)
        for k, v in folders.items()
    ):
        raise LocalError(
            Code.INVALID_REQUEST,
            f'{path}: folders maps a peer (id or name) to an absolute folder, {{"North": "/mnt/x"}}'
            " for instance",
        )
    for key, choices in (("event_loop", EVENT_LOOPS), ("http_parser", HTTP_PARSERS)):
        if raw.get(key, choices[0]) not in choices:
            raise LocalError(Code.INVALID_REQUEST, f"{path}: {key} is one of {', '.join(choices)}")
    cfg = Config(**raw, timings=timings, limits=limits)
    check_timezone(cfg.timezone)
    return cfg


def check_timezone(name: str) -> None:
    """LocalError(invalid_request) unless `name` is a zone the notice forms can use."""
    try:
        inputs.zone(name)
    except inputs.InputError:
        raise LocalError(
            Code.INVALID_REQUEST,
            f"timezone {name!r} is not a time zone: use an IANA name such as Asia/Seoul, or UTC",
        ) from None


def save_config(data: Path, cfg: Config) -> None:
    _write_private(data / CONFIG, json.dumps(asdict(cfg), indent=2) + "\n")


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def check_private(data: Path) -> None:
    """Refuse a data directory that other local users may read or write: it holds the identity
    key, prekey secrets, password hashes and back-channel plaintext."""
    if not data.is_dir():
        return  # load_config says there is no station there
    mode = data.stat().st_mode & 0o777
    if mode & 0o077:
        raise LocalError(
            Code.INVALID_REQUEST,
            f"{data} is open to other users (mode {mode:o}); it holds the station's secrets."
            f" Fix it with `chmod 700 {data}` (and `chmod 600 {data}/*`)",
        )


def load_identity(data: Path) -> crypto.SigningKey:
    return crypto.SigningKey(bytes.fromhex((data / IDENTITY).read_text().strip()))


def stage_identity(data: Path, key: crypto.SigningKey | None) -> None:
    """An identity rotation in two steps (station/handovers.py): the new key is written beside
    the current one before the hand-over is committed (`key`), and replaces it after (None)."""
    nxt = data / (IDENTITY + ".next")
    if key is not None:
        _write_private(nxt, key.seed.hex())
        return
    os.replace(nxt, data / IDENTITY)


def recover_identity(data: Path, committed_new: bytes | None) -> None:
    """At start: finish a rotation that was committed but whose key file was not yet replaced,
    or drop the staged key of one that was never committed."""
    nxt = data / (IDENTITY + ".next")
    if not nxt.exists():
        return
    staged = crypto.SigningKey(bytes.fromhex(nxt.read_text().strip()))
    if committed_new is not None and staged.public == committed_new:
        os.replace(nxt, data / IDENTITY)
    else:
        nxt.unlink()


def load_token(data: Path) -> str:
    return (data / TOKEN).read_text().strip()
