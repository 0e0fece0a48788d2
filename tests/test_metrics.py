from __future__ import annotations

import multiprocessing
import threading
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from filterd import metrics
from filterd.metrics import MetricsError, MetricsServer, Registry, mtime_or_none, read_snapshots


def _families(text: str) -> dict:
    """Parse with the reference Prometheus parser: proves the exposition is valid."""
    return {f.name: f for f in text_string_to_metric_families(text)}


def _sample(text: str, name: str, **labels: str) -> float:
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and s.labels == labels:
                return s.value
    raise AssertionError(f"{name} {labels} not in exposition")


def test_counter_gauge_histogram_render_and_parse() -> None:
    r = Registry()
    q = r.counter("t_queries_total", 'Queries "decided".\nSecond line', ("path", "action"))
    g = r.gauge("t_depth", "Queue depth.")
    h = r.histogram("t_latency_seconds", "Latency.", ("upstream",), buckets=(0.01, 0.1))
    q.inc(path="dns", action="block")
    q.inc(2, path="dns", action="block")
    q.inc(path="http", action='al"low\\')
    g.set(7)
    g.dec(2)
    for v in (0.005, 0.05, 0.05, 3.0):
        h.observe(v, upstream="10.99.0.1:53")
    text = r.render()
    fams = _families(text)
    assert fams["t_queries"].type == "counter"
    assert fams["t_latency_seconds"].type == "histogram"
    assert _sample(text, "t_queries_total", path="dns", action="block") == 3
    assert _sample(text, "t_queries_total", path="http", action='al"low\\') == 1
    assert _sample(text, "t_depth") == 5
    up = {"upstream": "10.99.0.1:53"}
    assert _sample(text, "t_latency_seconds_bucket", le="0.01", **up) == 1
    assert _sample(text, "t_latency_seconds_bucket", le="0.1", **up) == 3
    assert _sample(text, "t_latency_seconds_bucket", le="+Inf", **up) == 4
    assert _sample(text, "t_latency_seconds_count", **up) == 4
    assert _sample(text, "t_latency_seconds_sum", **up) == pytest.approx(3.105)


def test_bad_declarations_and_uses_are_refused() -> None:
    r = Registry()
    with pytest.raises(MetricsError):
        r.counter("bad-name", "x")
    with pytest.raises(MetricsError):
        r.counter("ok", "x", ("le",))
    c = r.counter("c_total", "x", ("path",))
    with pytest.raises(MetricsError):
        r.counter("c_total", "again")
    with pytest.raises(MetricsError):
        c.inc(-1, path="dns")
    with pytest.raises(MetricsError):
        c.inc(client="10.0.0.1")  # undeclared label
    with pytest.raises(MetricsError):
        r.gauge("g", "x", ("a",)).set_function(lambda: 1.0)


def test_threads_do_not_lose_increments() -> None:
    r = Registry()
    c = r.counter("n_total", "x", ("k",))
    h = r.histogram("h_seconds", "x")

    def work() -> None:
        for _ in range(5000):
            c.inc(k="a")
            h.observe(0.001)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert c.value(k="a") == 40000
    assert h.count() == 40000


def test_gauge_function_unknown_is_not_rendered(tmp_path: Path) -> None:
    r = Registry()
    g = r.gauge("last_sync", "x", merge="max")
    stamp = tmp_path / "last-success"
    g.set_function(mtime_or_none(stamp))
    assert "\nlast_sync " not in r.render()
    stamp.write_text("")
    assert _sample(r.render(), "last_sync") == pytest.approx(stamp.stat().st_mtime)

    def broken() -> float:
        raise OSError("probe failed")

    r.gauge("broken", "x").set_function(broken)
    assert "# TYPE broken gauge" in r.render()


