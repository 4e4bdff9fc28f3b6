#!/usr/bin/env bash
# make bench: run every benchmark in bench/ in turn; each prints its figures and ratios.
# Benchmarks that need ../shared say so and skip. Arguments are passed to nothing: run one by hand
# (python -m bench.<name> --help) to change sizes.
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
status=0
for script in bench/*.py; do
  name=$(basename "$script" .py)
  [ "$name" = "__init__" ] && continue
  printf '\n\033[1m==> bench/%s.py\033[0m\n' "$name"
  PYTHONPATH=plugins .venv/bin/python -m "bench.$name" || status=1
done
exit $status
