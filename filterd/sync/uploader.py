"""Send one gzip report to the office: signed, over HTTPS (http only on loopback).

An unreachable office raises OfficeUnreachable with the address and the cause
in plain words; the caller keeps the report in the outbox, so nothing is lost.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from filterd.errors import ConfigError, FilterdError
from filterd.sync.signing import Credential, sign

UPLOAD_PATH = "/api/v1/reports"
ENROL_PATH = "/api/v1/enrol"


class UploadError(FilterdError):
    """An upload did not get an acknowledgement."""


class OfficeUnreachable(UploadError):
    """Network failure, timeout or a 5xx from the office: try again later."""


class UploadRejected(UploadError):
    """The office answered and refused this report (4xx); retrying the same bytes will not help."""

    def __init__(self, message: str, status: int) -> None:
        self.status = status
        super().__init__(message)


def check_office_url(url: str) -> str:
    """HTTPS, or plain http only to a loopback address (tests, an SSH tunnel)."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(f"office_url must be an https:// URL, got {url!r}", key="sync.office_url")
    if parts.scheme == "http":
        host = parts.hostname
        loopback = host == "localhost"
        with contextlib.suppress(ValueError):
            loopback = loopback or ipaddress.ip_address(host).is_loopback
        if not loopback:
            raise ConfigError(f"office_url must use https (plain http only on loopback): {url}",
                              key="sync.office_url")
    return url.rstrip("/")


@dataclass(frozen=True, slots=True)
class Ack:
    status: str      # "stored" or "duplicate" (already received: not counted twice)
    school_id: str
    day: str


class Uploader:
    def __init__(self, office_url: str, credential: Credential, *, timeout: float = 30.0) -> None:
        self.url = check_office_url(office_url) + UPLOAD_PATH
        self.credential = credential
        self.timeout = timeout

    def send(self, body: bytes, *, now: float | None = None) -> Ack:
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip",
                   "User-Agent": "filterd-sync/1"}
        headers.update(sign(self.credential, body, time.time() if now is None else now))
        req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                payload = _json(resp.read())
        except urllib.error.HTTPError as exc:
            payload = _json(exc.read())
            msg = payload.get("error") or exc.reason
            if exc.code >= 500:
                raise OfficeUnreachable(f"office at {self.url} failed ({exc.code}): {msg}") from exc
            raise UploadRejected(f"office refused the report ({exc.code}): {msg}",
                                 exc.code) from exc
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise unreachable(self.url, exc) from exc
        if payload.get("status") not in ("stored", "duplicate"):
            raise OfficeUnreachable(f"office at {self.url} sent no acknowledgement: "
                                    f"{str(payload)[:200]}")
        return Ack(payload["status"], str(payload.get("school_id")), str(payload.get("day")))


def enrol(office_url: str, credential: Credential, code: str, *, timeout: float = 30.0
          ) -> dict[str, Any]:
    """Send the school's new public key with the office's one-time code; the answer
    (`key_id`, `office_feed_key`) or UploadRejected / OfficeUnreachable."""
    from filterd.sync.signing import b64e

    url = check_office_url(office_url) + ENROL_PATH
    body = json.dumps({"school_id": credential.school_id, "code": code.strip(),
                       "public_key": b64e(credential.public)}).encode()
    req = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": "filterd-sync/1"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            payload = _json(resp.read())
    except urllib.error.HTTPError as exc:
        msg = _json(exc.read()).get("error") or exc.reason
        if exc.code >= 500:
            raise OfficeUnreachable(f"office at {url} failed ({exc.code}): {msg}") from exc
        raise UploadRejected(f"office refused the enrolment ({exc.code}): {msg}",
                             exc.code) from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise unreachable(url, exc) from exc
    if payload.get("status") != "enrolled" or payload.get("key_id") != credential.key_id:
        raise UploadRejected(f"office sent no enrolment acknowledgement: {str(payload)[:200]}",
                             200)
    return payload


def unreachable(url: str, exc: BaseException) -> OfficeUnreachable:
    """The error for a failed connection, in words; a certificate refused as "not yet
    valid" or "expired" usually means this appliance's clock is wrong (a Raspberry Pi has
    no clock of its own until NTP answers), so say so and what the clock reads."""
    reason = getattr(exc, "reason", exc)
    text = str(reason)
    if "not yet valid" in text or "has expired" in text:
        now = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        return OfficeUnreachable(
            f"office at {url}: its certificate was refused ({text}); this appliance's clock "
            f"reads {now}: if that is wrong, wait for NTP (timedatectl) and try again; "
            "reports stay in the outbox")
    return OfficeUnreachable(f"office unreachable at {url}: {reason}")


def _json(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
