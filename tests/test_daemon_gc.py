"""The serving worker's GC regime: no automatic passes, a full pass every GC_FULL_EVERY."""

import asyncio
import gc
import weakref

import pytest

from filterd import daemon


class Node:
    def __init__(self) -> None:
        self.other: object = self


def test_gc_loop_leaves_cycles_to_the_periodic_full_pass(monkeypatch):
    monkeypatch.setattr(daemon, "GC_FULL_EVERY", 0.5)
    assert gc.isenabled()
    worker = daemon.Worker.__new__(daemon.Worker)

    async def main() -> None:
        task = asyncio.get_running_loop().create_task(worker._gc_loop())
        await asyncio.sleep(0.05)
        assert not gc.isenabled()   # no automatic pass while serving
        cycle = Node()
        ref = weakref.ref(cycle)
        del cycle
        for _ in range(2000):       # allocations that would trigger young passes
            [object() for _ in range(5)]
        assert ref() is not None    # nothing collected it on the way...
        for _ in range(80):         # ...the periodic full pass frees it
            await asyncio.sleep(0.02)
            if ref() is None:
                break
        assert ref() is None
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    try:
        asyncio.run(main())
    finally:
        gc.unfreeze()
    assert gc.isenabled()   # given back as it was
