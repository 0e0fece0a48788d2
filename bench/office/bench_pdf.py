"""The yearly report as PDF: WeasyPrint beside headless Chromium, on the same HTML.

One office (SQLite) with N schools in 30 districts and one reported day each, the
document built once (document.build), then printed by each engine `--runs` times.
Prints one JSON line per engine: median seconds, peak RSS of the child that printed
(WeasyPrint runs in a forked child so its memory is its own), pages and bytes.

    flock /work/bench.lock .venv/bin/python bench/office/bench_pdf.py --schools 300
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.office.bench_ingest import prepare, run
from filterd.sync.office import document, render
from filterd.sync.office.storage import Storage


def _child(engine: str, html: str, out: Path) -> tuple[float, int]:
    """Print in a child process; (seconds, peak RSS in kB of that child and its children)."""
    # a fresh child each time: its own peak (WeasyPrint) or its child Chromium's (the
    # largest of Chromium's processes it waited for)
    code = ("import sys,time,resource as r; from filterd.sync.office import render;"
            "h=open(sys.argv[1]).read(); t=time.perf_counter();"
            "b=render.pdf(h, engine=sys.argv[2]); open(sys.argv[3],'wb').write(b);"
            "print(time.perf_counter()-t, max(r.getrusage(r.RUSAGE_SELF).ru_maxrss,"
            " r.getrusage(r.RUSAGE_CHILDREN).ru_maxrss))")
    src = out.with_suffix(".html")
    src.write_text(html, encoding="utf-8")
    r = subprocess.run([sys.executable, "-c", code, str(src), engine, str(out)],
                       capture_output=True, text=True, check=True,
                       cwd=Path(__file__).resolve().parents[2])
    t, peak = r.stdout.strip().splitlines()[-1].split()
    return float(t), int(peak)


def pages(pdf: Path) -> int:
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True).stdout
    return int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--schools", type=int, default=300)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="filterd-bench-pdf-") as tmp:
        url = f"sqlite:///{tmp}/office.db"
        run(url, prepare(args.schools, 200, 7), 200)
        st = Storage(url)
        data = document.build(st, document.Period("year", 2026))
        html = document.render_html_standalone(data, document.OfficeSettings(),
                                               issued=date(2026, 12, 1))
        print(json.dumps({"schools": args.schools, "loadavg_1m": os.getloadavg()[0]}))
        for engine in render.ENGINES:
            times, peaks = [], []
            out = Path(tmp) / f"{engine}.pdf"
            for _ in range(args.runs):
                t, peak = _child(engine, html, out)
                times.append(t)
                peaks.append(peak)
            print(json.dumps({"engine": engine, "median_s": round(statistics.median(times), 2),
                              "runs_s": [round(t, 2) for t in times],
                              "peak_rss_mb": round(max(peaks) / 1024, 1),
                              "pages": pages(out), "bytes": out.stat().st_size}))
        t0 = time.perf_counter()
        document.build(st, document.Period("year", 2026))
        print(json.dumps({"build_figures_s": round(time.perf_counter() - t0, 3)}))


if __name__ == "__main__":
    main()
