"""The daemon: wires the engine, the DNS server and the event log; handles signals.

SIGHUP reloads filterd.yaml, the policy and the list index two-phase: the new
engine is built and validated beside the running one (in a thread, so queries
keep being answered), then swapped in between two queries, and the settings a
reload can change (school name, time zone, staff groups...) reach the HTTP side.
If building fails the error is logged and the old engine keeps serving. Either
way the outcome is recorded for whoever asked (filterd.state.control).
SIGUSR2 restarts (for listen addresses and the like). SIGTERM/SIGINT stop cleanly.

With `dns.workers > 1` the parent validates the configuration, then forks
that many workers that each bind the same addresses with SO_REUSEPORT; the
kernel spreads clients across them and the memory-mapped list index is
shared through the page cache. The parent forwards signals and restarts a
worker that dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filterd import metrics
from filterd.dns import fastpath
from filterd.dns.answers import BlockAnswers
from filterd.dns.cache import AnswerCache
from filterd.dns.ratelimit import RateLimiter
from filterd.dns.resolver import DecisionEngine, Resolver
from filterd.dns.server import serve
from filterd.dns.upstream import UpstreamPool
from filterd.errors import FilterdError
from filterd.policy.decision import Action
from filterd.sdnotify import Notifier, NotifyError, watchdog_loop
from filterd.state import control
from filterd.state.db import db_path
from filterd.state.events import EventLog, open_event_log

log = logging.getLogger("filterd.daemon")

PID_FILE = control.PID_FILE

EngineFactory = Callable[[Any], DecisionEngine]

# The cyclic GC while serving (see Worker._gc_loop). An automatic pass, even of the youngest
# generation only, walks what survived since the last one (decisions, memo entries,
# queued events: 0.3-7 ms at 10k QPS, memory bound), and every query in flight waits
# through it: those passes were most of the p99 above 0.5 ms. Nothing on the query path
# makes reference cycles (refcounting frees it all), so automatic collection is off while
# serving and one full pass runs every GC_FULL_EVERY seconds and after a reload, over
# everything made since the engine was loaded (which is frozen out of it).
GC_FULL_EVERY = 60.0
# How long a thread may hold the GIL while another waits (default 5 ms): the event writer
# building its rows would otherwise hold back the query path that long at a time.
SWITCH_INTERVAL = 0.0005
# Answers living at least this long are refreshed when asked for in their last tenth (prefetch).
PREFETCH_MIN_TTL = 10

ConfigLoader = Callable[[], Any]


_NEIGHBOURS: tuple[int, Any] | None = None


def kernel_neighbours() -> Any:
    """This process's kernel neighbour table (IP -> MAC for MAC-based groups).

    One per process: a forked worker does not inherit the refresh thread, so it starts its own.
    """
    global _NEIGHBOURS
    if _NEIGHBOURS is None or _NEIGHBOURS[0] != os.getpid():
        from filterd.gateway.neighbours import KernelNeighbours

        # Re-read every 5 s: an address DHCP gave to another device must not keep the
        # previous device's group for long (IPv4 misses also read the ARP table at once).
        _NEIGHBOURS = (os.getpid(), KernelNeighbours(interval=5.0).start())
    return _NEIGHBOURS[1]


def default_engine_factory(config: Any) -> DecisionEngine:
    from filterd.build import build_engine

    return build_engine(config, neighbours=kernel_neighbours())


def default_config_loader(path: str | Path | None) -> ConfigLoader:
    def load() -> Any:
        from filterd.config import load_config

        return load_config(path)

    return load


def pid_file(config: Any) -> Path:
    return control.pid_path(config.data_dir)


def index_version(engine: Any) -> str | None:
    version = getattr(getattr(engine, "index", None), "version", None)
    return str(version) if version is not None else None


@dataclass(frozen=True)
class DnsSettings:
    """What the DNS part reads from the configuration (Config.dns and the appliance addresses)."""

    listen: tuple[tuple[str, int], ...]
    upstreams: tuple[tuple[str, int], ...]
    upstream_timeout: float = 2.0
    block_ttl: int = 10
    workers: int = 1
    cache_size: int = 100_000
    cache_min_ttl: int = 0
    cache_max_ttl: int = 86400
    negative_ttl_max: int = 3600
    rate_limit_qps: int = 0
    appliance_ipv4: str | None = None
    appliance_ipv6: str | None = None
    upstream_ca_file: str | None = None
    keep_ech_groups: tuple[str, ...] = ()
    serve_stale_max: int = 86400
    prefetch: bool = True
    tls_listen: tuple[tuple[str, int], ...] = ()
    https_listen: tuple[tuple[str, int], ...] = ()

    @classmethod
    def from_config(cls, config: Any) -> DnsSettings:
        d = config.dns
        v4 = getattr(config, "appliance_ipv4", None)
        v6 = getattr(config, "appliance_ipv6", None)
        return cls(listen=tuple((str(h), int(p)) for h, p in d.listen),
                   # (host, port) pairs, or config.UpstreamSpec carrying the transport
                   upstreams=tuple(d.upstreams),
                   upstream_ca_file=str(d.upstream_ca_file) if getattr(
                       d, "upstream_ca_file", None) else None,
                   upstream_timeout=float(d.upstream_timeout), block_ttl=int(d.block_ttl),
                   workers=int(d.workers), cache_size=int(d.cache_size),
                   cache_min_ttl=int(d.cache_min_ttl), cache_max_ttl=int(d.cache_max_ttl),
                   negative_ttl_max=int(d.negative_ttl_max),
                   rate_limit_qps=int(d.rate_limit_qps),
                   appliance_ipv4=str(v4) if v4 else None,
                   appliance_ipv6=str(v6) if v6 else None,
                   keep_ech_groups=tuple(getattr(d, "keep_ech_groups", ())),
                   serve_stale_max=int(getattr(d, "serve_stale_max", 86400)),
                   prefetch=bool(getattr(d, "prefetch", True)),
                   tls_listen=tuple(getattr(d, "tls_listen", ())),
                   https_listen=tuple(getattr(d, "https_listen", ())))


def dns_tls_files(config: Any) -> tuple[Path, Path] | None:
    """Certificate chain and key for serving DoT/DoH: the school's own, or one issued by
    the school CA (made before any worker starts, so workers never race to write it).
    None when neither is served. The DNS side never imports the HTTP side: this is
    where the two meet."""
    d = config.dns
    if not (getattr(d, "tls_listen", ()) or getattr(d, "https_listen", ())):
        return None
    if d.tls_cert_file is not None:
        return Path(d.tls_cert_file), Path(d.tls_key_file)
    from filterd.http.ca import ensure_ca
    from filterd.http.servercert import ensure_server_cert

    ca = ensure_ca(config.http.intercept_ca_dir, config.school_name)
    addresses = {a for a in (config.appliance_ipv4, config.appliance_ipv6) if a}
    for host, _port in (*d.tls_listen, *d.https_listen):
        if host not in ("0.0.0.0", "::"):
            addresses.add(host)
    return ensure_server_cert(ca, tuple(d.tls_names), tuple(sorted(addresses)))


def sd_notify(message: str) -> None:
    """Tell systemd (Type=notify) how we are; a no-op outside systemd."""
    fields = dict(line.split("=", 1) for line in message.splitlines() if "=" in line)
    with contextlib.suppress(NotifyError):
        Notifier().notify(**fields)


class MeteredEvents:
    """The event log, feeding the metrics endpoint from its own counts.

    The event log already counts every decision per hour, group, category, action and
    path for its `counts` table; its writer thread hands each batch to `_count` once, so
    the query path counts a decision once, not once per consumer. Metrics lag by at
    most the event log's flush interval.
    """

    def __init__(self, events: EventLog) -> None:
        self.events = events
        self.record = events.record   # the query path calls the event log directly
        events.on_counts = self._count

    @staticmethod
    def _count(counts: dict[tuple[str, str, str, Action, str], int]) -> None:
        for (_hour, group, category, action, path), n in counts.items():
            metrics.QUERIES.inc(n, path=path, action=str(action))
            if action is Action.BLOCK:
                metrics.BLOCKS.inc(n, category=category, group=group)

    def __getattr__(self, name: str) -> Any:  # dropped, flush, close... of the real log
        return getattr(self.events, name)


def bind_metrics(config: Any, resolver: Resolver, events: EventLog) -> None:
    """Point the scrape-time metrics at this process's cache, event queue and files."""
    metrics.CACHE_HITS.set_function(lambda: resolver.cache.hits)
    metrics.CACHE_MISSES.set_function(lambda: resolver.cache.misses)
    metrics.EVENT_QUEUE_DEPTH.set_function(lambda: events.depth)
    metrics.EVENTS_DROPPED.set_function(lambda: events.dropped)
    metrics.EVENT_LOG_WRITABLE.set_function(lambda: 1.0 if events.writable else 0.0)
    data = Path(config.data_dir)
    metrics.LIST_AGE.set_function(metrics.mtime_or_none(data / "lists" / "current"))
    metrics.LAST_SYNC.set_function(metrics.last_sync_or_none(data / metrics.SYNC_STATE))


