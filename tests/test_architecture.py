"""The parts and their allowed imports (docs/dev/ARCHITECTURE.md), checked on the source.

- Only filterd.state issues SQL against the tables the processes share (every table a
  filterd/state module creates).
- filterd.policy and filterd.lists import nothing of the network, web or database
  layers, nor the appliance config (filterd.state.atomic, stdlib-only, is allowed).
- filterd.dns and filterd.http never import each other; only filterd.http imports
  mitmproxy; nothing in filterd imports admin_ui or filterd.cli.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STATE = REPO / "filterd" / "state"


def sources(*roots: str) -> list[Path]:
    return sorted(p for r in roots for p in (REPO / r).rglob("*.py"))


def shared_tables() -> set[str]:
    found: set[str] = set()
    for p in STATE.glob("*.py"):
        found |= set(re.findall(r"CREATE TABLE (?:IF NOT EXISTS )?(\w+)", p.read_text()))
    return found - {"_migrations"}


def sql_on(tables: set[str], path: Path) -> list[str]:
    """String literals in `path` that are SQL naming one of `tables`."""
    names = "|".join(sorted(tables))
    pattern = re.compile(rf"\b(?:FROM|INTO|UPDATE|JOIN|TABLE(?: IF NOT EXISTS)?)\s+[\"`]?"
                         rf"({names})\b[\"`]?(?!\.)", re.I)
    hits = []
    run: list[tokenize.TokenInfo] = []   # adjacent literals: one string to Python

    def flush() -> None:
        text = " ".join(t.string for t in run)
        if run and re.search(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE)\b", text) \
                and pattern.search(text):
            hits.append(f"{path.relative_to(REPO)}:{run[0].start[0]}: {text[:80]}")
        run.clear()

    skip = (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT)
    for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        if tok.type in (tokenize.STRING, tokenize.FSTRING_START, tokenize.FSTRING_MIDDLE,
                        tokenize.FSTRING_END) if hasattr(tokenize, "FSTRING_START") \
                else tok.type == tokenize.STRING:
            run.append(tok)
        elif tok.type not in skip:
            flush()
    flush()
    return hits


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
    return out


def offenders(roots: tuple[str, ...], banned: tuple[str, ...],
              allowed: tuple[str, ...] = ()) -> list[str]:
    bad = []
    for p in sources(*roots):
        for mod in imports(p):
            if any(mod == b or mod.startswith(b + ".") for b in banned) and mod not in allowed:
                bad.append(f"{p.relative_to(REPO)} imports {mod}")
    return bad


def test_the_shared_tables_are_known():
    assert {"events", "counts", "reviews", "sessions"} <= shared_tables()


def test_only_the_state_package_issues_sql_on_the_shared_tables():
    tables = shared_tables()
    office = REPO / "filterd" / "sync" / "office"   # its own service and database
    hits = [h for p in sources("filterd", "admin_ui")
            if STATE not in p.parents and office not in p.parents
            for h in sql_on(tables, p)]
    assert hits == [], "SQL on shared tables outside filterd/state:\n" + "\n".join(hits)


def test_the_scan_finds_sql_when_there_is_some(tmp_path):
    """The check above can fail: a module with its own query is caught."""
    bad = REPO / "filterd" / "_scan_probe.py"
    try:
        bad.write_text('Q = "SELECT name, COUNT(*) FROM events WHERE action = \'block\'"\n'
                       'R = ("SELECT n"\n     " FROM counts")\n'
                       'OK = "events from the log"\n')
        assert len(sql_on(shared_tables(), bad)) == 2
    finally:
        bad.unlink()


def test_policy_and_lists_stay_pure():
    banned = ("filterd.config", "filterd.dns", "filterd.http", "filterd.sync", "filterd.state",
              "filterd.daemon", "filterd.gateway", "filterd.alerts", "admin_ui", "flask",
              "sqlite3", "sqlite_utils", "socket", "mitmproxy")
    assert offenders(("filterd/policy", "filterd/lists"), banned,
                     allowed=("filterd.state.atomic",)) == []


def test_dns_and_http_never_import_each_other():
    assert offenders(("filterd/dns",), ("filterd.http",)) == []
    assert offenders(("filterd/http",), ("filterd.dns",)) == []


def test_only_http_imports_mitmproxy():
    roots = tuple(str(p.relative_to(REPO)) for p in (REPO / "filterd").iterdir()
                  if p.is_dir() and p.name not in ("http", "__pycache__"))
    assert offenders(roots, ("mitmproxy",)) == []
    assert [p for p in (REPO / "filterd").glob("*.py")
            if "mitmproxy" in imports(p)] == []


def test_nothing_in_filterd_imports_admin_ui_or_the_cli():
    assert offenders(("filterd",), ("admin_ui",)) == []
    assert [f for f in offenders(("filterd",), ("filterd.cli",))
            if not f.startswith("filterd/__main__.py")] == []
