"""Dashboard tile: the last successful upload to the education office (issue 6), read from the
sync job's state file and outbox as docs/dev/CONTRACTS.md describes them."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace


def _tile(page: str) -> str:
    m = re.search(r'<div class="tile( warn)?">(Gửi báo cáo lên Phòng/Sở|Upload to the office):'
                  r'(.*?)</div>', page, re.S)
    assert m, page
    return (m.group(1) or "") + m.group(3)


def _configure(backend, monkeypatch, url: str = "https://office.example") -> None:
    cfg = dataclasses.replace(backend.config, sync=SimpleNamespace(
        office_url=url, office_key_file=None, forward_reports=False))
    monkeypatch.setattr(backend, "config", cfg)


def test_upload_not_configured(as_role):
    tile = _tile(as_role("viewer").get("/").get_data(as_text=True))
    assert "chưa cấu hình" in tile and "warn" not in tile


def test_configured_but_never_uploaded_warns(as_role, backend, monkeypatch):
    _configure(backend, monkeypatch)
    outbox = backend.data_dir / "outbox"
    outbox.mkdir(parents=True)
    for day in ("2026-11-27", "2026-11-28"):
        (outbox / f"test-school_{day}.json.gz").write_bytes(b"x")
    sync = backend.data_dir / "sync"
    sync.mkdir()
    (sync / "state.json").write_text(json.dumps(
        {"last_error": "office unreachable at https://office.example: timed out"}))
    tile = _tile(as_role("viewer").get("/").get_data(as_text=True))
    assert tile.startswith(" warn") and "chưa bao giờ" in tile
    assert "2 báo cáo đang chờ gửi" in tile and "office unreachable" in tile


def test_recent_upload_shown_in_both_languages(as_role, backend, monkeypatch):
    _configure(backend, monkeypatch)
    sync = backend.data_dir / "sync"
    sync.mkdir(parents=True)
    at = datetime.now(UTC) - timedelta(hours=3)
    (sync / "state.json").write_text(json.dumps(
        {"last_success_at": at.isoformat(), "last_success_day": "2026-11-28", "failures": 0,
         "last_error": "old error, since resolved"}))
    client = as_role("viewer")
    tile = _tile(client.get("/").get_data(as_text=True))
    assert "warn" not in tile and "lần gửi gần nhất" in tile
    assert "đang chờ" not in tile and "old error" not in tile  # nothing pending: no error shown
    client.get("/lang/en")
    tile = _tile(client.get("/").get_data(as_text=True))
    assert "last upload" in tile