def metrics_dir(config: Any) -> Path:
    return Path(config.data_dir) / "metrics"


def start_metrics_server(config: Any, collect: Callable[[], str] | None = None
                         ) -> metrics.MetricsServer | None:
    listen = getattr(getattr(config, "metrics", None), "listen", None)
    if not listen:
        return None
    try:
        server = metrics.MetricsServer(listen[0], listen[1], collect).start()
    except OSError as exc:  # metrics are for watching, not for serving: DNS goes on
        log.error("metrics endpoint not started on %s:%s: %s", listen[0], listen[1], exc)
        return None
    log.info("metrics on http://%s:%d/metrics", *server.address)
    return server


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency, but stay runnable without
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class Worker:
    """One serving process: resolver, listeners, event writer, reload on SIGHUP."""

    def __init__(self, config: Any, load_config: ConfigLoader, engine_factory: EngineFactory,
                 *, reuse_port: bool = False, http: bool = True,
                 notifier: Notifier | None = None, metrics_dump: Path | None = None,
                 record: bool = False, ack_fd: int | None = None) -> None:
        self.config = config
        # A forked worker tells the parent how each reload went (one JSON line per reload).
        self.ack_fd = ack_fd
        self.start_config = config   # what the listeners and caches were built from
        # The process the pid file names records each load's outcome (not forked workers).
        self.record = record
        self.restart_wanted = False
        self.http_service: Any = None
        # Only the process systemd started talks to it: a forked worker gets no notifier.
        self.notifier = notifier
        # Forked workers write their metrics here for the parent's endpoint.
        self.metrics_dump = metrics_dump
        self.metrics_server: metrics.MetricsServer | None = None
        self.run_http = http   # one process serves HTTP (block page, proxy) even with N DNS workers
        self.load_config = load_config
        self.engine_factory = engine_factory
        self.reuse_port = reuse_port
        self.settings = DnsSettings.from_config(config)
        self.resolver: Resolver | None = None
        self.events: EventLog | None = None
        self.alerts: Any = None
        self.reloads = 0
        self._reloading: asyncio.Task | None = None
        self._stop: asyncio.Event | None = None

    def build(self) -> tuple[Any, DecisionEngine]:
        """Phase one of a reload: read the configuration again and build a new engine."""
        config = self.load_config()
        return config, self.engine_factory(config)

    async def main(self, engine: DecisionEngine | None = None,
                   ready: Callable[[list[tuple[str, int]]], None] | None = None) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        if engine is None:
            engine = self.engine_factory(self.config)
        self.events = open_event_log(self.config).start()
        self.metered = MeteredEvents(self.events)
        pool = UpstreamPool(s.upstreams, timeout=s.upstream_timeout,
                            ca_file=s.upstream_ca_file)
        self.resolver = Resolver(
            engine, pool,
            cache=AnswerCache(s.cache_size, s.cache_min_ttl, s.cache_max_ttl, s.negative_ttl_max,
                              stale_for=s.serve_stale_max,
                              prefetch_min_ttl=PREFETCH_MIN_TTL if s.prefetch else 0),
            keep_ech_groups=frozenset(s.keep_ech_groups),
            answers=BlockAnswers(s.block_ttl, s.appliance_ipv4, s.appliance_ipv6),
            events=self.metered,
            rate_limit=RateLimiter(s.rate_limit_qps) if s.rate_limit_qps else None)
        bind_metrics(self.config, self.resolver, self.events)
        from filterd.alerts.service import AlertService

        # Every worker counts its events into alerts; the one serving HTTP also delivers.
        self.alerts = AlertService(self.config, lambda: self.resolver.engine, self.events,
                                   deliver=self.run_http, pool=pool).start()
        listeners = await serve(self.resolver, s.listen, reuse_port=self.reuse_port)
        encrypted = await self._serve_encrypted()
        if self.metrics_dump is None:
            monitor = metrics_dir(self.config) / metrics.BYPASS_SNAPSHOT
            self.metrics_server = start_metrics_server(self.config, lambda: metrics.REGISTRY.render(
                metrics.REGISTRY.merge_snapshots([metrics.REGISTRY.snapshot(),
                                                  *metrics.read_snapshot(monitor)])))
        background: list[asyncio.Task] = []
        if self.notifier is not None:
            writer = self.events
            background.append(loop.create_task(watchdog_loop(
                self.notifier, lambda: writer._thread is None or writer._thread.is_alive())))
        if self.metrics_dump is not None:
            background.append(loop.create_task(self._dump_metrics()))
        background.append(loop.create_task(self._gc_loop()))
        background.append(loop.create_task(self._watch_events()))
        self._stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        loop.add_signal_handler(control.RESTART_SIGNAL, self.request_restart)
        loop.add_signal_handler(signal.SIGTERM, self._stop.set)
        loop.add_signal_handler(signal.SIGINT, self._stop.set)
        metrics.DNS_FASTPATH.set(1, implementation=fastpath.IMPLEMENTATION)
        log.info("filterd DNS serving on %s (pid %d, %s fast path: %s)",
                 ", ".join(f"{h}:{p}" for h, p in listeners.addresses), os.getpid(),
                 fastpath.IMPLEMENTATION, fastpath.REASON)
        http_service = None
        if self.run_http and getattr(self.config, "http", None) is not None:
            from filterd.http import service as http_side

            http_service = self.http_service = await http_side.start(
                self.config, lambda: self.resolver.engine, self.metered)
            log.info("filterd HTTP serving: %s", ", ".join(
                f"{k} {h}:{p}" for k, (h, p) in http_service.addresses.items()))
        # Everything built so far (engine, policy tables, modules) lives as long as the
        # process: keep it out of the periodic full passes (see GC_FULL_EVERY).
        gc.freeze()
        sys.setswitchinterval(SWITCH_INTERVAL)
        if ready is not None:
            ready(listeners.addresses)
        if self.record:
            control.Attempt(self.config.data_dir, "start", self.config).ok(
                index_version=index_version(engine))
        try:
            await self._stop.wait()
        finally:
            if self.notifier is not None:
                with contextlib.suppress(NotifyError):
                    self.notifier.stopping()
            for task in background:
                task.cancel()
            if self.metrics_server is not None:
                self.metrics_server.stop()
            if http_service is not None:
                await http_service.close()
            listeners.close()
            for server, _addr in encrypted:
                server.close()
            pool.close()
            self.alerts.close()
            self.events.close()
            log.info("filterd DNS stopped (pid %d)", os.getpid())

    async def _serve_encrypted(self) -> list[tuple[asyncio.AbstractServer, tuple[str, int]]]:
        """DoT and DoH listeners (dns.tls_listen, dns.https_listen), same resolver as UDP."""
        s = self.settings
        files = dns_tls_files(self.config)
        if files is None:
            return []
        from filterd.dns.serve_https import serve_https
        from filterd.dns.serve_tls import serve_tls, server_context

        assert self.resolver is not None
        dot = await serve_tls(self.resolver, s.tls_listen, server_context(*files, ["dot"]),
                              reuse_port=self.reuse_port) if s.tls_listen else []
        doh = await serve_https(self.resolver, s.https_listen,
                                server_context(*files, ["h2", "http/1.1"]),
                                reuse_port=self.reuse_port) if s.https_listen else []
        for kind, servers in (("DoT", dot), ("DoH", doh)):
            for _server, (host, port) in servers:
                log.info("filterd %s serving on %s:%d", kind, host, port)
        return dot + doh

    async def _gc_loop(self) -> None:
        """Keep the cyclic GC's pauses out of the query path (see GC_FULL_EVERY)."""
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            while True:
                await asyncio.sleep(GC_FULL_EVERY)
                gc.collect()   # everything but what start-up or the last reload froze
        finally:
            if was_enabled:
                gc.enable()

    async def _watch_events(self, every: float = 0.5) -> None:
        """Un-starve the event writer when the machine is too busy for SCHED_IDLE."""
        assert self.events is not None
        while True:
            await asyncio.sleep(every)
            self.events.watch()

    async def _dump_metrics(self, every: float = 2.0) -> None:
        assert self.metrics_dump is not None
        while True:   # the event writer brings query counts in every flush interval
            with contextlib.suppress(OSError):
                metrics.REGISTRY.dump(self.metrics_dump)
            await asyncio.sleep(every)

    def request_reload(self) -> None:
        if self._reloading is not None and not self._reloading.done():
            # One at a time; a reload asked for during one runs right after it.
            self._reloading.add_done_callback(lambda _t: self.request_reload())
            return
        self._reloading = asyncio.get_running_loop().create_task(self.reload())

    def request_restart(self) -> None:
        asyncio.get_running_loop().create_task(self.restart())

    async def restart(self) -> bool:
        """Check the files first (a restart must not trade a running filter for none);
        then stop serving, and run() starts the process again (filterd.state.control)."""
        log.info("restart requested")
        attempt = control.Attempt(self.config.data_dir, "restart", self.config) \
            if self.record else None
        try:
            await asyncio.get_running_loop().run_in_executor(None, self.build)
        except Exception as exc:
            log.error("restart refused, the running filter keeps serving: %s", exc)
            if attempt is not None:
                attempt.refused(exc, failed=not isinstance(exc, FilterdError),
                                pending_restart=self._pending())
            return False
        self.restart_wanted = True
        if self._stop is not None:
            self._stop.set()
        return True

    async def reload(self) -> bool:
        """Build a new engine off the event loop; swap it in only if it built."""
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        attempt = control.Attempt(self.config.data_dir, "reload", self.config) \
            if self.record else None
        assert self.resolver is not None
        self._notify("reloading")
        try:
            config, engine = await loop.run_in_executor(None, self.build)
            changes = control.classify_changes(self.config, config)
            pending = control.classify_changes(self.start_config, config).needs_restart
            if self.http_service is not None:
                self.http_service.apply(config)   # validated before anything changes
        except FilterdError as exc:
            log.error("reload refused, the running policy keeps serving: %s", exc)
            metrics.RELOADS.inc(result="refused")
            if self.alerts is not None:
                self.alerts.reload_refused(str(exc))
            self._notify("ready", f"reload refused, old policy serving: {exc}"[:200])
            if attempt is not None:
                attempt.refused(exc, index_version=index_version(self.resolver.engine),
                                pending_restart=self._pending())
            self._ack(False, exc)
            return False
        except Exception as exc:
            log.exception("reload failed, the running policy keeps serving")
            metrics.RELOADS.inc(result="failed")
            self._notify("ready", "reload failed, old policy serving")
            if attempt is not None:
                attempt.refused(exc, failed=True, pending_restart=self._pending(),
                                index_version=index_version(self.resolver.engine))
            self._ack(False, exc)
            return False
        self.resolver.engine = engine
        self.config = config
        if self.events is not None:   # the next purge keeps the new retention
            self.events.retention_days = config.events.retention_days
        if self.alerts is not None:   # mail server, timings and links of the new file
            self.alerts.apply(config)
        # The old engine may hold cycles among the frozen objects: one full pass frees them,
        # then the new one is frozen in turn (a reload is rare; the pass takes milliseconds).
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        self.reloads += 1
        metrics.RELOADS.inc(result="ok")
        log.info("reloaded policy, lists and settings in %.2fs%s",
                 time.monotonic() - started,
                 f"; needs a restart: {', '.join(changes.needs_restart)}"
                 if changes.needs_restart else "")
        self._notify("ready", "serving (reloaded)")
        if attempt is not None:
            attempt.ok(changes, pending_restart=pending, index_version=index_version(engine))
        self._ack(True)
        return True

    def _ack(self, ok: bool, exc: BaseException | None = None) -> None:
        if self.ack_fd is None:
            return
        line = json.dumps({"pid": os.getpid(), "ok": ok, "error": str(exc) if exc else None})
        with contextlib.suppress(OSError):
            os.write(self.ack_fd, line.encode()[:PIPE_LINE - 1] + b"\n")

    def _pending(self) -> tuple[str, ...]:
        return control.classify_changes(self.start_config, self.config).needs_restart

    def _notify(self, what: str, status: str = "") -> None:
        if self.notifier is None:
            return
        with contextlib.suppress(NotifyError):
            if what == "reloading":
                self.notifier.reloading()
            else:
                self.notifier.ready(status or "serving")

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()


