import asyncio
import struct

import pytest
from dnshelpers import FakeUpstream, free_port, reply_a
from dnslib import EDNS0, QTYPE, DNSQuestion, DNSRecord, EDNSOption

from filterd.dns import wire
from filterd.dns.edns import OPTION_ECS
from filterd.dns.upstream import UpstreamError, UpstreamPool, upstream_query


def question(name="a.test", ecs=False, do=False):
    rec = DNSRecord(q=DNSQuestion(name, QTYPE.A))
    opts = [EDNSOption(OPTION_ECS, struct.pack("!HBB", 1, 24, 0) + b"\x0a\x01\x02")] if ecs else []
    rec.add_ar(EDNS0(udp_len=4096, flags="do" if do else "", opts=opts))
    return wire.parse_query(rec.pack())


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_client_subnet_never_leaves():
    q = question(ecs=True, do=True)
    sent = DNSRecord.parse(upstream_query(q, 99))
    opt = sent.ar[0]
    assert sent.header.id == 99 and sent.header.rd
    assert opt.rdata == [] and opt.ttl & 0x8000   # no options at all, DO kept


def test_failover_to_second_upstream_and_health():
    async def go():
        silent = await FakeUpstream(lambda d, tcp: None).start()
        good = await FakeUpstream(lambda d, tcp: reply_a(d)).start()
        pool = UpstreamPool([silent.address, good.address], timeout=0.2)
        try:
            for _ in range(3):
                _data, lay = await pool.resolve(question())
                assert lay.rcode == 0 and lay.counts[0] == 1
            st = pool.status()
            assert not st[0]["healthy"] and st[1]["healthy"]
            # the down one is now tried last: no more timeouts
            n = len(silent.received)
            await pool.resolve(question())
            assert len(silent.received) == n
        finally:
            pool.close()
            silent.close()
            good.close()
    run(go())


def test_all_down_raises():
    async def go():
        pool = UpstreamPool([("127.0.0.1", free_port())], timeout=0.3)
        try:
            with pytest.raises(UpstreamError):
                await pool.resolve(question())
        finally:
            pool.close()
    run(go())


def test_truncated_udp_answer_is_retried_over_tcp():
    async def go():
        up = await FakeUpstream(lambda d, tcp: reply_a(d, tc=not tcp)).start()
        pool = UpstreamPool([up.address], timeout=1)
        try:
            _data, lay = await pool.resolve(question())
            assert not lay.flags & wire.TC and lay.counts[0] == 1
            assert len(up.tcp_received) == 1
        finally:
            pool.close()
            up.close()
    run(go())


def test_spoofed_answers_are_ignored():
    def handler(d, tcp):
        bad_id = bytearray(reply_a(d, ip="6.6.6.6"))
        bad_id[0] ^= 0xFF
        return bytes(bad_id)

    async def go():
        up = await FakeUpstream(handler).start()
        other = await FakeUpstream(lambda d, tcp: reply_a(
            DNSRecord(q=DNSQuestion("evil.test", QTYPE.A), header=DNSRecord.parse(d).header
                      ).pack(), ip="6.6.6.6")).start()
        pool = UpstreamPool([up.address, other.address], timeout=0.2)
        try:
            with pytest.raises(UpstreamError):
                await pool.resolve(question())
        finally:
            pool.close()
            up.close()
            other.close()
    run(go())


def test_servfail_from_one_upstream_tries_the_next():
    def servfail(d, tcp):
        r = DNSRecord.parse(d).reply()
        r.header.rcode = 2
        return r.pack()

    async def go():
        bad = await FakeUpstream(servfail).start()
        good = await FakeUpstream(lambda d, tcp: reply_a(d)).start()
        pool = UpstreamPool([bad.address, good.address], timeout=1)
        try:
            _, lay = await pool.resolve(question())
            assert lay.rcode == 0
        finally:
            pool.close()
            bad.close()
            good.close()
    run(go())


def test_bad_settings():
    with pytest.raises(ValueError):
        UpstreamPool([])
    with pytest.raises(ValueError):
        UpstreamPool([("127.0.0.1", 53)], timeout=0)


