"""In-process: `Resolver.handle` µs per query, path by path, without sockets or dnsperf.

paths.py measures whole servers (kernel, event loop, dnsperf on the other core) and is
the figure that counts against unbound; on a shared machine its noise is ±15 %. This
one times only the Python (or native) work per query that paths.py's server does, in
one process, median and best of --rounds, so a change to the blocked path's code shows
up even at a high load average (it counts this thread's CPU time, not the wall clock).
The setup is run.py's: the shipped policy, one index of --names listed names (category
adult), the client 127.0.0.1, a real event log (writer thread running, in a temporary
directory), the block TTL 10. Answered NODATA with an SOA (the shipped default group's
block mode is the appliance's address, and none is configured here).

- blocked: a new listed name per query (each a new decision)
- blocked-edns: the same with EDNS (the answer carries EDE 17 and its text)
- blocked-class: each new listed name asked by 30 devices of one group in turn (the
  verdict table, kept per group, answers all but the first)
- hot: 1,000 cached allowed names through handle() (not the memo: the UDP loop's)
- decide: Engine.decide() alone on the blocked names

Usage: python bench/dns/handle.py [--names 100000] [--n 30000] [--rounds 5]
FILTERD_PUREPYTHON=1 measures the pure twin.

Instructions per query, which the load does not change (`--only PATH --count N` runs
N queries of one path after the set-up and a warm-up, nothing else; the difference of
N=4000 and N=0 under cachegrind, divided by 4000):

    for n in 0 4000; do valgrind --tool=cachegrind --cache-sim=no \
      --cachegrind-out-file=/dev/null .venv/bin/python bench/dns/handle.py --index DIR \
      --only blocked --count $n 2>&1 | grep 'I *refs'; done

(`--index DIR`: a compiled index to open instead of compiling --names under valgrind.)
"""

from __future__ import annotations

import argparse
import random
import statistics
import struct
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's filterd

from filterd.build import build_engine
from filterd.config import default_config
from filterd.dns import fastpath, wire
from filterd.dns.answers import BlockAnswers
from filterd.dns.cache import AnswerCache, Entry
from filterd.dns.resolver import Resolver
from filterd.dns.upstream import UpstreamPool
from filterd.lists.index import CompileSource, ListIndex, compile_index
from filterd.lists.model import ParseResult, SourceInfo
from filterd.policy.decision import Query
from filterd.state.events import EventLog


def packet(qid: int, name: str, qtype: int = 1, edns: bool = False) -> bytes:
    q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 1 if edns else 0)
    q += wire.encode_name(name) + struct.pack("!HH", qtype, 1)
    if edns:
        q += b"\x00" + struct.pack("!HHBBHH", 41, 1232, 0, 0, 0, 0)
    return q


def synthetic(n: int) -> list[str]:
    rnd = random.Random(1)
    tlds = ["com", "net", "org", "vn", "info", "xyz", "com.vn", "io"]
    return [f"s{i}-{rnd.getrandbits(24):06x}.bench-{i % 997}.{tlds[i % len(tlds)]}"
            for i in range(n)]