def _run_worker(worker: Worker, engine: DecisionEngine | None,
                ready: Callable[[list[tuple[str, int]]], None] | None = None) -> None:
    loop = _new_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(worker.main(engine, ready))
    finally:
        loop.close()


def _notify_ready(addresses: list[tuple[str, int]]) -> None:
    with contextlib.suppress(NotifyError):
        Notifier().ready("serving DNS on " + ", ".join(f"{h}:{p}" for h, p in addresses))


def run(config: Any, *, config_path: str | Path | None = None,
        load_config: ConfigLoader | None = None,
        engine_factory: EngineFactory = default_engine_factory) -> int:
    """Run the daemon until SIGTERM/SIGINT; return the exit status."""
    loader = load_config or default_config_loader(config_path)
    settings = DnsSettings.from_config(config)
    # Fail closed: an engine that does not build means no daemon at all.
    start = control.Attempt(config.data_dir, "start", config)
    try:
        engine = engine_factory(config)
    except FilterdError as exc:
        with contextlib.suppress(OSError):
            start.refused(exc)   # the admin page shows why the filter is not running
        raise
    from filterd.state.db import open_db
    from filterd.state.events import init_db

    db = open_db(db_path(config.data_dir))
    init_db(db)
    db.conn.close()
    control.write_pid(config.data_dir)
    dns_tls_files(config)   # made once here, before any worker needs it
    try:
        if settings.workers <= 1:
            worker = Worker(config, loader, engine_factory, notifier=Notifier(), record=True)
            _run_worker(worker, engine, _notify_ready)
            restart = worker.restart_wanted
        else:
            restart = _supervise(config, loader, engine_factory, settings.workers) == RESTART
        if restart:
            return _restart()
        return 0
    finally:
        control.remove_pid(config.data_dir)


