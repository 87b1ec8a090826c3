"""Offline transcript verification: an export of N envelopes (default 200,000) built with the real
protocol functions, checked as `parley transcript verify` checks it.

Prints envelopes/s beside this machine's raw Ed25519 verification rate measured in the same run
(PyNaCl, a prepared VerifyKey, one verify call per signature of the same envelopes) times the
number of cores, and their ratio; the goal is >= 0.8 (issue 14). The raw rate is measured before
and after the verification and averaged, since the machine's load may change in between. As
`parley transcript verify` does (cli/verifying.verify_file), the file is mapped and spans of
envelope lines are checked in one worker process per core but one and in this process, which
also adds each span to the chains in file order; the CPU-time figure counts every process. On a
machine others are using, cores x the single-core rate is more than the run can get: the raw
loop is also run on every core at once, and the rate is given against that too.

The export is two members' chains on one channel, three envelopes of the first for each of the
second, each sealed with `envelope.seal` (X25519 wraps, XChaCha20-Poly1305, Ed25519), with a
checkpoint every 64 envelopes per chain (`checkpoint.checkpoint_body`, with its consistency
proof) and the other member's cosignature as its next envelope, then the checkpoints with their
cosignatures and the exporter's signature, as `export.TranscriptWriter` writes them.

    .venv/bin/python bench/verify.py [--envelopes 200000] [--file PATH] [--keep]
    .venv/bin/python bench/verify.py --file PATH --reuse      # verify a file kept earlier
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nacl.signing
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from parley.cli.verifying import cores, verify_file
from parley.domain import channels
from parley.protocol import checkpoint, crypto, export, merkle, scan
from parley.protocol.encoding import b64d, b64e, canonical
from parley.protocol.envelope import ENVELOPE_LABEL, ZERO_HASH, RecipientKey, Ref, seal
from parley.protocol.identity import key_id, station_id
from parley.protocol.trust import Anchors

EVERY = 64  # the station's default checkpoint interval, in envelopes
RAW_SAMPLE = 20_000  # signatures timed for the raw rate
T0 = 1_767_225_600_000
err = Console(stderr=True)


@dataclass
class Member:
    name: str
    key: crypto.SigningKey
    kem: crypto.KemKey
    id: str = ""
    seq: int = 0
    head: bytes = ZERO_HASH
    tree: merkle.Tree = field(default_factory=merkle.Tree)
    uncovered: int = 0
    last_checkpoint: int = 0

    def __post_init__(self) -> None:
        self.id = station_id(self.key.public)

    @property
    def recipient(self) -> RecipientKey:
        return RecipientKey(self.id, key_id(self.kem.public), self.kem.public)


def _bar(what: str, total: int | None, unit_column: bool = True) -> Progress:
    cols: list[Any] = [TextColumn(what), BarColumn()]
    if unit_column:
        cols.append(MofNCompleteColumn())
    cols.append(TimeRemainingColumn())
    return Progress(*cols, console=err, transient=True)


# The two members' identity keys (fixed, so --reuse checks a file made earlier), and what the
# auditor trusts: both, as if their fingerprints had been compared out of band.
SOUTH_KEY = crypto.SigningKey(bytes(range(32)))
NORTH_KEY = crypto.SigningKey(bytes(range(64, 96)))
TRUSTED = Anchors.of_keys([(SOUTH_KEY.public, "South"), (NORTH_KEY.public, "North")])


def build(path: Path, n: int) -> list[tuple[bytes, bytes, bytes]]:
    """Write an export of `n` envelopes to `path`; return (public key, message, signature) of
    the first RAW_SAMPLE envelopes for the raw-rate loop."""
    a = Member("South", SOUTH_KEY, crypto.KemKey(bytes(range(32, 64))))
    b = Member("North", NORTH_KEY, crypto.KemKey(bytes(range(96, 128))))
    ch = b64e(bytes(range(16)))
    members = [checkpoint.Member(m.id, m.name, m.key.public) for m in (a, b)]
    writer = export.TranscriptWriter(ch, members, a.id, T0)
    sample: list[tuple[bytes, bytes, bytes]] = []
    checkpoints: list[tuple[str, int, str]] = []
    made = 0

    def send(m: Member, other: Member, body: dict[str, Any], f: Any) -> None:
        nonlocal made
        m.seq += 1
        seen = {other.id: Ref(other.seq, other.head)} if other.seq else {}
        env, salt = seal(
            body, identity=m.key, sender=m.id, channel=ch, seq=m.seq, prev=m.head, seen=seen,
            recipients=[other.recipient], now_ms=T0 + made * 1000,
        )  # fmt: skip
        f.write(writer.envelope(env.raw, salt, canonical(body)))
        if len(sample) < RAW_SAMPLE:
            scanned = scan.scan_envelope(env.raw)
            sample.append((m.key.public, ENVELOPE_LABEL + scanned.signing_input, env.sig))
        m.head = env.hash
        m.tree.append(checkpoint.leaves([env.hash])[0])
        made += 1

    def content(m: Member, other: Member, body: dict[str, Any], f: Any) -> None:
        send(m, other, body, f)
        m.uncovered += 1
        if m.uncovered >= EVERY and made < n - 1:
            cp_body = checkpoint.checkpoint_body(m.key, ch, m.tree, m.last_checkpoint)
            send(m, other, cp_body, f)
            cb = checkpoint.check_checkpoint_body(cp_body)
            cosign, _ = checkpoint.cosign_body(cb, other.key, (T0 + made * 1000) // 1000)
            send(other, m, cosign, f)
            checkpoints.append((m.id, cb.size, cosign["note"]))
            m.uncovered, m.last_checkpoint = 0, cb.size

    with path.open("wb") as f, _bar("building the export", n) as bar:
        task = bar.add_task("build", total=n)
        for line in writer.start():
            f.write(line)
        content(a, b, channels.propose_body("hotline", "Benchmark line", [a.id, b.id]), f)
        content(b, a, channels.control_body("consent", "A" * 43), f)
        i = 0
        while made < n:
            i += 1
            sender, other = (b, a) if i % 4 == 0 else (a, b)
            text = f"Message {i}: the exercise area is unchanged; the window opens at 0{i % 10}:00."
            content(sender, other, channels.text_body(text * (1 + i % 3), "en"), f)
            bar.update(task, completed=made)
        for sender, size, signed in checkpoints:
            f.write(writer.checkpoint(sender, size, signed))
        f.write(writer.finish(a.key))
    return sample


def cpu_with_children() -> float:
    """CPU seconds of this process and of its children that have exited."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def raw_rate(sample: list[tuple[bytes, bytes, bytes]]) -> tuple[float, float]:
    """Signatures per second (wall clock, CPU time) of a plain PyNaCl verify loop over the same
    envelopes' signatures."""
    keys = {pk: nacl.signing.VerifyKey(pk) for pk, _, _ in sample}
    wall, cpu = time.perf_counter(), time.process_time()
    for pk, msg, sig in sample:
        keys[pk].verify(msg, sig)
    return len(sample) / (time.perf_counter() - wall), len(sample) / (time.process_time() - cpu)


