"""Prometheus metrics without a dependency: counters, gauges, histograms, text exposition.

The daemon updates the module-level metrics below (QUERIES, BLOCKS, ...); the
metrics endpoint renders `REGISTRY`. Updates take one lock per metric, so any
thread may update. Several worker processes each keep their own registry and
write a snapshot file (`Registry.dump`) now and then; the endpoint merges the
snapshots of live workers (`merge_snapshots`), so a scrape sees the whole daemon.

Labels never carry a client address, MAC or name: only groups, categories,
actions, paths and upstream addresses. Children's data stays in the school,
and a metrics scrape is one more way for it to leave.

Usage in the daemon:
    from filterd import metrics
    metrics.QUERIES.inc(path="dns", action=decision.action.value)
    with metrics.UPSTREAM_LATENCY.time(upstream="9.9.9.9:53"): ...
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from filterd.errors import FilterdError
from filterd.state.atomic import atomic_write

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
DEFAULT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

LabelKey = tuple[str, ...]


class MetricsError(FilterdError, ValueError):
    """A metric was declared or used with a bad name, label set or value."""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(float(value)) if value != int(value) else str(int(value))


class _Metric:
    kind = "untyped"

    def __init__(self, name: str, help: str, labelnames: Iterable[str] = ()) -> None:
        if not _NAME.match(name):
            raise MetricsError(f"bad metric name {name!r}")
        self.name = name
        self.help = help
        self.labelnames: LabelKey = tuple(labelnames)
        for label in self.labelnames:
            if not _LABEL.match(label) or label.startswith("__") or label == "le":
                raise MetricsError(f"{name}: bad label name {label!r}")
        self._lock = threading.Lock()

    def _key(self, labels: Mapping[str, Any]) -> LabelKey:
        if set(labels) != set(self.labelnames):
            raise MetricsError(f"{self.name}: labels {sorted(labels)} != {list(self.labelnames)}")
        return tuple(str(labels[n]) for n in self.labelnames)

    def _labelstr(self, key: LabelKey, extra: tuple[tuple[str, str], ...] = ()) -> str:
        pairs = [*zip(self.labelnames, key, strict=True), *extra]
        if not pairs:
            return ""
        return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"

    def snapshot(self) -> dict[str, Any]:
        raise NotImplementedError

    def render_snapshot(self, snap: Mapping[str, Any]) -> Iterator[str]:
        raise NotImplementedError


def _function_snapshot(fn: Callable[[], float | None]) -> dict[str, Any]:
    try:
        v = fn()
    except Exception:  # a broken probe must not break the whole scrape
        v = None
    return {"values": [] if v is None else [[[], float(v)]]}


class Counter(_Metric):
    """Only goes up. `inc(amount, **labels)`, or read at scrape time with `set_function`."""

    kind = "counter"

    def __init__(self, name: str, help: str, labelnames: Iterable[str] = ()) -> None:
        super().__init__(name, help, labelnames)
        self._values: dict[LabelKey, float] = {}
        self._function: Callable[[], float | None] | None = None

    def set_function(self, fn: Callable[[], float | None]) -> None:
        """Read the total from a counter kept elsewhere (e.g. the DNS cache's hit count)."""
        if self.labelnames:
            raise MetricsError(f"{self.name}: set_function needs a counter without labels")
        self._function = fn

    def inc(self, amount: float = 1.0, **labels: Any) -> None:
        if amount < 0:
            raise MetricsError(f"{self.name}: a counter cannot go down ({amount})")
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: Any) -> float:
        if self._function is not None:
            return self._function() or 0.0
        with self._lock:
            return self._values.get(self._key(labels), 0.0)

    def snapshot(self) -> dict[str, Any]:
        if self._function is not None:
            return _function_snapshot(self._function)
        with self._lock:
            return {"values": [[list(k), v] for k, v in self._values.items()]}

    def render_snapshot(self, snap: Mapping[str, Any]) -> Iterator[str]:
        for key, v in snap["values"]:
            yield f"{self.name}{self._labelstr(tuple(key))} {_fmt(v)}"


