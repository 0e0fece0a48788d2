from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from filterd.sdnotify import Notifier, NotifyError, watchdog_loop


@pytest.fixture
def listener(tmp_path: Path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    yield path, sock
    sock.close()


def _fields(sock: socket.socket) -> dict[str, str]:
    data = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in data.splitlines())


def test_ready_reaches_a_real_socket(listener) -> None:
    path, sock = listener
    n = Notifier({"NOTIFY_SOCKET": str(path)})
    assert n.enabled
    assert n.ready("answering on :53")
    got = _fields(sock)
    assert got["READY"] == "1"
    assert got["STATUS"] == "answering on :53"
    assert got["MAINPID"] == str(os.getpid())


def test_reloading_and_stopping(listener) -> None:
    path, sock = listener
    n = Notifier({"NOTIFY_SOCKET": str(path)})
    n.reloading()
    got = _fields(sock)
    assert got["RELOADING"] == "1" and int(got["MONOTONIC_USEC"]) > 0
    n.stopping()
    assert _fields(sock) == {"STOPPING": "1"}


def test_abstract_socket() -> None:
    name = f"filterd-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(5)
    try:
        Notifier({"NOTIFY_SOCKET": "@" + name}).watchdog()
        assert _fields(sock) == {"WATCHDOG": "1"}
    finally:
        sock.close()


def test_no_socket_is_a_no_op() -> None:
    n = Notifier({})
    assert not n.enabled
    assert n.ready() is False
    assert n.watchdog_interval() is None


def test_relative_path_is_refused() -> None:
    with pytest.raises(NotifyError):
        Notifier({"NOTIFY_SOCKET": "notify.sock"})


def test_vanished_socket_raises(tmp_path: Path) -> None:
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    with pytest.raises(NotifyError):
        n.ready()


def test_watchdog_interval_is_half_and_only_for_us() -> None:
    mine = Notifier({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())})
    assert mine.watchdog_interval() == 15.0
    other = Notifier({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"})
    assert other.watchdog_interval() is None


def test_watchdog_loop_pings_only_when_healthy(listener) -> None:
    path, sock = listener
    n = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "20000"})  # ping every 10 ms
    healthy = {"ok": True}

    async def run() -> None:
        task = asyncio.create_task(watchdog_loop(n, lambda: healthy["ok"]))
        await asyncio.sleep(0.2)
        healthy["ok"] = False
        await asyncio.sleep(0.05)  # a ping may still be in flight from before the flip
        task.cancel()

    asyncio.run(run())
    sock.setblocking(False)
    pings = []
    while True:
        try:
            pings.append(sock.recv(100))
        except BlockingIOError:
            break
    assert pings and all(p == b"WATCHDOG=1" for p in pings)

    sock.setblocking(True)
    healthy["ok"] = False

    async def unhealthy() -> None:
        task = asyncio.create_task(watchdog_loop(n, lambda: False))
        await asyncio.sleep(0.1)
        task.cancel()

    asyncio.run(unhealthy())
    sock.setblocking(False)
    with pytest.raises(BlockingIOError):
        sock.recv(100)