def _raw_wall(sample: list[tuple[bytes, bytes, bytes]]) -> float:
    return raw_rate(sample)[0]


_kept: list[tuple[bytes, bytes, bytes]] = []  # in each worker of raw_rate_all_cores


def _keep(sample: list[tuple[bytes, bytes, bytes]]) -> None:
    global _kept
    _kept = sample


def _raw_kept(count: int) -> float:
    return _raw_wall(_kept[:count])


def raw_rate_all_cores(sample: list[tuple[bytes, bytes, bytes]], n: int) -> float:
    """Signatures per second of the raw loop run in `n` processes at once (wall clock). Each
    worker is handed the sample when it starts, before the timing: handing it over in the timed
    call (10,000 signed messages pickled to each worker) was timed as if it were the loop's."""
    part = sample[: len(sample) // 2]
    with ProcessPoolExecutor(max_workers=n, initializer=_keep, initargs=(part,)) as pool:
        list(pool.map(_raw_kept, [100] * n))  # start the workers before timing
        wall = time.perf_counter()
        list(pool.map(_raw_kept, [len(part)] * n))
        return n * len(part) / (time.perf_counter() - wall)


def sample_of(path: Path) -> list[tuple[bytes, bytes, bytes]]:
    """The raw-rate sample read back from a kept file (for --reuse)."""
    out: list[tuple[bytes, bytes, bytes]] = []
    members: dict[str, bytes] = {}
    with path.open("rb") as f:
        for n, line in enumerate(f):
            fields = line.rstrip(b"\n").split(b"\t")
            if n == 1:
                for m in json.loads(fields[1])["members"]:
                    members[m["station"]] = b64d(m["identity"])
            elif fields[0] == b"envelope" and len(out) < RAW_SAMPLE:
                s = scan.scan_envelope(fields[1])
                out.append((members[s.sender], ENVELOPE_LABEL + s.signing_input, s.sig))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--envelopes", type=int, default=200_000)
    ap.add_argument("--file", type=Path, help="where to write the export (default: a temp file)")
    ap.add_argument("--keep", action="store_true", help="keep the file afterwards")
    ap.add_argument("--reuse", action="store_true", help="verify --file as it is; do not build")
    args = ap.parse_args()
    path = args.file or Path(tempfile.mkstemp(suffix=".transcript")[1])
    try:
        if args.reuse:
            sample = sample_of(path)
            built = 0.0
        else:
            t = time.perf_counter()
            sample = build(path, args.envelopes)
            built = time.perf_counter() - t
        size = path.stat().st_size
        raw_before = raw_rate(sample)
        with _bar("verifying", size, unit_column=False) as bar:
            task = bar.add_task("verify", total=size)
            t, c = time.perf_counter(), cpu_with_children()
            report = verify_file(
                path, progress=lambda done: bar.update(task, completed=done), trust=TRUSTED
            )
            # The worker processes have exited here, so their CPU time is counted too.
            elapsed, cpu = time.perf_counter() - t, cpu_with_children() - c
        raw_after = raw_rate(sample)
        raw_parallel = raw_rate_all_cores(sample, cores())
    finally:
        if not args.keep and not args.reuse:
            os.unlink(path)
    if not report.ok:
        print("verification FAILED:", report.failed, file=sys.stderr)
        sys.exit(1)
    envelopes = report.facts["envelopes"]
    notes = report.facts["note_signatures"]
    raw = [(x + y) / 2 for x, y in zip(raw_before, raw_after, strict=True)]
    rate, rate_cpu = envelopes / elapsed, envelopes / cpu
    print(f"export              {envelopes:,} envelopes, {size / 1e6:,.1f} MB"
          + (f", built in {built:,.0f} s" if built else ""))  # fmt: skip
    print(f"verified in         {elapsed:,.2f} s ({cpu:,.2f} s CPU), every check passed; "
          f"{envelopes + notes + 1:,} Ed25519 verifications (envelopes, checkpoint notes, "
          "cosignatures, the export)")  # fmt: skip
    print(f"verification        {rate:,.0f} envelopes/s  ({rate_cpu:,.0f} per CPU second)")
    print(f"raw Ed25519         {raw[0]:,.0f} verifications/s  ({raw[1]:,.0f} per CPU second); "
          f"PyNaCl loop over {len(sample):,} of these envelopes' signatures, before and after: "
          f"{raw_before[0]:,.0f} and {raw_after[0]:,.0f}/s")  # fmt: skip
    n = cores()
    print(f"raw on {n} cores       {n:,} x {raw[0]:,.0f} = {n * raw[0]:,.0f}/s; measured on all "
          f"{n} at once: {raw_parallel:,.0f}/s")  # fmt: skip
    print(f"ratio               {rate / (n * raw[0]):.2f} of {n} x one core "
          f"({rate_cpu / raw[1]:.2f} in CPU time; {rate / raw_parallel:.2f} of all cores at "
          "once; goal >= 0.8)")  # fmt: skip


if __name__ == "__main__":
    main()
