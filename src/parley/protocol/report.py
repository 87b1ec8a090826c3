"""The result of an offline check: every named check, how often it passed and failed, and why.

A report is good only if no check failed and the file could be read at all (fail closed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from parley.protocol.checkpoint import Member
from parley.protocol.identity import fingerprint
from parley.protocol.trust import Anchors, TrustPolicy

# How many failure messages a check keeps; the counts are always complete.
MAX_FAILURES_KEPT = 20


@dataclass
class Check:
    """One named check: how many items passed and failed, and why the first failures failed."""

    name: str
    passed: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)

    def ok(self) -> None:
        self.passed += 1

    def fail(self, why: str) -> None:
        self.failed += 1
        if len(self.failures) < MAX_FAILURES_KEPT:
            self.failures.append(why)

    def record(self, good: bool, why: str) -> bool:
        if good:
            self.passed += 1
        else:
            self.fail(why)
        return good

    @property
    def status(self) -> str:
        return "fail" if self.failed else "pass" if self.passed else "none"

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.name,
            "status": self.status,
            "passed": self.passed,
            "failed": self.failed,
            "failures": list(self.failures),
        }


@dataclass
class Report:
    """Every check by name, in a fixed order, and facts about what was checked."""

    checks: dict[str, Check]
    facts: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, names: Sequence[str]) -> Report:
        return cls({n: Check(n) for n in names})

    def __getitem__(self, name: str) -> Check:
        return self.checks[name]

    @property
    def ok(self) -> bool:
        return self.checks["file_format"].passed > 0 and not any(
            c.failed for c in self.checks.values()
        )

    @property
    def failed(self) -> list[str]:
        return [n for n, c in self.checks.items() if c.failed]

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checks": [c.to_json() for c in self.checks.values()],
            "facts": self.facts,
        }


def anchor_members(report: Report, members: Sequence[Member], trust: TrustPolicy) -> list[Any]:
    """The `member_keys` check: every member key the file names must match an anchor the
    verifier was given (protocol/trust.py); with the unsafe policy nothing is checked, and the
    report says so. Returns the members as facts, each with what anchored it."""
    out: list[Any] = []
    if not isinstance(trust, Anchors):
        report.facts["trust"] = {"policy": trust.name, "warning": trust.warning}
    else:
        report.facts["trust"] = {"policy": "anchored", "anchors": len(trust.anchors)}
    for m in members:
        fp = fingerprint(m.identity)
        anchor = trust.anchor_of(m.identity) if isinstance(trust, Anchors) else None
        if isinstance(trust, Anchors):
            report["member_keys"].record(
                anchor is not None,
                f"member {m.name} ({m.station}, fingerprint {fp}) is not anchored: no trusted "
                "station id, fingerprint or key is its key",
            )
        out.append({**m.to_json(), "fingerprint": fp, "anchored_by": anchor and anchor.source})
    return out