def test_query_callback_called_once_per_outcome():
    """The query path's way in: a callback, exactly once, whatever happens."""
    async def go():
        good = await FakeUpstream(lambda d, tcp: reply_a(d)).start()
        silent = await FakeUpstream(lambda d, tcp: None).start()
        loop = asyncio.get_running_loop()

        async def ask(pool):
            calls = []
            done = loop.create_future()

            def cb(data, lay, exc):
                calls.append((data, lay, exc))
                if not done.done():
                    done.set_result(None)
            pool.query(question(), cb)
            await done
            await asyncio.sleep(0.05)   # and never again
            assert len(calls) == 1
            return calls[0]

        ok = UpstreamPool([good.address], timeout=0.5)
        data, lay, exc = await ask(ok)
        assert exc is None and lay.counts[0] == 1 and data[2] & 0x80
        ok.close()
        # An unreachable upstream (ICMP refused) fails over at once, not after the timeout.
        refused = UpstreamPool([("127.0.0.1", free_port()), good.address], timeout=5)
        started = loop.time()
        _, lay, exc = await ask(refused)
        assert exc is None and loop.time() - started < 2
        refused.close()
        # Every upstream silent: the error, once, after the timeouts.
        down = UpstreamPool([silent.address], timeout=0.2)
        data, lay, exc = await ask(down)
        assert data is None and isinstance(exc, UpstreamError)
        # Closing the pool with a query in flight ends it with an error, once.
        closing = UpstreamPool([silent.address], timeout=5)
        calls = []
        closing.query(question(), lambda *a: calls.append(a))
        closing.close()
        await asyncio.sleep(0.05)
        assert len(calls) == 1 and isinstance(calls[0][2], UpstreamError)
        good.close()
        silent.close()
    run(go())


def test_health_arithmetic_is_bounded_for_outages_of_any_length():
    """2.0 ** (failures - 3) overflowed past ~1,030 failures: every later query raised."""
    from filterd.dns.upstream import MAX_BACKOFF, UpstreamHealth

    h = UpstreamHealth(("127.0.0.1", free_port()))
    for i in range(100_000):
        h.fail(float(i), TimeoutError())
    assert h.down and h.failed == 100_000
    assert h.down_until - 99_999.0 <= MAX_BACKOFF
    h.ok(0.01)
    assert not h.down and h.healthy(0.0) and h.failures == 0


def test_down_upstream_gets_probes_only_and_recovers_at_once():
    """While down, at most PROBES_WHILE_DOWN queries wait on it; the rest fail at once,
    and its first answer brings it back, however long the outage was."""
    from filterd.dns.upstream import PROBES_WHILE_DOWN

    async def go():
        answering = False
        up = await FakeUpstream(lambda d, tcp: reply_a(d) if answering else None).start()
        pool = UpstreamPool([up.address], timeout=0.3)
        h = pool.health[0]
        try:
            for _ in range(3):
                with pytest.raises(UpstreamError):
                    await pool.resolve(question())
            assert h.down
            sent = len(up.received)
            results = await asyncio.gather(*(pool.resolve(question(f"n{i}.test"))
                                             for i in range(50)), return_exceptions=True)
            assert all(isinstance(r, UpstreamError) for r in results)
            assert len(up.received) - sent <= PROBES_WHILE_DOWN
            assert h.shed >= 50 - PROBES_WHILE_DOWN and h.inflight == 0
            answering = True
            _data, lay = await pool.resolve(question())
            assert lay.rcode == 0 and not h.down and pool.status()[0]["up"]
        finally:
            pool.close()
            up.close()
    run(go())


def test_refused_upstream_recovers_with_fresh_sockets():
    """ICMP port unreachable on a socket: dropped, not reused (uvloop stops reading it)."""
    import uvloop

    async def go():
        port = free_port()
        pool = UpstreamPool([("127.0.0.1", port)], timeout=0.3)
        try:
            for i in range(20):
                with pytest.raises(UpstreamError):
                    await pool.resolve(question(f"r{i}.test"))
            assert pool.health[0].down
            class Answer(asyncio.DatagramProtocol):
                def connection_made(self, transport):
                    self.transport = transport

                def datagram_received(self, data, addr):
                    self.transport.sendto(reply_a(data), addr)
            transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
                Answer, local_addr=("127.0.0.1", port))
            try:
                _data, lay = await pool.resolve(question())
                assert lay.rcode == 0 and not pool.health[0].down
            finally:
                transport.close()
        finally:
            pool.close()
    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(asyncio.wait_for(go(), 30))
    finally:
        loop.close()


def test_a_bug_in_a_callback_still_answers_and_logs_once(caplog):
    """Whatever is raised inside a loop callback ends that query with an error, once."""
    from filterd.dns import upstream as up_mod

    async def go():
        good = await FakeUpstream(lambda d, tcp: reply_a(d)).start()
        pool = UpstreamPool([good.address], timeout=0.3)
        calls = []

        def broken(rtt):
            raise RuntimeError("bug")
        pool.health[0]._observe = broken
        try:
            for i in range(20):
                pool.query(question(f"b{i}.test"), lambda d, lay, e: calls.append(e))
            for _ in range(50):
                if len(calls) == 20:
                    break
                await asyncio.sleep(0.05)
            assert len(calls) == 20 and all(isinstance(e, RuntimeError) for e in calls)
            assert pool.health[0].inflight == 0
            assert all(not c.pending for c in pool._channels[0])
        finally:
            pool.close()
            good.close()
    up_mod._callback_errors.logged_at = None
    run(go())
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1
