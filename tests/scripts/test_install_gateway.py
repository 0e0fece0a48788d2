"""scripts/install-gateway in a clean Debian 12 root (debootstrap, chroot): install, run twice
with no change, upgrade keeping configuration and data, uninstall keeping data, purge."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INSTALLER = REPO / "scripts" / "install-gateway"
CACHE = Path(os.environ.get("FILTERD_TEST_CACHE", "/var/cache/filterd"))
pytestmark = pytest.mark.integration

# Not part of what the installer owns or changes: kernel mounts, scratch, caches, logs of apt.
SKIP_TOP = {"proc", "dev", "sys", "run", "tmp"}
SKIP_PREFIX = ("var/cache/", "var/log/", "var/lib/apt/", "var/lib/dpkg/")


def _run(args: list[str], timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def debian_cache() -> tuple[Path, Path]:
    if os.geteuid() != 0:
        pytest.skip("the installer test needs root (chroot, useradd)")
    if not (CACHE / "bookworm-root" / "bin" / "sh").exists() and not shutil.which("debootstrap"):
        pytest.skip("debootstrap is not installed (apt-get install debootstrap)")
    # Builds what is missing or no longer fits (the wheelhouse is checked against setup.cfg
    # offline every time): ~3 min from nothing, ~10 s when the cache fits. A failure here is a
    # failure of the test (e.g. a new dependency that cannot be fetched), never a skip.
    proc = subprocess.run([str(REPO / "scripts" / "debian-root")], capture_output=True,
                          text=True, timeout=1500, check=False,
                          env={**os.environ, "PYTHON": sys.executable,
                               "FILTERD_TEST_CACHE": str(CACHE)})
    assert proc.returncode == 0, f"scripts/debian-root failed: {proc.stderr[-2000:]}"
    return CACHE / "bookworm-root", CACHE / "wheels"


@pytest.fixture
def root(debian_cache: tuple[Path, Path], tmp_path: Path) -> Path:
    target = tmp_path / "root"
    subprocess.run(["cp", "-a", str(debian_cache[0]), str(target)], check=True, timeout=600)
    return target


def snapshot(root: Path) -> dict[str, tuple]:
    """Every file's type, mode, owner and content (or link target): what "no change" means."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir == ".":
            dirnames[:] = [d for d in dirnames if d not in SKIP_TOP]
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if rel.startswith(SKIP_PREFIX):
                continue
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                content = os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                content = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                content = None
            out[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                        content)
    return out


def install(root: Path, wheels: Path, *extra: str, source: Path = REPO, apt: bool = False
            ) -> subprocess.CompletedProcess:
    return _run([str(source / "scripts" / "install-gateway"), "--root", str(root),
                 "--wheels", str(wheels), *([] if apt else ["--no-apt"]), "--lan", "lan0",
                 "--school-id", "thcs-test", *extra])