def timed(fn, items, rounds: int) -> list[float]:
    """µs per item of this thread's CPU time (not the wall clock: other processes on a
    shared machine, and the event writer thread, do not count)."""
    out = []
    for _ in range(rounds):
        t = time.thread_time()
        for it in items:
            fn(it)
        out.append((time.thread_time() - t) / len(items) * 1e6)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--names", type=int, default=100_000)
    ap.add_argument("--n", type=int, default=30_000, help="queries per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--profile", action="store_true", help="cProfile the blocked path")
    ap.add_argument("--only", choices=["blocked", "blocked-edns", "blocked-class"],
                    help="with --count: run that many queries of this path and exit")
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--index", type=Path, default=None,
                    help="a compiled index directory of the same synthetic names")
    args = ap.parse_args()
    names = synthetic(args.names)
    with tempfile.TemporaryDirectory() as tmp:
        src = CompileSource(SourceInfo("bench", "adult", version="bench", count=len(names)),
                            ParseResult(subtree=tuple(names)))
        index = ListIndex.open(args.index if args.index is not None else
                               compile_index([src], Path(tmp) / "lists", version="bench"))
        engine = build_engine(default_config(), index=index)
        events = EventLog(Path(tmp) / "events.db").start()
        resolver = Resolver(engine, UpstreamPool([("127.0.0.1", 9)]), cache=AnswerCache(),
                            answers=BlockAnswers(10), events=events)
        rnd = random.Random(2)
        # Fresh names each round and each query: the verdict table never answers.
        total = args.n * (args.rounds + 1)
        picks = [rnd.choice(names) for _ in range(total)]
        plain = [packet(i & 0xFFFF, n) for i, n in enumerate(picks)]
        edns = [packet(i & 0xFFFF, n, edns=True) for i, n in enumerate(picks)]
        handle = resolver.handle

        def blocked(data: bytes) -> None:
            handle(data, "127.0.0.1")

        hot_names = [f"w{i}.allowed.bench" for i in range(1000)]
        for n in hot_names:
            resp = packet(0, n)[:12] + wire.encode_name(n) + struct.pack("!HH", 1, 1)
            resp = (struct.pack("!HHHHHH", 0, 0x8180, 1, 1, 0, 0) + resp[12:]
                    + b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 3600, 4) + bytes([192, 0, 2, 1]))
            lay = wire.scan_response(resp)
            resolver.cache.put((n, 1, 0), Entry.from_response(resp, lay), lay)
        hot = [packet(i & 0xFFFF, hot_names[i % 1000]) for i in range(args.n)]
        at = datetime.now(UTC)
        queries = [Query(n, "127.0.0.1", at) for n in picks[:args.n]]
        decide = engine.decide

        if args.only is not None:
            import gc
            import os

            pk = edns if args.only == "blocked-edns" else plain
            ips = ["127.0.0.1"] * 5000
            if args.only == "blocked-class":   # each name from 30 devices in turn
                pk = [pk[i // 30] for i in range(len(pk))]
                ips = [f"10.0.9.{i % 30 + 1}" for i in range(len(pk))]
            warm = pk[-200:]
            for d in warm:
                handle(d, "127.0.0.1")
            resolver.engine = engine
            gc.disable()
            for d, ip in zip(pk[:args.count], ips, strict=False):
                handle(d, ip)
            os._exit(0)
        if args.profile:
            import cProfile
            import pstats
            prof = cProfile.Profile()
            prof.enable()
            for d in plain[:args.n]:
                handle(d, "127.0.0.1")
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
            return
        res = {}
        chunks = [plain[i * args.n:(i + 1) * args.n] for i in range(args.rounds + 1)]
        timed(blocked, chunks[0], 1)   # warm-up
        res["blocked"] = [timed(blocked, c, 1)[0] for c in chunks[1:]]
        echunks = [edns[i * args.n:(i + 1) * args.n] for i in range(args.rounds + 1)]
        resolver.engine = engine   # clears the verdict table and memo
        res["blocked-edns"] = [timed(blocked, c, 1)[0] for c in echunks[1:]]
        devices = [f"10.0.9.{i}" for i in range(1, 31)]
        klass = [(p, ip) for p in plain[:args.n // 30 * (args.rounds + 1)] for ip in devices]
        resolver.engine = engine

        def one(item: tuple[bytes, str]) -> None:
            handle(item[0], item[1])

        size = len(klass) // (args.rounds + 1)
        res["blocked-class"] = [timed(one, klass[i * size:(i + 1) * size], 1)[0]
                                for i in range(1, args.rounds + 1)]
        res["hot"] = timed(blocked, hot, args.rounds)
        res["decide"] = timed(decide, queries, args.rounds)
        events.close()
        print(f"{fastpath.IMPLEMENTATION} fast path; {len(names)} listed names; "
              f"{args.n} queries x {args.rounds} rounds")
        for k, v in res.items():
            print(f"  {k:13s} median {statistics.median(v):6.2f} µs/query  (best {min(v):.2f})")


if __name__ == "__main__":
    main()
