from __future__ import annotations

from pathlib import Path

import yaml

from filterd.lists.index import compile_index, open_current, swap_current
from filterd.lists.seed import BLOCKLISTS_DIR, SEED_DIR, ensure_index, seed_sources


def test_seed_lists_are_clean_and_use_known_categories() -> None:
    known = set(yaml.safe_load((BLOCKLISTS_DIR / "categories.yaml").read_text())["categories"])
    sources = seed_sources()
    assert len(sources) >= 8
    for s in sources:
        assert s.info.category in known, s.info.name
        assert s.result.rejected == 0, (s.info.name, dict(s.result.rejects))
        assert s.result.count >= 15, s.info.name


def test_fresh_install_filters_offline(tmp_path: Path) -> None:
    index = ensure_index(tmp_path / "lists")
    assert "adult" in index.lookup("www.pornhub.com")[0].categories
    assert "short_video" in index.lookup("m.tiktok.com")[0].categories
    assert "doh" in index.lookup("dns.google")[0].categories
    assert index.lookup("moet.gov.vn") == ()


def test_existing_index_is_kept(tmp_path: Path) -> None:
    lists = tmp_path / "lists"
    swap_current(lists, compile_index(seed_sources()[:1], lists, version="mine"))
    assert ensure_index(lists).version == "mine"


def test_broken_index_is_replaced_by_seed(tmp_path: Path) -> None:
    lists = tmp_path / "lists"
    swap_current(lists, compile_index(seed_sources(), lists, version="old"))
    (lists / "index-old" / "meta.json").write_text("{}")
    index = ensure_index(lists, SEED_DIR)
    assert index.version != "old"
    assert open_current(lists).version == index.version
