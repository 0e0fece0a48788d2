import gzip
import json
import os
from datetime import UTC, date, datetime, timedelta

import pytest

from filterd.sync.outbox import Outbox
from filterd.sync.pseudonym import DailyPseudonyms, device_identity, load_or_create_secret
from filterd.sync.report import Health, ListInfo, build_report, day_bounds, first_data_day

from .conftest import TZ, Ev, appliance_total, generate_days, write_events

DAY = date(2026, 11, 24)


def at(hour: int, minute: int = 0, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=TZ)


def test_day_bounds_are_the_local_day():
    start, end = day_bounds(DAY, TZ)
    assert start == datetime(2026, 11, 23, 17, tzinfo=UTC)
    assert end - start == timedelta(hours=24)


def test_counts_use_local_hours_and_only_that_day(appliance):
    _, conn = appliance
    evs = []
    for i in range(5):
        ip = f"10.0.0.{i + 1}"
        evs += [
            Ev(at(0, 5), ip, None, "thcs", "a.adult.example", "block", "adult"),
            Ev(at(23, 59), ip, None, "thcs", "a.adult.example", "block", "adult"),
            Ev(at(0, 1, DAY + timedelta(days=1)), ip, None, "thcs", "x.example", "block",
               "adult"),
            Ev(at(23, 0, DAY - timedelta(days=1)), ip, None, "thcs", "x.example", "block",
               "adult"),
        ]
    write_events(conn, evs, allowed_counts=2)
    r = build_report(conn, school_id="s", day=DAY, tz=TZ, secret=b"x" * 32)
    assert {(c["hour"], c["action"], c["n"]) for c in r["counts"]} == {
        (0, "block", 5), (0, "allow", 10), (23, "block", 5), (23, "allow", 10)}
    assert {c["category"] for c in r["counts"]} == {"adult", "none"}
    assert sum(c["n"] for c in r["counts"]) == appliance_total(conn, DAY) == 30
    assert r["devices"] == {"thcs": 5, "all": 5}


def test_one_device_tier_leaves_no_record_of_its_child(appliance):
    """The issue's school: one age tier with a single device. Its hourly blocks, its
    device count and its bypass attempts must not leave, day after day."""
    _, conn = appliance
    evs = []
    for hour in range(7, 17):
        evs += [Ev(at(hour, m), "10.1.0.9", "02:00:00:00:09:09", "mam_non", "p.adult.example",
                   "block", "adult") for m in (1, 2, 3)]
        evs.append(Ev(at(hour, 4), "10.1.0.9", "02:00:00:00:09:09", "mam_non", "dns.google",
                      "block", "bypass", reason="bypass", path="bypass"))
        evs += [Ev(at(hour, 5), f"10.2.0.{i}", None, "thcs", f"s{i}.games.example", "block",
                   "games") for i in range(6)]
    write_events(conn, evs, allowed_counts=4)
    r = build_report(conn, school_id="s", day=DAY, tz=TZ, secret=b"x" * 32, k=5)
    assert all(c["group"] != "mam_non" for c in r["counts"])
    assert r["devices"] == {"mam_non": "fewer_than_k", "thcs": 6, "all": 7}
    assert r["bypass"] == {}
    # the other tier's figures survive hour by hour
    assert {c["hour"] for c in r["counts"] if c["group"] == "thcs"} == set(range(7, 17))
    # the child's adult blocks are in no row: with 6 games devices, `all/other/block` gets
    # them only together with >= 5 other devices (here no such leftover exists)
    assert sum(c["n"] for c in r["counts"]) == 10 * 6 * 5


def test_rows_below_k_roll_up_hour_then_category_then_tier(appliance):
    _, conn = appliance
    evs = []
    # 5 thcs devices, each blocked on adult in a different hour: no hour has 5, the day does
    evs += [Ev(at(8 + i), f"10.3.0.{i}", None, "thcs", "a.adult.example", "block", "adult")
            for i in range(5)]
    # thcs: 3 devices on games, 2 on violence, whole day: only together (other) they reach 5
    evs += [Ev(at(9), f"10.3.1.{i}", None, "thcs", "g.games.example", "block", "games")
            for i in range(3)]
    evs += [Ev(at(10), f"10.3.2.{i}", None, "thcs", "v.violence.example", "block", "violence")
            for i in range(2)]
    # gambling: 2 devices in thpt and 3 in tieu_hoc: only across tiers
    evs += [Ev(at(11), f"10.4.0.{i}", None, "thpt", "x.gambling.example", "block", "gambling")
            for i in range(2)]
    evs += [Ev(at(12), f"10.5.0.{i}", None, "tieu_hoc", "x.gambling.example", "block",
               "gambling") for i in range(3)]
    # one device, alone in its tier all day: suppressed
    evs.append(Ev(at(13), "10.6.0.1", None, "thpt_x", "y.dating.example", "block", "dating"))
    write_events(conn, evs)
    rows = {(c["group"], c["category"], c["action"], c["hour"]): c["n"]
            for c in build_report(conn, school_id="s", day=DAY, tz=TZ, secret=b"x" * 32)["counts"]}
    assert rows == {("thcs", "adult", "block", None): 5,
                    ("thcs", "other", "block", None): 5,
                    ("all", "other", "block", None): 6}
    # the `all` row: 2 thpt + 3 tieu_hoc gambling devices and the dating device (6 devices)


