"""A tiny sd_notify client: tells systemd we are ready, reloading, stopping or alive.

No dependency: one unix datagram per message to $NOTIFY_SOCKET, as sd_notify(3)
does. Outside systemd (no $NOTIFY_SOCKET) every call is a cheap no-op, so the
daemon calls it unconditionally.

The watchdog must be pinged from the thread that does the real work (the
asyncio loop), not from a helper thread: a hung loop must stop the pings so
systemd restarts the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable, Mapping

from filterd.errors import FilterdError


class NotifyError(FilterdError):
    """$NOTIFY_SOCKET is set but unusable (bad path, socket gone)."""


def _address(raw: str) -> str | bytes:
    if raw.startswith("@"):  # abstract namespace socket
        return b"\0" + raw[1:].encode()
    if not raw.startswith("/"):
        raise NotifyError(f"NOTIFY_SOCKET must be an absolute path or @abstract, got {raw!r}")
    return raw


class Notifier:
    """Sends sd_notify messages; `enabled` is False when not started by systemd."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        raw = env.get("NOTIFY_SOCKET", "")
        self._address = _address(raw) if raw else None
        self._watchdog_usec = self._read_watchdog(env)

    @staticmethod
    def _read_watchdog(env: Mapping[str, str]) -> int:
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        if not usec.isdigit():
            return 0
        if pid and pid != str(os.getpid()):  # the watchdog is meant for another process
            return 0
        return int(usec)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def watchdog_interval(self) -> float | None:
        """Seconds between pings (half of WatchdogSec=), or None if no watchdog asked."""
        return self._watchdog_usec / 2_000_000 if self._watchdog_usec else None

    def notify(self, **fields: str | int) -> bool:
        """Send `KEY=value` lines (e.g. READY=1, STATUS=...); True if sent."""
        if self._address is None:
            return False
        msg = "\n".join(f"{k}={v}" for k, v in fields.items()).encode()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            try:
                # Never block the caller (the event loop): if systemd's queue is full the
                # message is dropped, like a missed watchdog tick.
                sock.sendto(msg, socket.MSG_DONTWAIT, self._address)
            except BlockingIOError:
                return False
            except OSError as exc:
                raise NotifyError(f"cannot notify systemd at {self._address!r}: {exc}") from exc
        return True

    def ready(self, status: str = "serving") -> bool:
        return self.notify(READY=1, STATUS=status, MAINPID=os.getpid())

    def reloading(self) -> bool:
        # MONOTONIC_USEC lets Type=notify-reload (systemd >= 253) match the reload; older
        # versions ignore it. READY=1 must follow when the reload is done.
        return self.notify(RELOADING=1, MONOTONIC_USEC=time.monotonic_ns() // 1000)

    def stopping(self) -> bool:
        return self.notify(STOPPING=1)

    def status(self, text: str) -> bool:
        return self.notify(STATUS=text)

    def watchdog(self) -> bool:
        return self.notify(WATCHDOG=1)


async def watchdog_loop(notifier: Notifier, healthy: Callable[[], bool] = lambda: True) -> None:
    """Ping the watchdog from the event loop while `healthy()`; run as a task, cancel to stop."""
    interval = notifier.watchdog_interval()
    if interval is None:
        return
    while True:
        if healthy():
            with contextlib.suppress(NotifyError):  # a vanished socket must not kill the daemon
                notifier.watchdog()
        await asyncio.sleep(interval)
