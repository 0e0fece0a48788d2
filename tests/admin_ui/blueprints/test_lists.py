"""Lists page: status from the index/sources, and "update now" runs `filterd lists update`."""

from __future__ import annotations

import pytest

from tests.admin_ui.conftest import post


def test_lists_page_shows_configured_sources(as_role, config):
    config.sources_file.write_text(
        "version: 1\nsources:\n  - name: hostsvn\n    url: https://example.invalid/hosts\n"
        "    format: hosts\n    category: adult\n    license: MIT\n")
    page = as_role("viewer").get("/lists").get_data(as_text=True)
    assert "hostsvn" in page and "chưa bao giờ" in page  # configured, never downloaded
    assert "/lists/update" not in page  # viewers cannot start an update


def test_update_now_runs_in_background_and_is_logged(as_role, backend, config):
    # a source nobody can reach: the update fails fast and says so, without the network
    import shutil

    shutil.copy(config.categories_file, config.sources_file.with_name("categories.yaml"))
    config.sources_file.write_text(
        "version: 1\nsources:\n  - name: local\n    url: http://127.0.0.1:9/none.txt\n"
        "    format: domains\n    category: adult\n    match: subtree\n    license: test\n")
    c = as_role("admin")
    resp = post(c, "/lists/update")
    assert resp.status_code == 302
    proc = backend._update_proc
    assert proc is not None
    proc.wait(timeout=60)
    log = (backend.data_dir / "lists-update.log").read_text()
    assert "filterd lists update" in log and f"--data-dir {backend.data_dir}" in log
    page = c.get("/lists").get_data(as_text=True)
    assert "filterd lists update" in page
    assert "127.0.0.1" in page.split("<tbody>")[1]  # the source's error, from state.json
    assert "lists.update" in c.get("/audit").get_data(as_text=True)


def test_second_update_while_running_is_refused(as_role, backend, monkeypatch):
    c = as_role("admin")
    monkeypatch.setattr(backend, "lists_update_running", lambda: True)
    post(c, "/lists/update")
    assert backend._update_proc is None


@pytest.mark.integration
def test_update_now_fetches_compiles_and_the_page_shows_it(as_role, backend, config):
    """A source served on loopback: "update now" runs the real updater; the page then shows
    the new index, the source's entry count and its download time."""
    import shutil
    import threading
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    served = config.sources_file.parent / "served"
    served.mkdir()
    (served / "list.txt").write_text("tracker-one.example\ntracker-two.example\n"
                                     "tracker-three.example\n")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0),
                                partial(SimpleHTTPRequestHandler, directory=str(served)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        shutil.copy(config.categories_file, config.sources_file.with_name("categories.yaml"))
        config.sources_file.write_text(
            "version: 1\nsources:\n  - name: loopback\n"
            f"    url: http://127.0.0.1:{httpd.server_address[1]}/list.txt\n"
            "    format: domains\n    category: adult\n    match: subtree\n"
            "    license: test\n")
        c = as_role("admin")
        before = c.get("/lists").get_data(as_text=True)
        assert "loopback" in before and "chưa bao giờ" in before   # never downloaded yet
        assert post(c, "/lists/update").status_code == 302
        assert backend._update_proc.wait(timeout=120) == 0, \
            (backend.data_dir / "lists-update.log").read_text()
    finally:
        httpd.shutdown()
        httpd.server_close()
    status = backend.lists_status()
    row = next(r for r in status["configured"] if r["name"] == "loopback")
    assert row["count"] == 3 and row["fetched"] and not row["error"]
    assert status["version"]
    page = c.get("/lists").get_data(as_text=True)
    table = page.split("<tbody>")[1]
    assert "loopback" in table and "<td>3</td>" in table and "chưa bao giờ" not in table
