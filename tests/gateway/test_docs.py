"""What docs/install.md and docs/network.md tell a school's IT person to type actually works:
every `filterd ...` command line parses, and the NAT ruleset for the router design loads
beside filterd's table without removing it (in a namespace made here)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gateway.netns import Namespaces

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "docs" / "install.md", REPO / "docs" / "network.md"]
BIN = "/opt/filterd/venv/bin/filterd"


def _code_blocks(path: Path) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", path.read_text(), flags=re.S)


def _filterd_commands() -> list[tuple[str, list[str]]]:
    found = []
    for doc in DOCS:
        for block in _code_blocks(doc):
            for line in block.replace("\\\n", " ").splitlines():
                if BIN not in line:
                    continue
                argv = shlex.split(line.split(BIN, 1)[1], comments=True)
                argv = [a for a in argv if not a.startswith((">", "2>"))]
                found.append((doc.name, argv))
    return found


COMMANDS = _filterd_commands()


def test_the_docs_show_the_commands() -> None:
    words = {" ".join(argv[:2]) for _, argv in COMMANDS}
    assert {"admin create-user", "gateway apply", "doctor --config", "gateway show",
            "gateway rules"} <= words, words


@pytest.mark.parametrize(("doc", "argv"), COMMANDS, ids=[" ".join(a[:2]) for _, a in COMMANDS])
def test_documented_command_parses(doc: str, argv: list[str]) -> None:
    """`--help` at the end: click still rejects an unknown option or subcommand first."""
    proc = subprocess.run([sys.executable, "-m", "filterd", *argv, "--help"],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, f"{doc}: filterd {' '.join(argv)}: {proc.stderr}"


def test_router_nat_ruleset_keeps_filterds_table(namespaces: Namespaces, tmp_path: Path) -> None:
    import shutil

    if not shutil.which("nft"):
        pytest.skip("nft is not installed")
    network = (REPO / "docs" / "network.md").read_text()
    snippet = re.search(r"<<'EOF'\n(.*?)\n *EOF\n", network, flags=re.S)
    assert snippet, "docs/network.md has no nftables.conf example"
    conf = tmp_path / "nftables.conf"
    conf.write_text("\n".join(line[3:] if line.startswith("   ") else line
                              for line in snippet.group(1).splitlines()) + "\n")
    ns = namespaces.add("doc")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    ns.run([sys.executable, "-m", "filterd", "gateway", "apply", "--design", "router",
            "--lan", "eth1"], env=env, timeout=60)
    for _ in range(2):  # as at boot, and at `systemctl restart nftables`
        ns.run(["nft", "-f", str(conf)])
    tables = ns.run(["nft", "list", "tables"]).stdout
    assert "table inet nat" in tables and "table inet filterd" in tables, tables
    assert "masquerade" in ns.run(["nft", "list", "table", "inet", "nat"]).stdout