def in_root(root: Path, *args: str) -> subprocess.CompletedProcess:
    return _run(["chroot", str(root), "/usr/bin/env", "-i",
                 "PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                 "LANG=C.UTF-8", *args], timeout=120)


@pytest.mark.timeout(1800)  # the setup may debootstrap the root (the suite's default is 300 s)
def test_install_twice_upgrade_uninstall(root: Path, debian_cache, tmp_path: Path) -> None:
    wheels = debian_cache[1]
    first = install(root, wheels)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Admin page:     http://" in first.stdout
    assert "admin create-user" in first.stdout

    # what a school gets
    assert "filterd:" in (root / "etc/passwd").read_text()
    assert os.readlink(root / "usr/local/bin/filterd") == "/opt/filterd/venv/bin/filterd"
    version = in_root(root, "filterd", "--version")
    assert version.returncode == 0 and "0." in version.stdout, version.stderr
    valid = in_root(root, "/opt/filterd/venv/bin/filterd", "policy", "validate", "--config",
                    "/etc/filterd/filterd.yaml")
    assert valid.returncode == 0, valid.stdout + valid.stderr
    wants = root / "etc/systemd/system/multi-user.target.wants"
    assert (wants / "filterd.service").is_symlink()
    assert (wants / "filterd-bypass.service").is_symlink()
    assert (root / "etc/systemd/system/timers.target.wants/filterd-sync.timer").is_symlink()
    assert not (wants / "filterd-office.service").exists()
    state = root / "var/lib/filterd"
    assert stat.S_IMODE(state.stat().st_mode) == 0o750
    assert (root / "etc/filterd/gateway.env").read_text() == "FILTERD_LAN=lan0\n"
    filterd_uid = next(int(line.split(":")[2]) for line in
                       (root / "etc/passwd").read_text().splitlines()
                       if line.startswith("filterd:"))
    assert (root / "etc/filterd/policies").stat().st_uid == filterd_uid  # the admin page edits
    assert (root / "etc/filterd/filterd.yaml").stat().st_uid == 0         # not the daemon

    # run twice = no change
    before = snapshot(root)
    second = install(root, wheels)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "nothing changed" in second.stdout
    after = snapshot(root)
    assert {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)} == set()

    # upgrade: new code; the school's configuration and data stay
    config = root / "etc/filterd/filterd.yaml"
    config.write_text(config.read_text() + "# edited by the school\n")
    (state / "filterd.db").write_bytes(b"events")
    new_src = tmp_path / "src-next"
    shutil.copytree(REPO, new_src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "var", "__pycache__", "*.egg-info", "artifacts", ".pytest_cache"))
    (new_src / "docs" / "UPGRADED.md").write_text("next version\n")
    upgrade = install(root, wheels, source=new_src)
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    assert "code updated" in upgrade.stdout
    assert (root / "opt/filterd/src/docs/UPGRADED.md").exists()
    assert config.read_text().endswith("# edited by the school\n")
    assert (state / "filterd.db").read_bytes() == b"events"

    # uninstall keeps configuration and data
    gone = install(root, wheels, "--uninstall")
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert not (root / "opt/filterd").exists()
    assert not (root / "usr/local/bin/filterd").is_symlink()
    assert not (root / "etc/systemd/system/filterd.service").exists()
    assert not (wants / "filterd.service").exists()
    assert config.exists() and (state / "filterd.db").exists()

    # purge removes everything, the user too
    purge = install(root, wheels, "--uninstall", "--purge")
    assert purge.returncode == 0, purge.stdout + purge.stderr
    assert not (root / "etc/filterd").exists() and not state.exists()
    assert "filterd:" not in (root / "etc/passwd").read_text()
    assert not any(p.name.startswith("filterd-install") for p in (root / "tmp").iterdir())
    mounts = Path("/proc/mounts").read_text()
    assert str(root) not in mounts


