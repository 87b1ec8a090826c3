"""Sending a notification by e-mail over SMTP (the standard library's smtplib and email).

Rules:
- Settings come from station.json's `notify.smtp` only (they hold a credential): `host`,
  `port`, `security` (`starttls`: plain connection upgraded before anything else is said, the
  default; `ssl`: TLS from the first byte; `none`: cleartext, for a relay on the same machine),
  `username` and `password_file` (the password is read from that file when a mail is sent, never
  kept in station.json or shown by the API), `from`, `timeout_s`.
- TLS uses the system's trust store and checks the host name (ssl.create_default_context).
- `send` blocks (socket I/O): callers run it on a worker thread, never on the event loop.
- Failures come back as a short text for the delivery log; nothing here raises for a server's
  behaviour.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

SECURITY = ("starttls", "ssl", "none")


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 587
    security: str = "starttls"
    username: str = ""
    password_file: str = ""
    sender: str = "parley@localhost"
    timeout_s: float = 10.0
    # A test's local server presents a certificate no system trusts: it hands its own context.
    context: ssl.SSLContext | None = field(default=None, compare=False)

    def tls(self) -> ssl.SSLContext:
        return self.context or ssl.create_default_context()


def message(sender: str, to: list[str], subject: str, text: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(domain="parley.invalid")
    msg.set_content(text)
    return msg


def send(settings: SmtpSettings, to: list[str], subject: str, text: str) -> str | None:
    """Send one mail; None if the server accepted it for every recipient, else why not."""
    msg = message(settings.sender, to, subject, text)
    try:
        smtp: smtplib.SMTP
        if settings.security == "ssl":
            smtp = smtplib.SMTP_SSL(
                settings.host, settings.port, timeout=settings.timeout_s, context=settings.tls()
            )
        else:
            smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_s)
        with smtp:
            if settings.security == "starttls":
                smtp.starttls(context=settings.tls())
            if settings.username:
                password = Path(settings.password_file).read_text().strip()
                smtp.login(settings.username, password)
            refused = smtp.send_message(msg)
        if refused:
            return f"refused recipients: {', '.join(sorted(refused))[:200]}"
    except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
        return f"{type(exc).__name__}: {str(exc)[:200]}"
    return None
