"""The CLI's view of a running station: its operator API, addressed through the data directory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx

from parley.cli import session
from parley.errors import Code, ParleyError
from parley.station.config import load_config, load_token
from parley.transport import clients


class ApiError(ParleyError):
    pass


def credential(data: Path) -> tuple[str, str]:
    """(token, where it came from): PARLEY_TOKEN when set (a user's own API token: they act as
    themselves), else the session `parley login` kept for this station (cli/session.py), else
    the station's bootstrap token from the data directory."""
    if os.environ.get("PARLEY_TOKEN"):
        return os.environ["PARLEY_TOKEN"], "PARLEY_TOKEN"
    kept = session.stored(data)
    if kept is not None:
        return kept["token"], "login"
    return load_token(data), "bootstrap"


def token(data: Path) -> str:
    return credential(data)[0]


class Api:
    def __init__(
        self,
        data: Path,
        timeout_s: float = 30.0,
        as_token: str | None = None,
        anonymous: bool = False,
    ) -> None:
        """`as_token`: act with this credential (e.g. a session from /login) instead;
        `anonymous`: send none (to log in)."""
        cfg = load_config(data)
        host = cfg.host if cfg.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        self.base = f"http://{host}:{cfg.port}"
        if anonymous:
            secret, self.source = "", "none"
        elif as_token:
            secret, self.source = as_token, "given"
        else:
            secret, self.source = credential(data)
        self.http = clients.sync_client(
            timeout_s,
            base_url=self.base,
            headers={"Authorization": f"Bearer {secret}"} if secret else {},
        )

    def call(self, method: str, path: str, **kw: Any) -> Any:
        try:
            resp = self.http.request(method, "/api/v1" + path, **kw)
        except httpx.HTTPError as exc:
            raise ApiError(
                Code.STATION_UNREACHABLE,
                f"cannot reach the station at {self.base} ({exc}); "
                "is `parley station run` running?",
            ) from exc
        if resp.status_code >= 400:
            try:
                err = resp.json()
                message = err["message"]
                if resp.status_code == 401 and self.source == "login":
                    message += "; your `parley login` session has ended: log in again"
                raise ApiError(Code(err["code"]), message, **err.get("details", {}))
            except (ValueError, KeyError) as exc:
                raise ApiError(Code.INVALID_REQUEST, f"HTTP {resp.status_code}") from exc
        return resp.json()

    def get(self, path: str, **kw: Any) -> Any:
        return self.call("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Any:
        return self.call("POST", path, **kw)
