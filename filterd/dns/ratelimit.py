"""Optional per-client rate limit, so one misbehaving device cannot starve the school."""

from __future__ import annotations

import time
from collections.abc import Callable


class RateLimiter:
    """A token bucket per client address: `qps` sustained, bursts up to `burst`."""

    def __init__(self, qps: int, burst: int | None = None, max_clients: int = 65536,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if qps <= 0:
            raise ValueError("rate limit must be positive (use no limiter for 'off')")
        self.qps = float(qps)
        self.burst = float(burst if burst is not None else 2 * qps)
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: dict[str, list[float]] = {}
        self.limited = 0

    def allow(self, client: str) -> bool:
        now = self.clock()
        b = self._buckets.get(client)
        if b is None:
            if len(self._buckets) >= self.max_clients:
                # Forget the idle: a full bucket is the same as no bucket.
                self._buckets = {k: v for k, v in self._buckets.items()
                                 if v[0] + (now - v[1]) * self.qps < self.burst}
            self._buckets[client] = [self.burst - 1.0, now]
            return True
        tokens = min(self.burst, b[0] + (now - b[1]) * self.qps)
        b[1] = now
        if tokens < 1.0:
            b[0] = tokens
            self.limited += 1
            return False
        b[0] = tokens - 1.0
        return True
