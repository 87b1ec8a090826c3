"""Channels and their messages, as operators use them: the use-case service every adapter calls.

    ChannelDesk(station)
      propose / step (consent, suspend, reopen, close)     channel lifecycle
      send / send_batch                                    text messages
      channels / channel / messages / inbox / transcript   reads

Rules:
- Every method takes the acting user first and checks the role table (station/roles.py) before it
  reads or changes anything; channel-scoped methods then pass the back-channel gate
  (`Station.guard`): a user not named on a back channel gets `forbidden` and learns nothing else.
- A back channel names its representatives per member station. The names this station gives (as
  proposer, or when it consents) must be existing, enabled users holding the `representative`
  role here, checked when the proposal is made and again when this station consents: naming
  oneself without the role, or a user who does not exist yet (and whom a later account of that
  name would inherit), is refused with `invalid_request`. Names for other stations must at least
  be user names, never the reserved `admin` (the bootstrap token) or `station`. A named user
  who loses the role loses the channel with it (`Station.visible`).
- A send's gate and the send itself run as one job of the station's writer (station/writer.py):
  in the group's transaction, so a request reaches the writer's queue without waiting for the
  store while another group is being committed.
- Answers are plain data (dicts) the API returns as JSON and the console and CLI render.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from parley.domain.channels import ChannelState, text_body
from parley.errors import Code, LocalError
from parley.protocol.encoding import b64e
from parley.station import users
from parley.station.node import Message, Station, queued
from parley.station.roles import REPRESENTATIVE, Action, allowed, authorize
from parley.station.users import User
from parley.store.base import EnvelopeRow

STEPS = {
    "consent": Action.CHANNEL_CONSENT,
    "suspend": Action.CHANNEL_SUSPEND,
    "reopen": Action.CHANNEL_REOPEN,
    "close": Action.CHANNEL_CLOSE,
}


class ChannelDesk:
    def __init__(self, station: Station) -> None:
        self.station = station

    # --- lifecycle -------------------------------------------------------------------------------
    def propose(
        self,
        who: User,
        kind: str,
        title: str,
        peers: Sequence[str],
        facilitator: str | None = None,
        representatives: dict[str, list[str]] | None = None,
        witnesses: list[dict[str, str]] | None = None,
        witness_k: int = 0,
    ) -> dict[str, Any]:
        authorize(who, Action.CHANNEL_PROPOSE)
        st = self.station
        peers = [st.station_id(p) for p in peers]
        if facilitator is not None:
            facilitator = st.station_id(facilitator)
        if representatives is not None:
            representatives = {st.station_id(k): v for k, v in representatives.items()}
        if kind == "backchannel":
            for names in (representatives or {}).values():
                for name in names:  # other stations' names too: never "admin" or "station"
                    users.check_name(name)
            self._check_representatives((representatives or {}).get(st.id, []))
        extra: dict[str, Any] = {}
        if facilitator is not None:
            extra["facilitator"] = facilitator
        if representatives is not None:
            extra["representatives"] = representatives
        if witnesses:
            extra["witnesses"], extra["witness_k"] = witnesses, witness_k
        channel = st.propose_channel(kind, title, list(peers), who.name, **extra)
        return self.view(channel)

    def may_step(self, who: User) -> dict[str, bool]:
        """Which lifecycle steps `who`'s roles allow (the console shows only those buttons)."""
        return {step: allowed(who, action) for step, action in STEPS.items()}

    def step(self, who: User, channel: str, step: str, reason: str = "") -> dict[str, Any]:
        """consent, suspend, reopen or close: a signed control message."""
        action = STEPS.get(step)
        if action is None:
            raise LocalError(
                Code.INVALID_REQUEST, f"unknown step {step!r}; steps are {', '.join(STEPS)}"
            )
        authorize(who, action)
        state = self.station.guard(channel, who)
        if step == "consent" and state.kind == "backchannel":
            self._check_representatives(state.representatives.get(self.station.id, ()))
        self.station.control(channel, step, reason, who.name)
        return self.view(channel)

    def _check_representatives(self, names: Sequence[str]) -> None:
        """The users a back channel names for this station exist here with the role."""
        if not names:
            raise LocalError(
                Code.INVALID_REQUEST,
                "a back channel names at least one representative of this station",
            )
        known = {u.name: u for u in users.list_users(self.station)}
        for name in names:
            u = known.get(name)
            if u is None or u.disabled is not None or REPRESENTATIVE not in u.roles:
                raise LocalError(
                    Code.INVALID_REQUEST,
                    f"{name!r} is not a representative here: a back channel names existing users"
                    " of this station who hold the representative role"
                    " (`parley user roles NAME representative`)",
                    field="representatives",
                )

    # --- sending ---------------------------------------------------------------------------------
    def send(
        self,
        who: User,
        channel: str,
        text: str,
        lang: str | None = None,
        precedence: str = "ROUTINE",
        idempotency_key: str = "",
    ) -> dict[str, Any]:
        job = self._send_job(who, channel, text, lang, precedence, idempotency_key)
        return queued(*self.station.writer.run(job))

    async def send_async(
        self,
        who: User,
        channel: str,
        text: str,
        lang: str | None = None,
        precedence: str = "ROUTINE",
        idempotency_key: str = "",
    ) -> dict[str, Any]:
        """`send` for the API's event loop: no thread waits for the group commit."""
        job = self._send_job(who, channel, text, lang, precedence, idempotency_key)
        return queued(*await self.station.writer.run_async(job))

    def _send_job(
        self, who: User, channel: str, text: str, lang: str | None, precedence: str, key: str
    ) -> Callable[[], tuple[EnvelopeRow, bool]]:
        authorize(who, Action.MESSAGE_SEND)
        st = self.station
        body = text_body(text, lang or st.cfg.lang)

        def job() -> tuple[EnvelopeRow, bool]:
            st.guard(channel, who)
            return st.send(channel, body, precedence, key, who.name)

        return job

    async def send_batch_async(
        self,
        who: User,
        channel: str,
        messages: Sequence[tuple[str, str | None, str]],
        idempotency_key: str = "",
    ) -> dict[str, Any]:
        """Several (text, lang, precedence) in order, queued in one transaction (all or none),
        for the API's event loop as `send_async`."""
        authorize(who, Action.MESSAGE_SEND)
        st = self.station
        items = [(text_body(t, lang or st.cfg.lang), prec) for t, lang, prec in messages]

        def job() -> tuple[list[EnvelopeRow], bool]:
            st.guard(channel, who)
            return st.send_many(channel, items, idempotency_key, who.name)

        return batch_queued(channel, *await st.writer.run_async(job, weight=len(items)))

    # --- reading ---------------------------------------------------------------------------------
    def channels(self, who: User) -> list[dict[str, Any]]:
        authorize(who, Action.CHANNEL_READ)
        return [self._view(s) for s in self.station.channel_states(who)]

    def states(self, who: User) -> list[ChannelState]:
        """The channels `who` may see, as states (the console renders them)."""
        authorize(who, Action.CHANNEL_READ)
        return self.station.channel_states(who)

    def state(self, who: User, channel: str) -> ChannelState:
        authorize(who, Action.CHANNEL_READ)
        return self.station.guard(channel, who)

    def channel(self, who: User, channel: str) -> dict[str, Any]:
        return self._view(self.state(who, channel))

    def messages(self, who: User, channel: str, after: int = 0, limit: int = 1000) -> list[Message]:
        authorize(who, Action.CHANNEL_READ)
        return self.station.messages(channel, after, limit, who)

    def inbox(self, who: User, limit: int = 200) -> list[Message]:
        authorize(who, Action.CHANNEL_READ)
        return self.station.inbox(limit, who)

    def inbox_json(self, who: User, limit: int = 200) -> bytes:
        """`inbox` as the API shows it, kept while nothing changes (station/answers.py)."""
        authorize(who, Action.CHANNEL_READ)
        st = self.station
        return st.answers.kept(
            ("inbox", st.hidden(who), limit), lambda: [m.to_json() for m in self.inbox(who, limit)]
        )

    def transcript(self, who: User, channel: str) -> dict[str, Any]:
        self.state(who, channel)
        return self.station.transcript_digest(channel)

    def view(self, channel: str) -> dict[str, Any]:
        """A channel as the API shows it (callers have passed the gate)."""
        return self._view(self.station.channel_state(channel))

    def _view(self, s: ChannelState) -> dict[str, Any]:
        st = self.station
        return {
            "channel": s.channel,
            "kind": s.kind,
            "title": s.title,
            "state": s.state,
            "members": [{"station": m, "name": st.peer_name(m)} for m in s.members],
            "proposer": s.proposer,
            "facilitator": s.facilitator or None,
            "representatives": {k: list(v) for k, v in s.representatives.items()},
            "consents": sorted(s.consents),
            "awaiting": sorted(set(s.members) - s.consents) if s.pending else [],
            "history": [{"ts": ts, "by": by, "event": what} for ts, by, what in s.history],
            "witnesses": {
                "k": s.witness_k,
                "of": [{"vkey": v, "url": u} for v, u in s.witnesses],
            } if s.witnesses else None,
        }  # fmt: skip


def batch_queued(channel: str, rows: list[EnvelopeRow], created: bool) -> dict[str, Any]:
    """What a batch send answers once its envelopes are committed to the outbox."""
    return {
        "channel": channel,
        "status": "queued",
        "created": created,
        "envelopes": [{"seq": r.seq, "hash": b64e(r.hash)} for r in rows],
    }