class Gauge(_Metric):
    """Goes up and down; or computed at scrape time with `set_function`.

    `merge` says how worker processes combine: "sum" (queue depths), "max"
    (timestamps such as the last sync) or "min" (a state every worker must see: up).
    """

    kind = "gauge"

    def __init__(self, name: str, help: str, labelnames: Iterable[str] = (),
                 merge: str = "sum") -> None:
        super().__init__(name, help, labelnames)
        if merge not in ("sum", "max", "min"):
            raise MetricsError(f"{name}: merge must be sum, max or min, not {merge!r}")
        self.merge = merge
        self._values: dict[LabelKey, float] = {}
        self._function: Callable[[], float | None] | None = None

    def set(self, value: float, **labels: Any) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = float(value)

    def inc(self, amount: float = 1.0, **labels: Any) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def dec(self, amount: float = 1.0, **labels: Any) -> None:
        self.inc(-amount, **labels)

    def set_function(self, fn: Callable[[], float | None]) -> None:
        """Compute the (label-less) value when scraped; None means "unknown", not rendered."""
        if self.labelnames:
            raise MetricsError(f"{self.name}: set_function needs a gauge without labels")
        self._function = fn

    def value(self, **labels: Any) -> float | None:
        if self._function is not None:
            return self._function()
        with self._lock:
            return self._values.get(self._key(labels))

    def snapshot(self) -> dict[str, Any]:
        if self._function is not None:
            return _function_snapshot(self._function)
        with self._lock:
            return {"values": [[list(k), v] for k, v in self._values.items()]}

    def render_snapshot(self, snap: Mapping[str, Any]) -> Iterator[str]:
        for key, v in snap["values"]:
            yield f"{self.name}{self._labelstr(tuple(key))} {_fmt(v)}"


class Histogram(_Metric):
    """Distribution of observed values in cumulative buckets; `observe(v)` or `time()`."""

    kind = "histogram"

    def __init__(self, name: str, help: str, labelnames: Iterable[str] = (),
                 buckets: Iterable[float] = DEFAULT_BUCKETS) -> None:
        super().__init__(name, help, labelnames)
        bounds = sorted(float(b) for b in buckets)
        if not bounds or len(set(bounds)) != len(bounds):
            raise MetricsError(f"{name}: buckets must be distinct and non-empty")
        self.buckets = tuple(b for b in bounds if not math.isinf(b))
        # per label key: [count per bucket (non-cumulative, last = +Inf), sum]
        self._values: dict[LabelKey, tuple[list[int], list[float]]] = {}

    def observe(self, value: float, **labels: Any) -> None:
        key = self._key(labels)
        idx = bisect_left(self.buckets, value)   # the first bound >= value (le semantics)
        with self._lock:
            counts, total = self._values.setdefault(key, ([0] * (len(self.buckets) + 1), [0.0]))
            counts[idx] += 1
            total[0] += value

    def observer(self, **labels: Any) -> Callable[[float], None]:
        """`observe` bound to one set of labels, for hot paths (an upstream's latency).

        The label key, its bucket row and the bucket search are settled once; each call
        is a bisect and two additions under the lock.
        """
        key = self._key(labels)
        buckets = self.buckets
        with self._lock:
            counts, total = self._values.setdefault(key, ([0] * (len(buckets) + 1), [0.0]))
        lock = self._lock

        def observe(value: float) -> None:
            idx = bisect_left(buckets, value)
            with lock:
                counts[idx] += 1
                total[0] += value

        return observe

    @contextlib.contextmanager
    def time(self, **labels: Any) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.observe(time.perf_counter() - start, **labels)

    def count(self, **labels: Any) -> int:
        with self._lock:
            got = self._values.get(self._key(labels))
            return sum(got[0]) if got else 0

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"buckets": list(self.buckets),
                    "values": [[list(k), list(c), t[0]] for k, (c, t) in self._values.items()]}

    def render_snapshot(self, snap: Mapping[str, Any]) -> Iterator[str]:
        bounds = [*snap["buckets"], math.inf]
        for key, counts, total in snap["values"]:
            key = tuple(key)
            running = 0
            for bound, n in zip(bounds, counts, strict=True):
                running += n
                le = (("le", _fmt(bound)),)
                yield f"{self.name}_bucket{self._labelstr(key, le)} {running}"
            yield f"{self.name}_sum{self._labelstr(key)} {_fmt(total)}"
            yield f"{self.name}_count{self._labelstr(key)} {running}"


