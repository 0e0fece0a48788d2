"""E-mail through the school's own SMTP account (smtplib): STARTTLS on 587 or TLS on 465.

The password is read from a file only the service can read (mode 0600 or stricter, see
`read_secret`), at each send, so changing it needs no restart. Every message carries a
stable Message-ID: sent again after a crash, it is the same message to the receiver.
"""

from __future__ import annotations

import os
import smtplib
import ssl
import stat
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from filterd.alerts.render import Rendered
from filterd.errors import FilterdError

SECURITY = ("starttls", "tls", "none")


class DeliveryError(FilterdError):
    """A channel could not deliver; `permanent` means trying again will not help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def read_secret(path: Path) -> str:
    """The file's first line; refused when group or others may read it."""
    try:
        st = path.stat()
    except OSError as exc:
        raise DeliveryError(f"cannot read the password file {path}: {exc.strerror}") from None
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise DeliveryError(f"the password file {path} is readable by others: chmod 600 it")
    try:
        return path.read_text(encoding="utf-8").splitlines()[0].strip() if st.st_size else ""
    except (OSError, UnicodeDecodeError, IndexError) as exc:
        raise DeliveryError(f"cannot read the password file {path}: {exc}") from None


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 587
    security: str = "starttls"
    user: str = ""
    password_file: Path | None = None
    mail_from: str = ""
    timeout: float = 20.0
    ca_file: Path | None = None     # a school CA for its own mail server (tests, relays)

    def __post_init__(self) -> None:
        if self.security not in SECURITY:
            raise ValueError(f"security must be one of {', '.join(SECURITY)}")


class EmailChannel:
    def __init__(self, settings: SmtpSettings, school_id: str) -> None:
        self.s = settings
        self.school_id = school_id

    def message(self, to: str, rendered: Rendered, key: str) -> EmailMessage:
        m = EmailMessage()
        m["From"] = self.s.mail_from or self.s.user or f"filterd@{self.school_id}.invalid"
        m["To"] = to
        # A device name from the policy may hold a line break: never a header injection.
        m["Subject"] = " ".join(rendered.subject.split())
        m["Date"] = formatdate(localtime=True)
        m["Message-ID"] = f"<{key}@{self.school_id}.filterd>"
        m["X-Filterd-Alert"] = key
        m["Auto-Submitted"] = "auto-generated"
        m.set_content(rendered.text)
        return m

    def _context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.s.ca_file) if self.s.ca_file else None)
        return ctx

    def send(self, to: str, rendered: Rendered, key: str) -> None:
        s = self.s
        msg = self.message(to, rendered, key)
        try:
            if s.security == "tls":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout,
                                                      context=self._context())
            else:
                smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            with smtp:
                smtp.ehlo()
                if s.security == "starttls":
                    smtp.starttls(context=self._context())
                    smtp.ehlo()
                if s.user:
                    password = read_secret(s.password_file) if s.password_file else ""
                    smtp.login(s.user, password)
                refused = smtp.send_message(msg)
                if refused:
                    raise DeliveryError(f"refused: {refused}", permanent=True)
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(f"the mail server refused {to}: {exc.recipients}",
                                permanent=True) from None
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(f"the mail server refused the login: {exc.smtp_code} "
                                f"{exc.smtp_error!r}") from None
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(f"the mail server said {exc.smtp_code} {exc.smtp_error!r}",
                                permanent=exc.smtp_code in (550, 551, 553)) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise DeliveryError(f"the mail server {s.host}:{s.port} does not offer it: "
                                f"{exc}") from None
        except (TimeoutError, smtplib.SMTPException, OSError, ssl.SSLError) as exc:
            raise DeliveryError(f"cannot reach the mail server {s.host}:{s.port}: {exc}") from None


def new_key() -> str:
    """A random token (used once per database to keep message keys unique)."""
    return make_msgid(domain="x")[1:-3].replace(".", "") + os.urandom(4).hex()
