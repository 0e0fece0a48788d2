"""Bounded mutation fuzz of the policy loader and the list parsers.

Whatever the bytes, each either loads or raises the project's own error (ConfigError
naming the file, ListError): never another exception, which would be a crash in
`filterd reload`, `filterd lists update` or the admin page's validation. A few of the
policy mutants also go to the running daemon by SIGHUP: it refuses them, keeps
serving the last good policy, and logs no traceback. Seeded (FILTERD_FUZZ_SEED),
bounded by count and by a second or two each (FILTERD_FUZZ_SCALE for longer runs).
"""

from __future__ import annotations

import io
import random
import shutil
import signal
import sys
import tarfile
import time
from pathlib import Path

import dns.rcode
import pytest

from filterd.errors import ConfigError, FilterdError, ListError
from filterd.lists.parsers import FORMATS, parse
from filterd.policy.catalog import load_catalog
from filterd.policy.loader import load_policy
from tests.faults import TRACEBACK
from tests.fuzz import SCALE, SEED, mutate, mutate_text

REPO = Path(__file__).resolve().parent.parent
BUDGET = 2.0 * SCALE   # seconds per list parser; the policy loader is bounded by count


def policy_dir(tmp: Path, text: str) -> Path:
    d = tmp / "policies"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir()
    for extra in ("education.yaml", "protected.txt"):
        shutil.copy(REPO / "policies" / extra, d / extra)
    (d / "policy.yaml").write_text(text, encoding="utf-8")
    return d


def test_policy_loader_mutants(tmp_path):
    rng = random.Random(SEED)
    catalog = load_catalog(REPO / "blocklists" / "categories.yaml")
    good = (REPO / "policies" / "policy.yaml").read_text(encoding="utf-8")
    load_policy(policy_dir(tmp_path, good), catalog)   # the seed itself loads
    cases = refused = 0
    end = time.monotonic() + 4 * BUDGET   # a cap for a loaded machine; the count bounds it
    while time.monotonic() < end and cases < 150 * SCALE:
        text = mutate_text(rng, good)
        cases += 1
        d = policy_dir(tmp_path, text)
        try:
            load_policy(d, catalog)
        except ConfigError as exc:
            refused += 1
            assert exc.file and ("policy.yaml" in str(exc) or "education.yaml" in str(exc)
                                 or "protected.txt" in str(exc)), (text, str(exc))
        except Exception as exc:
            pytest.fail(f"load_policy raised {type(exc).__name__}: {exc}\n--- mutant ---\n"
                        f"{text}")
    assert cases >= 20 and refused > 0, (cases, refused)


def _ut1(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


SEEDS = {
    "domains": [(REPO / "blocklists" / "seed" / "adult.txt").read_bytes()[:4000],
                b"# comment\nexample.com\n*.wild.test\nxn--bcher-kva.example\n\xff\xfe\n"],
    "hosts": [b"127.0.0.1 localhost\n0.0.0.0 ads.example  tracker.example # c\n"
              b"::1 ip6.example\n0.0.0.0\n"],
    "adblock": [b"! title\n||ads.example^\n||x.test^$third-party\n@@||ok.test^\n"
                b"example.com##.ad\n/regex/\n"],
    "ut1": [_ut1({"adult/domains": b"porn.example\nxxx.test\n",
                  "adult/urls": b"example.com/path\n", "adult/usage": b"black\n"})],
}


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_list_parser_mutants(fmt):
    rng = random.Random(f"{SEED}-{fmt}")
    pool = SEEDS[fmt]
    for seed in pool:
        parse(fmt, seed, category="adult")   # the seeds parse
    cases = 0
    end = time.monotonic() + BUDGET
    while time.monotonic() < end and cases < 3000 * SCALE:
        data = mutate(rng, rng.choice(pool), pool)
        cases += 1
        try:
            result = parse(fmt, data, category="adult", source="fuzz")
        except ListError:
            continue
        except Exception as exc:
            pytest.fail(f"{fmt} parser raised {type(exc).__name__}: {exc!r} on {data[:200]!r}")
        # What a parser keeps is normalised: what the index and the engine can rely on.
        for name in (*result.subtree, *result.exact):
            assert name == name.lower() and name.isascii() and " " not in name \
                and 0 < len(name) <= 253 and ".." not in name, (fmt, name, data[:200])
    assert cases >= 20


@pytest.mark.integration
def test_running_daemon_refuses_mutant_policies(tmp_path):
    """SIGHUP with broken policies: refused, the last good one keeps serving, no traceback."""
    sys.path.insert(0, str(Path(__file__).resolve().parent / "dns"))
    from dnshelpers import Unbound

    from tests.test_daemon import POLICY, Daemon

    rng = random.Random(SEED + 2)
    catalog = load_catalog(REPO / "blocklists" / "categories.yaml")
    unbound = Unbound(tmp_path / "unbound").start()
    (tmp_path / "filterd").mkdir()
    d = Daemon(tmp_path / "filterd", unbound.address).start()
    good = POLICY.replace("{extra}", "extra.test")
    try:
        sent = 0
        for _ in range(200):
            if sent == 4:
                break
            text = mutate_text(rng, good)
            try:   # only mutants the loader refuses (a valid one would change the policy)
                d.policy_dir.joinpath("policy.yaml").write_text(text)
                load_policy(d.policy_dir, catalog)
                continue
            except FilterdError:
                pass
            before = d.logtext().count("reload refused")
            d.proc.send_signal(signal.SIGHUP)
            d.wait_for(lambda b=before: d.logtext().count("reload refused") > b,
                       "a broken policy was not refused")
            sent += 1
            assert d.ask("blocked.test").rcode() == dns.rcode.NXDOMAIN      # old policy
            assert d.ask("extra.test", source="127.0.0.2").rcode() != dns.rcode.SERVFAIL
        assert sent == 4
        d.set_policy("extra.test")
        assert TRACEBACK not in d.logtext(), d.logtext()[-3000:]
    finally:
        d.stop()
        unbound.stop()