def test_devices_bypass_lists_and_health(appliance, tmp_path):
    settings, conn = appliance
    evs = [Ev(at(9), f"10.0.0.{i}", f"02:00:00:00:00:{i:02x}", "thpt", "dns.google", "block",
              "bypass", reason="bypass", path="bypass", list_version="v7") for i in range(3)]
    evs += [Ev(at(10), "10.0.0.1", "02:00:00:00:00:01", "thpt", "dns.google", "block", "bypass",
               reason="bypass", path="bypass")]
    evs += [Ev(at(11), "10.0.1.9", None, "tieu_hoc", "z.games.example", "block", "games")]
    write_events(conn, evs)
    # the daemon's own files: its pid file (mtime = start) and two workers' metric snapshots
    pidf = settings.data_dir / "filterd.pid"
    pidf.write_text(f"{os.getpid()}\n")
    os.utime(pidf, (at(12).timestamp() - 3600,) * 2)
    (settings.data_dir / "metrics").mkdir()
    for pid, dropped in ((11, 3), (12, 1)):
        (settings.data_dir / "metrics" / f"{pid}.json").write_text(json.dumps({
            "filterd_events_dropped_total": {"values": [[[], dropped]]},
            "filterd_upstream_errors_total": {"values": [[["9.9.9.9:53"], 1.0],
                                                         [["1.1.1.1:53"], 0.0]]}}))
    (settings.data_dir / "metrics" / "13.json").write_text("{truncated")
    r = build_report(conn, school_id="s", day=DAY, tz=TZ, secret=b"x" * 32,
                     health=Health.read(settings.data_dir, at(12)),
                     lists=ListInfo("2026.11.24-1", datetime(2026, 11, 24, 1, tzinfo=UTC)))
    assert r["devices"] == {"thpt": "fewer_than_k", "tieu_hoc": "fewer_than_k",
                            "all": "fewer_than_k"}
    r3 = build_report(conn, school_id="s", day=DAY, tz=TZ, secret=b"x" * 32, k=3)
    assert r3["bypass"] == {"thpt": {"attempts": 4, "devices": 3}}
    assert r3["devices"] == {"thpt": 3, "tieu_hoc": "fewer_than_k", "all": 4}
    assert r["bypass"] == {}    # 3 devices < k = 5
    assert r["lists"] == {"current_version": "2026.11.24-1", "updated_at": "2026-11-24T01:00:00Z",
                          "versions_seen": ["2026.11.20-1", "v7"], "feeds": {}}
    assert r["health"]["uptime_s"] == 3600
    assert r["health"]["events_dropped"] == 4 and r["health"]["upstream_failures"] == 2
    assert r["top_blocked"] == {}  # 3 devices < k = 5


def test_missing_health_files_give_nulls_not_guesses(tmp_path):
    assert Health.read(tmp_path, datetime.now(UTC)) == Health(None, None, None)
    (tmp_path / "filterd.pid").write_text("999999999\n")  # stale: no such process
    assert Health.read(tmp_path, datetime.now(UTC)).uptime_s is None


def test_no_tables_yet_gives_an_empty_valid_report(tmp_path):
    import sqlite3

    from filterd.sync import schema

    r = build_report(sqlite3.connect(":memory:"), school_id="s", day=DAY, tz=TZ,
                     secret=b"x" * 32)
    schema.validate(r)
    assert r["counts"] == [] and r["devices"] == {}


def test_first_data_day(appliance):
    _, conn = appliance
    assert first_data_day(conn, TZ) is None
    generate_days(conn, [DAY - timedelta(days=2), DAY], per_day=5)
    assert first_data_day(conn, TZ) == DAY - timedelta(days=2)


# --- privacy: nothing personal in any byte that would leave -----------------------------------

IPS = ["10.20.30.40", "192.168.77.123", "172.16.5.9", "fd00:abcd::1234"]
MACS = ["3c:22:fb:9a:11:01", "A4:83:E7:00:BE:EF", "f0:18:98:12:34:56", "00:1b:63:aa:bb:cc"]
HOSTS = ["nguyen-van-an-ipad", "DESKTOP-7QK2LTR", "tran-thi-binh-laptop", "lop9a-may03"]
USERS = ["nguyen.van.an", "tranthibinh", "le_hoang_cuong", "phamminhduc2011"]
URLS = ["http://truyen.example/chuong-18?user=nguyen.van.an",
        "https://search.example/search?q=tranthibinh+facebook"]
TERMS = ["cach vuot tuong lua truong", "phamminhduc2011 facebook"]


