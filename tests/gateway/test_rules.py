from __future__ import annotations

import itertools

import pytest

from filterd.errors import ConfigError
from filterd.gateway import apply as nft
from filterd.gateway.rules import (
    GatewayPlan,
    default_doh_list_path,
    load_address_list,
    parse_address_list,
    render,
    router_advice,
)
from tests.gateway.netns import Namespaces

DOH = parse_address_list("1.1.1.1\n2001:4860:4860::8888  # google\n45.90.28.0/24\n")


def test_shipped_doh_list_covers_the_big_resolvers() -> None:
    doh = load_address_list(default_doh_list_path())
    for ip in ("1.1.1.1", "8.8.8.8", "9.9.9.9", "94.140.14.14", "45.90.28.17",
               "208.67.222.222", "185.228.168.168", "2606:4700:4700::1111", "2620:fe::fe"):
        assert ip in doh, ip
    assert "10.99.2.2" not in doh
    assert len(doh) > 50


def test_bad_address_line_names_file_and_line() -> None:
    with pytest.raises(ConfigError) as err:
        parse_address_list("1.1.1.1\n# ok\n8.8.8.888\n", file="doh-ips.txt")
    assert err.value.file == "doh-ips.txt" and err.value.line == 3
    with pytest.raises(ConfigError):
        parse_address_list("10.0.0.1/8\n")  # host bits set: a typo, not a network


def test_router_design_redirects_dns_and_blocks_dot_doh() -> None:
    text = render(GatewayPlan(design="router", lan="lan0", doh=DOH))
    assert 'iifname "lan0" udp dport 53 counter redirect to :53' in text
    assert 'iifname "lan0" tcp dport 53 counter redirect to :53' in text
    assert 'tcp dport 853 counter reject with tcp reset' in text
    assert "ip daddr @doh_v4 tcp dport 443" in text
    assert "elements = { 1.1.1.1/32, 45.90.28.0/24 }" in text
    assert "2001:4860:4860::8888/128" in text
    assert "quic-block" not in text and "http-transparent" not in text


def test_options_add_quic_and_transparent_proxy() -> None:
    text = render(GatewayPlan(design="router", lan="lan0", doh=DOH, block_quic=True,
                              transparent_http=True, proxy_port=8443, dns_port=5353))
    assert 'udp dport 443 counter reject comment "quic-block"' in text
    assert "fib daddr type != local tcp dport { 80, 443 } counter redirect to :8443" in text
    assert "redirect to :5353" in text
    # DoH addresses skip the proxy redirect so that the forward chain refuses them
    assert text.index("@doh_v4 tcp dport 443 return") < text.index("http-transparent")


def test_dns_only_design_has_no_redirects_and_advice_names_the_appliance() -> None:
    text = render(GatewayPlan(design="dns-only", lan="eth0", doh=DOH))
    assert "redirect" not in text and "chain input" in text
    advice = router_advice("10.10.0.2", DOH)
    assert "10.10.0.2" in advice and "853" in advice


@pytest.mark.parametrize("kw", [
    {"design": "bridge"},
    {"lan": 'eth0" accept; #'},
    {"lan": "a-very-long-interface-name"},
    {"dns_port": 0},
    {"design": "dns-only", "transparent_http": True},
])
def test_invalid_plans_fail_closed(kw: dict) -> None:
    with pytest.raises(ConfigError):
        GatewayPlan(**{"design": "router", "lan": "lan0", **kw})


def test_every_variant_is_accepted_by_nft(namespaces: Namespaces) -> None:
    """`nft -c` (check only) inside a namespace the test made, for each option combination."""
    ns = namespaces.add("nft")
    doh = load_address_list(default_doh_list_path())
    for design, quic, transparent in itertools.product(("router", "dns-only"), (False, True),
                                                       (False, True)):
        if design == "dns-only" and transparent:
            continue
        text = render(GatewayPlan(design=design, lan="lan0", doh=doh, block_quic=quic,
                                  transparent_http=transparent))
        proc = ns.run([nft._nft(), "-c", "-f", "-"], input=text, check=False)
        assert proc.returncode == 0, (design, quic, transparent, proc.stderr)
