"""filterd.yaml: embedded defaults, strict validation with file, line and key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from filterd.config import REPO_ROOT, load_config, parse_endpoint, parse_upstream
from filterd.errors import ConfigError, ConfigErrors


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "filterd.yaml"
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


def errors_of(exc: ConfigError) -> list[ConfigError]:
    return exc.errors if isinstance(exc, ConfigErrors) else [exc]


def test_embedded_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    c = load_config(None)
    assert c.timezone.key == "Asia/Ho_Chi_Minh"
    assert c.data_dir == tmp_path / "var"
    assert c.dns.listen == (("127.0.0.1", 5353),)
    assert c.dns.block_ttl == 10 and c.dns.workers == 1 and c.dns.rate_limit_qps == 0
    assert c.events.retention_days == 30 and c.events.store_allowed is False
    assert c.http.block_page_listen == ("127.0.0.1", 8080)
    assert c.http.proxy_listen == ("127.0.0.1", 3128)
    assert c.http.intercept_ca_dir == tmp_path / "var" / "ca"
    assert c.admin.listen == ("127.0.0.1", 8081)
    assert c.sync.office_url == "" and c.sync.k_anonymity == 5
    assert c.office.listen == ("127.0.0.1", 8090)
    assert c.office.database_url == f"sqlite:///{tmp_path / 'var' / 'office.db'}"
    assert c.policy_dir == REPO_ROOT / "policies"
    assert c.overrides_file == tmp_path / "var" / "overrides.json"
    assert all(port >= 1024 for _, port in (*c.dns.listen, c.http.block_page_listen,
                                            c.admin.listen, c.office.listen))


def test_full_file(tmp_path):
    p = write(tmp_path, """
        school_id: thcs-ba-dinh
        school_name: Trường THCS Ba Đình
        timezone: Asia/Bangkok
        data_dir: data
        appliance_ipv4: 10.10.0.1
        appliance_ipv6: "fd00::1"
        dns:
          listen: ["0.0.0.0:53", "[::]:53"]
          upstreams: [1.1.1.1, "[2606:4700:4700::1111]:53", "9.9.9.9:5353"]
          workers: 2
        events: {retention_days: 60, store_allowed: true}
        http: {mode: transparent}
        sync: {office_url: "https://office.example.vn/api", k_anonymity: 10}
        office: {database_url: "postgresql://u@localhost/office"}
    """)
    c = load_config(p)
    assert c.school_id == "thcs-ba-dinh" and c.timezone.key == "Asia/Bangkok"
    assert c.data_dir == tmp_path / "data"        # relative to the file
    assert c.dns.listen == (("0.0.0.0", 53), ("::", 53))
    assert c.dns.upstreams == (("1.1.1.1", 53), ("2606:4700:4700::1111", 53), ("9.9.9.9", 5353))
    assert c.events.retention_days == 60 and c.http.mode == "transparent"
    assert c.http.intercept_groups == () and c.http.staff_groups == ("giao_vien",)
    assert c.sync.token_file == tmp_path / "data" / "sync-token"
    assert c.source_file == p


def test_every_error_is_reported_with_line_and_key(tmp_path):
    p = write(tmp_path, """\
        school_id: ok
        timezone: Asia/Nowhere
        dns:
          listen: ["127.0.0.1"]
          bogus: 1
          workers: "two"
        sync:
          k_anonymity: 2
        appliance_ipv4: "::1"
        colour: blue
    """)
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    got = {(e.line, e.key) for e in errors_of(exc.value)}
    assert got == {(2, "timezone"), (4, "dns.listen"), (5, "dns.bogus"), (6, "dns.workers"),
                   (8, "sync.k_anonymity"), (9, "appliance_ipv4"), (10, "colour")}
    assert all(e.file == str(p) for e in errors_of(exc.value))
    assert f"{p}:2: timezone: unknown time zone 'Asia/Nowhere'" in str(exc.value)


@pytest.mark.parametrize(("text", "key"), [
    ("dns: {block_ttl: -1}", "dns.block_ttl"),
    ("dns: {upstreams: []}", "dns.upstreams"),
    ("dns: {upstreams: [dns.google]}", "dns.upstreams"),
    ("dns: {upstreams: ['tls://dns.quad9.net']}", "dns.upstreams"),     # needs an address
    ("dns: {upstreams: ['quic://9.9.9.9']}", "dns.upstreams"),
    ("dns: {upstreams: ['tls://9.9.9.9#bad name']}", "dns.upstreams"),
    ("dns: {upstreams: ['https://1.1.1.1/q?x=1']}", "dns.upstreams"),
    ("dns: {upstream_ca_file: /no/such/ca.pem}", "dns.upstream_ca_file"),
    ("dns: {keep_ech_groups: all}", "dns.keep_ech_groups"),
    ("dns: {serve_stale_max: -5}", "dns.serve_stale_max"),
    ("dns: {prefetch: 1}", "dns.prefetch"),
    ("dns: {listen: ['300.1.1.1:53']}", "dns.listen"),
    ("dns: {listen: ['127.0.0.1:70000']}", "dns.listen"),
    ("dns: {cache_min_ttl: 100, cache_max_ttl: 10}", "dns.cache_min_ttl"),
    ("events: {store_allowed: yes}", "events.store_allowed"),   # YAML 1.2: 'yes' is text
    ("http: {mode: sometimes}", "http.mode"),
    ("http: {intercept_groups: thcs}", "http.intercept_groups"),
    ("http: {staff_groups: ['Giáo viên']}", "http.staff_groups"),
    ("sync: {office_url: 'ftp://x'}", "sync.office_url"),
    ("office: {database_url: 'mysql://x'}", "office.database_url"),
    ("school_id: 'Trường A'", "school_id"),
    ("appliance_ipv6: 10.0.0.1", "appliance_ipv6"),
    ("dns: 5", "dns"),
    ("admin: {listen: 'localhost:8081'}", "admin.listen"),
])
def test_bad_values_never_fall_back_to_defaults(tmp_path, text, key):
    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, text + "\n"))
    assert [e.key for e in errors_of(exc.value)] == [key]
    assert errors_of(exc.value)[0].line == 1


def test_yaml_syntax_error_names_the_line(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, "dns:\n  listen: [127.0.0.1:53\nevents: {}\n"))
    assert exc.value.file.endswith("filterd.yaml") and exc.value.line is not None


def test_duplicate_key_is_an_error(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, "school_id: a\nschool_id: b\n"))
    assert exc.value.line == 2 and "duplicate" in exc.value.message


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml")


def test_empty_file_is_the_defaults_relative_to_it(tmp_path):
    c = load_config(write(tmp_path, ""))
    assert c.data_dir == tmp_path / "var" and c.dns.listen == (("127.0.0.1", 5353),)


def test_example_file_is_valid_and_documents_every_key():
    example = REPO_ROOT / "filterd.example.yaml"
    c = load_config(example)
    text = example.read_text(encoding="utf-8")
    import dataclasses

    from filterd.config import SECTIONS, Config
    for f in dataclasses.fields(Config):
        if f.name not in ("source_file",):
            assert f"{f.name}:" in text, f.name
    for name, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            assert f"{f.name}:" in text, f"{name}.{f.name}"
    assert c.school_id


@pytest.mark.parametrize(("text", "port", "expected"), [
    ("127.0.0.1:53", None, ("127.0.0.1", 53)),
    ("[::1]:5353", None, ("::1", 5353)),
    ("::1", 53, ("::1", 53)),
    ("1.1.1.1", 53, ("1.1.1.1", 53)),
])
def test_parse_endpoint(text, port, expected):
    assert parse_endpoint(text, port) == expected


def test_metrics_listen_is_off_by_default_and_validated(tmp_path):
    assert load_config(None).metrics.listen is None
    f = tmp_path / "filterd.yaml"
    f.write_text('metrics:\n  listen: "127.0.0.1:9154"\n')
    assert load_config(f).metrics.listen == ("127.0.0.1", 9154)
    f.write_text('metrics:\n  listen: "localhost:9154"\n')
    with pytest.raises(ConfigError) as err:
        load_config(f)
    assert err.value.key == "listen" or "metrics.listen" in str(err.value)


def test_upstreams_plain_tls_and_https(tmp_path):
    p = write(tmp_path, """\
        dns:
          upstreams:
            - 9.9.9.9
            - "tls://9.9.9.9#dns.quad9.net"
            - "tls://[2620:fe::fe]:8853"
            - "https://1.1.1.1/dns-query#Cloudflare-DNS.com"
            - "https://[2606:4700:4700::1111]:8443/resolve"
    """)
    ups = load_config(p).dns.upstreams
    assert [tuple(u) for u in ups] == [("9.9.9.9", 53), ("9.9.9.9", 853), ("2620:fe::fe", 8853),
                                       ("1.1.1.1", 443), ("2606:4700:4700::1111", 8443)]
    assert [u.transport for u in ups] == ["udp", "tls", "tls", "https", "https"]
    assert [u.tls_name for u in ups] == [None, "dns.quad9.net", None, "cloudflare-dns.com",
                                         None]
    assert [u.path for u in ups][3:] == ["/dns-query", "/resolve"]
    assert ups[1].url == "tls://9.9.9.9:853#dns.quad9.net"
    # A change of transport or certificate name is a change (the reload reports it).
    assert ups[1] != parse_upstream("9.9.9.9:853")
    assert ups[1] != parse_upstream("tls://9.9.9.9#other.example")
    assert ups[1] == parse_upstream("tls://9.9.9.9:853#DNS.quad9.net")


def test_bad_upstream_names_the_item_and_line(tmp_path):
    p = write(tmp_path, "school_id: a\ndns:\n  upstreams: [1.1.1.1, 'tls://dns.google']\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    (err,) = errors_of(exc.value)
    assert (err.line, err.key) == (3, "dns.upstreams")
    assert "item 2" in err.message and "IP address" in err.message
