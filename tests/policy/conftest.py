"""Fixtures for the policy engine tests: a small policy written per test and a fake index."""

from __future__ import annotations

import textwrap
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from filterd.config import default_config
from filterd.lists.index import MemoryIndex
from filterd.policy import builtin
from filterd.policy.catalog import load_catalog
from filterd.policy.engine import Engine
from filterd.policy.loader import load_policy
from filterd.policy.overrides import EMPTY

REPO = Path(__file__).resolve().parents[2]
HCM = ZoneInfo("Asia/Ho_Chi_Minh")


def FakeIndex(entries: dict[str, set[str]]) -> MemoryIndex:
    """The real in-memory list index; '=host' keys match the exact host only."""
    names = {k.lstrip("="): v for k, v in entries.items()}
    exact = [k[1:] for k in entries if k.startswith("=")]
    return MemoryIndex.from_entries(names, exact=exact, version="v7")


@pytest.fixture(scope="session")
def catalog():
    return load_catalog(REPO / "blocklists" / "categories.yaml")


BASE_POLICY = """\
version: 1
default_group: strict
protected:
  files: [protected.txt]
education:
  - vnedu.vn
  - olm.vn
schedules:
  class:
    label_vi: Giờ học
    label_en: Class hours
    windows:
      - days: mon-sat
        times: ["07:00-11:30", "13:30-17:00"]
  night:
    windows:
      - days: daily
        times: ["22:00-06:00"]
groups:
  base:
    abstract: true
    label_vi: Học sinh
    label_en: Students
    block:
      always: [adult, gambling, doh]
    safe_search: strict
    youtube: strict
  older:
    extends: base
    label_vi: THPT
    label_en: Upper secondary
    clients: [10.0.40.0/22, "2001:db8:40::/48"]
    block:
      during:
        class: [games, social_networks]
    allow: [games-edu.example, =only.example]
    deny: [bad.example, =exact-deny.example]
    youtube: moderate
  strict:
    extends: older
    label_vi: Nghiêm
    label_en: Strict
    clients: [10.0.41.0/24, 10.0.50.10-10.0.50.20]
    block:
      always: [games]
    youtube: strict
  staff:
    label_vi: Giáo viên
    label_en: Staff
    clients: [10.0.2.0/24, "aa:bb:cc:dd:ee:ff"]
    block:
      always: [malware]
"""


@pytest.fixture
def write_policy(tmp_path):
    """Write policy files into a fresh directory; returns the directory."""

    def write(files: dict[str, str] | None = None, protected: str = "evil.test\n") -> Path:
        d = tmp_path / "policies"
        d.mkdir(exist_ok=True)
        files = {"policy.yaml": BASE_POLICY} if files is None else files
        for name, text in files.items():
            (d / name).write_text(textwrap.dedent(text), encoding="utf-8")
        (d / "protected.txt").write_text(protected, encoding="utf-8")
        return d

    return write


def make_engine(policy_dir: Path, catalog, index=None, overrides=EMPTY, neighbours=None,
                tz=HCM) -> Engine:
    policy = load_policy(policy_dir, catalog)
    return Engine(policy, catalog, timezone=tz, index=index, overrides=overrides,
                  neighbours=neighbours, bypass=builtin.bypass_table(),
                  safe_search=builtin.safe_search_table(), youtube=builtin.youtube_table())


@pytest.fixture
def engine_factory(write_policy, catalog):
    def factory(index=None, overrides=EMPTY, neighbours=None, files=None,
                protected="evil.test\n"):
        return make_engine(write_policy(files, protected), catalog, index, overrides, neighbours)
    return factory


def local(y, mo, d, h, mi=0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=HCM)


@pytest.fixture
def config():
    return default_config()
