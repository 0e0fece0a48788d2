# Shared by scripts/run and scripts/test: make .venv and install filterd into it.
# Usage: . scripts/_venv.sh [extras]
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
extras=${1:-}
command -v python3 >/dev/null || { echo "filterd needs python3 (>= 3.11)" >&2; exit 1; }
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "filterd needs Python >= 3.11, this is $(python3 -V)" >&2; exit 1; }
# Debian and Raspberry Pi OS ship python3 without venv/ensurepip (package python3-venv).
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing the Debian package python3-venv (needed for .venv)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
fi
# A venv left half-made (e.g. by a run before python3-venv was there) has no pip: redo it.
if [ ! -x "$repo/.venv/bin/pip" ]; then
  rm -rf "$repo/.venv"
  python3 -m venv "$repo/.venv"
fi
stamp="$repo/.venv/.installed${extras:+-$extras}"
# Reinstall when the dependencies or the compiled DNS fast path's sources change
# (pip install -e compiles filterd/dns/_speedups.pyx; see setup.py).
stale=0
for src in setup.cfg setup.py pyproject.toml filterd/dns/_speedups.pyx; do
  [ -f "$repo/$src" ] && [ "$repo/$src" -nt "$stamp" ] && stale=1
done
if [ ! -f "$stamp" ] || [ "$stale" = 1 ]; then
  "$repo/.venv/bin/pip" install -q --upgrade pip
  "$repo/.venv/bin/pip" install -q -e "$repo${extras:+[$extras]}"
  touch "$stamp"
fi