RESTART = -1   # _supervise: stopped for a restart
PIPE_LINE = 512   # below PIPE_BUF: one worker's ack is written whole
WORKER_ACK_WAIT = 30.0


def _read_acks(fd: int, buf: bytearray) -> list[dict]:
    """The complete ack lines waiting in the pipe (non-blocking)."""
    with contextlib.suppress(BlockingIOError, InterruptedError):
        while True:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buf += chunk
    out = []
    while b"\n" in buf:
        line, _, rest = bytes(buf).partition(b"\n")
        buf[:] = rest
        with contextlib.suppress(ValueError):
            out.append(json.loads(line))
    return out


def _await_workers(fd: int, buf: bytearray, pids: set[int], timeout: float) -> dict[int, dict]:
    """Each signalled worker's ack of its reload, until all answered, died or `timeout`."""
    import select

    got: dict[int, dict] = {}
    deadline = time.monotonic() + timeout
    while pids - got.keys() and time.monotonic() < deadline:
        for ack in _read_acks(fd, buf):
            got[int(ack.get("pid", 0))] = ack
        for pid in list(pids - got.keys()):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                got[pid] = {"pid": pid, "ok": False, "error": f"worker {pid} exited"}
        select.select([fd], [], [], 0.1)
    for pid in pids - got.keys():
        got[pid] = {"pid": pid, "ok": False, "error": f"worker {pid} did not answer in "
                                                      f"{timeout:.0f} s"}
    return got


