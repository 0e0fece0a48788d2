"""Embedded mitmproxy, only for connections the SNI relay hands over (intercepting groups).

Runs in its own thread and event loop so its per-connection cost never slows the
relay's loop; listens on loopback only; confdir is filterd's CA directory (never
~/.mitmproxy). Options are set after the master and addons exist (addons declare
them), including connection_strategy="lazy" so a blocked request never opens an
upstream connection.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from filterd.errors import FilterdError


class MitmError(FilterdError):
    """The embedded mitmproxy could not start."""


class EmbeddedMitm:
    def __init__(
        self,
        addon: Any,
        *,
        confdir: str | Path,
        extra_options: Mapping[str, Any] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.addon = addon
        self.confdir = Path(confdir)
        self.extra_options = dict(extra_options or {})
        self.host = host
        self.token = secrets.token_hex(16)
        self.port: int | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._master: Any = None

    def start(self, timeout: float = 30.0) -> tuple[str, int]:
        self._thread = threading.Thread(target=self._run, name="filterd-mitmproxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise MitmError("mitmproxy did not start in time")
        if self._error is not None or self.port is None:
            raise MitmError(f"mitmproxy failed to start: {self._error}")
        return self.host, self.port

    def stop(self, timeout: float = 10.0) -> None:
        if self._master is not None and self._loop is not None:
            self._master.shutdown()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        from mitmproxy import options
        from mitmproxy.addons import default_addons, errorcheck
        from mitmproxy.master import Master

        self._loop = asyncio.get_running_loop()
        opts = options.Options()
        master = Master(opts)
        master.addons.add(*default_addons())
        master.addons.add(errorcheck.ErrorCheck())
        master.addons.add(self.addon)
        opts.update(
            confdir=str(self.confdir),
            mode=[f"regular@{self.host}:0"],
            connection_strategy="lazy",
            onboarding=False,
            stream_large_bodies="1m",
            filterd_token=self.token,
            **self.extra_options,
        )
        self._master = master
        run = asyncio.ensure_future(master.run())
        proxyserver = master.addons.get("proxyserver")
        for _ in range(600):
            if run.done():
                break
            addrs = proxyserver.listen_addrs()
            if addrs:
                self.port = addrs[0][1]
                break
            await asyncio.sleep(0.05)
        self._ready.set()
        await run
