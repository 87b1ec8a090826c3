"""The password policy: what a password must be before any user may have it.

Rules:
- at least MIN_LENGTH and at most MAX_LENGTH characters;
- zxcvbn (Dropbox's strength estimator, zxcvbn on PyPI) scores it at least MIN_SCORE of 4, i.e.
  about 10^8 guesses or more ("safely unguessable": it survives an online attack and an offline
  one against a slow hash for a while). zxcvbn knows common passwords, dictionary words, names,
  keyboard patterns, repeats, sequences and dates, and it is given the user's own name (and its
  parts: `south.rep` gives `south` and `rep`) and the station's name, so neither can carry it:
  what is left of the password without them must score as high on its own;
- zxcvbn reads at most its own 72 characters (its run time grows with length), so a longer password
  is judged by its first 72: a weak start makes it weak whatever follows.
A refusal is `weak_password` with `details.reason` (one of REASONS: a key that the console shows
in the reader's language) and `details.feedback` (zxcvbn's own warning and suggestions, English).
"""

from __future__ import annotations

import re
from typing import Any

from zxcvbn import zxcvbn

from parley.errors import Code, LocalError
from parley.protocol import crypto

MIN_LENGTH, MAX_LENGTH = 10, 1024
MIN_SCORE = 3
_ZXCVBN_MAX = 72  # zxcvbn's own limit; it raises ValueError beyond it

# Why a password was refused; the console's catalogue has "password.<reason>" for each.
REASONS = ("short", "long", "name", "common", "pattern", "weak")

_MESSAGES = {
    "short": f"a password is at least {MIN_LENGTH} characters",
    "long": f"a password is at most {MAX_LENGTH} characters",
    "name": "a password must not be built on the user's own name or the station's",
    "common": "this password is among the most common ones and is guessed at once",
    "pattern": "this password is a keyboard pattern, a repeat, a sequence or a date",
    "weak": "this password is too easy to guess; use a few uncommon words together",
}


class WeakPassword(LocalError):
    """A password the policy refuses; nothing was changed."""


def _hints(name: str, extra: tuple[str, ...]) -> list[str]:
    words = [name, *re.split(r"[._\-\s]+", name), *extra]
    return [w.lower() for w in words if len(w) >= 3]


def _reason(result: dict[str, Any]) -> str:
    for m in result.get("sequence", []):
        if m.get("pattern") == "dictionary" and m.get("dictionary_name") == "user_inputs":
            return "name"
    warning = str(result.get("feedback", {}).get("warning", "")).lower()
    if "common" in warning or "top-" in warning:
        return "common"
    if any(w in warning for w in ("repeat", "sequence", "keys", "keyboard", "date", "year")):
        return "pattern"
    return "weak"


def check(password: str, name: str = "", *, context: tuple[str, ...] = ()) -> str:
    """`password` if the policy accepts it for user `name`; WeakPassword saying why if not.
    `context`: more words it must not be built on (e.g. the station's name)."""
    if len(password) > MAX_LENGTH:
        raise WeakPassword(Code.WEAK_PASSWORD, _MESSAGES["long"], reason="long", feedback={})
    if len(password) < MIN_LENGTH:
        raise WeakPassword(Code.WEAK_PASSWORD, _MESSAGES["short"], reason="short", feedback={})
    hints = _hints(name, context)
    result = zxcvbn(password[:_ZXCVBN_MAX], user_inputs=hints)
    if int(result["score"]) >= MIN_SCORE:
        # zxcvbn may still credit a name that is repeated or run together with its parts: what
        # is left without the names must be strong on its own.
        rest = password.lower()
        for h in sorted(hints, key=len, reverse=True):
            rest = rest.replace(h, "")
        if rest == password.lower() or zxcvbn(rest[:_ZXCVBN_MAX])["score"] >= MIN_SCORE:
            return password
        raise WeakPassword(Code.WEAK_PASSWORD, _MESSAGES["name"], reason="name", feedback={})
    reason = _reason(result)
    fb = result.get("feedback", {})
    feedback = {
        "warning": str(fb.get("warning", "")),
        "suggestions": [str(s) for s in fb.get("suggestions", [])],
        "score": int(result["score"]),
    }
    raise WeakPassword(Code.WEAK_PASSWORD, _MESSAGES[reason], reason=reason, feedback=feedback)


def generate(name: str = "") -> str:
    """A random password the policy accepts (the demo's), 16 URL-safe characters."""
    while True:
        pw = crypto.token(12)
        try:
            return check(pw, name)
        except WeakPassword:  # pragma: no cover - a random 96-bit string is almost never weak
            continue
