import pytest

from filterd.errors import ConfigError
from filterd.sync.kanon import check_k, publishable_name, top_names


@pytest.mark.parametrize("k", [0, 1, 2, -5, 2.5, True, "5"])
def test_k_below_three_or_not_an_int_is_refused(k):
    with pytest.raises(ConfigError, match="k_anonymity"):
        check_k(k)


def test_k_three_and_more_accepted():
    assert check_k(3) == 3
    assert check_k(5) == 5


def test_names_hit_by_fewer_than_k_devices_are_left_out():
    hits = [("adult", "popular.example", f"p{i}") for i in range(5)]
    hits += [("adult", "rare.example", f"p{i}") for i in range(4)] * 10  # many hits, 4 devices
    top = top_names(hits, k=5)
    assert [t.name for t in top["adult"]] == ["popular.example"]
    assert top["adult"][0].devices == 5 and top["adult"][0].hits == 5
    assert "rare.example" in [t.name for t in top_names(hits, k=4)["adult"]]


@pytest.mark.parametrize("name", [
    "40.30.20.10.in-addr.arpa", "nguyen-van-an-ipad.local", "desktop-123.lan", "printer",
    "host-10-20-30-40.isp.example", "aabbccddeeff.example", "kid.home.arpa", "a b.example",
])
def test_local_or_address_like_names_never_publishable(name):
    assert not publishable_name(name)


def test_public_names_publishable():
    assert publishable_name("pornhub.com")
    assert publishable_name("xn--bcher-kva.example")


def test_ordering_and_limit():
    hits = []
    for n in range(30):
        hits += [("games", f"g{n:02d}.example", f"d{i}") for i in range(5 + n)]
    top = top_names(hits, k=5, limit=3)["games"]
    assert [t.name for t in top] == ["g29.example", "g28.example", "g27.example"]
