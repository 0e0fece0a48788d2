"""The authorities' read-only export API, on SQLite and PostgreSQL: its own tokens, paged,
the same k-anonymous figures as the office's pages."""

import json
import urllib.error
import urllib.request

import pytest

from filterd.sync.office.export import create_token, revoke_token

from .test_pages import loaded as loaded


def get(office, path, token=None):
    req = urllib.request.Request(office.url + path)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_tokens_paging_and_the_same_figures(loaded):
    office = loaded
    assert get(office, "/api/export/v1/schools")[0] == 401
    assert get(office, "/api/export/v1/schools", "fdx_not-a-token")[0] == 401
    token = create_token(office.storage, "Sở KH&CN Hà Nội")
    dump = repr(office.storage.query("SELECT * FROM export_tokens"))
    assert token not in dump and token[4:] not in dump     # only its hash is kept

    status, body = get(office, "/api/export/v1/schools?per_page=3", token)
    assert status == 200 and body["total"] == 4 and body["pages"] == 2
    assert len(body["items"]) == 3 and "per_page=3" in body["next"]
    assert get(office, body["next"].removeprefix(office.url), token)[1]["items"][0]["id"]

    q = "/api/export/v1/counts?from=2026-11-01&to=2026-11-30&per_page=25"
    status, first = get(office, q, token)
    assert status == 200 and first["total"] > 25
    items, nxt = list(first["items"]), first["next"]
    while nxt:
        page = get(office, nxt.removeprefix(office.url), token)[1]
        items += page["items"]
        nxt = page["next"]
    assert len(items) == first["total"]
    assert len({(i["day"], i["school_id"], i["age_group"], i["category"], i["action"])
                for i in items}) == len(items)          # pages neither overlap nor skip
    stored = office.storage.query("SELECT SUM(n) FROM report_counts")[0][0]
    assert sum(i["n"] for i in items) == int(stored)
    adult = next(i for i in items if i["category"] == "adult")
    assert adult["category_vi"] == "Nội dung người lớn" and adult["age_group_vi"]
    assert not any("ip" in k or "mac" in k or "device" in k for k in adult)

    status, rep = get(office, "/api/export/v1/report?kind=year&year=2026", token)
    assert status == 200 and rep["queries"] == int(stored)
    assert rep["period"]["from"] == "2025-12-01" and len(rep["tables"]) == 4

    for bad in ("/api/export/v1/counts?from=2026-11-01", "/api/export/v1/counts?from=x&to=y",
                "/api/export/v1/counts?from=2026-11-02&to=2026-11-01",
                "/api/export/v1/counts?from=2026-11-01&to=2026-11-30&per_page=5000",
                "/api/export/v1/report?kind=week"):
        status, body = get(office, bad, token)
        assert status == 400 and body["error"], bad

    assert revoke_token(office.storage, "Sở KH&CN Hà Nội") == 1
    status, body = get(office, "/api/export/v1/schools", token)
    assert status == 401 and "revoked" in body["error"]


def test_a_page_session_is_not_an_export_token(loaded):
    c = loaded.app.test_client()
    from .test_pages import login

    login(c, "admin1", "admin-pass")
    assert c.get("/api/export/v1/schools").status_code == 401


def test_token_needs_a_unique_name(storage):
    from filterd.sync.office.export import TokenError

    create_token(storage, "Bộ GD&ĐT")
    with pytest.raises(TokenError, match="already in use"):
        create_token(storage, "Bộ GD&ĐT")
    with pytest.raises(TokenError):
        create_token(storage, " ")
