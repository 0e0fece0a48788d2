"""Apply, show and remove table `inet filterd` with `nft`; the rules come from rules.py."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from filterd.errors import FilterdError
from filterd.gateway.rules import TABLE
from filterd.state.atomic import atomic_write


class GatewayError(FilterdError):
    """nft is missing or refused the ruleset; the rules in force are unchanged."""


def _nft() -> str:
    found = shutil.which("nft") or ("/usr/sbin/nft" if Path("/usr/sbin/nft").exists() else None)
    if not found:
        raise GatewayError("nft not found: install the nftables package (apt-get install nftables)")
    return found


def _run(args: list[str], stdin: str | None = None, timeout: float = 30) -> str:
    try:
        proc = subprocess.run([_nft(), *args], input=stdin, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise GatewayError(f"nft {' '.join(args)} did not finish in {timeout}s") from exc
    if proc.returncode != 0:
        raise GatewayError(f"nft {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def check(ruleset: str) -> None:
    """Validate without changing anything (`nft -c`)."""
    _run(["-c", "-f", "-"], stdin=ruleset)


def apply(ruleset: str, save: str | Path | None = None) -> None:
    """Load atomically (the whole file is one nft transaction); optionally save it for boot."""
    check(ruleset)
    _run(["-f", "-"], stdin=ruleset)
    if save is not None:
        atomic_write(save, ruleset)


def installed() -> bool:
    try:
        _run(["list", "table", "inet", TABLE])
    except GatewayError:
        return False
    return True


def show() -> str:
    """The table as the kernel has it, with counters; empty if not applied."""
    if not installed():
        return ""
    return _run(["list", "table", "inet", TABLE])


def remove() -> bool:
    """Delete the table; False if there was none (removing twice is fine)."""
    if not installed():
        return False
    _run(["delete", "table", "inet", TABLE])
    return True
