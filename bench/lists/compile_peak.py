"""Benchmark: peak memory and time of the list update's compile (`filterd lists ...`).

What a 1 GB Raspberry Pi must fit beside the running services (issue 19): the peak
resident set of `filterd lists compile` (every kept download parsed and compiled into
the marisa index) and of `filterd lists import` (one source checked like a download,
then the same compile), each run through the real CLI in its own process under
`/usr/bin/time -v` (Maximum resident set size, elapsed and CPU time).

Cases:
- `real`: every list in `../shared/data/blocklists/` as `domains` sources (UT1,
  hostsVN, blocklistproject, chadmayfield, dibdot; the same set scripts/arm64-check
  serves), about 580 k keys with the seed lists;
- `full-adult`: the same plus a UT1-format `adult` tarball at UT1's full 4.6 M names,
  made by scripts/arm64-check's own generator (labels of the real lists recombined;
  cached in the work directory), about 5.18 M keys.

Beside each case, `marisa alone`: marisa-trie building the index's biggest name trie
(same keys, same number of levels; with shards, the biggest shard) from a file, nothing
else in the process: the floor of any compile that builds that trie.

The lists are read from the shared directory and copied into a scratch data directory
(never into the repository). Each case also prints a digest of the compiled index's
answers (every key with the categories and sources it resolves to, the expressions,
the counts; not the layout: one trie or shards, nor the time stamp or the order of the
category table) so two versions of the compiler can be checked to answer the same.

Usage (from the repository root):
    flock /work/bench.lock .venv/bin/python bench/lists/compile_peak.py \
        [--cases real,full-adult] [--work /tmp/filterd-compile-peak] [--json FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.machinery
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent.parent / "shared" / "data" / "blocklists"
if not SHARED.is_dir():
    SHARED = REPO.parent / "shared" / "data" / "blocklists"


def arm64_check():
    """scripts/arm64-check as a module (its list generator and list → category map)."""
    path = REPO / "scripts" / "arm64-check"
    loader = importlib.machinery.SourceFileLoader("arm64_check", str(path))
    spec = importlib.util.spec_from_loader("arm64_check", loader)
    assert spec is not None
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def adult_tarball(work: Path, shared: Path) -> Path:
    """The `--full-adult` tarball of scripts/arm64-check (same generator, same seed)."""
    out = work / "adult.tar.gz"
    if out.exists():
        return out
    a64 = arm64_check()
    real: list[str] = []
    for stem in a64.LIST_CATEGORIES:
        p = shared / f"{stem}.txt"
        if p.exists():
            real += p.read_text().split()
    t = time.monotonic()
    names = a64.synthetic_names(real, a64.UT1_ADULT_NAMES)
    data = ("\n".join(names) + "\n").encode()
    del names
    tmp = out.with_suffix(".part")
    with tarfile.open(tmp, "w:gz", compresslevel=6) as tar:
        info = tarfile.TarInfo("adult/domains")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    tmp.rename(out)
    print(f"made {out} ({out.stat().st_size / 2**20:.0f} MB) in {time.monotonic() - t:.0f} s",
          flush=True)
    return out


def prepare(work: Path, shared: Path, case: str) -> tuple[Path, Path]:
    """A data directory whose kept downloads are the lists; its sources.yaml."""
    a64 = arm64_check()
    base = work / case
    shutil.rmtree(base, ignore_errors=True)
    kept = base / "data" / "lists" / "sources"
    kept.mkdir(parents=True)
    entries = []
    for stem, category in a64.LIST_CATEGORIES.items():
        src = shared / f"{stem}.txt"
        if not src.exists():
            continue
        name = stem.replace("_", "-")
        match = "subtree" if stem.startswith("ut1_") else "exact"
        entries.append(f"  - name: {name}\n    url: http://lists.invalid/{src.name}\n"
                       f"    format: domains\n    category: {category}\n    match: {match}\n"
                       f"    license: see ../shared/data/blocklists/README.md\n")
        shutil.copyfile(src, kept / f"{name}.data")
    if case == "full-adult":
        entries.append("  - name: ut1-adult-full\n    url: http://lists.invalid/adult.tar.gz\n"
                       "    format: ut1\n    category: adult\n    match: subtree\n"
                       "    ut1_category: adult\n    license: synthetic\n"
                       "    max_bytes: 1000000000\n")
    sources = base / "sources.yaml"
    sources.write_text("version: 1\nsources:\n" + "".join(entries))
    return base / "data", sources


def timed(cmd: list[str]) -> dict[str, object]:
    """Run `cmd` under /usr/bin/time -v; its peak RSS, wall and CPU time, exit status."""
    t = time.monotonic()
    got = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    wall = time.monotonic() - t
    err = got.stderr

    def field(label: str) -> str:
        m = re.search(rf"^\s*{re.escape(label)}: (.+)$", err, re.M)
        return m.group(1).strip() if m else ""

    peak_kb = int(field("Maximum resident set size (kbytes)") or 0)
    return {"cmd": " ".join(cmd), "rc": got.returncode, "peak_rss_mib": round(peak_kb / 1024, 1),
            "wall_s": round(wall, 1),
            "cpu_s": round(float(field("User time (seconds)") or 0)
                           + float(field("System time (seconds)") or 0), 1),
            "stdout": got.stdout.strip()[-300:],
            "stderr": "" if got.returncode == 0 else err[-1500:]}


def name_tries(meta: dict[str, object]) -> list[tuple[str, str]]:
    """(trie, values) file names of an index's name tries (format 1: one; 2: shards too)."""
    return [("names.marisa", "names.values")] + [
        (f"names-{i}.marisa", f"names-{i}.values")
        for i in range(1, len(meta.get("shards", ())) + 1)]  # type: ignore[arg-type]


