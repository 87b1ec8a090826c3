"""Admin: notifications. Targets (webhooks, e-mail) and, per alarm kind, who hears of it; add a
target, route a kind, send a test; the newest deliveries and their state. Everything comes from
station/notify.py's desk, which checks `notify.manage` and hides back channels the viewer is not
named on (a non-admin gets 403 here)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from parley.errors import Forbidden, NotFound, ParleyError
from parley.station import notify
from parley.web.console import Console
from parley.web.session import Viewer

LOG_SHOWN = 50
MAX_FIELD = 4000


def routes(c: Console) -> APIRouter:
    r = APIRouter()
    st = c.station

    def context(v: Viewer, errors: dict[str, str] | None = None, **form: Any) -> dict[str, Any]:
        d = notify.desk(st)
        view = d.overview(v.user)
        return view | {
            "log": d.deliveries(v.user, LOG_SHOWN), "errors": errors or {}, "form": form,
            "tested": None,
        }  # fmt: skip

    def redo(request: Request, v: Viewer, field: str, exc: ParleyError, **form: Any) -> Response:
        ctx = context(v, {field: exc.message}, **form)
        return c.page(request, "notify.html", v, status=422, **ctx)

    @r.get("/admin/notify")
    def notify_page(request: Request, v: Viewer = Depends(c.viewer)) -> Response:
        return c.page(request, "notify.html", v, **context(v))

    @r.post("/admin/notify/targets")
    def add_target(
        request: Request,
        v: Viewer = Depends(c.poster),
        name: str = Form(""),
        type: str = Form("webhook"),
        address: str = Form(""),
    ) -> Response:
        name, address = name.strip()[:MAX_FIELD], address.strip()[:MAX_FIELD]
        spec: dict[str, Any] = {"type": type}
        if type == "email":
            spec["to"] = [a.strip() for a in address.replace(";", ",").split(",") if a.strip()]
        else:
            spec["url"] = address
        try:
            notify.desk(st).set_target(v.user, name, spec)
        except Forbidden:
            raise
        except ParleyError as exc:
            return redo(request, v, "target", exc, name=name, type=type, address=address)
        return c.back("/admin/notify", "notify.saved")

    @r.post("/admin/notify/routes")
    def set_route(
        request: Request,
        v: Viewer = Depends(c.poster),
        kind: str = Form(""),
        targets: list[str] = Form([]),
    ) -> Response:
        try:
            notify.desk(st).set_route(v.user, kind[:64], targets[: notify.MAX_TARGETS + 1])
        except Forbidden:
            raise
        except ParleyError as exc:
            return redo(request, v, "route", exc, kind=kind)
        return c.back("/admin/notify", "notify.routed")

    @r.post("/admin/notify/targets/{name}/test")
    def test(request: Request, name: str, v: Viewer = Depends(c.poster)) -> Response:
        try:
            outcome = notify.desk(st).test(v.user, name[:64])
        except (Forbidden, NotFound):
            raise
        except ParleyError as exc:
            return redo(request, v, "target", exc)
        ctx = context(v) | {"tested": outcome}
        return c.page(request, "notify.html", v, **ctx)

    return r
