"""`parley transcript …`: checkpoints, transcript exports and message proofs.

`export`, `prove`, `checkpoint` and `checkpoints` talk to the running station; `verify` and
`check-proof` check a file offline: they are what an auditor or a third party runs. Both print
every check by name and exit 1 if any check fails.

Which member keys they accept is the verifier's choice, never the file's (protocol/trust.py):
`--trust FILE` and `--member KEY` name them; with neither, the station at `--data` is asked for
its own key and its known peers' (so run it at a station, or give the keys); with no keys at all
the command refuses (`no_trust_anchors`). `--unsafe-trust-file-keys` takes the file's own keys,
and the output says, before and after the result, that this proves nothing about who wrote it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from parley.cli import common as cli
from parley.cli.client import Api, ApiError
from parley.cli.verifying import verify_file
from parley.errors import Code, LocalError, ParleyError
from parley.protocol import proof
from parley.protocol.report import Report
from parley.protocol.trust import (
    MAX_TRUST_BYTES,
    NO_ANCHORS,
    UNSAFE_NAME,
    UNSAFE_TRUST_FILE_KEYS,
    Anchor,
    Anchors,
    TrustPolicy,
    parse_anchor,
    parse_trust_file,
)
from parley.protocol.witness_policy import MAX_BYTES as MAX_POLICY_BYTES
from parley.protocol.witness_policy import parse_policy

transcript_app = typer.Typer(
    help="Checkpoints, transcript exports and offline verification, proofs of one message."
)

Out = Annotated[Path, typer.Option("--out", "-o", help="The file to write.")]
NoProgress = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
# Below this a progress bar would only flicker.
PROGRESS_MIN_BYTES = 4 << 20
MAX_MEMBER_OPTIONS = 256

TrustFiles = Annotated[
    list[Path] | None,
    typer.Option(
        "--trust",
        help="A file of keys to trust, one per line: station ids, fingerprints, 'station-id "
        "fingerprint' pairs, public keys, parley-fp: payloads or invitations (docs/protocol.md "
        "§17.3). Repeatable. Replaces the station's own key and known peers.",
    ),
]
Members = Annotated[
    list[str] | None,
    typer.Option(
        "--member",
        help="A key to trust: a fingerprint (quote it: 12 groups of 5 digits), a station id, "
        "both, or a public key. Repeatable. Replaces the station's own key and known peers.",
    ),
]
UnsafeFileKeys = Annotated[
    bool,
    typer.Option(
        f"--{UNSAFE_NAME}",
        help="UNSAFE: trust the member keys the file itself names. A forgery signed with "
        "made-up keys passes; the output says so. Not with --trust or --member.",
    ),
]


def _progress() -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=cli.err,
        transient=True,
    )


# --- talking to the station -----------------------------------------------------------------------


@transcript_app.command("checkpoint")
def checkpoint(channel: str, data: cli.Data = Path("parley-data")) -> None:
    """Checkpoint this station's chain on CHANNEL now; the other members countersign it."""
    api = Api(data)
    ch = cli.resolve_channel(api, channel)
    r = api.post(f"/channels/{ch}/checkpoint")
    cli.out.print(f"checkpoint: channel {ch}, envelopes 1..{r['size']}, root {r['root']}")


@transcript_app.command("checkpoints")
def checkpoints(
    channel: str, data: cli.Data = Path("parley-data"), as_json: cli.AsJson = False
) -> None:
    """Checkpoints held for CHANNEL and who countersigned each."""
    api = Api(data)
    rows = api.get(f"/channels/{cli.resolve_channel(api, channel)}/checkpoints")
    if as_json:
        return cli.print_json(rows)
    t = cli.table("sender", "size", "root", "at", "cosigned by", "witnessed by", whole=("root",))
    for r in rows:
        t.add_row(
            r["sender_name"], str(r["size"]), r["root"], cli.when(r["ts"]),
            ", ".join(c["name"] for c in r["cosigners"]) or "-",
            ", ".join(r.get("witnessed_by", [])) or "-",
        )  # fmt: skip
    cli.out.print(t)


