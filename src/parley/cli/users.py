"""`parley user …` and `parley audit`: station users, their roles and API tokens, the audit log.

These call the operator API like every other command, so they need an admin's credentials (the
station's api.token, or PARLEY_TOKEN holding an admin's own token); `parley audit` also works
for an auditor. `parley user token NAME` is the exception: only NAME may make their own API token
(station/users.py), so it signs in as NAME with their password (or uses PARLEY_TOKEN when that
already is NAME's), makes the token, and signs out again.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from parley.cli import common as cli
from parley.cli.client import Api
from parley.station.users import ROLES

user_app = typer.Typer(help="Station users: add, roles, passwords, disable, API tokens.")
audit_app = typer.Typer(help="The audit log: who did what, when.")

Roles = Annotated[
    list[str],
    typer.Option("--role", "-r", help=f"A role (repeatable): {', '.join(ROLES)}."),
]
PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin", help="Read the password from the first line of standard input."
    ),
]


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    pw: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return pw


def _user_line(u: dict[str, Any]) -> str:
    state = "disabled" if u["disabled"] else "active"
    return f"{u['name']} ({state}): {', '.join(u['roles']) or 'no roles'}"


@user_app.command("add")
def user_add(
    name: str,
    role: Roles = [],  # noqa: B006 - typer needs a literal default for a repeatable option
    password_stdin: PasswordStdin = False,
    data: cli.Data = Path("parley-data"),
) -> None:
    """Add a user; asks for the password twice (or reads it with --password-stdin)."""
    body = {"name": name, "roles": role, "password": _password(password_stdin)}
    cli.out.print("Added " + _user_line(Api(data).post("/users", json=body)))


@user_app.command("list")
def user_list(data: cli.Data = Path("parley-data"), as_json: cli.AsJson = False) -> None:
    rows = Api(data).get("/users")
    if as_json:
        return cli.print_json(rows)
    t = Table("name", "roles", "state", "created")
    for u in rows:
        state = f"disabled {cli.when(u['disabled_at'])}" if u["disabled"] else "active"
        t.add_row(u["name"], ", ".join(u["roles"]), state, cli.when(u["created"]))
    cli.out.print(t)


@user_app.command("roles")
def user_roles(
    name: str,
    roles: Annotated[list[str], typer.Argument(help=f"The new roles: {', '.join(ROLES)}.")],
    data: cli.Data = Path("parley-data"),
) -> None:
    """Replace a user's roles."""
    u = Api(data).call("PATCH", f"/users/{name}", json={"roles": roles})
    cli.out.print(_user_line(u))


@user_app.command("passwd")
def user_passwd(
    name: str, password_stdin: PasswordStdin = False, data: cli.Data = Path("parley-data")
) -> None:
    """Set a user's password; their console sessions end."""
    body = {"password": _password(password_stdin)}
    Api(data).call("PATCH", f"/users/{name}", json=body)
    cli.out.print(f"Password of {name} changed.")


@user_app.command("disable")
def user_disable(name: str, data: cli.Data = Path("parley-data")) -> None:
    """Refuse a user: their sessions end and their API tokens are revoked."""
    u = Api(data).call("PATCH", f"/users/{name}", json={"disabled": True})
    cli.out.print(_user_line(u))


@user_app.command("enable")
def user_enable(name: str, data: cli.Data = Path("parley-data")) -> None:
    """Let a disabled user log in again (old tokens stay revoked)."""
    u = Api(data).call("PATCH", f"/users/{name}", json={"disabled": False})
    cli.out.print(_user_line(u))


@user_app.command("token")
def user_token(
    name: str,
    label: Annotated[str, typer.Option(help="What the token is for, e.g. 'duty laptop'.")],
    password_stdin: PasswordStdin = False,
    data: cli.Data = Path("parley-data"),
) -> None:
    """Make your own API token and print it, once: use it as PARLEY_TOKEN. Asks for NAME's
    password (or reads it with --password-stdin) unless PARLEY_TOKEN already is NAME's."""
    if os.environ.get("PARLEY_TOKEN") and Api(data).get("/me")["name"] == name:
        t = Api(data).post(f"/users/{name}/tokens", json={"label": label})
    else:
        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = typer.prompt(f"Password of {name}", hide_input=True)
        session = Api(data).post("/login", json={"name": name, "password": password})["token"]
        me = Api(data, as_token=session)
        try:
            t = me.post(f"/users/{name}/tokens", json={"label": label})
        finally:
            me.post("/logout")
    cli.err.print(
        f"API token {t['id']} ({t['label']}) for {name}; it is shown only now:", markup=False
    )
    sys.stdout.write(t["token"] + "\n")


@user_app.command("tokens")
def user_tokens(
    name: str, data: cli.Data = Path("parley-data"), as_json: cli.AsJson = False
) -> None:
    """A user's API tokens (never their secrets)."""
    rows = Api(data).get(f"/users/{name}/tokens")
    if as_json:
        return cli.print_json(rows)
    t = Table("id", "label", "created", "last used", "revoked")
    for r in rows:
        t.add_row(
            str(r["id"]), escape(r["label"]), cli.when(r["created"]), cli.when(r["used"]),
            cli.when(r["revoked"]),
        )  # fmt: skip
    cli.out.print(t)


@user_app.command("revoke")
def user_revoke(name: str, token_id: int, data: cli.Data = Path("parley-data")) -> None:
    """Revoke one of a user's API tokens (see `parley user tokens NAME`)."""
    Api(data).call("DELETE", f"/users/{name}/tokens/{token_id}")
    cli.out.print(f"Token {token_id} of {name} revoked.")


@audit_app.callback(invoke_without_command=True)
def audit(
    data: cli.Data = Path("parley-data"),
    limit: int = 50,
    as_json: cli.AsJson = False,
) -> None:
    """Local actions, newest first: logins, user changes, channels, sends (admin or auditor)."""
    rows = Api(data).get("/audit", params={"limit": limit})
    if as_json:
        return cli.print_json(rows)
    for a in rows:
        detail = json.dumps(a["detail"], ensure_ascii=False, sort_keys=True)
        cli.out.print(
            f"{cli.when(a['ts'])}  {a['actor']:<16} {a['action']:<16} {detail}", markup=False
        )
