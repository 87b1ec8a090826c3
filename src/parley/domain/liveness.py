"""Link state from heartbeats, and the one judgement the station must never get wrong.

Link state (per peer link), recomputed on every input from three facts:
- heartbeat age: `missed = (now - last heartbeat) // heartbeat_interval_ms`;
  missed >= degraded_after_missed → DEGRADED, missed >= down_after_missed → DOWN;
- consecutive send failures: >= 1 → DEGRADED, >= down_after_missed → DOWN;
- the last round-trip time, if the policy sets `degraded_rtt_ms`: slower → DEGRADED.
The worst of the three wins. A monitor without any heartbeat yet is DOWN: nothing shows the link
works, and "up" must never be claimed without evidence.

Transitions:
- Every change of state is returned as a LinkChange; each one is an alarm for the station.
- Only a heartbeat makes things better. Age and failure counts only grow between heartbeats, so
  `tick` and `send_failed` can only worsen the state; in particular DOWN → UP needs a heartbeat.
- A heartbeat with `rtt_ms` is a round trip (our request, their answer): it also proves that our
  sends get through, so it clears the send-failure count. One without `rtt_ms` was pushed to us and
  proves only the inbound direction.
- The monitor runs on the latest `now_ms` it has seen: a clock stepped backwards pauses ageing
  instead of making an old heartbeat look fresh.

Situation (`assess`) tells a technical fault from silence, the ambiguity of October 2022 on the
inter-Korean line (DESIGN.md §6):
- link DOWN                     → LINK_DOWN   (a fault; overdue answers mean nothing yet)
- link DEGRADED                 → DEGRADED    (too early to tell a fault from silence)
- link UP, something overdue    → UNANSWERED  (heartbeats arrive; people do not answer)
- link UP, nothing overdue      → NORMAL
UNANSWERED is only ever reported while heartbeats are fresh, which is what makes it a statement
about people rather than about wires.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from parley.errors import Code, LocalError


class LinkState(StrEnum):
    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {LinkState.UP: 0, LinkState.DEGRADED: 1, LinkState.DOWN: 2}


@dataclass(frozen=True)
class LinkPolicy:
    """Thresholds from configuration. Counts are in heartbeat intervals (or failed sends)."""

    heartbeat_interval_ms: int
    degraded_after_missed: int
    down_after_missed: int
    degraded_rtt_ms: int | None = None  # None: round-trip time never degrades the link

    def __post_init__(self) -> None:
        if self.heartbeat_interval_ms <= 0:
            raise LocalError(Code.INVALID_REQUEST, "heartbeat_interval_ms must be positive")
        if not 1 <= self.degraded_after_missed < self.down_after_missed:
            raise LocalError(
                Code.INVALID_REQUEST,
                "need 1 <= degraded_after_missed < down_after_missed",
            )
        if self.degraded_rtt_ms is not None and self.degraded_rtt_ms <= 0:
            raise LocalError(Code.INVALID_REQUEST, "degraded_rtt_ms must be positive")


@dataclass(frozen=True)
class LinkChange:
    """One transition of a link's state: an alarm for the station, an item for a crisis timeline."""

    old: LinkState
    new: LinkState
    at_ms: int
    reason: str
    link: str = ""  # which link (peer station id or path name); "" when the caller has one link


class LinkMonitor:
    """State machine for one link. Feed it events and ticks; it returns the transitions."""

    def __init__(
        self,
        policy: LinkPolicy,
        now_ms: int,
        *,
        link: str = "",
        last_heartbeat_ms: int | None = None,
    ) -> None:
        """Start a monitor at `now_ms`; pass `last_heartbeat_ms` to resume after a restart."""
        self.policy = policy
        self.link = link
        self.last_heartbeat_ms = last_heartbeat_ms
        self.last_rtt_ms: int | None = None
        self.send_failures = 0
        self._clock_ms = now_ms if last_heartbeat_ms is None else max(now_ms, last_heartbeat_ms)
        # The initial state is not a transition: no alarm for "the station started".
        self.state, self.reason = self._classify()

    def heartbeat_received(self, now_ms: int, rtt_ms: int | None = None) -> list[LinkChange]:
        if rtt_ms is not None and rtt_ms < 0:
            raise LocalError(Code.INVALID_REQUEST, "rtt_ms must not be negative")
        self._advance(now_ms)
        self.last_heartbeat_ms = self._clock_ms
        if rtt_ms is not None:
            self.last_rtt_ms = rtt_ms
            self.send_failures = 0
        return self._update()

    def send_failed(self, now_ms: int) -> list[LinkChange]:
        self._advance(now_ms)
        self.send_failures += 1
        return self._update()

    def tick(self, now_ms: int) -> list[LinkChange]:
        self._advance(now_ms)
        return self._update()

    def missed(self) -> int:
        """Whole heartbeat intervals since the last heartbeat, as of the latest time seen."""
        if self.last_heartbeat_ms is None:
            return self.policy.down_after_missed
        return (self._clock_ms - self.last_heartbeat_ms) // self.policy.heartbeat_interval_ms

    def _advance(self, now_ms: int) -> None:
        # Run on the latest time seen: a clock stepped backwards pauses ageing; it must not make
        # an old heartbeat look fresh and revive a dead link.
        self._clock_ms = max(self._clock_ms, now_ms)

    def _classify(self) -> tuple[LinkState, str]:
        p = self.policy
        candidates: list[tuple[LinkState, str]] = [(LinkState.UP, "heartbeats arrive")]
        if self.last_heartbeat_ms is None:
            candidates.append((LinkState.DOWN, "no heartbeat received yet"))
        else:
            missed = self.missed()
            if missed >= p.down_after_missed:
                candidates.append((LinkState.DOWN, f"{missed} heartbeats missed"))
            elif missed >= p.degraded_after_missed:
                candidates.append((LinkState.DEGRADED, f"{missed} heartbeats missed"))
        if self.send_failures >= p.down_after_missed:
            candidates.append((LinkState.DOWN, f"{self.send_failures} sends failed in a row"))
        elif self.send_failures >= 1:
            candidates.append((LinkState.DEGRADED, f"{self.send_failures} send(s) failed"))
        if p.degraded_rtt_ms is not None and (self.last_rtt_ms or 0) > p.degraded_rtt_ms:
            candidates.append((LinkState.DEGRADED, f"round trip {self.last_rtt_ms} ms"))
        # max() keeps the first of equals, so the reason is the first cause found at that level.
        return max(candidates, key=lambda c: c[0].severity)

    def _update(self) -> list[LinkChange]:
        new, reason = self._classify()
        self.reason = reason
        if new is self.state:
            return []
        change = LinkChange(self.state, new, self._clock_ms, reason, self.link)
        self.state = new
        return [change]


