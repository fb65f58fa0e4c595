#!/usr/bin/env bash
# Creates .venv (once) and installs this checkout into it with the test and cluster extras (redis, S3, gunicorn,
# uvicorn, whitenoise, SeaweedFS's weed for the tests and scripts/cluster.sh). Used by test.sh, demo.sh and CI.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  "${PYTHON:-python3}" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
# compat mode puts the checkout itself on sys.path, so twistd finds twisted/plugins/uploads_plugin.py.
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,cluster]' --config-settings editable_mode=compat
# axe-core for the browser tests' accessibility audit (tests/browser/package.json), once.
if command -v npm >/dev/null && [ ! -f tests/browser/node_modules/axe-core/axe.min.js ]; then
  npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
fi
