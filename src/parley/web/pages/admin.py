"""Admin: peers and their fingerprints, this station's invitation, proposing channels, audit."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from parley.domain import channels
from parley.errors import ParleyError
from parley.protocol.identity import MAX_INVITATION_CHARS
from parley.station import passwords, users, vigil
from parley.station.channels import ChannelDesk
from parley.station.keys import KeyDesk
from parley.station.overview import StationDesk
from parley.station.people import PeopleDesk
from parley.web.console import Console
from parley.web.session import Viewer

AUDIT_SHOWN = 50


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def routes(c: Console) -> APIRouter:
    r = APIRouter()
    st = c.station
    station, people, desk, keys = StationDesk(st), PeopleDesk(st), ChannelDesk(st), KeyDesk(st)

    def context(v: Viewer, errors: dict[str, str] | None = None, **form: str) -> dict[str, Any]:
        # Every part comes from the service that checks the role table: the page is an admin's
        # because listing users is (a non-admin gets 403 here).
        people_seen = people.list_users(v.user)
        states = {x["station"]: x["state"] for x in vigil.links(st, v.user)}
        known = [
            {"p": p, "fingerprint": p["fingerprint"], "link": states.get(p["station"], "unknown")}
            for p in station.peers(v.user)
        ]
        peers = [x for x in known if x["p"]["state"] == "active"]  # those a channel may name
        audit = [
            (a["ts"], a["actor"], a["action"], json.dumps(a["detail"], ensure_ascii=False))
            for a in people.audit(v.user, AUDIT_SHOWN)
        ]
        try:
            invitation = station.invitation(v.user)
        except ParleyError as exc:  # a station that rotated its key has none yet: say why
            invitation = exc.message
        return {
            "peers": peers, "known": known, "invitation": invitation,
            "audit": audit,
            "kinds": channels.KINDS, "errors": errors or {}, "form": form,
            "users": people_seen, "roles": users.ROLES,
        }  # fmt: skip

    @r.get("/admin")
    def admin_page(request: Request, v: Viewer = Depends(c.viewer)) -> Response:
        return c.page(request, "admin.html", v, **context(v))

    @r.post("/admin/peers")
    def add_peer(
        request: Request, v: Viewer = Depends(c.poster), invitation: str = Form("")
    ) -> Response:
        try:
            station.add_peer(v.user, invitation.strip()[:MAX_INVITATION_CHARS])
        except ParleyError as exc:
            ctx = context(v, {"invitation": exc.message}, invitation=invitation)
            return c.page(request, "admin.html", v, status=422, **ctx)
        return c.back("/admin", "admin.added")

    @r.post("/admin/peers/{peer}/remove")
    def remove_peer(
        request: Request, peer: str, v: Viewer = Depends(c.poster), force: str = Form("")
    ) -> Response:
        try:
            keys.remove(v.user, peer, force == "yes")
        except ParleyError as exc:
            ctx = context(v, {f"peer-{peer}": exc.message})
            return c.page(request, "admin.html", v, status=exc.status, **ctx)
        return c.back("/admin", "admin.removed")

    @r.post("/admin/peers/{peer}/revoke")
    def revoke_peer(
        request: Request, peer: str, v: Viewer = Depends(c.poster), reason: str = Form("")
    ) -> Response:
        try:
            keys.revoke(v.user, peer, reason.strip()[:2000])
        except ParleyError as exc:
            ctx = context(v, {f"peer-{peer}": exc.message})
            return c.page(request, "admin.html", v, status=exc.status, **ctx)
        return c.back("/admin", "admin.revoked")

    @r.post("/admin/identity/rotate")
    def rotate_identity(
        request: Request, v: Viewer = Depends(c.poster), grace_days: str = Form("7")
    ) -> Response:
        try:
            days = int(grace_days) if grace_days.strip().isdigit() else -1
            keys.rotate(v.user, days * 24 * 3600 * 1000)
        except ParleyError as exc:
            ctx = context(v, {"grace_days": exc.message})
            return c.page(request, "admin.html", v, status=exc.status, **ctx)
        return c.back("/admin", "admin.rotated")

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
        errors: dict[str, str] = {}
        if kind not in channels.KINDS:
            errors["kind"] = kind
        if not title.strip() or len(title) > channels.MAX_TITLE:
            errors["title"] = v.words("form.required")
        if not peers:
            errors["peers"] = v.words("form.required")
        reps: dict[str, list[str]] | None = None
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
        if not errors:
            try:
                fac = facilitator if kind == "facilitated" and facilitator else None
                desk.propose(v.user, kind, title.strip(), peers, fac, reps)
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
        try:
            people.add_user(v.user, name.strip(), roles, password)
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
        if disabled in ("yes", "no"):
            people.change_user(v.user, name, None, disabled == "yes", None)
        else:
            people.change_user(v.user, name, roles, None, None)
        return c.back("/admin", "admin.user_changed")

    return r