def _stream(api: Api, path: str, out: Path, quiet: bool) -> int:
    """GET `path` into `out`, showing progress; returns the bytes written."""
    part = out.with_name(out.name + ".part")
    written = 0
    with api.http.stream("GET", "/api/v1" + path, timeout=None) as resp:
        if resp.status_code >= 400:
            resp.read()
            try:
                e = resp.json()
                raise ApiError(Code(e["code"]), e["message"])
            except (ValueError, KeyError) as exc:
                raise ApiError(Code.INVALID_REQUEST, f"HTTP {resp.status_code}") from exc
        with part.open("wb") as f, _progress() as bar:
            task = bar.add_task("exporting", total=None, visible=not quiet)
            for chunk in resp.iter_bytes():
                f.write(chunk)
                written += len(chunk)
                bar.update(task, completed=written)
    part.replace(out)
    return written


@transcript_app.command("export")
def export(
    channel: str,
    out: Out,
    data: cli.Data = Path("parley-data"),
    quiet: NoProgress = False,
) -> None:
    """Write CHANNEL's transcript as this station holds it: every envelope, the plaintext it
    holds, checkpoints and cosignatures, members' keys; signed by this station."""
    api = Api(data)
    ch = cli.resolve_channel(api, channel)
    size = _stream(api, f"/channels/{ch}/export", out, quiet)
    cli.out.print(f"wrote {out} ({size:,} bytes); check it with `parley transcript verify {out}`")


@transcript_app.command("print")
def print_(
    channel: str,
    out: Out,
    data: cli.Data = Path("parley-data"),
    frm: Annotated[
        str | None,
        typer.Option("--from", help="From: 2030-03-01, '2030-03-01 15:00 [zone]' or Unix ms."),
    ] = None,
    to: Annotated[str | None, typer.Option("--to", help="Until (a date: its whole day).")] = None,
    lang: Annotated[str | None, typer.Option(help="Language (default: the station's).")] = None,
    quiet: NoProgress = False,
) -> None:
    """A printable transcript of CHANNEL (or a date range): PDF if OUT ends in .pdf, else HTML.
    Each message with sender, time, precedence, verification status, original and
    translations; notices with their maps; checkpoints and the transcript digest."""
    api = Api(data)
    ch = cli.resolve_channel(api, channel)
    params = {"format": "pdf" if out.suffix.lower() == ".pdf" else "html"}
    params |= {k: v for k, v in (("from", frm), ("to", to), ("lang", lang)) if v}
    size = _stream(api, f"/channels/{ch}/printout?{urlencode(params)}", out, quiet)
    cli.out.print(f"wrote {out} ({size:,} bytes)", markup=False)


@transcript_app.command("prove")
def prove(
    channel: str,
    seq: Annotated[int, typer.Option("--seq", help="The message's seq in its sender's chain.")],
    sender: Annotated[str, typer.Option("--sender", help="Peer name, station id, or 'me'.")],
    out: Out,
    data: cli.Data = Path("parley-data"),
) -> None:
    """Write a proof of one message: it, its envelope and an inclusion proof against a
    countersigned checkpoint. It reveals that message and nothing else of the channel."""
    api = Api(data)
    ch = cli.resolve_channel(api, channel)
    doc = api.get(f"/channels/{ch}/proof", params={"sender": sender, "seq": seq})
    out.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", "utf-8")
    cli.out.print(f"wrote {out}; check it with `parley transcript check-proof {out}`")


# --- offline checks -------------------------------------------------------------------------------


