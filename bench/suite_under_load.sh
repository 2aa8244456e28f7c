#!/usr/bin/env bash
# The test suite under CPU load: two busy loops beside `pytest -q`, RUNS times (default 3).
# Usage: bench/suite_under_load.sh [RUNS]      (from the repository root, after `make setup`)
set -u
runs=${1:-3}
for i in $(seq 1 "$runs"); do
  ( while :; do :; done ) & busy1=$!
  ( while :; do :; done ) & busy2=$!
  start=$(date +%s)
  timeout 2400 .venv/bin/python -m pytest -q -p no:cacheprovider > "/tmp/suite_under_load_$i.log" 2>&1
  code=$?
  kill "$busy1" "$busy2"
  echo "run $i: exit $code in $(( $(date +%s) - start )) s: $(grep -E 'passed|failed' "/tmp/suite_under_load_$i.log" | tail -1)"
done
