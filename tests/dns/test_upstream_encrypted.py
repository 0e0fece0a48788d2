"""DoT and DoH upstreams against a real unbound serving both with a test certificate."""

import asyncio

import pytest
from dnslib import QTYPE, DNSQuestion, DNSRecord
from tlshelpers import encrypted_unbound, make_pki

from filterd.config import UpstreamSpec, parse_upstream
from filterd.dns import wire
from filterd.dns.upstream import UpstreamError, UpstreamPool

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls_unbound(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dot")
    pki = make_pki(tmp / "pki")
    other = make_pki(tmp / "other", label="another CA")   # trusts nothing unbound has
    u, tls_port, https_port = encrypted_unbound(tmp / "unbound", pki)
    yield u, tls_port, https_port, pki, other
    u.stop()


def question(name="allowed.test", qtype="A"):
    rec = DNSRecord(q=DNSQuestion(name, getattr(QTYPE, qtype)))
    return wire.parse_query(rec.pack())


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


async def ask_many(pool, names):
    results = await asyncio.gather(*[pool.resolve(question(n)) for n in names],
                                   return_exceptions=True)
    return results


@pytest.mark.parametrize("scheme", ["tls", "https"])
def test_verified_certificate_answers_and_one_connection_carries_many(tls_unbound, scheme):
    _u, tls_port, https_port, pki, _other = tls_unbound
    port = tls_port if scheme == "tls" else https_port
    spec = parse_upstream(f"{scheme}://127.0.0.1:{port}#dns.test")

    async def go():
        pool = UpstreamPool([spec], timeout=2, ca_file=str(pki.ca))
        try:
            data, _lay = await pool.resolve(question())
            rec = DNSRecord.parse(data)
            assert str(rec.rr[0].rdata) == "192.0.2.10"
            names = ["allowed.test", "www.allowed.test", "other.test", "vnexpress.net"] * 10
            results = await ask_many(pool, names)
            got = [str(DNSRecord.parse(d).rr[0].rdata) for d, _ in results]
            assert got[:4] == ["192.0.2.10", "192.0.2.11", "192.0.2.12", "111.65.250.2"]
            assert len(set(got)) == 4
            chan = pool._channels[0][0]
            assert chan.connections == 1          # reused and pipelined, not one per query
            status = pool.status()[0]
            assert status["transport"] == scheme and status["error"] == ""
            assert status["answered"] == 41
        finally:
            pool.close()
    run(go())


@pytest.mark.parametrize("scheme", ["tls", "https"])
@pytest.mark.parametrize("problem", ["wrong name", "untrusted CA"])
def test_wrong_certificate_refused_with_a_clear_reason(tls_unbound, scheme, problem):
    _u, tls_port, https_port, pki, other = tls_unbound
    port = tls_port if scheme == "tls" else https_port
    name = "wrong.test" if problem == "wrong name" else "dns.test"
    ca = pki.ca if problem == "wrong name" else other.ca
    spec = parse_upstream(f"{scheme}://127.0.0.1:{port}#{name}")

    async def go():
        pool = UpstreamPool([spec], timeout=2, ca_file=str(ca))
        try:
            with pytest.raises(UpstreamError):
                await pool.resolve(question())
            status = pool.status()[0]
            assert status["failed"] == 1 and status["answered"] == 0
            assert status["error"].startswith("certificate not accepted")
            assert ("mismatch" in status["error"] or "wrong.test" in status["error"]
                    if problem == "wrong name" else "issuer" in status["error"]), status
        finally:
            pool.close()
    run(go())


def test_failover_from_a_refused_dot_upstream_to_plain(tls_unbound):
    u, tls_port, _https_port, pki, _other = tls_unbound
    specs = [parse_upstream(f"tls://127.0.0.1:{tls_port}#wrong.test"),
             UpstreamSpec(*u.address)]

    async def go():
        pool = UpstreamPool(specs, timeout=2, ca_file=str(pki.ca))
        try:
            data, _ = await pool.resolve(question())
            assert str(DNSRecord.parse(data).rr[0].rdata) == "192.0.2.10"
            assert [s["failed"] for s in pool.status()] == [1, 0]
        finally:
            pool.close()
    run(go())


def test_reconnects_after_the_upstream_closes_the_connection(tls_unbound):
    _u, tls_port, _https_port, pki, _other = tls_unbound
    spec = parse_upstream(f"tls://127.0.0.1:{tls_port}#dns.test")

    async def go():
        pool = UpstreamPool([spec], timeout=2, ca_file=str(pki.ca))
        try:
            await pool.resolve(question())
            chan = pool._channels[0][0]
            chan._writer.transport.abort()     # as if the upstream had dropped it
            await asyncio.sleep(0.05)
            data, _ = await pool.resolve(question("other.test"))
            assert str(DNSRecord.parse(data).rr[0].rdata) == "192.0.2.12"
            assert chan.connections == 2
        finally:
            pool.close()
    run(go())


def test_doctor_probes_encrypted_upstreams_and_says_why_not(tls_unbound):
    from filterd.doctor import encrypted_probe

    _u, tls_port, https_port, pki, _other = tls_unbound
    for scheme, port in (("tls", tls_port), ("https", https_port)):
        assert encrypted_probe(parse_upstream(f"{scheme}://127.0.0.1:{port}#dns.test"), 2,
                               pki.ca) < 2
        with pytest.raises(OSError, match="certificate not accepted"):
            encrypted_probe(parse_upstream(f"{scheme}://127.0.0.1:{port}#bad.test"), 2, pki.ca)
