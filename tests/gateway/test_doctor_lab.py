"""`filterd doctor` on a broken appliance: every problem it finds comes with a fix.

Run in a network namespace made here (nothing listens, no firewall table), so every
network check fails for real rather than through a stub.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from tests.gateway.netns import Namespaces

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def test_every_problem_comes_with_a_fix(namespaces: Namespaces, tmp_path: Path) -> None:
    import shutil

    if not shutil.which("nft"):
        pytest.skip("nft is not installed")
    ns = namespaces.add("dr")
    data = tmp_path / "var"
    (data / "ca").mkdir(parents=True)
    (data / "ca" / "filterd-ca.pem").write_text("not a certificate\n")
    config = tmp_path / "filterd.yaml"
    config.write_text(f"""
data_dir: {data}
dns:
  listen: ["127.0.0.1:53"]
  upstreams: ["127.0.0.1:5399"]
  upstream_timeout: 0.5
http:
  block_page_listen: "127.0.0.1:80"
admin:
  listen: "127.0.0.1:8081"
sync:
  office_url: "http://127.0.0.1:8090/api"
""")
    proc = ns.run([sys.executable, "-m", "filterd", "doctor", "--config", str(config)],
                  check=False, timeout=90, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    found = {}
    for i, line in enumerate(lines):
        m = re.match(r"(OK|WARN|FAIL|SKIP) +(.+?): ", line)
        if not m:
            continue
        found[m.group(2)] = m.group(1)
        if m.group(1) in ("WARN", "FAIL"):
            fix = lines[i + 1] if i + 1 < len(lines) else ""
            assert fix.strip().startswith("fix: ") and len(fix.split()) >= 4, (line, fix)
    assert found["DNS 127.0.0.1:53"] == "FAIL"
    assert found["block page 127.0.0.1:80"] == found["admin page 127.0.0.1:8081"] == "FAIL"
    assert found["upstream 127.0.0.1:5399"] == "FAIL"
    assert found["lists"] == found["school CA"] == found["education office"] == "FAIL"
    assert found["daily upload"] == "WARN"
    assert found["gateway rules"] == "WARN"  # root, nft present, no table in this namespace
    assert found["disk"] == "OK" and "clock" in found