def _privacy_log(conn):
    evs = []
    for d in (DAY - timedelta(days=1), DAY):
        for i in range(40):
            ip, mac = IPS[i % 4], MACS[i % 4]
            host, user = HOSTS[i % 4], USERS[i % 4]
            evs += [
                # device and user names leaking into DNS names, PTR lookups and URLs
                Ev(at(8, i, d), ip, mac, "thcs", f"{host}.local", "block", "adult"),
                Ev(at(8, i, d), ip, mac, "thcs", f"{user}.lan", "block", "adult"),
                Ev(at(8, i, d), ip, mac, "thcs", ".".join(reversed(IPS[0].split("."))) +
                   ".in-addr.arpa", "block", "adult"),
                Ev(at(9, i, d), ip, mac, "thcs", "search.example", "block", "adult",
                   path="intercept", url=URLS[i % 2], search_term=TERMS[i % 2]),
                Ev(at(9, i, d), ip, None, "thcs", f"{user}.example", "block", "adult"),
                Ev(at(10, i % 60, d), ip, mac, "thpt", "dns.google", "block", "bypass",
                   reason="bypass", path="bypass"),
            ]
        # a name hit by 40 devices (k=5: listed) and one hit by 4 (never listed)
        evs += [Ev(at(11, i, d), f"10.9.0.{i}", f"02:00:00:00:01:{i:02x}", "thcs",
                   "popular.adult.example", "block", "adult") for i in range(40)]
        evs += [Ev(at(12, i, d), f"10.9.1.{i}", f"02:00:00:00:02:{i:02x}", "thcs",
                   "rare.adult.example", "block", "adult") for i in range(4)] * 25
    write_events(conn, evs, allowed_counts=1)


def _needles(settings, days):
    secret = load_or_create_secret(settings.secret_file)
    devices = [device_identity(ip, mac) for ip, mac in zip(IPS, MACS, strict=True)]
    devices += [device_identity(f"10.9.{a}.{i}", f"02:00:00:00:{a + 1:02x}:{i:02x}")
                for a in (0, 1) for i in range(40)]
    pseudonyms = [DailyPseudonyms(secret, d).of(dev) for d in days for dev in devices]
    macs = [m.lower() for m in MACS] + [m.upper() for m in MACS]
    macs += [m.replace(":", "").lower() for m in MACS] + [m.replace(":", "-") for m in MACS]
    return (IPS + macs + HOSTS + [h.lower() for h in HOSTS] + USERS + URLS + TERMS
            + ["40.30.20.10", "rare.adult.example", "truyen.example/chuong"]
            + pseudonyms + [p[:16] for p in pseudonyms] + [secret.hex()])


def test_privacy_no_personal_data_in_anything_that_would_leave(appliance):
    settings, conn = appliance
    _privacy_log(conn)
    now = datetime(2026, 11, 25, 3, tzinfo=TZ)
    box = Outbox(settings)
    leaving = [json.dumps(r, ensure_ascii=False) for _, r in box.dry_run(now)]
    assert box.build_missing(now) == [(DAY - timedelta(days=1)).isoformat(), DAY.isoformat()]
    files = box.pending()
    leaving += [gzip.decompress(p.read_bytes()).decode() for p in files]
    everything = "\n".join(leaving)
    assert len(files) == 2 and len(everything) > 1000
    # the k-anonymous name is there, so the scan looks at real content
    assert "popular.adult.example" in everything
    for needle in _needles(settings, [DAY - timedelta(days=1), DAY]):
        assert needle not in everything, f"{needle!r} would leave the school"
        assert needle.lower() not in everything.lower(), f"{needle!r} would leave (any case)"


def test_k_is_applied_as_configured(appliance):
    _, conn = appliance
    _privacy_log(conn)
    r3 = build_report(conn, school_id="s", day=DAY, tz=TZ, secret=b"x" * 32, k=3)
    r5 = build_report(conn, school_id="s", day=DAY, tz=TZ, secret=b"x" * 32, k=5)
    names3 = {t["name"] for t in r3["top_blocked"]["adult"]}
    names5 = {t["name"] for t in r5["top_blocked"]["adult"]}
    assert "rare.adult.example" in names3 and "rare.adult.example" not in names5
    assert all(not n.endswith((".local", ".lan", ".arpa")) for n in names3)


@pytest.mark.parametrize("k", [1, 2])
def test_report_refuses_k_below_three(appliance, k):
    from filterd.errors import ConfigError

    _, conn = appliance
    with pytest.raises(ConfigError):
        build_report(conn, school_id="s", day=DAY, tz=TZ, secret=b"x" * 32, k=k)


def test_odd_ids_and_versions_cannot_break_or_leak(appliance):
    from filterd.sync import schema

    _, conn = appliance
    write_events(conn, [Ev(at(9), "10.0.0.1", None, "Nguyen Van An", "x.adult.example", "block",
                           "Adult Content!", list_version="v 1 (http://x)")])
    r = build_report(conn, school_id="s", day=DAY, tz=TZ, secret=b"x" * 32,
                     lists=ListInfo("bad version string"))
    schema.validate(r)
    assert r["counts"] == [] and r["devices"] == {"other": "fewer_than_k", "all": "fewer_than_k"}
    assert r["lists"]["versions_seen"] == [] and r["lists"]["current_version"] is None
    assert "Nguyen" not in json.dumps(r)
