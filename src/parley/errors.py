"""Every error Parley reports, in one hierarchy.

    ParleyError                 code (stable, for programs) + message (for people) + HTTP status
    ├── RejectedInput           the other side sent something we refuse; nothing was stored
    ├── LocalError              our own caller asked for something impossible (bad CLI/API use)
    ├── NotFound
    ├── Forbidden / Unauthorized
    │   └── LoginRequired       the console wants a signed-in person (answered with a redirect)
    ├── Conflict
    └── Internal                what no handler expected: HTTP 500 `internal` with a request id

Codes are part of the wire and API contract (docs/protocol.md lists them); never rename one.
If an error does not make sense to show to a person or program, it should not be a ParleyError.
"""

from __future__ import annotations

from enum import StrEnum


class Code(StrEnum):
    # wire input (peer API, bundles, imports)
    MALFORMED = "malformed"
    OVERSIZED = "oversized"
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_SENDER = "unknown_sender"
    UNKNOWN_MEMBER = "unknown_member"  # a proposal names a member that is not a known peer
    NOT_A_MEMBER = "not_a_member"
    NOT_A_RECIPIENT = "not_a_recipient"
    CLOCK_SKEW = "clock_skew"
    TIMESTAMP_ORDER = "timestamp_order"
    GAP = "gap"
    EQUIVOCATION = "equivocation"
    BROKEN_CHAIN = "broken_chain"
    UNKNOWN_CHANNEL = "unknown_channel"
    CHANNEL_NOT_OPEN = "channel_not_open"
    UNKNOWN_KEY = "unknown_key"
    DECRYPT_FAILED = "decrypt_failed"
    COMMITMENT_MISMATCH = "commitment_mismatch"
    BAD_BODY = "bad_body"
    BAD_INVITATION = "bad_invitation"
    NO_ROUTE = "no_route"  # a relay cannot carry that envelope to that destination
    BAD_HANDOVER = "bad_handover"  # an identity hand-over fails a check (the message says which)
    KEY_REVOKED = "key_revoked"  # signed by an identity key this station's admin revoked
    # local use
    INVALID_REQUEST = "invalid_request"
    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"
    UNAUTHORIZED = "unauthorized"
    RATE_LIMITED = "rate_limited"
    BUSY = "busy"  # the station holds as many request bodies as it may; try again shortly
    WEAK_PASSWORD = "weak_password"
    CONFLICT = "conflict"
    PEER_REMOVED = "peer_removed"  # a channel with a removed or revoked member is read-only here
    STATION_EXISTS = "station_exists"
    NO_STATION = "no_station"
    STATION_UNREACHABLE = "station_unreachable"
    SCHEMA_TOO_NEW = "schema_too_new"
    INTEGRITY_FAILED = "integrity_failed"  # a stored message failed its check at rest
    NO_TRUST_ANCHORS = "no_trust_anchors"  # offline verification given no keys to trust
    INTERNAL = "internal"  # an unexpected failure; the log has it under the answer's request id


class ParleyError(Exception):
    """Base of every Parley error: a stable `code` and a message a person can act on."""

    status = 400

    def __init__(self, code: Code, message: str, **details: object) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"code": str(self.code), "message": self.message}
        if self.details:
            out["details"] = self.details
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!s}, {self.message!r})"


class RejectedInput(ParleyError):
    """Input from outside (a peer, a bundle, an export) that fails a check. Nothing was stored."""

    status = 422


class LocalError(ParleyError):
    """Our own caller asked for something that cannot be done."""

    status = 400


class NotFound(ParleyError):
    status = 404


class Forbidden(ParleyError):
    status = 403


class Unauthorized(ParleyError):
    status = 401


class Conflict(ParleyError):
    status = 409


class LoginRequired(Unauthorized):
    """No valid session on a console page: the console answers with a redirect to its login."""

    def __init__(self, expired: bool) -> None:
        super().__init__(Code.UNAUTHORIZED, "sign-in required", expired=expired)
        self.expired = expired


class Internal(ParleyError):
    """An exception no handler expected, as the station answers it: the details stay in the
    log, under `request_id`, and only the id goes to the caller."""

    status = 500

    def __init__(self, request_id: str) -> None:
        super().__init__(
            Code.INTERNAL,
            f"the station failed unexpectedly; its operator finds the cause in its log under "
            f"request id {request_id}",
            request_id=request_id,
        )
        self.request_id = request_id
