#!/usr/bin/env bash
# Runs the demo site (the seed's three examples) at http://localhost:8000 with the embedded defaults:
# SQLite, local files under media/, one twistd process serving Django, the upload WebSocket and static files.
# Extra arguments go to `python -m demo` (e.g. --port 8080 --host 0.0.0.0).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh
exec .venv/bin/python -m demo "$@"
