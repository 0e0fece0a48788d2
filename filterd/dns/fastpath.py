"""Which DNS fast path runs: the compiled `_speedups` or its pure-Python twin `_pure`.

Chosen once, at import. The compiled module is used when it was built at
install (`pip install .` compiles filterd/dns/_speedups.pyx with Cython and
gcc; without a compiler the install still works, on the twin) and
FILTERD_PUREPYTHON is not set to 1. `filterd doctor`, the metrics
(`filterd_dns_fastpath_info`) and the daemon's start-up log say which one runs
and, for the twin, why.

Both have the same API and give the same bytes for the same packets; the
pure twin is the reference (tests/dns/test_fastpath.py compares them).
"""

from __future__ import annotations

import os
from types import ModuleType

_impl: ModuleType
REASON: str

if os.environ.get("FILTERD_PUREPYTHON", "") not in ("", "0"):
    from filterd.dns import _pure as _impl
    REASON = "FILTERD_PUREPYTHON is set"
else:
    try:
        from filterd.dns import _speedups as _impl  # type: ignore[attr-defined, no-redef]
        REASON = "compiled extension loaded"
    except ImportError as exc:
        from filterd.dns import _pure as _impl  # type: ignore[no-redef]
        REASON = f"compiled extension not available ({exc})"

IMPLEMENTATION: str = _impl.IMPLEMENTATION   # "native" or "pure"
MODULE: str = _impl.__name__

UDP_BATCH: int = _impl.UDP_BATCH
parse_query = _impl.parse_query
scan_response = _impl.scan_response
ttl_fields = _impl.ttl_fields
build_opt = _impl.build_opt
opt_for = _impl.opt_for
answer = _impl.answer
body_at = _impl.body_at
render = _impl.render
Recent = _impl.Recent
AnswerMemo = _impl.AnswerMemo
GroupTable = _impl.GroupTable
UdpLoop = _impl.UdpLoop
Replay = _impl.Replay


def describe() -> dict[str, str]:
    """What `filterd doctor` and the metrics show."""
    return {"implementation": IMPLEMENTATION, "module": MODULE, "reason": REASON}
