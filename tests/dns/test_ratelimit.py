import pytest

from filterd.dns.ratelimit import RateLimiter


def test_bucket_limits_one_client_not_others():
    t = [0.0]
    rl = RateLimiter(10, burst=5, clock=lambda: t[0])
    assert sum(rl.allow("10.0.0.1") for _ in range(20)) == 5
    assert rl.allow("10.0.0.2")
    t[0] += 0.5   # 5 tokens back
    assert sum(rl.allow("10.0.0.1") for _ in range(20)) == 5
    assert rl.limited == 30


def test_zero_is_not_a_rate():
    with pytest.raises(ValueError):
        RateLimiter(0)
