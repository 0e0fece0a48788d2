"""Micro-benchmark: Engine.decide() with the shipped policy and a warm real list index.

Compiles the real lists in ../shared/data/blocklists (when present; else the
seed lists) into a temporary index, builds the engine from the shipped
policies/, and times decide() over a mix of names (blocked by category, allowed,
safe-search rewrites, education, deep subdomains) and clients from every tier.
Also times the same lookups on the bare index, so the engine's own cost is
visible. Usage:

    python bench/policy_decide.py [--rounds 5] [--n 200000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's filterd

from filterd.build import build_engine
from filterd.config import default_config
from filterd.lists.index import CompileSource, ListIndex, compile_index
from filterd.lists.model import SourceInfo
from filterd.lists.parsers import domains
from filterd.lists.seed import seed_sources
from filterd.policy.decision import Query

REPO = Path(__file__).resolve().parent.parent
SHARED = next((p for p in (REPO.parent / "shared" / "data" / "blocklists",
                            REPO.parent.parent / "shared" / "data" / "blocklists")
               if p.is_dir()), REPO.parent / "shared" / "data" / "blocklists")
FILES = {  # file -> category
    "chadmayfield_adult_top1m.txt": "adult", "hostsvn_adult.txt": "adult",
    "hostsvn_gambling.txt": "gambling", "ut1_games.txt": "games",
    "ut1_social_networks.txt": "social_networks", "blp_tiktok.txt": "short_video",
    "ut1_doh.txt": "doh", "ut1_malware.txt": "malware", "ut1_phishing.txt": "phishing",
    "ut1_audio-video.txt": "audio_video", "ut1_chat.txt": "chat",
}


def sources() -> tuple[list[CompileSource], list[str]]:
    out, names = [], []
    for fname, cat in FILES.items():
        p = SHARED / fname
        if not p.is_file():
            continue
        result = domains.parse(p.read_bytes())
        out.append(CompileSource(SourceInfo(p.stem, cat, "bench", result.count), result))
        names.extend(result.subtree[:2000])
    if not out:
        out = seed_sources()
        for s in out:
            names.extend(s.result.subtree)
    return out, names


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=200_000)
    args = ap.parse_args()
    srcs, listed = sources()
    with tempfile.TemporaryDirectory() as tmp:
        index = ListIndex.open(compile_index(srcs, tmp))
        engine = build_engine(default_config(), index=index)
        rnd = random.Random(1)
        names = (rnd.sample(listed, min(len(listed), 3000))
                 + [f"cdn{i}.assets.example{i % 50}.com" for i in range(2000)]
                 + ["www.google.com.vn", "www.youtube.com", "vnedu.vn", "olm.vn",
                    "a.b.c.d.e.example.org", "use-application-dns.net"] * 100)
        clients = ["10.10.41.7", "10.10.33.9", "10.10.20.3", "10.10.10.4", "10.10.2.5",
                   "10.10.200.9", "192.168.1.50", "2001:db8:10:40::5"]
        t0 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
        queries = [Query(rnd.choice(names), rnd.choice(clients),
                         t0 + timedelta(seconds=i // 1000)) for i in range(args.n)]
        lookups = [q.name for q in queries]
        decide, lookup = engine.decide, index.lookup
        for q in queries[:5000]:
            decide(q)
        per_decide, per_lookup = [], []
        for _ in range(args.rounds):
            t = time.perf_counter()
            for q in queries:
                decide(q)
            per_decide.append((time.perf_counter() - t) / len(queries) * 1e6)
            t = time.perf_counter()
            for n in lookups:
                lookup(n)
            per_lookup.append((time.perf_counter() - t) / len(lookups) * 1e6)
        blocked = sum(decide(q).blocked for q in queries[:20000]) / 200
        print(f"index: {len(index)} names from {len(srcs)} lists; {len(queries)} queries, "
              f"{blocked:.0f}% blocked")
        print(f"decide(): median {statistics.median(per_decide):.2f} us/query "
              f"(best {min(per_decide):.2f}); index.lookup alone: median "
              f"{statistics.median(per_lookup):.2f} us")


if __name__ == "__main__":
    main()
