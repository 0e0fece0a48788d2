"""Wires the HTTP side: block page server, SNI relay, and (only if a group intercepts) mitmproxy.

The daemon calls `await start(config, engine_provider, event_sink)` inside its event
loop and `await service.close()` on shutdown; `filterd proxy` does the same alone.
`engine_provider()` returns the current engine, so a reload applies to the next
connection. Nothing here imports filterd.dns.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from filterd.errors import ConfigError
from filterd.http.blockapp import BlockApp, ProxyInfo
from filterd.http.blockpage import BlockPageRenderer, CsrfSigner
from filterd.http.blockserver import BlockPageServer
from filterd.http.ca import ensure_ca
from filterd.http.categories import DEFAULT_CATEGORIES_FILE, load_categories
from filterd.http.decider import DEFAULT_NO_INTERCEPT, Decider, EngineProvider
from filterd.http.eventsink import EventSink, NullSink
from filterd.http.sni_relay import Handoff, RelayLimits, SniRelay
from filterd.state.reviews import ReviewStore

MODES = ("explicit", "transparent")


@dataclass(frozen=True)
class HttpSettings:
    data_dir: Path = Path("var")
    blockpage_listen: tuple[str, int] = ("127.0.0.1", 8080)
    proxy_listen: tuple[str, int] = ("127.0.0.1", 3128)
    mode: str = "explicit"
    transparent_listen: tuple[str, int] | None = None  # extra transparent listener (both modes)
    ca_dir: Path | None = None  # default <data_dir>/ca
    categories_file: Path = DEFAULT_CATEGORIES_FILE
    school_name: str = ""
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Ho_Chi_Minh"))
    intercept_groups: frozenset[str] = frozenset()
    staff_groups: frozenset[str] = frozenset({"giao_vien", "staff"})
    no_intercept: tuple[str, ...] = DEFAULT_NO_INTERCEPT
    limits: RelayLimits = field(default_factory=RelayLimits)
    upstream_overrides: Mapping[str, tuple[str, int | None]] = field(default_factory=dict)
    mitm_options: Mapping[str, Any] = field(default_factory=dict)  # e.g. upstream CA for tests

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)}", key="http.mode")
        for key, addr in (
            ("http.block_listen", self.blockpage_listen),
            ("http.proxy_listen", self.proxy_listen),
            ("http.transparent_listen", self.transparent_listen),
        ):
            if addr is None:
                continue
            host, port = addr
            try:
                ipaddress.ip_address(host)
            except ValueError as exc:
                raise ConfigError(f"bad address {host!r}", key=key) from exc
            if not 0 <= int(port) < 65536:
                raise ConfigError(f"bad port {port!r}", key=key)

    @property
    def ca_directory(self) -> Path:
        return self.ca_dir or self.data_dir / "ca"

    @classmethod
    def from_config(cls, config: Any) -> HttpSettings:
        """Read filterd.config.Config (its `http` section); absent keys keep the defaults."""
        http = getattr(config, "http", None)
        kw: dict[str, Any] = {}
        for attr, name in (
            ("data_dir", "data_dir"),
            ("categories_file", "categories_file"),
            ("school_name", "school_name"),
            ("timezone", "timezone"),
        ):
            if getattr(config, attr, None) is not None:
                kw[name] = getattr(config, attr)
        for attr, name in (
            ("block_page_listen", "blockpage_listen"),
            ("proxy_listen", "proxy_listen"),
            ("mode", "mode"),
            ("transparent_listen", "transparent_listen"),
            ("intercept_ca_dir", "ca_dir"),
            ("intercept_groups", "intercept_groups"),
            ("staff_groups", "staff_groups"),
            ("no_intercept", "no_intercept"),
        ):
            value = getattr(http, attr, None) if http is not None else None
            if value is not None:
                kw[name] = value
        for key in ("intercept_groups", "staff_groups"):
            if key in kw:
                kw[key] = frozenset(kw[key])
        return cls(**kw)


class HttpService:
    def __init__(
        self,
        settings: HttpSettings,
        engine_provider: EngineProvider,
        event_sink: EventSink | None = None,
    ) -> None:
        self.settings = settings
        self.sink = event_sink or NullSink()
        self.decider = Decider(
            engine_provider,
            intercept_groups=settings.intercept_groups,
            staff_groups=settings.staff_groups,
            no_intercept=settings.no_intercept,
        )
        renderer = BlockPageRenderer(
            load_categories(settings.categories_file),
            school_name=settings.school_name,
            timezone=settings.timezone,
        )
        self.ca = ensure_ca(settings.ca_directory, settings.school_name)
        self.reviews = ReviewStore(settings.data_dir)
        from filterd.state.site_reports import SiteReportStore

        self.site_reports = SiteReportStore(settings.data_dir)
        proxy_host = settings.proxy_listen[0]
        self.app = BlockApp(
            renderer,
            self.decider,
            csrf=CsrfSigner(secrets.token_bytes(32)),
            reviews=self.reviews,
            site_reports=self.site_reports,
            ca=self.ca,
            proxy=ProxyInfo(
                "" if ipaddress.ip_address(proxy_host).is_unspecified else proxy_host,
                settings.proxy_listen[1],
            ),
        )
        self.relay = SniRelay(
            self.decider,
            self.app,
            self.sink,
            limits=settings.limits,
            upstream_overrides=settings.upstream_overrides,
        )
        self.blockserver = BlockPageServer(self.app)
        self.mitm = None
        self.addresses: dict[str, tuple[str, int]] = {}

    def apply(self, config: Any) -> None:
        """Take the settings a reload can change (school name, time zone, category words,
        staff groups) from a new configuration: the next page and connection use them.
        Everything is built before anything is swapped, so a bad file changes nothing.
        Listen addresses, mode and intercepting groups keep their start-up values."""
        new = HttpSettings.from_config(config)
        renderer = BlockPageRenderer(
            load_categories(new.categories_file),
            school_name=new.school_name,
            timezone=new.timezone,
        )
        self.app.renderer = renderer
        self.decider.staff_groups = new.staff_groups
        self.decider.no_intercept = new.no_intercept
        self.settings = dataclasses.replace(
            self.settings,
            categories_file=new.categories_file,
            school_name=new.school_name,
            timezone=new.timezone,
            staff_groups=new.staff_groups,
            no_intercept=new.no_intercept,
        )

    async def start(self) -> HttpService:
        import asyncio

        s = self.settings
        if s.intercept_groups:
            from filterd.http.addon import Addon
            from filterd.http.mitm import EmbeddedMitm

            self.mitm = EmbeddedMitm(
                Addon(self.decider, self.app, self.sink),
                confdir=s.ca_directory,
                extra_options=s.mitm_options,
            )
            host, port = await asyncio.to_thread(self.mitm.start)
            self.relay.handoff = Handoff(host, port, self.mitm.token)
        server = await self.blockserver.start(*s.blockpage_listen)
        self.addresses["blockpage"] = server.sockets[0].getsockname()[:2]
        serve = (
            self.relay.serve_transparent if s.mode == "transparent" else self.relay.serve_explicit
        )
        server = await serve(*s.proxy_listen)
        self.addresses["proxy"] = server.sockets[0].getsockname()[:2]
        self.app.proxy = ProxyInfo(self.app.proxy.host, self.addresses["proxy"][1])
        if s.transparent_listen is not None:
            server = await self.relay.serve_transparent(*s.transparent_listen)
            self.addresses["transparent"] = server.sockets[0].getsockname()[:2]
        return self

    async def close(self) -> None:
        import asyncio

        await self.relay.close()
        await self.blockserver.close()
        if self.mitm is not None:
            await asyncio.to_thread(self.mitm.stop)
        self.reviews.close()
        self.site_reports.close()


async def start(
    config: Any,
    engine_provider: EngineProvider,
    event_sink: EventSink | None = None,
    *,
    settings: HttpSettings | None = None,
) -> HttpService:
    """Start the HTTP side in the running loop; returns the service (call `await .close()`)."""
    service = HttpService(settings or HttpSettings.from_config(config), engine_provider, event_sink)
    return await service.start()


def run_forever(config_path: str | None) -> None:
    """`filterd proxy`: the HTTP side alone until SIGINT/SIGTERM; SIGHUP reloads the engine."""
    import asyncio
    import logging
    import signal

    from filterd.build import build_engine
    from filterd.config import load_config  # core: lands with the engine

    config = load_config(config_path)
    state = {"engine": build_engine(config)}
    from filterd.state.events import open_event_log

    sink = open_event_log(config).start()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

        def reload() -> None:
            try:  # validate-then-swap: a bad one never loads
                new = load_config(config_path)
                engine = build_engine(new)
                service.apply(new)
                state["engine"] = engine
            except Exception as exc:
                logging.getLogger(__name__).error(
                    "reload failed, keeping the running policy: %s", exc
                )

        loop.add_signal_handler(signal.SIGHUP, reload)
        service = await start(config, lambda: state["engine"], sink)
        for name, (host, port) in service.addresses.items():
            print(f"{name}: {host}:{port}", flush=True)
        await stop.wait()
        await service.close()
        close = getattr(sink, "close", None)
        if close is not None:
            close()

    try:
        import uvloop  # faster event loop where available (Linux)

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
