"""Structured logs: one JSON object per line on stderr, or plain text for a person at a terminal.

Every line carries `ts` (UTC, ISO 8601, ms), `level`, `logger`, `message`, the fields bound for
the whole process (`station`, `station_id`, `pid`, `worker`), the fields of the innermost
`context(...)` block (`peer`, `channel`, `seq` …) and any `extra={...}` of the call itself. Modules
keep calling `logging.getLogger(name)`; only the root handler knows the format.

Never log a message body: logs leave the database's access control.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

FORMATS = ("auto", "json", "text")
LEVELS = ("debug", "info", "warning", "error")

# Attributes every LogRecord has; anything else on a record came from `extra`.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "parley_log", default=None
)
_bound: dict[str, Any] = {}


def bind(**fields: Any) -> None:
    """Fields for every line this process writes from now on (the station's name and id)."""
    _bound.update({k: v for k, v in fields.items() if v is not None})


@contextlib.contextmanager
def context(**fields: Any) -> Iterator[None]:
    """Fields for every line logged inside the block, in this thread or task."""
    token = _context.set({**(_context.get() or {}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def fields(record: logging.LogRecord) -> dict[str, Any]:
    """The context of a record: bound, then block, then the call's own `extra`."""
    out = {**_bound, **(_context.get() or {})}
    out.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
    return out


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC)
        line: dict[str, Any] = {
            "ts": ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for k, v in fields(record).items():
            line.setdefault(k, v)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extra = {k: v for k, v in fields(record).items() if k not in ("station_id", "pid")}
        if extra:
            first, nl, rest = text.partition("\n")
            pairs = " ".join(f"{k}={v}" for k, v in extra.items())
            text = f"{first}  [{pairs}]{nl}{rest}"
        return text


def resolve(fmt: str) -> str:
    """`auto` means JSON unless stderr is a terminal, where a person reads it."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}")
    if fmt == "auto":
        return "text" if sys.stderr.isatty() else "json"
    return fmt


def configure(fmt: str = "auto", level: str = "info") -> str:
    """Send every logger's records to stderr in `fmt`; returns the format chosen."""
    chosen = resolve(fmt)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if chosen == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # httpx reports every request at info: the dispatcher's pushes and pings would drown the rest.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
    bind(pid=os.getpid())
    return chosen