def trust_policy(
    data: Path, files: list[Path] | None, members: list[str] | None, unsafe: bool
) -> TrustPolicy:
    """The keys to accept: --trust and --member, else the station at `data`; or the unsafe
    policy, only when asked for by name and alone."""
    files, members = files or [], members or []
    if unsafe:
        if files or members:
            raise LocalError(
                Code.INVALID_REQUEST,
                f"--{UNSAFE_NAME} takes the file's own keys: it cannot be combined with "
                "--trust or --member (drop it to verify against those keys)",
            )
        return UNSAFE_TRUST_FILE_KEYS
    if len(members) > MAX_MEMBER_OPTIONS:
        raise LocalError(Code.INVALID_REQUEST, f"at most {MAX_MEMBER_OPTIONS} --member options")
    anchors: list[Anchor] = []
    for f in files:
        try:
            if f.stat().st_size > MAX_TRUST_BYTES:
                raise LocalError(
                    Code.INVALID_REQUEST, f"{f}: a trust file holds at most {MAX_TRUST_BYTES} bytes"
                )
            content = f.read_bytes()
        except OSError as exc:
            raise LocalError(Code.NOT_FOUND, f"cannot read the trust file {f}: {exc}") from exc
        anchors += parse_trust_file(content, str(f))
    anchors += [parse_anchor(m, f"--member {m!r}") for m in members]
    if anchors:
        return Anchors(tuple(anchors))
    return station_anchors(data)


def station_anchors(data: Path) -> Anchors:
    """The station at `data`: its own key and its known peers' (by station id and fingerprint)."""
    try:
        api = Api(data)
        me = api.get("/station")
        peers = api.get("/peers")
    except (ParleyError, OSError) as exc:
        why = exc.message if isinstance(exc, ParleyError) else str(exc)
        raise LocalError(
            Code.NO_TRUST_ANCHORS, f"{NO_ANCHORS} (no station at {data}: {why})"
        ) from exc
    keys = [(me, f"this station ({me['name']})")]
    keys += [(p, f"known peer {p['name']}") for p in peers]
    return Anchors(
        tuple(Anchor(src, k["station"], k["fingerprint"].replace(" ", "")) for k, src in keys)
    )


def _print_warning_first(policy: TrustPolicy, as_json: bool) -> None:
    """The unsafe policy's warning, before anything else is printed (and again with the result)."""
    if not isinstance(policy, Anchors) and not as_json:
        cli.out.print(f"[bold red]{policy.warning}[/]")


def _print_warning(report: Report, as_json: bool) -> None:
    trust = report.facts.get("trust", {})
    if "warning" in trust:
        (cli.err if as_json else cli.out).print(f"[bold red]{trust['warning']}[/]")


def _print_report(report: Report, as_json: bool) -> None:
    if as_json:
        _print_warning(report, as_json)
        return cli.print_json(report.to_json())
    t = Table("check", "result", "passed", "failed")
    for c in report.checks.values():
        result = {"pass": "[green]pass[/]", "fail": "[red]FAIL[/]", "none": "-"}[c.status]
        t.add_row(c.name, result, str(c.passed), str(c.failed))
    cli.out.print(t)
    for c in report.checks.values():
        for why in c.failures:
            cli.out.print(f"  {c.name}: {why}", markup=False)
        if c.failed > len(c.failures):
            cli.out.print(f"  {c.name}: … and {c.failed - len(c.failures)} more", markup=False)
    _print_warning(report, as_json)
    if report.ok and "warning" in report.facts.get("trust", {}):
        cli.out.print("[yellow]OK only if the member keys are the real ones[/]: see above.")
    else:
        cli.out.print("[green]OK[/]: every check passed." if report.ok else "[red]FAILED[/].")


def _print_keys(members: list[dict[str, Any]], title: str) -> None:
    cli.out.print(f"{title}:")
    for m in members:
        by = m.get("anchored_by")
        trusted = f"anchored by {by}" if by else "NOT ANCHORED"
        cli.out.print(
            f"  {m['name']}  {m['station']}  {m['fingerprint']}  ({trusted})", markup=False
        )


