#!/usr/bin/env bash
# Runs every test: sets up .venv (once), installs the project with its test extras, runs trial on tests/,
# and ends with one line "N passed, N failed, N skipped" so a run that executed nothing can never look green.
# Browser tests need Debian's chromium (apt-get install chromium chromium-driver); without it they are skipped
# and say why.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh
log=$(mktemp)
set +e
.venv/bin/trial "${@:-tests}" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
summary=$(grep -E '^(PASSED|FAILED) \(' "$log" | tail -n 1)
count() {
  local n
  n=$(echo "$summary" | grep -oE "\b$1=[0-9]+" | cut -d= -f2 | head -n 1)
  echo "${n:-0}"
}
passed=$(count successes)
failed=$(( $(count failures) + $(count errors) + $(count unexpectedSuccesses) ))
skipped=$(count skips)
rm -f "$log"
echo "$passed passed, $failed failed, $skipped skipped"
if [ "$status" -ne 0 ] || [ "$passed" -eq 0 ] || [ "$failed" -ne 0 ]; then
  exit 1
fi
