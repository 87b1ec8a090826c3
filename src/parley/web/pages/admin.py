"""Admin: peers and their fingerprints, this station's invitation, proposing channels, audit."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from parley.domain import channels
from parley.errors import ParleyError
from parley.protocol.identity import fingerprint, parse_invitation
from parley.station import passwords, users, vigil
from parley.web.console import Console
from parley.web.session import Viewer

AUDIT_SHOWN = 50


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def routes(c: Console) -> APIRouter:
    r = APIRouter()
    st = c.station
    admin = c.role("admin")

    def context(v: Viewer, errors: dict[str, str] | None = None, **form: str) -> dict[str, Any]:
        states = {x["station"]: x["state"] for x in vigil.links(st, v.user)}
        peers = [
            {"p": p, "fingerprint": fingerprint(p.identity),
             "link": states.get(p.station, "unknown")}
            for p in st.store.list_peers()
        ]  # fmt: skip
        # As in the API's audit log: a back channel's entries only for its representatives.
        hidden = {s.channel for s in st.channel_states() if not st.visible(s, v.user)}
        audit = []
        for ts, actor, action, detail in st.store.audit_log(AUDIT_SHOWN):
            d = json.loads(detail)
            if not isinstance(d, dict) or d.get("channel") not in hidden:
                audit.append((ts, actor, action, json.dumps(d, ensure_ascii=False)))
        return {
            "peers": peers, "invitation": st.invitation().encode(), "audit": audit,
            "kinds": channels.KINDS, "errors": errors or {}, "form": form,
            "users": users.list_users(st), "roles": users.ROLES,
        }  # fmt: skip

    @r.get("/admin")
    def admin_page(request: Request, v: Viewer = Depends(admin)) -> Response:
        return c.page(request, "admin.html", v, **context(v))

    @r.post("/admin/peers")
    def add_peer(
        request: Request, v: Viewer = Depends(c.poster), invitation: str = Form("")
    ) -> Response:
        admin(v)
        try:
            st.add_peer(parse_invitation(invitation.strip()[:32_000]), v.user.name)
        except ParleyError as exc:
            ctx = context(v, {"invitation": exc.message}, invitation=invitation)
            return c.page(request, "admin.html", v, status=422, **ctx)
        return c.back("/admin", "admin.added")

    @r.post("/admin/channels")
    def propose(
        request: Request,
        v: Viewer = Depends(c.poster),
        kind: str = Form("hotline"),
        title: str = Form(""),
        peers: list[str] = Form([]),
        facilitator: str = Form(""),
        representatives: str = Form(""),
        rep_station: list[str] = Form([]),
        rep_names: list[str] = Form([]),
    ) -> Response:
        admin(v)
        errors: dict[str, str] = {}
        if kind not in channels.KINDS:
            errors["kind"] = kind
        if not title.strip() or len(title) > channels.MAX_TITLE:
            errors["title"] = v.words("form.required")
        if not peers:
            errors["peers"] = v.words("form.required")
        extra: dict[str, Any] = {}
        if kind == "facilitated" and facilitator:
            extra["facilitator"] = facilitator
        if kind == "backchannel":
            # Each member station's representatives, ours first; the others see the proposal
            # and consent to it, names included.
            reps = {st.id: _names(representatives)}
            for station, names in zip(rep_station, rep_names, strict=False):
                if station in peers and _names(names):
                    reps[station] = _names(names)
            missing = [p for p in (st.id, *peers) if not reps.get(p)]
            if missing:
                errors["representatives"] = v.words(
                    "admin.reps_missing", names=", ".join(st.peer_name(p) for p in missing)
                )
            extra["representatives"] = reps
        if not errors:
            try:
                st.propose_channel(kind, title.strip(), peers, v.user.name, **extra)
                return c.back("/admin", "admin.proposed")
            except ParleyError as exc:
                errors["title"] = exc.message
        ctx = context(v, errors, title=title, kind=kind, representatives=representatives)
        return c.page(request, "admin.html", v, status=422, **ctx)

    @r.post("/admin/users")
    def add_user(
        request: Request,
        v: Viewer = Depends(c.poster),
        name: str = Form(""),
        password: str = Form(""),
        roles: list[str] = Form([]),
    ) -> Response:
        admin(v)
        try:
            users.create_user(st, name.strip(), roles, password, st.clock(), v.user.name)
        except passwords.WeakPassword as exc:  # why, in the reader's language
            why = v.words(f"password.{exc.details['reason']}")
            ctx = context(v, {"password": why}, name=name)
            return c.page(request, "admin.html", v, status=422, **ctx)
        except ParleyError as exc:
            field = "password" if "password" in exc.message else "name"
            ctx = context(v, {field: exc.message}, name=name)
            return c.page(request, "admin.html", v, status=422, **ctx)
        return c.back("/admin", "admin.user_added")

    @r.post("/admin/users/{name}")
    def change_user(
        name: str,
        v: Viewer = Depends(c.poster),
        roles: list[str] = Form([]),
        disabled: str = Form(""),
    ) -> Response:
        admin(v)
        now = st.clock()
        if disabled in ("yes", "no"):
            users.set_disabled(st, name, disabled == "yes", now, v.user.name)
        else:
            users.set_roles(st, name, roles, now, v.user.name)
        return c.back("/admin", "admin.user_changed")

    return r
