#!/usr/bin/env bash
# Runs the demo site (the seed's three examples) at http://localhost:8000 with the embedded defaults:
# SQLite, local files under media/, one twistd process serving Django, the upload WebSocket and static files.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh
.venv/bin/python demo/manage.py migrate --noinput
exec .venv/bin/twistd -n --pidfile= uploads --settings demo.settings --listen "${LISTEN:-tcp:8000}" "$@"