@pytest.mark.timeout(600)
def test_stale_wheelhouse_is_refilled(debian_cache, tmp_path: Path) -> None:
    """A wheelhouse cached before a dependency was added (jsonschema was, once) is topped up."""
    stale = tmp_path / "cache" / "wheels"
    stale.mkdir(parents=True)
    for wheel in debian_cache[1].iterdir():
        if not wheel.name.lower().startswith("jsonschema-"):
            try:
                os.link(wheel, stale / wheel.name)
            except OSError:  # another file system (/tmp on tmpfs)
                shutil.copy2(wheel, stale / wheel.name)
    proc = subprocess.run([str(REPO / "scripts" / "debian-root"), "wheels"], capture_output=True,
                          text=True, timeout=540, check=False,
                          env={**os.environ, "PYTHON": sys.executable,
                               "FILTERD_TEST_CACHE": str(stale.parent)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert any(w.name.lower().startswith("jsonschema-") for w in stale.iterdir())


def test_refuses_bad_options() -> None:
    for args in (["--lan", "eth0; rm -rf /"], ["--school-id", "Bad Id"], ["--frobnicate"]):
        proc = _run([str(INSTALLER), *args], timeout=30)
        assert proc.returncode != 0, args
        assert "install-gateway:" in proc.stderr


def _as_nobody_with(machine: str, debarch: str) -> subprocess.CompletedProcess:
    """The installer on a machine whose `uname -m` and `dpkg --print-architecture` say these.
    Run as nobody: were the architecture not refused, it would stop at "run as root" and
    change nothing. Everything nobody runs is copied to a directory it can read."""
    with tempfile.TemporaryDirectory(prefix="filterd-arch") as tmp:
        top = Path(tmp)
        top.chmod(0o755)
        (top / "bin").mkdir()
        (top / "scripts").mkdir()
        for tool, out in (("uname", machine), ("dpkg", debarch)):
            (top / "bin" / tool).write_text(f"#!/bin/sh\necho {out}\n")
            (top / "bin" / tool).chmod(0o755)
        shutil.copy2(INSTALLER, top / "scripts" / "install-gateway")
        env = {"PATH": f"{top / 'bin'}:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
        drop = (["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
                if os.geteuid() == 0 else [])
        return subprocess.run([*drop, "/bin/bash", str(top / "scripts" / "install-gateway"),
                               "--no-apt"], env=env, capture_output=True, text=True,
                              timeout=30, check=False)


@pytest.mark.parametrize(("machine", "debarch"), [
    ("armv7l", "armhf"),    # Raspberry Pi OS 32-bit on a Pi 2/3
    ("aarch64", "armhf"),   # 32-bit Raspberry Pi OS on a Pi 4's 64-bit kernel
    ("armv6l", "armhf"),    # Pi Zero / 1
    ("i686", "i386"),       # an old PC
])
def test_refuses_32_bit_systems(machine: str, debarch: str) -> None:
    proc = _as_nobody_with(machine, debarch)
    assert proc.returncode != 0
    assert "32-bit system" in proc.stderr, proc.stderr
    assert "Raspberry Pi OS Lite (64-bit)" in proc.stderr
    assert f"dpkg architecture {debarch}, machine {machine}" in proc.stderr
    assert "run as root" not in proc.stderr   # refused before anything else


@pytest.mark.parametrize(("machine", "debarch"), [("aarch64", "arm64"), ("x86_64", "amd64")])
def test_64_bit_systems_pass_the_architecture_check(machine: str, debarch: str) -> None:
    proc = _as_nobody_with(machine, debarch)
    assert "32-bit" not in proc.stderr
    assert "run as root" in proc.stderr   # the next check: it went past the architecture


def test_help_documents_the_options() -> None:
    proc = _run([str(INSTALLER), "--help"], timeout=30)
    assert proc.returncode == 0
    for option in ("--lan", "--wheels", "--root", "--uninstall", "--purge"):
        assert option in proc.stdout


class Booted:
    """The Debian root booted by systemd-nspawn in a network namespace made by the test."""

    def __init__(self, root: Path, netns: str, log: Path) -> None:
        self.log = log
        self.leader: int | None = None
        self.proc = subprocess.Popen(
            # CAP_NET_ADMIN: nspawn leaves it out of a container's capabilities; a gateway's
            # root has it (filterd-gateway.service loads the firewall with it).
            ["systemd-nspawn", "-D", str(root), "-b", "--register=no", "--keep-unit",
             "--console=pipe", f"--network-namespace-path=/run/netns/{netns}", "-M", netns,
             "--capability=CAP_NET_ADMIN"],
            stdin=subprocess.DEVNULL, stdout=log.open("wb"), stderr=subprocess.STDOUT)

    def _children(self) -> list[int]:
        pids = []
        for task in Path(f"/proc/{self.proc.pid}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                pids += [int(pid) for pid in task.read_text().split()]
        return pids

    def wait_booted(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            for pid in self._children():
                try:
                    # systemctl talks to it over this socket: there once systemd has set up
                    if (Path(f"/proc/{pid}/comm").read_text().strip() == "systemd"
                            and Path(f"/proc/{pid}/root/run/systemd/private").exists()):
                        self.leader = pid
                        return
                except OSError:
                    pass
            time.sleep(0.2)
        raise AssertionError(f"the root did not boot: {self.log.read_text()[-3000:]}")

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(["nsenter", "-t", str(self.leader), "-a", *args],
                              capture_output=True, text=True, timeout=timeout, check=False)

    def _family(self) -> list[int]:
        """nspawn's descendants that live in another PID namespace: the container's."""
        children: dict[int, list[int]] = {}
        for status in Path("/proc").glob("[0-9]*/status"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                ppid = int(status.read_text().split("\nPPid:")[1].split()[0])
                children.setdefault(ppid, []).append(int(status.parent.name))
        out, todo = [], [self.proc.pid]
        while todo:
            for pid in children.get(todo.pop(), []):
                out.append(pid)
                todo.append(pid)
        own = os.readlink("/proc/self/ns/pid")
        return [pid for pid in out if _pid_ns(pid) not in (None, own)]

    def close(self) -> None:
        """Power off; whatever happens, no process of the container outlives the test."""
        if self.proc.poll() is None:
            family = self._family()
            self.proc.terminate()  # nspawn powers the container off (SIGRTMIN+3 to its init)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(60)
            family += self._family() if self.proc.poll() is None else []
            for pid in family:  # still there after 60 s: the container's processes die
                if _pid_ns(pid) not in (None, os.readlink("/proc/self/ns/pid")):
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
            if self.proc.poll() is None:
                self.proc.kill()
        self.proc.wait(30)


def _pid_ns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


@pytest.mark.timeout(900)
def test_units_run_in_a_booted_root(root: Path, debian_cache, tmp_path: Path) -> None:
    """The installed units under a real systemd: the daemon reaches READY inside its sandbox,
    reloads, finds a MAC-listed device through the kernel's neighbour table; the bypass
    monitor runs and logs a DoT attempt; the firewall table comes back from its unit."""
    from tests.gateway.netns import Namespaces, netns_unavailable

    if not shutil.which("systemd-nspawn"):
        pytest.skip("systemd-nspawn is not installed (apt-get install systemd-container)")
    if reason := netns_unavailable():
        pytest.skip(reason)
    for lists in (root / "var/lib/apt/lists").glob("*_Packages*"):
        lists.unlink()  # as on a freshly written SD card: the installer fetches them
    first = install(root, debian_cache[1], apt=True)  # nftables, libpcap as on a gateway
    assert first.returncode == 0, first.stdout + first.stderr

    spaces = Namespaces()
    booted = None
    try:
        gw, client = spaces.add("bgw"), spaces.add("bcl")
        spaces.link(gw, "lan0", "10.99.1.1/24", client, "eth0", "10.99.1.2/24")
        client.run(["ip", "route", "add", "default", "via", "10.99.1.1"])
        booted = Booted(root, gw.name, tmp_path / "boot.log")
        booted.wait_booted()
        state = booted.run("systemctl", "is-system-running", "--wait", timeout=120)
        units = ["filterd", "filterd-admin", "filterd-bypass", "filterd-lists.timer",
                 "filterd-sync.timer"]
        active = booted.run("systemctl", "is-active", *units)
        journal = booted.run("journalctl", "-b", "--no-pager", "-u", "filterd*").stdout
        assert active.stdout.split() == ["active"] * len(units), (
            f"{state}\n{active}\n{journal[-4000:]}")
        status = booted.run("systemctl", "show", "-p", "StatusText", "--value", "filterd")
        assert "serving DNS" in status.stdout  # sd_notify from inside the sandbox
        # short of memory the kernel takes the list update first and the DNS filter last
        def oom_adj(unit: str) -> str:
            pid = booted.run("systemctl", "show", "-p", "MainPID", "--value", unit).stdout
            return booted.run("cat", f"/proc/{pid.strip()}/oom_score_adj").stdout.strip()

        assert [oom_adj(u) for u in ("filterd", "filterd-admin", "filterd-bypass")] == \
            ["0", "300", "300"]
        assert booted.run("systemctl", "show", "-p", "OOMScoreAdjust", "--value",
                          "filterd-lists.service").stdout.strip() == "800"

        # a device listed by MAC in the guests' group (its address is in no group's range):
        # the policy edited as the admin page does, then a reload
        mac = client.run(["cat", "/sys/class/net/eth0/address"]).stdout.strip()
        policy = root / "etc/filterd/policies/policy.yaml"
        anchor = "      - 10.10.200.0/23 "
        policy.write_text(policy.read_text().replace(anchor, f"      - {mac}\n{anchor}", 1))
        reload = booted.run("systemctl", "reload", "filterd")
        assert reload.returncode == 0, reload.stderr
        dig = ["dig", "+short", "+time=3", "+tries=2", "@10.99.1.1", "pornhub.com", "A"]
        assert client.run(dig).stdout.strip() == "127.0.0.1"  # blocked: the appliance address

        # ExecReload is two-phase: a broken policy is refused, the running one keeps serving
        good = policy.read_text()
        policy.write_text(good.replace("block_mode: address", "block_mode: adress", 1))
        refused = booted.run("systemctl", "reload", "filterd")
        assert refused.returncode != 0
        journal = booted.run("journalctl", "-u", "filterd", "--no-pager", "-n", "30").stdout
        assert "policy.yaml" in journal, journal  # the error names the file
        assert booted.run("systemctl", "is-active", "filterd").stdout.strip() == "active"
        assert client.run(dig).stdout.strip() == "127.0.0.1"
        policy.write_text(good)

        dot = ("import socket\ntry: socket.create_connection(('10.99.2.2', 853), timeout=2)\n"
               "except OSError: pass\n")
        client.run([sys.executable, "-c", dot], timeout=30)
        db = root / "var/lib/filterd/filterd.db"
        rows: list[tuple] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with sqlite3.connect(db, timeout=10) as conn:
                rows = conn.execute("SELECT path, client_ip, group_id, qtype FROM events"
                                    ).fetchall()
            if {r[0] for r in rows} >= {"dns", "bypass"}:
                break
            time.sleep(0.5)
        assert ("dns", "10.99.1.2", "khach", "A") in rows, rows  # found by its MAC
        assert any(r[0] == "bypass" and r[3] == "DOT" for r in rows), rows
        restarts = booted.run("systemctl", "show", "-p", "NRestarts", "--value", "filterd",
                              "filterd-bypass")
        assert restarts.stdout.split() == ["0", "0"], booted.run(
            "journalctl", "-b", "--no-pager", "-u", "filterd*").stdout[-4000:]

        # the timers' jobs run inside their sandboxes (no network here: the list sources fail
        # and the last good lists stay; no office configured: the report waits in the outbox)
        for job in ("filterd-sync", "filterd-lists"):
            done = booted.run("systemctl", "start", job, timeout=240)
            assert done.returncode == 0, booted.run("journalctl", "-u", job, "--no-pager").stdout
        assert list((root / "var/lib/filterd/outbox").iterdir())

        # the saved firewall rules come back through filterd-gateway.service
        nft = booted.run("/usr/local/bin/filterd", "gateway", "apply", "--design", "router",
                         "--lan", "lan0", "--save", "/etc/filterd/gateway.nft")
        assert nft.returncode == 0, nft.stderr
        booted.run("nft", "delete", "table", "inet", "filterd")
        again = booted.run("systemctl", "restart", "filterd-gateway")
        assert again.returncode == 0, again.stderr
        assert booted.run("nft", "list", "table", "inet", "filterd").returncode == 0
        assert client.run(["dig", "+short", "+time=3", "+tries=2", "@10.99.2.2", "pornhub.com",
                           "A"]).stdout.strip() == "127.0.0.1"  # another resolver: redirected

        # the checks an IT person runs on the appliance, and the Prometheus endpoint
        doctor = booted.run("/usr/local/bin/filterd", "doctor", "--config",
                            "/etc/filterd/filterd.yaml", "--skip", "upstreams", "--skip",
                            "clock", "--skip", "office", "--skip", "sync", "--skip", "ca")
        for line in ("OK   DNS 0.0.0.0:53", "OK   block page 0.0.0.0:80",
                     "OK   admin page 0.0.0.0:8081", "OK   lists", "OK   gateway rules"):
            assert line in doctor.stdout, doctor.stdout + doctor.stderr
        scrape = booted.run("/opt/filterd/venv/bin/python", "-c",
                            "import urllib.request; print(urllib.request.urlopen("
                            "'http://127.0.0.1:9154/metrics', timeout=10).read().decode())")
        assert 'filterd_blocks_total{category="adult"' in scrape.stdout, scrape.stdout[-2000:]

        # the watchdog: systemd hears WATCHDOG=1 from inside the sandbox (every 15 s)
        def shown(prop: str) -> int:
            return int(booted.run("systemctl", "show", "-p", prop, "--value", "filterd"
                                  ).stdout.strip() or 0)

        deadline = time.monotonic() + 40
        while (shown("WatchdogTimestampMonotonic") <= shown("ExecMainStartTimestampMonotonic")
               + 5_000_000 and time.monotonic() < deadline):
            time.sleep(1)
        assert shown("WatchdogTimestampMonotonic") > \
            shown("ExecMainStartTimestampMonotonic") + 5_000_000

        # an upgrade on the running appliance, as the docs say: the installer (run on the
        # machine itself, systemd running) restarts the services on the new code and keeps
        # the school's configuration and data
        before = shown("MainPID")
        shutil.copytree(REPO, root / "root/src-next", ignore=shutil.ignore_patterns(
            ".git", ".venv", "var", "__pycache__", "*.egg-info", "artifacts", ".pytest_cache"))
        (root / "root/src-next/docs/UPGRADED.md").write_text("next version\n")
        shutil.copytree(debian_cache[1], root / "root/wheels")
        upgrade = booted.run("/root/src-next/scripts/install-gateway", "--wheels", "/root/wheels",
                             "--no-apt", "--lan", "lan0", timeout=600)
        assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
        assert "code updated" in upgrade.stdout
        assert (root / "opt/filterd/src/docs/UPGRADED.md").exists()
        active = booted.run("systemctl", "is-active", *units)
        assert active.stdout.split() == ["active"] * len(units), active.stdout
        assert shown("MainPID") not in (0, before)  # restarted on the new code
        assert "- 10.10.200.0/23" in policy.read_text() and mac in policy.read_text()
        assert client.run(dig).stdout.strip() == "127.0.0.1"
    finally:
        if booted is not None:
            booted.close()
        spaces.close()
    assert str(root) not in Path("/proc/mounts").read_text()


@pytest.mark.timeout(600)
def test_office_server_boots(root: Path, debian_cache, tmp_path: Path) -> None:
    """`install-gateway --office`: the receiver's unit starts under systemd with the
    configuration the installer wrote, serves its dashboard, and uses the database the
    IT person's `filterd office user` wrote; no gateway unit is enabled."""
    from tests.gateway.netns import Namespaces, netns_unavailable

    if not shutil.which("systemd-nspawn"):
        pytest.skip("systemd-nspawn is not installed (apt-get install systemd-container)")
    if reason := netns_unavailable():
        pytest.skip(reason)
    office = install(root, debian_cache[1], "--office")
    assert office.returncode == 0, office.stdout + office.stderr
    assert "office user <your-name> --role admin" in office.stdout
    user = in_root(root, "runuser", "-u", "filterd", "--", "/opt/filterd/venv/bin/filterd",
                   "office", "user", "phong-gd", "--role", "admin", "--password", "mật-khẩu-1",
                   "--config", "/etc/filterd/office.yaml")
    assert user.returncode == 0, user.stdout + user.stderr
    again = install(root, debian_cache[1], "--office")
    assert "nothing changed" in again.stdout, again.stdout

    spaces = Namespaces()
    booted = None
    try:
        ns = spaces.add("bof")
        booted = Booted(root, ns.name, tmp_path / "boot.log")
        booted.wait_booted()
        booted.run("systemctl", "is-system-running", "--wait", timeout=120)
        journal = booted.run("journalctl", "-b", "--no-pager", "-u", "filterd*").stdout
        assert booted.run("systemctl", "is-active", "filterd-office").stdout.strip() == \
            "active", journal[-4000:]
        assert booted.run("systemctl", "is-enabled", "filterd").stdout.strip() != "enabled"
        login = ("import json, time, urllib.request\n"
                 "for _ in range(60):\n"
                 "    try:\n"
                 "        page = urllib.request.urlopen('http://127.0.0.1:8090/login', timeout=5)\n"
                 "        print(page.status); break\n"
                 "    except OSError: time.sleep(0.5)\n")
        page = booted.run("/opt/filterd/venv/bin/python", "-c", login, timeout=60)
        assert page.stdout.strip() == "200", page.stdout + page.stderr + journal[-3000:]
        users = booted.run("runuser", "-u", "filterd", "--", "/opt/filterd/venv/bin/python", "-c",
                           "import sqlite3; print(sqlite3.connect("
                           "'/var/lib/filterd-office/office.db').execute("
                           "'select username from users').fetchall())")
        assert "phong-gd" in users.stdout, users.stdout + users.stderr
    finally:
        if booted is not None:
            booted.close()
        spaces.close()
