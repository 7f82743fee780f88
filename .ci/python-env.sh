#!/usr/bin/env bash
# Create (or reuse) the Python environment holding the reference implementations the parity tests
# compare against, and print the path of its interpreter. Idempotent.
set -euo pipefail
cache="${SPECCASCADE_CACHE:-$HOME/.cache/speccascade}"
venv="$cache/venv"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" >&2
fi
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$here/requirements.txt" >&2
  echo "$want" > "$stamp"
fi
echo "$venv/bin/python"
