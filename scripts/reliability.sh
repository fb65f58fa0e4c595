#!/usr/bin/env bash
# Runs the reliability suite (tests/reliability: kill -9 and restart, two servers on one directory, a full disk,
# racing consumes, 10,000 hostile inputs, slow-loris sockets, ulimit -n 64) against real twistd processes on
# loopback, and writes its figures (faults injected, inputs tried, bytes verified, bytes lost) into
# docs/reliability.md. The disk-full tests need root (a tmpfs mount) and skip otherwise.
# Usage: bash scripts/reliability.sh [--no-doc]   (exit status: trial's)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh
figures=$(mktemp)
log=$(mktemp)
trap 'rm -f "$figures" "$log"' EXIT
export TWISTED_UPLOADS_RELIABILITY_FIGURES=$figures
start=$(date +%s)
set +e
.venv/bin/trial tests.reliability 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
seconds=$(( $(date +%s) - start ))
doc=(--doc docs/reliability.md)
if [ "${1:-}" = "--no-doc" ]; then
  doc=()
fi
echo
.venv/bin/python -m tests.reliability.figures "$figures" "$log" --seconds "$seconds" "${doc[@]}"
exit "$status"
