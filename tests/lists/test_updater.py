"""`lists update` against a loopback mirror serving REAL lists in UT1 tarball layout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from filterd.errors import ListError
from filterd.lists.index import open_current
from filterd.lists.seed import BLOCKLISTS_DIR
from filterd.lists.sources import Source
from filterd.lists.updater import FAILED, NOT_MODIFIED, UPDATED, Updater, status
from tests.conftest import REPO
from tests.lists.http_server import Mirror, list_mirror
from tests.lists.ut1_tar import split_bytes, ut1_tarball

pytestmark = pytest.mark.integration


def first_names(path: Path, n: int = 3) -> list[str]:
    names = [line for line in path.read_text().splitlines()
             if line and not line[0].isdigit() and "_" not in line]
    return names[:n]


@pytest.fixture
def mirror(shared_blocklists: Path) -> Iterator[Mirror]:
    """UT1 tarballs (gambling split into byte pieces, drogue, agressif with urls) + hostsVN."""
    g = (shared_blocklists / "ut1_gambling.txt").read_bytes()
    with list_mirror() as m:
        m.files["gambling.tar.gz"] = ut1_tarball(
            "gambling", {**split_bytes(g, [len(g) // 3, len(g) // 3 * 2 + 7]), "usage": b"black\n"},
            prefix="blacklists/")
        m.files["drogue.tar.gz"] = ut1_tarball("drogue", {
            "domains": (shared_blocklists / "ut1_drugs.txt").read_bytes(), "usage": b"black\n"})
        m.files["agressif.tar.gz"] = ut1_tarball("agressif", {
            "domains": (shared_blocklists / "ut1_violence_agressif.txt").read_bytes(),
            "urls": (shared_blocklists / "ut1_adult_urls_origcase.txt").read_bytes(),
            "usage": b"black\n"})
        m.files["hostsvn/gambling/domain-VN.txt"] = (
            shared_blocklists / "hostsvn_gambling_vn.txt").read_bytes()
        yield m


def sources(m: Mirror) -> list[Source]:
    return [
        Source("ut1-gambling", m.url("gambling.tar.gz"), "ut1", "gambling", "CC BY-SA 4.0",
               ut1_category="gambling", timeout=10),
        Source("ut1-drogue", m.url("drogue.tar.gz"), "ut1", "drugs", "CC BY-SA 4.0",
               ut1_category="drogue", timeout=10),
        Source("ut1-agressif", m.url("agressif.tar.gz"), "ut1", "violence", "CC BY-SA 4.0",
               ut1_category="agressif", timeout=10),
        Source("hostsvn-gambling-vn", m.url("hostsvn/gambling/domain-VN.txt"), "domains",
               "gambling", "MIT", match="exact", timeout=10),
    ]


def test_update_compiles_real_lists(mirror: Mirror, shared_blocklists: Path,
                                    tmp_path: Path) -> None:
    report = Updater(tmp_path, sources(mirror)).update()
    assert [o.status for o in report.outcomes] == [UPDATED] * 4
    assert report.compiled
    index = open_current(tmp_path / "lists")
    assert index.version == report.index_version
    gambling = [line for line in (shared_blocklists / "ut1_gambling.txt").read_text().splitlines()
                if line and not line[0].isdigit()]
    # every name of the byte-split list arrived whole, including those at the cuts
    for name in gambling[:: max(1, len(gambling) // 500)] + gambling[-3:]:
        hits = index.lookup("www." + name)
        assert any("gambling" in h.categories and "ut1-gambling" in h.sources for h in hits), name
    assert index.sources["ut1-gambling"].count >= len(gambling) * 0.99
    for name in first_names(shared_blocklists / "ut1_drugs.txt"):
        assert "drugs" in index.lookup(name)[0].categories
    vn = first_names(shared_blocklists / "hostsvn_gambling_vn.txt", 1)[0]
    assert index.lookup(vn)[0].exact
    assert not any(h.domain == vn for h in index.lookup("sub." + vn))  # exact: no subdomains
    url = (shared_blocklists / "ut1_adult_urls_origcase.txt").read_text().splitlines()[0]
    assert index.url_match("http://" + url) is not None
    assert "seed-adult" in index.sources  # the seed lists ride along


def test_second_update_is_conditional_and_not_recompiled(mirror: Mirror, tmp_path: Path) -> None:
    up = Updater(tmp_path, sources(mirror))
    first = up.update()
    second = up.update()
    assert [o.status for o in second.outcomes] == [NOT_MODIFIED] * 4
    assert not second.compiled and second.index_version == first.index_version
    assert all(etag for _, etag in mirror.requests[4:])   # If-None-Match sent


def test_truncated_and_corrupt_downloads_keep_last_good(mirror: Mirror, shared_blocklists: Path,
                                                        tmp_path: Path) -> None:
    up = Updater(tmp_path, sources(mirror))
    good = up.update()
    drug = first_names(shared_blocklists / "ut1_drugs.txt", 1)[0]
    gambling = first_names(shared_blocklists / "ut1_gambling.txt", 1)[0]
    # new content upstream, but the gambling download is cut short and drogue is garbage
    mirror.files["gambling.tar.gz"] = ut1_tarball("gambling", {"domains": b"new.example\n" * 10})
    mirror.truncate.add("gambling.tar.gz")
    mirror.files["drogue.tar.gz"] = b"\x1f\x8b\x08\x00garbage" + os.urandom(2000)
    mirror.files["agressif.tar.gz"] += b""  # unchanged: 304
    report = up.update()
    by = {o.name: o for o in report.outcomes}
    assert by["ut1-gambling"].status == FAILED and "truncated" in by["ut1-gambling"].error
    assert by["ut1-drogue"].status == FAILED and "broken tarball" in by["ut1-drogue"].error
    assert by["ut1-agressif"].status == NOT_MODIFIED
    index = open_current(tmp_path / "lists")
    assert index.version == good.index_version          # nothing new was good: no recompile
    assert "drugs" in index.lookup(drug)[0].categories
    assert "gambling" in index.lookup(gambling)[0].categories
    rows = {r.name: r for r in status(tmp_path, up.sources)}
    assert "truncated" in rows["ut1-gambling"].error and rows["ut1-gambling"].count > 1000
    assert rows["ut1-agressif"].error is None
    # a later good download clears the error
    mirror.truncate.clear()
    mirror.files["gambling.tar.gz"] = ut1_tarball(
        "gambling", {"domains": (shared_blocklists / "ut1_gambling.txt").read_bytes()[:-5000]})
    report = up.update(["ut1-gambling"])
    assert report.outcomes[0].status == UPDATED and report.compiled
    assert {r.name: r for r in status(tmp_path, up.sources)}["ut1-gambling"].error is None
    assert "drugs" in open_current(tmp_path / "lists").lookup(drug)[0].categories


def test_suspicious_shrink_is_refused_unless_forced(mirror: Mirror, shared_blocklists: Path,
                                                    tmp_path: Path) -> None:
    up = Updater(tmp_path, sources(mirror))
    up.update()
    gambling = first_names(shared_blocklists / "ut1_gambling.txt", 1)[0]
    mirror.files["gambling.tar.gz"] = ut1_tarball("gambling", {"domains": b"only.example\n"})
    (outcome,) = up.update(["ut1-gambling"]).outcomes
    assert outcome.status == FAILED and "shrank" in outcome.error
    assert "gambling" in open_current(tmp_path / "lists").lookup(gambling)[0].categories
    (outcome,) = up.update(["ut1-gambling"], force=True).outcomes
    assert outcome.status == UPDATED
    assert open_current(tmp_path / "lists").lookup(gambling) == ()


def test_lost_state_file_keeps_the_data(mirror: Mirror, tmp_path: Path) -> None:
    up = Updater(tmp_path, sources(mirror))
    up.update()
    (tmp_path / "lists" / "state.json").unlink()
    up.compile()
    assert "ut1-gambling" in open_current(tmp_path / "lists").sources
    report = up.update()   # downloads again without conditions, all fine
    assert {o.status for o in report.outcomes} == {UPDATED}


def test_first_download_failing_still_builds_an_index(mirror: Mirror, tmp_path: Path) -> None:
    mirror.status["drogue.tar.gz"] = 500
    report = Updater(tmp_path, sources(mirror)).update()
    assert [o.status for o in report.outcomes].count(FAILED) == 1
    index = open_current(tmp_path / "lists")
    assert "ut1-drogue" not in index.sources and "ut1-gambling" in index.sources


def test_unknown_or_disabled_source_name(mirror: Mirror, tmp_path: Path) -> None:
    with pytest.raises(ListError, match="unknown source"):
        Updater(tmp_path, sources(mirror)).update(["nope"])
    off = [*sources(mirror)[:3], Source("off", mirror.url("x.txt"), "domains", "adult", "MIT",
                                        enabled=False)]
    with pytest.raises(ListError, match="disabled"):
        Updater(tmp_path, off).update(["off"])
    report = Updater(tmp_path, off).update()
    assert [o.name for o in report.outcomes] == ["ut1-gambling", "ut1-drogue", "ut1-agressif"]


def test_cli_update_and_status(mirror: Mirror, tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "categories.yaml").write_bytes((BLOCKLISTS_DIR / "categories.yaml").read_bytes())
    (conf / "sources.yaml").write_text(f"""version: 1