class Registry:
    """A named set of metrics; renders the text exposition format."""

    def __init__(self) -> None:
        self._metrics: dict[str, _Metric] = {}
        self._lock = threading.Lock()

    def register(self, metric: _Metric) -> _Metric:
        with self._lock:
            if metric.name in self._metrics:
                raise MetricsError(f"metric {metric.name} registered twice")
            self._metrics[metric.name] = metric
        return metric

    def counter(self, name: str, help: str, labelnames: Iterable[str] = ()) -> Counter:
        return self.register(Counter(name, help, labelnames))  # type: ignore[return-value]

    def gauge(self, name: str, help: str, labelnames: Iterable[str] = (),
              merge: str = "sum") -> Gauge:
        return self.register(Gauge(name, help, labelnames, merge))  # type: ignore[return-value]

    def histogram(self, name: str, help: str, labelnames: Iterable[str] = (),
                  buckets: Iterable[float] = DEFAULT_BUCKETS) -> Histogram:
        return self.register(Histogram(name, help, labelnames, buckets))  # type: ignore[return-value]

    def get(self, name: str) -> _Metric:
        return self._metrics[name]

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {name: m.snapshot() for name, m in list(self._metrics.items())}

    def render(self, snapshot: Mapping[str, Mapping[str, Any]] | None = None) -> str:
        snap = self.snapshot() if snapshot is None else snapshot
        lines: list[str] = []
        for name, metric in list(self._metrics.items()):
            lines.append(f"# HELP {name} {_escape(metric.help)}")
            lines.append(f"# TYPE {name} {metric.kind}")
            if name in snap:
                lines.extend(metric.render_snapshot(snap[name]))
        return "\n".join(lines) + "\n"

    def dump(self, path: str | Path, names: Iterable[str] | None = None) -> None:
        """Write this process's snapshot atomically, for the endpoint in another process;
        `names`: only these metrics."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        snap = self.snapshot()
        if names is not None:
            snap = {name: snap[name] for name in names}
        # Rewritten every few seconds and worthless after a power cut: no fsync.
        atomic_write(path, json.dumps(snap), durable=False)

    def merge_snapshots(self, snaps: Iterable[Mapping[str, Mapping[str, Any]]]
                        ) -> dict[str, dict[str, Any]]:
        """Combine worker snapshots: counters and histograms add, gauges sum or take the max."""
        merged: dict[str, dict[str, Any]] = {}
        for snap in snaps:
            for name, data in snap.items():
                metric = self._metrics.get(name)
                if metric is None:
                    continue
                into = merged.setdefault(name, {**data, "values": []})
                into["values"] = _merge_values(metric, into["values"], data["values"])
        return merged


def _merge_values(metric: _Metric, acc: list[Any], new: list[Any]) -> list[Any]:
    table = {tuple(v[0]): v for v in acc}
    for item in new:
        key = tuple(item[0])
        old = table.get(key)
        if old is None:
            table[key] = [list(item[0]), *(list(x) if isinstance(x, list) else x
                                           for x in item[1:])]
        elif isinstance(metric, Histogram):
            old[1] = [a + b for a, b in zip(old[1], item[1], strict=True)]
            old[2] += item[2]
        elif isinstance(metric, Gauge) and metric.merge == "max":
            old[1] = max(old[1], item[1])
        elif isinstance(metric, Gauge) and metric.merge == "min":
            old[1] = min(old[1], item[1])
        else:
            old[1] += item[1]
    return list(table.values())


def read_snapshot(path: str | Path) -> list[dict[str, Any]]:
    """The snapshot in one file, as a list of zero or one (missing or unreadable: none)."""
    try:
        return [json.loads(Path(path).read_text())]
    except (OSError, ValueError):
        return []


def read_snapshots(directory: str | Path) -> list[dict[str, Any]]:
    """The snapshot files in `directory` (`*.json`), skipping unreadable ones."""
    out = []
    for path in sorted(Path(directory).glob("*.json")):
        with contextlib.suppress(OSError, ValueError):
            out.append(json.loads(path.read_text()))
    return out


# ---- the daemon's metrics (the one registry everyone updates) -----------------------------

REGISTRY = Registry()
QUERIES = REGISTRY.counter("filterd_queries_total", "Queries decided, by path and action.",
                           ("path", "action"))
BLOCKS = REGISTRY.counter("filterd_blocks_total", "Blocked queries by category and group.",
                          ("category", "group"))
CACHE_HITS = REGISTRY.counter("filterd_dns_cache_hits_total", "DNS answers served from cache.")
CACHE_MISSES = REGISTRY.counter("filterd_dns_cache_misses_total",
                                "DNS questions forwarded because the cache had no answer.")
UPSTREAM_LATENCY = REGISTRY.histogram("filterd_upstream_latency_seconds",
                                      "Time for an upstream resolver to answer.", ("upstream",))
UPSTREAM_ERRORS = REGISTRY.counter("filterd_upstream_errors_total",
                                   "Upstream timeouts and failures.", ("upstream",))
UPSTREAM_UP = REGISTRY.gauge("filterd_upstream_up",
                             "1 while an upstream resolver answers, 0 while it is down.",
                             ("upstream",), merge="min")
INTERNAL_ERRORS = REGISTRY.counter("filterd_internal_errors_total",
                                   "Unexpected errors caught (and logged once a while), by where.",
                                   ("where",))
EVENT_QUEUE_DEPTH = REGISTRY.gauge("filterd_event_queue_depth",
                                   "Events waiting to be written to the event log.")
EVENTS_DROPPED = REGISTRY.counter("filterd_events_dropped_total",
                                  "Events dropped because the queue was full.")
EVENT_LOG_WRITABLE = REGISTRY.gauge("filterd_event_log_writable",
                                    "1 while the event log is written, 0 while writing fails "
                                    "(disk full, read-only).", merge="min")
BYPASS_ATTEMPTS = REGISTRY.counter("filterd_bypass_attempts_total",
                                   "Resolver bypass attempts seen on the LAN, by kind.", ("kind",))
LAST_SYNC = REGISTRY.gauge("filterd_last_sync_timestamp_seconds",
                           "Unix time of the last upload the office acknowledged.", merge="max")
LIST_AGE = REGISTRY.gauge("filterd_list_index_timestamp_seconds",
                          "Unix time the compiled list index was built.", merge="max")
RELOADS = REGISTRY.counter("filterd_reloads_total", "Configuration reloads, by result.",
                           ("result",))
DNS_FASTPATH = REGISTRY.gauge("filterd_dns_fastpath_info",
                              "Which DNS fast path the workers run (1 per implementation in "
                              "use): native (compiled) or pure (the Python twin).",
                              ("implementation",), merge="max")


# The bypass monitor is its own process (filterd-bypass.service): it writes its counter here,
# under <data_dir>/metrics/, and the daemon's endpoint adds it in.
BYPASS_SNAPSHOT = "bypass-monitor.json"

# The sync job's progress (under data_dir): `last_success_at` is the last acknowledged upload.
SYNC_STATE = "sync/state.json"


def last_sync_or_none(path: str | Path) -> Callable[[], float | None]:
    """A gauge function: unix time of `last_success_at` in the sync state file, None if never."""
    def probe() -> float | None:
        from datetime import datetime

        try:
            raw = json.loads(Path(path).read_text()).get("last_success_at")
            return datetime.fromisoformat(raw).timestamp() if raw else None
        except (OSError, ValueError, TypeError, AttributeError):
            return None
    return probe


def mtime_or_none(path: str | Path) -> Callable[[], float | None]:
    """A gauge function: the file's mtime, or None while it does not exist (e.g. never synced)."""
    def probe() -> float | None:
        try:
            return Path(path).stat().st_mtime
        except OSError:
            return None
    return probe


# ---- the endpoint ------------------------------------------------------------------------

class MetricsServer:
    """GET /metrics over HTTP in a daemon thread. `collect` returns the exposition text."""

    def __init__(self, host: str, port: int, collect: Callable[[], str] | None = None) -> None:
        render = collect or REGISTRY.render

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404, "only /metrics here")
                    return
                body = render().encode()
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # scrapes are not news
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="filterd-metrics", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def close_in_child(self) -> None:
        """In a forked child: drop the inherited listening socket (the thread did not fork)."""
        self._server.socket.close()
