"""A built package (wheel) must carry every data file the code reads at run time.

Template and translation directories are not Python packages, so setup.cfg has to name
them; a missing line only shows on a non-editable install, never in a checkout.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD_ONLY = {"babel.cfg"}  # read by pybabel when extracting messages, never at run time
# The DNS fast path's source, its generated C and the module build_ext makes from them.
BUILD_SUFFIXES = {".pyx", ".c", ".so"}


def _data_files(top: str) -> set[str]:
    return {str(p.relative_to(ROOT)) for p in (ROOT / top).rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc", *BUILD_SUFFIXES)
            and "__pycache__" not in p.parts
            and p.name not in BUILD_ONLY}


def test_the_build_carries_every_data_file(tmp_path: Path) -> None:
    (tmp_path / "egg").mkdir()
    subprocess.run([sys.executable, "-c", "from setuptools import setup; setup()",
                    "egg_info", "-e", str(tmp_path / "egg"), "build_py", "-d",
                    str(tmp_path / "build")], cwd=ROOT, check=True, capture_output=True,
                   timeout=120)
    expected = _data_files("filterd") | _data_files("admin_ui")
    assert expected, "no data files found: the test would prove nothing"
    missing = sorted(rel for rel in expected if not (tmp_path / "build" / rel).is_file())
    assert missing == [], f"setup.cfg [options.package_data] misses: {missing}"