sources:
  - name: ut1-drogue
    url: {mirror.url("drogue.tar.gz")}
    format: ut1
    ut1_category: drogue
    category: drugs
    license: CC BY-SA 4.0
  - name: hostsvn-gambling-vn
    url: {mirror.url("hostsvn/gambling/domain-VN.txt")}
    format: domains
    match: exact
    category: gambling
    license: MIT
  - name: broken
    url: {mirror.url("nothing-here.txt")}
    format: hosts
    category: scam
    license: MIT
""")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = ["--data-dir", str(tmp_path / "data"), "--sources", str(conf / "sources.yaml")]

    def run(*cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "filterd", "lists", *cmd, *args],
                              env=env, capture_output=True, text=True, timeout=120)

    up = run("update")
    assert up.returncode == 0, up.stderr   # the index is good: the daemon should reload it
    assert "ut1-drogue: updated" in up.stdout and "index compiled" in up.stdout
    assert "broken: failed" in up.stdout and "HTTP 404" in up.stdout
    assert "broken: HTTP 404" in up.stderr
    assert run("update", "--strict").returncode == 1
    st = run("status", "--json")
    assert st.returncode == 0, st.stderr
    body = json.loads(st.stdout)
    rows = {r["name"]: r for r in body["sources"]}
    assert rows["ut1-drogue"]["count"] > 500 and rows["ut1-drogue"]["error"] is None
    assert "HTTP 404" in rows["broken"]["error"] and rows["broken"]["age_seconds"] is None
    assert body["index"]["exact"] > 1000
    text = run("status")
    assert "ut1-drogue: drugs" in text.stdout and "age never" in text.stdout
    assert "error: broken: HTTP 404" in text.stdout
    again = run("update", "--source", "ut1-drogue")
    assert again.returncode == 0 and "not modified" in again.stdout
    assert "index unchanged" in again.stdout


def test_import_local_file(mirror: Mirror, tmp_path: Path) -> None:
    up = Updater(tmp_path, sources(mirror))
    up.update()
    local = tmp_path / "drogue.tar.gz"
    local.write_bytes(ut1_tarball("drogue", {"domains": b"usb-drug.example\n" * 1 + b"".join(
        f"d{i}.example\n".encode() for i in range(400))}))
    report = up.import_file("ut1-drogue", local)
    assert report.outcomes[0].status == UPDATED and report.compiled
    index = open_current(tmp_path / "lists")
    assert "drugs" in index.lookup("www.usb-drug.example")[0].categories
    assert "ut1-gambling" in index.sources   # the other sources stay
    st = up.load_state()["ut1-drogue"]
    assert st.etag is None and st.error is None
    # the next update downloads unconditionally and replaces the imported copy
    assert up.update(["ut1-drogue"]).outcomes[0].status == UPDATED
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"not a tarball")
    report = up.import_file("ut1-drogue", broken)
    assert report.outcomes[0].status == FAILED and not report.compiled
    assert "broken tarball" in up.load_state()["ut1-drogue"].error
    with pytest.raises(ListError, match="unknown source"):
        up.import_file("nope", local)


def test_cli_reads_data_dir_and_sources_from_the_config(mirror: Mirror, tmp_path: Path) -> None:
    (tmp_path / "sources.yaml").write_text(f"""version: 1
sources:
  - name: hostsvn-gambling-vn
    url: {mirror.url("hostsvn/gambling/domain-VN.txt")}
    format: domains
    match: exact
    category: gambling
    license: MIT
""")
    (tmp_path / "filterd.yaml").write_text(
        f"school_id: test-school\ndata_dir: {tmp_path / 'data'}\n"
        f"sources_file: {tmp_path / 'sources.yaml'}\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "filterd", "lists", "update", "--config",
                           str(tmp_path / "filterd.yaml")], env=env, capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "hostsvn-gambling-vn: updated" in proc.stdout
    assert "hostsvn-gambling-vn" in open_current(tmp_path / "data" / "lists").sources