class Situation(StrEnum):
    NORMAL = "normal"
    DEGRADED = "degraded"
    UNANSWERED = "unanswered"
    LINK_DOWN = "link_down"


@dataclass(frozen=True)
class Assessment:
    situation: Situation
    overdue_checkcalls: int
    overdue_acks: int

    def explain(self, lang: str = "en") -> str:
        """A sentence an operator can act on, in English ("en") or Korean ("ko")."""
        try:
            template = _EXPLANATIONS[lang][self.situation]
        except KeyError:
            raise LocalError(Code.INVALID_REQUEST, f"no explanation in language {lang!r}") from None
        return template.format(calls=self.overdue_checkcalls, acks=self.overdue_acks)


def assess(link_state: LinkState, overdue_checkcalls: int, overdue_acks: int) -> Assessment:
    """Tell 'the link is down' from 'the link is up and nobody answers' (see module rules).

    The counts are the other side's overdue answers on this link: check calls we issued that it
    missed, and our notices it has not acknowledged in time.
    """
    if overdue_checkcalls < 0 or overdue_acks < 0:
        raise LocalError(Code.INVALID_REQUEST, "overdue counts must not be negative")
    if link_state is LinkState.DOWN:
        situation = Situation.LINK_DOWN
    elif link_state is LinkState.DEGRADED:
        situation = Situation.DEGRADED
    elif overdue_checkcalls or overdue_acks:
        situation = Situation.UNANSWERED
    else:
        situation = Situation.NORMAL
    return Assessment(situation, overdue_checkcalls, overdue_acks)


# Written, not machine-translated: both sides of a hotline must read the same judgement.
_EXPLANATIONS: dict[str, dict[Situation, str]] = {
    "en": {
        Situation.NORMAL: "The link is up and nothing is overdue.",
        Situation.DEGRADED: (
            "The link is degraded: heartbeats are late or sends are failing. It is too early to "
            "tell a fault from silence ({calls} check call(s) and {acks} acknowledgement(s) "
            "overdue)."
        ),
        Situation.UNANSWERED: (
            "The link is up and heartbeats arrive, but nobody answers: {calls} check call(s) "
            "unanswered and {acks} acknowledgement(s) overdue. The other station is running; "
            "its people are not responding."
        ),
        Situation.LINK_DOWN: (
            "The link is down: a technical fault, not a statement by the other side. Heartbeats "
            "have stopped or sends fail, so {calls} unanswered check call(s) and {acks} overdue "
            "acknowledgement(s) cannot be read as silence."
        ),
    },
    "ko": {
        Situation.NORMAL: "회선 정상: 기한이 지난 항목이 없습니다.",
        Situation.DEGRADED: (
            "회선 불안정: 하트비트가 지연되거나 전송이 실패하고 있습니다. 기술적 장애인지 "
            "무응답인지 아직 판단할 수 없습니다"
            "(기한 경과: 점검 호출 {calls}건, 확인 응답 {acks}건)."
        ),
        Situation.UNANSWERED: (
            "회선은 정상이며 하트비트가 수신되고 있으나 응답이 없습니다: 점검 호출 {calls}건 "
            "미응답, 확인 응답 {acks}건 기한 경과. 상대 스테이션은 작동 중이나 담당자가 "
            "응답하지 않고 있습니다."
        ),
        Situation.LINK_DOWN: (
            "회선 단절: 기술적 장애이며 상대측의 의사 표시가 아닙니다. 하트비트가 끊겼거나 "
            "전송이 실패하고 있으므로, 미응답 점검 호출 {calls}건과 기한이 지난 확인 응답 "
            "{acks}건을 무응답으로 해석할 수 없습니다."
        ),
    },
}