class WorkerReloadFailed(FilterdError):
    """A worker did not take a reload its parent validated."""


def under_systemd() -> bool:
    return bool(os.environ.get("INVOCATION_ID") or os.environ.get("NOTIFY_SOCKET"))


def _restart() -> int:
    """Under systemd: exit so the unit starts a new process (RestartForceExitStatus).
    Elsewhere: execute the same command line again (same pid, so the pid file stays)."""
    if under_systemd():
        log.info("exiting with status %d for systemd to restart filterd",
                 control.RESTART_EXIT_STATUS)
        return control.RESTART_EXIT_STATUS
    log.info("restarting: %s", " ".join(sys.orig_argv))
    logging.shutdown()
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
    return 1   # not reached


def _supervise(config: Any, loader: ConfigLoader, factory: EngineFactory, n: int) -> int:
    """Fork `n` workers and keep them running; forward SIGHUP after validating."""
    children: dict[int, int] = {}
    stopping = False
    restarting = restart_wanted = False
    reload_wanted = False
    current = config
    notifier = Notifier()
    ping_every = notifier.watchdog_interval()
    next_ping = 0.0
    dumps = metrics_dir(config)
    dumps.mkdir(parents=True, exist_ok=True)
    for old in dumps.glob("*.json"):  # a previous run's workers (not the bypass monitor's)
        if old.name != metrics.BYPASS_SNAPSHOT:
            old.unlink(missing_ok=True)
    server = start_metrics_server(config, lambda: metrics.REGISTRY.render(
        metrics.REGISTRY.merge_snapshots(metrics.read_snapshots(dumps))))
    ack_r, ack_w = os.pipe()   # workers -> parent: how each reload went
    os.set_blocking(ack_r, False)
    ack_buf = bytearray()

    def spawn(slot: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGCHLD,
                        control.RESTART_SIGNAL):
                signal.signal(sig, signal.SIG_DFL)
            code = 0
            try:
                if server is not None:  # the parent's listening socket is not ours to serve
                    server.close_in_child()
                os.close(ack_r)
                _run_worker(Worker(config, loader, factory, reuse_port=True, http=slot == 0,
                                   metrics_dump=dumps / f"{os.getpid()}.json",
                                   ack_fd=ack_w), None)
            except BaseException:
                log.exception("worker %d failed", slot)
                code = 1
            os._exit(code)
        children[pid] = slot

    def on_term(_sig: int, _frm: object) -> None:
        nonlocal stopping
        stopping = True

    def on_hup(_sig: int, _frm: object) -> None:
        nonlocal reload_wanted
        reload_wanted = True

    def on_restart(_sig: int, _frm: object) -> None:
        nonlocal restart_wanted
        restart_wanted = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGHUP, on_hup)
    signal.signal(control.RESTART_SIGNAL, on_restart)
    for slot in range(n):
        spawn(slot)
    sd_notify(f"READY=1\nSTATUS={n} DNS workers")
    control.Attempt(config.data_dir, "start", config).ok()
    while not stopping:
        if ping_every and time.monotonic() >= next_ping and children:
            with contextlib.suppress(NotifyError):
                notifier.watchdog()
            next_ping = time.monotonic() + ping_every
        if restart_wanted:
            restart_wanted = False
            attempt = control.Attempt(config.data_dir, "restart", current)
            try:
                factory(loader())   # a restart must not trade a running filter for none
            except Exception as exc:
                log.error("restart refused, the running filter keeps serving: %s", exc)
                attempt.refused(exc, failed=not isinstance(exc, FilterdError))
            else:
                stopping = restarting = True
                continue
        if reload_wanted:
            reload_wanted = False
            with contextlib.suppress(NotifyError):
                notifier.reloading()
            attempt = control.Attempt(config.data_dir, "reload", current)
            try:
                # Validate here first: an invalid policy never reaches a worker.
                new = loader()
                engine = factory(new)
            except Exception as exc:
                log.error("reload refused, the running policy keeps serving: %s", exc)
                from filterd.alerts.service import reload_refused

                reload_refused(config, str(exc))   # IT staff hear of it (worker 0 delivers)
                attempt.refused(exc, failed=not isinstance(exc, FilterdError),
                                pending_restart=control.classify_changes(
                                    config, current).needs_restart)
                with contextlib.suppress(NotifyError):
                    notifier.ready(f"reload refused, old policy serving: {exc}"[:200])
            else:
                _read_acks(ack_r, ack_buf)   # late answers to an earlier reload
                for pid in children:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGHUP)
                # The outcome is what the workers did, not what the parent validated.
                acks = _await_workers(ack_r, ack_buf, set(children), WORKER_ACK_WAIT)
                failed = [a for a in acks.values() if not a.get("ok")]
                pending = control.classify_changes(config, new).needs_restart
                if failed:
                    attempt.refused(WorkerReloadFailed("; ".join(
                        f"worker {a['pid']}: {a.get('error')}" for a in failed)), failed=True,
                        pending_restart=pending)
                else:
                    changes = control.classify_changes(current, new)
                    attempt.ok(changes, index_version=index_version(engine),
                               pending_restart=pending)
                current = new
                with contextlib.suppress(NotifyError):
                    notifier.ready(f"{n} DNS workers (reloaded)")
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid:
            slot = children.pop(pid)
            (dumps / f"{pid}.json").unlink(missing_ok=True)
            if not stopping:
                log.error("worker %d (pid %d) exited with %d; restarting", slot, pid, status)
                time.sleep(0.5)
                spawn(slot)
            continue
        time.sleep(0.1)
    with contextlib.suppress(NotifyError):
        notifier.stopping()
    if server is not None:
        server.stop()
    for pid in list(children):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while children and time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid:
            children.pop(pid, None)
        else:
            time.sleep(0.05)
    return RESTART if restarting else 0


def configure_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s")
