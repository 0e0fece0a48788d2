# Shared by scripts/run and scripts/test: make .venv and install filterd into it.
# Usage: . scripts/_venv.sh [extras]
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
extras=${1:-}
if [ ! -x "$repo/.venv/bin/python" ]; then
  python3 -m venv "$repo/.venv"
fi
stamp="$repo/.venv/.installed${extras:+-$extras}"
if [ ! -f "$stamp" ] || [ "$repo/setup.cfg" -nt "$stamp" ]; then
  "$repo/.venv/bin/pip" install -q --upgrade pip
  "$repo/.venv/bin/pip" install -q -e "$repo${extras:+[$extras]}"
  touch "$stamp"
fi