def index_digest(data: Path) -> tuple[str, dict[str, int]]:
    """A digest of what the index answers, whatever its layout (one trie or shards, any
    index format): every key with the category set and sources it resolves to (summed
    as 128-bit hashes, so the order of keys and tries is no part of it), the resolved
    expressions and the counts. The same for two compilers = the same answers."""
    import array

    import marisa_trie

    real = (data / "lists" / "current").resolve()
    meta = json.loads((real / "meta.json").read_text())
    table = [json.dumps(t).encode() for t in meta["table"]]
    total = 0
    for tag, files in ((b"n", name_tries(meta)), (b"u", [("urls.marisa", "urls.values")])):
        for trie_file, vals in files:
            values = array.array(meta["value_type"])
            values.frombytes((real / vals).read_bytes())
            trie = marisa_trie.Trie().mmap(str(real / trie_file))
            for key, kid in trie.iteritems():
                d = hashlib.blake2b(tag + key.encode() + b"\0" + table[values[kid]],
                                    digest_size=16).digest()
                total = (total + int.from_bytes(d, "big")) % (1 << 128)
    h = hashlib.sha256(total.to_bytes(16, "big"))
    for e in meta["expressions"]:
        h.update(e["pattern"].encode() + table[e["combo"]])
    h.update(json.dumps(meta["counts"], sort_keys=True).encode())
    return h.hexdigest()[:16], meta["counts"]


FLOOR = """
import sys, marisa_trie
def keys():
    with open(sys.argv[1], "rb") as f:
        for line in f:
            yield line[:-1].decode()
trie = marisa_trie.Trie(keys(), num_tries=int(sys.argv[2]))
print(len(trie))
"""


def marisa_floor(data: Path, work: Path) -> dict[str, object]:
    """marisa-trie alone building the index's biggest name trie (same keys, same levels;
    with shards, the biggest shard) from a file read line by line: the builder's own
    peak, under which no compile that builds that trie can go."""
    import marisa_trie

    real = (data / "lists" / "current").resolve()
    meta = json.loads((real / "meta.json").read_text())
    tries = [(marisa_trie.Trie().mmap(str(real / t)), n) for (t, _), n in zip(
        name_tries(meta), [meta["num_tries"]] + [s["num_tries"] for s in meta.get("shards", ())],
        strict=True)]
    biggest, levels = max(tries, key=lambda t: len(t[0]))
    keys = work / "floor.keys"
    with open(keys, "w", encoding="utf-8") as f:
        for key in biggest.iterkeys():
            f.write(key + "\n")
    try:
        return timed([sys.executable, "-c", FLOOR, str(keys), str(levels)])
    finally:
        keys.unlink()


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default="real,full-adult")
    ap.add_argument("--shared", type=Path, default=SHARED)
    ap.add_argument("--work", type=Path, default=Path("/tmp/filterd-compile-peak"))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    filterd = [str(Path(sys.executable).parent / "filterd")]
    results = []
    for case in args.cases.split(","):
        tarball = adult_tarball(args.work, args.shared) if case == "full-adult" else None
        data, sources = prepare(args.work, args.shared, case)
        common = ["--data-dir", str(data), "--sources", str(sources), "--no-reload"]
        runs = []
        if tarball is not None:   # the update path: check one download, then compile
            runs.append(("import", timed([*filterd, "lists", "import", *common,
                                          "ut1-adult-full", str(tarball)]), load()))
        runs.append(("compile", timed([*filterd, "lists", "compile", *common]), load()))
        digest, counts = index_digest(data)
        shards = len(json.loads(((data / "lists" / "current").resolve() / "meta.json")
                                .read_text()).get("shards", ()))
        runs.append(("marisa alone", marisa_floor(data, args.work), load()))
        for what, r, after in runs:
            r.update(case=case, run=what, load_after=after, keys=counts["keys"],
                     index_digest=digest, shards=shards)
            results.append(r)
            print(f"{case:10} {what:12} keys {counts['keys']:>9,}  peak RSS "
                  f"{r['peak_rss_mib']:>7.1f} MiB  wall {r['wall_s']:>6.1f} s  cpu "
                  f"{r['cpu_s']:>6.1f} s  rc {r['rc']}  load {after}  index {digest}"
                  f"  shards {shards}",
                  flush=True)
            if r["rc"]:
                print(r["stderr"], file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps({"python": sys.version.split()[0],
                                         "results": results}, indent=1) + "\n")
    return 1 if any(r["rc"] for r in results) else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
