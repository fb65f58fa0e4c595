#!/usr/bin/env bash
# CI smoke run of the benchmark harness: every row with small sizes (8 MiB file, 10 concurrent 1 MiB uploads),
# so the harness and its peers cannot rot. No timing assertions: it fails only when one of our rows fails, a
# stored file does not match its SHA-256, or an installed peer breaks. A peer that could not be installed
# (npm, PyPI) is skipped with a message. Runs with python3 from PATH (the project venv active) or $PYTHON.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec "${PYTHON:-python3}" "$here/run.py" --smoke "$@"
