from __future__ import annotations

import os
import stat

import pytest

from filterd.state.atomic import atomic_write, create_exclusive


def test_atomic_write_keeps_previous_and_mode(tmp_path):
    p = tmp_path / "x.yaml"
    atomic_write(p, "one\n")
    assert p.read_text() == "one\n" and not p.with_name("x.yaml.prev").exists()
    atomic_write(p, "two\n", mode=0o640, keep_previous=True)
    assert p.read_text() == "two\n"
    assert p.with_name("x.yaml.prev").read_text() == "one\n"
    assert stat.S_IMODE(p.stat().st_mode) == 0o640
    assert [f for f in os.listdir(tmp_path) if f.endswith(".tmp")] == []


def test_failed_write_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    p = tmp_path / "x.yaml"
    atomic_write(p, "old\n")

    def boom(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write(p, "new\n")
    assert p.read_text() == "old\n"
    assert [f for f in os.listdir(tmp_path) if f.endswith(".tmp")] == []


def test_create_exclusive_writes_once(tmp_path):
    p = tmp_path / "secret"
    assert create_exclusive(p, b"first", mode=0o600)
    assert not create_exclusive(p, b"second")
    assert p.read_bytes() == b"first"
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["secret"]


def test_not_durable_still_replaces_whole(tmp_path, monkeypatch):
    p = tmp_path / "m.json"
    calls = []
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(fd))
    atomic_write(p, "{}", durable=False)
    assert p.read_text() == "{}" and calls == []
    atomic_write(p, "[]")
    assert p.read_text() == "[]" and len(calls) == 2   # the file, then its directory
