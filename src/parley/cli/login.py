"""`parley login`, `parley logout`, `parley whoami`: the CLI as a named user (cli/session.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from parley.cli import common as cli
from parley.cli import session
from parley.cli.client import Api

PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin", help="Read the password from the first line of standard input."
    ),
]


def login(
    name: Annotated[str, typer.Argument(help="Your user name at this station.")],
    password_stdin: PasswordStdin = False,
    data: cli.Data = Path("parley-data"),
) -> None:
    """Sign in: the station issues a session for your name and password, kept (mode 0600) in
    your config directory, so the CLI acts as you until `parley logout` or the session ends."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True)
    api = Api(data, anonymous=True)
    got = api.post("/login", json={"name": name, "password": password})
    path = session.remember(data, got["token"], got["user"]["name"], api.base, got["expires"])
    roles = ", ".join(got["user"]["roles"]) or "no roles"
    cli.out.print(f"Signed in as {got['user']['name']} ({roles}); session kept in {path}")


def logout(data: cli.Data = Path("parley-data")) -> None:
    """End the session `parley login` kept for this station, at the station and here."""
    kept = session.stored(data)
    if kept is None:
        cli.out.print("Not signed in here (commands use PARLEY_TOKEN or the station's token).")
        return
    try:
        Api(data, as_token=kept["token"]).post("/logout")
    finally:
        session.forget(data)
    cli.out.print(f"Signed out {kept.get('user', '')}.")


def whoami(data: cli.Data = Path("parley-data"), as_json: cli.AsJson = False) -> None:
    """Who the CLI acts as here, with which roles, and by which credential."""
    api = Api(data)
    me = api.get("/me")
    how = {
        "login": "a `parley login` session",
        "PARLEY_TOKEN": "the token in PARLEY_TOKEN",
        "bootstrap": "the station's bootstrap token (run `parley login NAME` to act as yourself)",
    }[api.source]
    if as_json:
        return cli.print_json(me | {"credential": api.source})
    cli.out.print(f"{me['name']} ({', '.join(me['roles']) or 'no roles'}) via {how}")
