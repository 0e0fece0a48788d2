from __future__ import annotations

from pathlib import Path

from tests.gateway.netns import Namespaces


def test_apply_show_remove_via_cli(namespaces: Namespaces, filterd_cmd: list[str],
                                   repo_env: dict[str, str], tmp_path: Path) -> None:
    ns = namespaces.add("nft")
    saved = tmp_path / "gateway.nft"

    def cli(*args: str, check: bool = True):
        return ns.run([*filterd_cmd, "gateway", *args], env=repo_env, check=check, timeout=60)

    assert cli("show", check=False).returncode == 1  # nothing applied yet
    cli("apply", "--lan", "lan0", "--block-quic", "--save", str(saved))
    shown = cli("show").stdout
    assert "table inet filterd" in shown and "quic-block" in shown
    assert "redirect to :53" in shown
    assert saved.read_text().startswith("# filterd gateway rules")

    # applying again replaces the table instead of failing or doubling rules
    cli("apply", "--lan", "lan0")
    again = cli("show").stdout
    assert "quic-block" not in again and again.count("dot-block") == 1

    # the saved file is what the boot unit loads: it must load on its own
    cli("remove")
    ns.run(["nft", "-f", str(saved)])
    assert "quic-block" in cli("show").stdout

    assert "removed" in cli("remove").stdout
    assert "nothing to remove" in cli("remove").stdout
    assert ns.run(["nft", "list", "tables"]).stdout.strip() == ""


def test_refused_ruleset_leaves_rules_in_force(namespaces: Namespaces, filterd_cmd: list[str],
                                                repo_env: dict[str, str], tmp_path: Path) -> None:
    ns = namespaces.add("nft")
    ns.run([*filterd_cmd, "gateway", "apply", "--lan", "lan0"], env=repo_env, timeout=60)
    bad = tmp_path / "bad.txt"
    bad.write_text("not-an-address\n")
    proc = ns.run([*filterd_cmd, "gateway", "apply", "--lan", "lan0", "--doh-list", str(bad)],
                  env=repo_env, check=False, timeout=60)
    assert proc.returncode != 0 and "bad.txt:1" in proc.stderr
    assert "dot-block" in ns.run(["nft", "list", "table", "inet", "filterd"]).stdout
