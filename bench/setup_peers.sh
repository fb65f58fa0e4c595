#!/usr/bin/env bash
# Build the benchmark's peers and helper tools into bench/out/ (gitignored), idempotently.
#
#   bench/out/venv        websockets (bench protocol client), gunicorn + Django (multipart peer),
#                         matplotlib (plot), py-spy (profiling; optional)
#   bench/out/venv-djust  djust==$DJUST_VERSION, uvicorn[standard], websockets (the djust peer)
#   bench/out/node        @tus/server, @tus/file-store, tus-js-client (the tus peer)
#
# Nothing goes into the project's own environment. Each part records its outcome in
# bench/out/status/<part> ("ok" or "failed: ...", install log in bench/out/status/<part>.log) so the
# harness can skip a peer that could not be installed with a clear message instead of failing.
#
# Usage: bench/setup_peers.sh [part...]     parts: venv djust node (default: all)
# Env:   PYTHON (base interpreter for the venvs; default python3), DJUST_VERSION (default 1.2.6)
set -u
here=$(cd "$(dirname "$0")" && pwd)
OUT=${BENCH_OUT:-$here/out}
PYTHON=${PYTHON:-python3}
DJUST_VERSION=${DJUST_VERSION:-1.2.6}
mkdir -p "$OUT/status"

mark() { echo "$2" > "$OUT/status/$1"; echo "setup_peers: $1: $2"; }

setup_venv() {
  local py=$OUT/venv/bin/python log=$OUT/status/venv.log
  if "$py" -c "import websockets, gunicorn, django, matplotlib" 2>/dev/null; then mark venv ok; return; fi
  { [ -x "$py" ] || "$PYTHON" -m venv "$OUT/venv"; } >"$log" 2>&1 \
    && "$py" -m pip install -q "websockets>=13" gunicorn Django matplotlib >>"$log" 2>&1 \
    && mark venv ok || { mark venv "failed: pip install (see $log)"; return; }
  # py-spy only serves --profile; its absence is not a failure.
  "$py" -m pip install -q py-spy >>"$log" 2>&1 || echo "setup_peers: py-spy not installed (profiling unavailable)"
}

setup_djust() {
  local py=$OUT/venv-djust/bin/python log=$OUT/status/djust.log
  if "$py" -c "import importlib.metadata as m, uvicorn, websockets; assert m.version('djust') == '$DJUST_VERSION'" 2>/dev/null; then
    mark djust ok; return
  fi
  { [ -x "$py" ] || "$PYTHON" -m venv "$OUT/venv-djust"; } >"$log" 2>&1 \
    && "$py" -m pip install -q "djust==$DJUST_VERSION" "uvicorn[standard]" websockets >>"$log" 2>&1 \
    && mark djust ok || mark djust "failed: pip install djust==$DJUST_VERSION (see $log)"
}

setup_node() {
  local dir=$OUT/node log=$OUT/status/node.log
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then mark node "failed: node/npm not on PATH"; return; fi
  if [ -d "$dir/node_modules/@tus/server" ] && [ -d "$dir/node_modules/@tus/file-store" ] && [ -d "$dir/node_modules/tus-js-client" ]; then
    mark node ok; return
  fi
  mkdir -p "$dir"
  (cd "$dir" && { [ -f package.json ] || npm init -y; } && npm install --no-audit --no-fund "@tus/server@^2" "@tus/file-store@^2" "tus-js-client@^4") \
    >"$log" 2>&1 && mark node ok || mark node "failed: npm install (see $log)"
}

parts=("$@"); [ ${#parts[@]} -eq 0 ] && parts=(venv djust node)
for p in "${parts[@]}"; do
  case $p in
    venv) setup_venv ;; djust) setup_djust ;; node) setup_node ;;
    *) echo "setup_peers: unknown part $p" >&2; exit 2 ;;
  esac
done
exit 0
