"""The control channel's record and what a reload changed (the daemon side is driven for
real in tests/test_reload.py)."""

from __future__ import annotations

import dataclasses

from filterd.config import load_config
from filterd.errors import ConfigError
from filterd.state import control


def _config(tmp_path, text=""):
    path = tmp_path / "filterd.yaml"
    path.write_text(f"data_dir: {tmp_path / 'var'}\n{text}")
    return load_config(path)


def test_changes_are_sorted_by_where_they_take_effect(tmp_path):
    old = _config(tmp_path, "school_name: A\n")
    new = dataclasses.replace(old, school_name="B", school_id="truong-b",
                              dns=dataclasses.replace(old.dns, listen=(("127.0.0.1", 53),)),
                              events=dataclasses.replace(old.events, retention_days=90))
    ch = control.classify_changes(old, new)
    assert ch.applied == ("events.retention_days", "school_name")
    assert ch.elsewhere == (("school_id", "sync"),)
    assert ch.needs_restart == ("dns.listen",)
    assert control.classify_changes(old, old) == control.SettingChanges()


def test_outcome_round_trips_and_counts_generations(tmp_path):
    data = tmp_path / "var"
    assert control.read_outcome(data) is None
    a = control.Attempt(data, "start", None).ok(index_version="v1")
    assert a.generation == 1 and a.ok
    b = control.Attempt(data, "reload", None).refused(
        ConfigError("unknown category 'gmes'", file="/etc/filterd/policies/thcs.yaml", line=7,
                    key="groups.thcs.block"))
    back = control.read_outcome(data)
    assert back == b and back.generation == 2 and back.status == "refused"
    assert back.error == ("/etc/filterd/policies/thcs.yaml:7: groups.thcs.block: "
                          "unknown category 'gmes'")


def test_request_without_a_daemon_is_not_running(tmp_path):
    reply = control.request_reload(tmp_path)
    assert reply.status == "not_running" and not reply.ok
    (tmp_path / control.PID_FILE).write_text("999999999\n")
    assert control.request_reload(tmp_path).status == "not_running"


def test_stale_inputs_names_the_changed_file(tmp_path):
    pol = tmp_path / "policies"
    pol.mkdir()
    (pol / "groups.yaml").write_text("a\n")
    cfg = dataclasses.replace(_config(tmp_path), policy_dir=pol)
    loaded = control.Attempt(cfg.data_dir, "start", cfg).ok()
    assert control.stale_inputs(cfg, loaded) == []
    (pol / "groups.yaml").write_text("changed\n")
    assert control.stale_inputs(cfg, loaded) == [str(pol / "groups.yaml")]
