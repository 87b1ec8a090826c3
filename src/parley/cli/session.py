"""The CLI's signed-in user: `parley login` keeps a session token per station, so what the CLI
does is recorded as that person, not as the bootstrap `admin`.

Rules:
- Sessions live in the user's config directory (PARLEY_CONFIG_DIR, else
  $XDG_CONFIG_HOME/parley, else ~/.config/parley), in `sessions.json`: one entry per station
  data directory (its absolute path), holding the session token the station issued for a name
  and password (`POST /api/v1/login`; it ends after the station's idle and maximum session
  times) and the user's name. The directory is made 0700 and the file written 0600, replaced
  atomically; a file others can read or write is refused rather than used.
- Which credential a command uses: PARLEY_TOKEN when set, else the stored session for this
  data directory, else the station's bootstrap token (the `admin` user).
- `parley logout` ends the session at the station and forgets it here.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from parley.errors import Code, LocalError

FILE = "sessions.json"
MAX_FILE = 1 << 20


def config_dir() -> Path:
    if os.environ.get("PARLEY_CONFIG_DIR"):
        return Path(os.environ["PARLEY_CONFIG_DIR"])
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "parley"


def _key(data: Path) -> str:
    return str(data.resolve())


def _load() -> dict[str, Any]:
    path = config_dir() / FILE
    try:
        st = path.stat()
    except FileNotFoundError:
        return {}
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO) or st.st_uid != os.getuid():
        raise LocalError(
            Code.INVALID_REQUEST,
            f"{path} is readable or writable by others (or not yours); remove it and "
            "`parley login` again",
        )
    if st.st_size > MAX_FILE:
        raise LocalError(Code.INVALID_REQUEST, f"{path} is too large to be a session file")
    try:
        found = json.loads(path.read_text())
    except (ValueError, OSError):
        return {}
    return found if isinstance(found, dict) else {}


def _save(sessions: dict[str, Any]) -> None:
    d = config_dir()
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = d / (FILE + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)
        json.dump(sessions, f, indent=1, sort_keys=True)
    os.replace(tmp, d / FILE)


def stored(data: Path) -> dict[str, Any] | None:
    """The session kept for this data directory: {token, user, url, expires}, or None."""
    entry = _load().get(_key(data))
    return entry if isinstance(entry, dict) and isinstance(entry.get("token"), str) else None


def remember(data: Path, token: str, user: str, url: str, expires: int) -> Path:
    sessions = _load()
    sessions[_key(data)] = {"token": token, "user": user, "url": url, "expires": expires}
    _save(sessions)
    return config_dir() / FILE


def forget(data: Path) -> bool:
    sessions = _load()
    if sessions.pop(_key(data), None) is None:
        return False
    _save(sessions)
    return True
