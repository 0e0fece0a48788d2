"""Run filterd.daemon with a fake engine, for daemon tests that must not depend on the policy.

Usage: python tests/daemon_fake.py SETTINGS.json
The settings name a "policy" JSON file ({"blocked": [...]}) read on start and on every
reload; a policy that is not valid JSON is a ConfigError, as a broken policy file would be.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent / "dns"))

from dnshelpers import FakeEngine

from filterd import daemon
from filterd.errors import ConfigError


def load(path: str) -> SimpleNamespace:
    s = json.loads(Path(path).read_text())
    dns = SimpleNamespace(listen=[tuple(x) for x in s["listen"]],
                          upstreams=[tuple(x) for x in s["upstreams"]],
                          upstream_timeout=s.get("upstream_timeout", 0.5), block_ttl=10,
                          workers=s.get("workers", 1), cache_size=10000, cache_min_ttl=0,
                          cache_max_ttl=86400, negative_ttl_max=3600, rate_limit_qps=0)
    events = SimpleNamespace(retention_days=30, flush_interval=s.get("flush_interval", 1.0),
                             queue_max=100000, store_allowed=False)
    return SimpleNamespace(dns=dns, events=events, data_dir=Path(s["data_dir"]),
                           policy=s["policy"], appliance_ipv4="10.0.0.1", appliance_ipv6=None)


def engine(config: SimpleNamespace) -> FakeEngine:
    try:
        policy = json.loads(Path(config.policy).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(str(exc), file=str(config.policy)) from exc
    return FakeEngine(blocked=set(policy["blocked"]))


if __name__ == "__main__":
    daemon.configure_logging()
    cfg = load(sys.argv[1])
    raise SystemExit(daemon.run(cfg, load_config=lambda: load(sys.argv[1]), engine_factory=engine))