@transcript_app.command("verify")
def verify(
    file: Annotated[Path, typer.Argument(help="A transcript file from `transcript export`.")],
    trust: TrustFiles = None,
    member: Members = None,
    unsafe_trust_file_keys: UnsafeFileKeys = False,
    data: cli.Data = Path("parley-data"),
    as_json: cli.AsJson = False,
    quiet: NoProgress = False,
    witness_policy: Annotated[
        Path | None,
        typer.Option(
            "--policy",
            envvar="PARLEY_WITNESS_POLICY",
            help="A witness policy (Sigsum format: witness NAME KEY [URL], group NAME k|any|all "
            "MEMBER…, quorum NAME): each chain's latest checkpoint must carry its quorum.",
        ),
    ] = None,
) -> None:
    """Check a transcript file offline and print every check by name; exit 1 if any fails.
    Member keys must be anchored: --trust/--member, or the station at --data (its own key and
    its known peers)."""
    if not file.is_file():
        raise LocalError(Code.NOT_FOUND, f"no file {file}")
    witnesses = None
    if witness_policy is not None:
        if not witness_policy.is_file():
            raise LocalError(Code.NOT_FOUND, f"no file {witness_policy}")
        with witness_policy.open("rb") as pf:
            witnesses = parse_policy(pf.read(MAX_POLICY_BYTES + 1))
    policy = trust_policy(data, trust, member, unsafe_trust_file_keys)
    _print_warning_first(policy, as_json)
    total = file.stat().st_size
    show = not (quiet or as_json) and total >= PROGRESS_MIN_BYTES
    with _progress() as bar:
        task = bar.add_task("verifying", total=total, visible=show)
        report = verify_file(
            file,
            progress=lambda done: bar.update(task, completed=done),
            trust=policy,
            witnesses=witnesses,
        )
    if not as_json:
        facts = report.facts
        if "channel" in facts:
            cli.out.print(
                f"channel {facts['channel']}, exported by {facts['exported_by']} at "
                f"{cli.when(facts['exported_at'])}"
            )
            _print_keys(facts["members"], "members")
        for c in facts.get("chains", []):
            cli.out.print(
                f"  chain of {c['name']}: {c['envelopes']} envelopes, {c['checkpoints']} "
                f"checkpoints, countersigned up to {c['cosigned_up_to']}",
                markup=False,
            )
        for w in facts.get("witnessed", []):
            who = next((c["name"] for c in facts["chains"] if c["sender"] == w["sender"]), "?")
            cli.out.print(
                f"  {who}'s checkpoint at size {w['size']} witnessed by "
                f"{', '.join(w['witnesses'])}",
                markup=False,
            )
    _print_report(report, as_json)
    if not report.ok:
        raise typer.Exit(1)


@transcript_app.command("check-proof")
def check_proof(
    file: Annotated[Path, typer.Argument(help="A proof from `transcript prove`.")],
    trust: TrustFiles = None,
    member: Members = None,
    unsafe_trust_file_keys: UnsafeFileKeys = False,
    data: cli.Data = Path("parley-data"),
    as_json: cli.AsJson = False,
) -> None:
    """Check a proof of one message offline; print the message and every check. Member keys
    are anchored as for `transcript verify`."""
    policy = trust_policy(data, trust, member, unsafe_trust_file_keys)
    _print_warning_first(policy, as_json)
    try:
        doc = json.loads(file.read_bytes())
    except (OSError, ValueError) as exc:
        raise LocalError(Code.INVALID_REQUEST, f"cannot read {file} as JSON: {exc}") from exc
    report = proof.check_proof(doc, trust=policy)
    if not as_json and "sender" in report.facts:
        f = report.facts
        at = cli.when(f["ts"])
        cli.out.print(f"channel {f['channel']}: {f['sender']['name']} seq {f['seq']} at {at}")
        cli.out.print(json.dumps(f["body"], ensure_ascii=False, indent=1), markup=False)
        cosigners = ", ".join(c["name"] for c in f["cosigners"]) or "nobody"
        size = f["checkpoint_size"]
        cli.out.print(f"in a checkpoint of {size} envelopes, countersigned by {cosigners}")
        _print_keys(f["keys"], "keys")
    _print_report(report, as_json)
    if not report.ok:
        raise typer.Exit(1)
