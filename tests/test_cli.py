"""`filterd check` and `filterd policy validate`, through click and as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
from click.testing import CliRunner

from filterd.cli import main

REPO = Path(__file__).resolve().parent.parent


def test_check_text_vi_and_en(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["check", "www.google.com.vn", "--client", "10.10.41.7",
                                  "--at", "2026-11-25T09:30"])
    assert r.exit_code == 0, r.output
    assert "forcesafesearch.google.com" in r.output and "THPT" in r.output
    assert "Thứ Tư, 25/11/2026 09:30" in r.output
    r = CliRunner().invoke(main, ["check", "use-application-dns.net", "--client", "10.10.2.3",
                                  "--lang", "en"])
    assert r.exit_code == 0 and "Blocked use-application-dns.net" in r.output


def test_check_json(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["check", "vnedu.vn", "--client", "192.168.5.5", "--json",
                                  "--at", "2026-11-25T02:30:00+00:00"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["action"] == "allow" and d["reason"] == "education"
    assert d["group"] == "chua_xac_dinh" and d["at"] == "2026-11-25T02:30:00+00:00"
    assert d["source"]["kind"] == "policy" and d["source"]["name"].endswith("education.yaml")


def test_check_bad_client_and_time():
    r = CliRunner().invoke(main, ["check", "x.vn", "--client", "not-an-ip"])
    assert r.exit_code == 2 and "bad client address" in r.output
    r = CliRunner().invoke(main, ["check", "x.vn", "--client", "10.0.0.1", "--at", "tuesday"])
    assert r.exit_code == 2


def test_check_bad_config_names_file_and_line(tmp_path):
    cfg = tmp_path / "filterd.yaml"
    cfg.write_text("dns:\n  workers: many\n")
    r = CliRunner().invoke(main, ["check", "x.vn", "--client", "10.0.0.1", "--config", str(cfg)])
    assert r.exit_code == 1
    assert f"{cfg}:2: dns.workers: expected a whole number" in r.output


def test_policy_validate_ok_and_broken(tmp_path):
    r = CliRunner().invoke(main, ["policy", "validate", str(REPO / "policies")])
    assert r.exit_code == 0 and r.output.startswith("OK:")
    bad = tmp_path / "p.yaml"
    bad.write_text("version: 1\ngroups:\n  a:\n    label_vi: A\n    label_en: A\n"
                   "    block: {always: [adlt]}\n    clients: [10.0.0.0/33]\n")
    r = CliRunner().invoke(main, ["policy", "validate", str(bad)])
    assert r.exit_code == 1
    assert f"{bad}:6: groups.a.block.always: unknown category 'adlt'" in r.output
    assert f"{bad}:7: groups.a.clients: bad CIDR" in r.output


def _commands(cmd: click.Command, path: list[str]):
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name, sub in sorted(cmd.commands.items()):
            yield from _commands(sub, [*path, name])


def test_help_texts_have_examples():
    """Every command and group, including those added later, has help with an Example."""
    seen = []
    for path, cmd in _commands(main, []):
        r = CliRunner().invoke(main, [*path, "--help"])
        assert r.exit_code == 0, (path, r.output)
        assert cmd.help and "Example:" in r.output, f"`filterd {' '.join(path)}` has no Example"
        seen.append(" ".join(path))
    assert {"check", "policy validate", "policy show", "lists update", "lists status"} <= set(seen)


def test_check_as_a_process(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    p = subprocess.run([sys.executable, "-m", "filterd", "check", "www.youtube.com",
                        "--client", "10.10.20.9", "--json", "--at", "2026-11-25T12:00"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["group"] == "tieu_hoc" and d["rewrite_target"] == "restrict.youtube.com"
    p = subprocess.run([sys.executable, "-m", "filterd", "policy", "validate",
                        str(tmp_path / "missing")], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "not found" in p.stderr


def test_lists_lookup_and_status_on_embedded_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)   # embedded defaults: data under ./var
    r = CliRunner().invoke(main, ["lists", "lookup", "WWW.PornHub.com."])
    assert r.exit_code == 0, r.output
    assert "pornhub.com (domain and subdomains): adult [seed-adult]" in r.output
    assert (tmp_path / "var" / "lists" / "current").is_symlink()   # seed index compiled
    r = CliRunner().invoke(main, ["lists", "lookup", "moet.gov.vn"])
    assert r.exit_code == 0 and "moet.gov.vn: in no list" in r.output
    r = CliRunner().invoke(main, ["lists", "lookup", "bad name"])
    assert r.exit_code != 0 and "not a valid name" in r.output
    r = CliRunner().invoke(main, ["lists", "status"])
    assert r.exit_code == 0, r.output
    assert "ut1-adult: adult, 0 entries, age never" in r.output
    assert "ut1-phishing (disabled)" in r.output
    assert "index: version" in r.output


def test_check_url_uses_the_http_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["check", "www.google.com", "--client", "10.10.41.7", "--json",
                                  "--url", "https://www.google.com/search?q=x"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["action"] == "enforce" and d["reason"] == "safe_search"


def test_check_by_group(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["check", "www.youtube.com", "--group", "thpt", "--json",
                                  "--at", "2026-11-25T12:00"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["rewrite_target"] == "restrictmoderate.youtube.com"
    r = CliRunner().invoke(main, ["check", "x.vn", "--group", "lop_9a"])
    assert r.exit_code == 2 and "unknown group 'lop_9a'" in r.output
    r = CliRunner().invoke(main, ["check", "x.vn"])
    assert r.exit_code == 2 and "exactly one of --client IP or --group" in r.output


def test_policy_validate_checks_overrides_too(tmp_path):
    cfg = tmp_path / "filterd.yaml"
    cfg.write_text("data_dir: data\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "overrides.json").write_text(
        '{"version": 1, "overrides": [{"id": "a", "group": "lop_9a", "domain": "x.vn",'
        ' "expires_at": "2026-11-25T10:00:00+07:00", "created_by": "t", "reason": "r"}]}')
    r = CliRunner().invoke(main, ["policy", "validate", "--config", str(cfg)])
    assert r.exit_code == 1 and "unknown group 'lop_9a'" in r.output


def test_policy_show(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["policy", "show", "thcs"])
    assert r.exit_code == 0, r.output
    assert r.output.startswith("thcs: THCS (11–14 tuổi)") and "extends thpt" in r.output
    assert "blocked during gio_hoc:" in r.output
    r = CliRunner().invoke(main, ["policy", "show", "--json"])
    ids = [g["id"] for g in json.loads(r.output)]
    assert {"mam_non", "tieu_hoc", "thcs", "thpt", "giao_vien", "khach"} <= set(ids)
    assert CliRunner().invoke(main, ["policy", "show", "nope"]).exit_code == 2
