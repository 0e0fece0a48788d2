"""The serving worker's GC regime: young passes only, survivors frozen, a full pass now and then."""

import asyncio
import gc
import weakref

import pytest

from filterd import daemon


class Node:
    def __init__(self) -> None:
        self.other: object = self


def test_gc_loop_freezes_survivors_and_frees_cycles_at_the_full_pass(monkeypatch):
    monkeypatch.setattr(daemon, "GC_FREEZE_EVERY", 0.02)
    monkeypatch.setattr(daemon, "GC_FULL_EVERY", 0.5)
    before = gc.get_threshold()
    worker = daemon.Worker.__new__(daemon.Worker)

    async def main() -> None:
        task = asyncio.get_running_loop().create_task(worker._gc_loop())
        await asyncio.sleep(0.05)
        assert gc.get_threshold()[1] >= 1_000_000   # generation 1 is left to the loop
        cycle = Node()
        ref = weakref.ref(cycle)
        gc.collect(0)              # survives a young pass (it is still referenced)...
        del cycle
        await asyncio.sleep(0.1)
        assert gc.get_freeze_count() > 0
        assert ref() is not None   # ...then frozen: no automatic pass sees it
        for _ in range(80):        # the periodic full pass frees it
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
    assert gc.get_threshold() == before
