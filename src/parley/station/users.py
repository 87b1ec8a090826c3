"""People at a station: who they are and what their roles let them do.

Roles (DESIGN.md glossary): operator (duty operator: sends, acknowledges, answers check calls),
representative (may be named on back channels), translator, facilitator, auditor (reads and
verifies transcripts), admin (peers, users, channels, schedules). A back channel is readable only
by the users its proposal names for this station, whatever their roles: admins included.
"""

from __future__ import annotations

from dataclasses import dataclass

ROLES = ("operator", "representative", "translator", "facilitator", "auditor", "admin")


@dataclass(frozen=True)
class User:
    name: str
    roles: frozenset[str]

    def has(self, role: str) -> bool:
        return role in self.roles


# The holder of the station's bootstrap token (DIR/api.token): set-up and duty work, but no
# back channel unless a proposal names "admin" as a representative.
BOOTSTRAP = User("admin", frozenset({"admin", "operator"}))