def test_last_sync_reads_the_sync_state(tmp_path: Path) -> None:
    state = tmp_path / "sync" / "state.json"
    probe = metrics.last_sync_or_none(state)
    assert probe() is None                      # never synced
    state.parent.mkdir()
    state.write_text('{"failures": 2, "last_success_at": null}')
    assert probe() is None
    state.write_text('{"last_success_at": "2026-11-24T11:05:00+00:00"}')
    assert probe() == 1795518300.0
    state.write_text("{broken")
    assert probe() is None


def _worker(path: str, n: int, depth: float, ts: float) -> None:
    metrics.QUERIES.inc(n, path="dns", action="allow")
    metrics.UPSTREAM_LATENCY.observe(0.02, upstream="u")
    metrics.EVENT_QUEUE_DEPTH.set(depth)
    metrics.LIST_AGE.set(ts)
    metrics.REGISTRY.dump(path)


def test_worker_processes_merge(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")  # fresh registries, like real workers
    procs = [ctx.Process(target=_worker, args=(str(tmp_path / f"w{i}.json"), 10 * (i + 1),
                                               float(i + 1), 1000.0 + i)) for i in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    (tmp_path / "junk.json").write_text("{not json")
    snaps = read_snapshots(tmp_path)
    assert len(snaps) == 3
    text = metrics.REGISTRY.render(metrics.REGISTRY.merge_snapshots(snaps))
    assert _sample(text, "filterd_queries_total", path="dns", action="allow") == 60
    assert _sample(text, "filterd_upstream_latency_seconds_count", upstream="u") == 3
    assert _sample(text, "filterd_event_queue_depth") == 6          # sum
    assert _sample(text, "filterd_list_index_timestamp_seconds") == 1002  # max


def test_http_endpoint_serves_metrics() -> None:
    r = Registry()
    r.counter("hits_total", "x").inc(4)
    server = MetricsServer("127.0.0.1", 0, r.render).start()
    try:
        host, port = server.address
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as resp:
            assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            assert _sample(resp.read().decode(), "hits_total") == 4
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://{host}:{port}/", timeout=10)
        assert err.value.code == 404
    finally:
        server.stop()


def test_partial_dump_merges_into_another_process_registry(tmp_path: Path) -> None:
    """The bypass monitor writes only its counter; the daemon adds it to its own."""
    reg = Registry()
    attempts = reg.counter("filterd_bypass_attempts_total", "x", ("kind",))
    other = reg.counter("filterd_other_total", "y")
    attempts.inc(kind="dot")
    attempts.inc(kind="dot")
    other.inc()
    path = tmp_path / "metrics" / "bypass-monitor.json"
    reg.dump(path, names=("filterd_bypass_attempts_total",))
    snaps = metrics.read_snapshot(path)
    assert len(snaps) == 1 and set(snaps[0]) == {"filterd_bypass_attempts_total"}
    assert metrics.read_snapshot(tmp_path / "missing.json") == []
    daemon = Registry()
    daemon.counter("filterd_bypass_attempts_total", "x", ("kind",))
    daemon.counter("filterd_other_total", "y").inc(5)
    text = daemon.render(daemon.merge_snapshots([daemon.snapshot(), *snaps]))
    assert _sample(text, "filterd_bypass_attempts_total", kind="dot") == 2
    assert _sample(text, "filterd_other_total") == 5  # the monitor's other metrics not added


def test_bound_observer_counts_like_observe():
    h = metrics.Histogram("t_bound_seconds", "t", ["upstream"], buckets=(0.01, 0.1, 1))
    bound = h.observer(upstream="a")
    for v in (0.005, 0.01, 0.05, 0.1, 0.5, 2.0):
        bound(v)
        h.observe(v, upstream="b")
    snap = h.snapshot()["values"]
    rows = {k[0]: (c, t) for k, c, t in snap}
    # le semantics: a value equal to a bound falls in that bound's bucket
    assert rows["a"] == rows["b"] == ([2, 2, 1, 1], pytest.approx(2.665))
    assert h.count(upstream="a") == 6
