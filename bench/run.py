#!/usr/bin/env python3
"""twisted-uploads benchmark harness: one command, one run, one random file, loopback only.

Run it with the project's Python (the environment where twisted_uploads is installed):

    python bench/run.py                     # full run (1 GiB), prints a table, writes bench/out/results.json
    python bench/run.py --smoke             # small sizes, same code paths (CI); no timing assertions
    python bench/run.py --only raw,ours     # some rows only
    python bench/run.py --only wan,lag      # the emulated links and the reactor-lag probe

Peers and helper tools are built into bench/out/ by bench/setup_peers.sh (called automatically); nothing is
installed into the project's environment. A peer whose install failed is skipped with a message; a row that
installed but fails to run is an error (exit status 1), so the harness cannot rot silently.

This file is the runner (options, order, summary); each row group is a module in bench/rows/ (listed in
bench/rows/__init__.py), the shared machinery is in bench/harness/.

Rows (groups for --only):
  raw           the limit: raw TCP -> disk copy, plain Python sockets, two processes
  ours          the product CLI (`python -m twisted_uploads upload`) -> `twistd uploads`, over a matrix of
                chunk sizes x windows; plus `ours-wsclient`, bench/wsclient.py at the default settings
  gunicorn      Django multipart POST under gunicorn (1 sync worker), sent by curl
  twisted-wsgi  the same Django app in Twisted's WSGI container, sent by curl
  tus           @tus/server + tus-js-client: one PATCH, and 64 KiB PATCHes
  djust         djust (PyPI) under uvicorn, through djust's own WebSocket upload protocol
  chromium      headless Chromium: -> ours (static/uploads.js), a bare WebSocket send loop -> a bare Autobahn
                sink, and its own fetch() multipart POST; MiB/s and the browser's CPU seconds per GiB
  memory        our server's peak RSS growth over a 2 GiB upload (2x the file), and RSS per idle connection
  concurrency   many simultaneous uploads from several client processes: SHA-256, aggregate, ack latency
  small         a 10 KiB upload: round trips and ms from socket open to `complete`
  wan           emulated links (bench/harness/wanproxy.py: one-way delay + rate per direction, on loopback):
                the proxy validated with a raw TCP copy and a ping, then ours (CLI), tus one-PATCH, Django
                multipart under gunicorn (curl) and djust through each link; ratio ours / tus per link
  lag           the server's reactor lag (bench/harness/server.py --lag-log) during one large upload plus small ones
  cluster       scripts/cluster.sh's topology (Redis, SeaweedFS S3, two upload nodes, HAProxy): 50 concurrent 20 MiB
                uploads through HAProxy to two nodes vs straight to one, a 10 KiB upload's latency (standalone,
                node, through HAProxy), and one upload to S3 vs to a shared directory; skipped with a message where
                the upload-node mode or an engine is missing
"""
import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import time

from harness.bench import HERE, ROOT, Bench, fmt_size, fmt_x
from harness.files import make_file
from harness.procs import KiB, MiB, log
from rows import GROUPS, OPTIONAL_NEEDS, PEER_GROUPS

GROUP_NAMES = [g for g, _, _ in GROUPS]


def want(a, group):
    return not a.only or group in a.only


def setup(b):
    """Build the peers the chosen groups need (bench/setup_peers.sh, idempotent)."""
    a = b.a
    parts = set()
    for group, _, needs in GROUPS:
        if want(a, group):
            parts |= needs - {"ours"}
    if a.plot:
        parts.add("venv")
    parts = [p for p in ("venv", "djust", "node") if p in parts]
    if parts:
        subprocess.run(["bash", os.path.join(HERE, "setup_peers.sh"), *parts],
                       env=dict(os.environ, PYTHON=os.environ.get("BENCH_BASE_PYTHON", "python3")))


def main_run(a):
    b = Bench(a)
    if not a.no_setup:
        setup(b)
    log(f"bench: {'SMOKE ' if a.smoke else ''}file {fmt_size(b.size)} in {b.out}")
    b.sha = make_file(b.file, b.size)
    if a.warm_memory:
        from harness.probes import warm_memory
        log(f"bench: touching {a.warm_memory} GiB of fresh memory once (--warm-memory)")
        warm_memory(a.warm_memory)
    t_start = time.time()
    ours = b.ours_available()
    for group, fn, needs in GROUPS:
        if not want(a, group):
            continue
        if "ours" in needs and not ours:
            b.fail(group, group, f"twisted_uploads server/client not importable with {b.py} "
                                 f"(run the harness with the project's Python): {b.ours_missing}")
            continue
        missing = [p for p in needs - {"ours"} - OPTIONAL_NEEDS if b.peer_status(p) != "ok"]
        if missing and group not in PEER_GROUPS:
            b.fail(group, group, f"bench {missing[0]} missing: {b.peer_status(missing[0])}")
            continue
        log(f"[{group}]")
        if group in ("memory", "concurrency", "small", "lag") and a.quiet < 1:
            b.sections.setdefault("cpu_busy_before", {})[group] = b.quiet()
        b.guarded(group, group, lambda: fn(b))
    result = summarize(b, time.time() - t_start)
    if a.json:
        os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
        with open(a.json, "w") as f:
            json.dump(result, f, indent=2)
        log(f"wrote {a.json}")
    if a.plot and os.path.exists(b.bpy):
        subprocess.run([b.bpy, os.path.join(HERE, "plot.py"), a.json, a.plot], check=False)
    if b.errors:
        log("ERRORS:\n  " + "\n  ".join(b.errors))
        return 1
    return 0


def summarize(b, elapsed):
    ok = [r for r in b.rows if r.get("ok") and r.get("mib_s") and r.get("verified") is not False
          and r["group"] != "wan"]
    limit = next((r["mib_s"] for r in ok if r["group"] == "raw"), None)
    peers = [r for r in ok if r["group"] in PEER_GROUPS]
    fastest = max(peers, key=lambda r: r["mib_s"]) if peers else None
    ours = [r for r in ok if r["group"] == "ours"]
    # goals use the headline rows (median of --runs samples), not the maximum over single matrix samples
    headline = [r for r in ours if r.get("headline")] or ours
    best = max(headline, key=lambda r: r["mib_s"]) if headline else None
    for r in ok:
        r["x_limit"] = round(r["mib_s"] / limit, 3) if limit else None
        r["x_fastest_peer"] = round(r["mib_s"] / fastest["mib_s"], 3) if fastest else None
    log("\n%-50s %8s %8s %8s %8s %13s" % ("row", "MiB/s", "x limit", "x peer", "RSS+MiB", "CPU s/GiB s+c"))
    for r in b.rows:
        if r.get("mib_s") and r["group"] != "wan":
            cpu = f"{r.get('server_cpu_s_per_gib', '-')}+{r.get('client_cpu_s_per_gib', '-')}"
            log("%-50s %8.1f %8s %8s %8s %13s" % (r["row"], r["mib_s"], fmt_x(r.get("x_limit")),
                                                  fmt_x(r.get("x_fastest_peer")), r.get("rss_growth_mib", ""),
                                                  cpu))
    goals = {}
    if best and fastest:
        goals["ours_vs_fastest_peer"] = {"value": round(best["mib_s"] / fastest["mib_s"], 2), "goal": 1.5,
                                         "ours": best["row"], "peer": fastest["row"]}
    if best and limit:
        goals["ours_vs_limit"] = {"value": round(best["mib_s"] / limit, 2), "goal": 0.5, "ours": best["row"]}
    mem = b.sections.get("memory_upload")
    if mem:
        goals["rss_growth_mib_2x_file"] = {"value": mem["peak_rss_growth_mib"], "goal_max": 32, "bytes": mem["bytes"]}
    conc = b.sections.get("concurrency")
    # the single stream to compare with: the same client (wsclient) and server settings as the concurrency row
    single = [r for r in headline if r.get("client") == "wsclient" and r.get("default_window")]
    if conc and single:
        s = max(r["mib_s"] for r in single)
        goals["concurrency_aggregate_vs_single"] = {
            "value": round(conc["aggregate_mib_s"] / s, 2), "goal": 0.7, "single_mib_s": s,
            "all_complete": conc["sha256_match"] == conc["uploads"]}
        goals["concurrency_ack_p99_ms"] = {"value": conc["ack_p99_ms"], "goal_max": 500}
    small = b.sections.get("small")
    if small:
        trips = small["pipelined"]["round_trips_after_open"] or small["sequential"]["round_trips_after_open"]
        goals["small_round_trips"] = {"value": min(trips) if trips else None, "goal_max": 2}
    wan = b.sections.get("wan")
    for link in (wan or {}).get("links", []):
        if link.get("ours_vs_tus") is not None:
            goals[f"wan_{link['name']}_ours_vs_tus"] = {"value": link["ours_vs_tus"], "goal": 0.95}
    lag = b.sections.get("lag")
    if lag and lag.get("p99_ms") is not None:
        goals["reactor_lag_p99_ms"] = {"value": lag["p99_ms"], "goal_max": 20}
    # Ours against the bare loop at the same frame size: the goal takes the best such pair.
    by_chunk: dict = {}
    for r in b.rows:
        if r["group"] == "chromium" and r.get("mib_s") and r.get("browser") in ("ours", "bare-ws"):
            by_chunk.setdefault(r.get("chunk"), {})[r["browser"]] = r["mib_s"]
    pairs = [v["ours"] / v["bare-ws"] for v in by_chunk.values() if "ours" in v and "bare-ws" in v]
    if pairs:
        goals["browser_ours_vs_bare_websocket"] = {"value": round(max(pairs), 2), "goal": 0.95}
    for k, g in goals.items():
        v = g["value"]
        met = (v <= g["goal_max"]) if "goal_max" in g else (v >= g["goal"])
        g["met"] = bool(met) if v is not None else False
        log(f"goal {k}: {v} ({'met' if g['met'] else 'NOT met'}; goal "
            f"{'<= ' + str(g['goal_max']) if 'goal_max' in g else '>= ' + str(g['goal'])})")
    meta = machine_info(b, elapsed)
    meta["quiet_wait_seconds"] = round(b.quiet_spent, 1)
    return {"meta": meta, "limit_mib_s": limit,
            "fastest_peer": fastest and {"row": fastest["row"], "mib_s": fastest["mib_s"]},
            "best_ours": best and {"row": best["row"], "mib_s": best["mib_s"]},
            "rows": b.rows, **b.sections, "goals": goals, "errors": b.errors}


def machine_info(b, elapsed):
    def sh(cmd):
        try:
            return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=30).stdout.strip()
        except Exception:
            return ""

    cpu = re.search(r"Model name:\s*(.*)", sh("lscpu"))
    versions = {"python": platform.python_version()}
    for mod in ("twisted", "autobahn", "django", "wsaccel"):
        v = sh(f"{b.py} -c \"import importlib.metadata as m; print(m.version('{mod}'))\"")
        if v:
            versions[mod] = v
    if os.path.exists(b.bpy):
        versions["websockets (bench client)"] = sh(f"{b.bpy} -c \"import websockets; print(websockets.__version__)\"")
        versions["gunicorn"] = sh(f"{b.bpy} -c \"import gunicorn; print(gunicorn.__version__)\"")
    if os.path.exists(b.dpy):
        versions["djust"] = sh(f"{b.dpy} -c \"import importlib.metadata as m; print(m.version('djust'))\"")
        versions["uvicorn"] = sh(f"{b.dpy} -c \"import uvicorn; print(uvicorn.__version__)\"")
    nm = os.path.join(b.out, "node", "node_modules")
    for pkg in ("@tus/server", "@tus/file-store", "tus-js-client"):
        with contextlib.suppress(OSError, ValueError):
            versions[pkg] = json.load(open(os.path.join(nm, pkg, "package.json")))["version"]
    versions["node"] = sh("node --version")
    versions["chromium"] = sh("chromium --version 2>/dev/null")
    versions["curl"] = sh("curl --version | head -1")
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "smoke": b.a.smoke, "threaded_writer": b.a.threaded_writer, "file_bytes": b.size,
            "elapsed_seconds": round(elapsed, 1),
            "git": sh(f"git -C {ROOT} rev-parse --short HEAD"), "nproc": os.cpu_count(),
            "cpu": cpu.group(1) if cpu else platform.processor(), "kernel": platform.release(),
            "memory": sh("free -h | sed -n 2p"), "loadavg_at_end": sh("cat /proc/loadavg"), "versions": versions,
            "argv": sys.argv[1:]}


def parse_sizes(s):
    out = []
    for part in s.split(","):
        part = part.strip().upper()
        mult = {"K": KiB, "M": MiB}.get(part[-1:], 1)
        out.append(int(part[:-1] if mult != 1 else part) * mult)
    return out


def parse_links(s):
    """"1000:20,100:50" -> [(rate Mbit/s, RTT ms), ...]"""
    out = []
    for part in s.split(","):
        rate, rtt = part.split(":")
        out.append((float(rate), float(rtt)))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="small sizes for CI (8 MiB, 10 concurrent uploads)")
    ap.add_argument("--size-mib", type=int, help="test file size (default 1024, smoke 8)")
    ap.add_argument("--only", help="comma-separated groups: " + ",".join(GROUP_NAMES))
    ap.add_argument("--chunks", help="chunk sizes for the ours matrix (default 16K,64K,256K,1M)")
    ap.add_argument("--windows", help="windows in chunks for the ours matrix (default 1,2,4,8,16,32,64)")
    ap.add_argument("--runs", type=int, help="samples per throughput row, median reported (default 3, smoke 1)")
    ap.add_argument("--matrix-runs", type=int, help="samples per cell of the ours matrix (default 1; the best cell "
                                                     "is measured again --runs times)")
    ap.add_argument("--quiet", type=float, help="before each timed sample, wait until CPU busy (all cores) is below "
                                                 "this fraction (default 0.15; smoke and 1 = do not wait)")
    ap.add_argument("--long-sample", type=float, default=30,
                    help="a sample longer than this many seconds ends a row's sampling (default 30)")
    ap.add_argument("--quiet-wait", type=float, default=60, help="longest wait for quiet per sample, s (default 60)")
    ap.add_argument("--quiet-budget", type=float, default=600, help="longest total wait for quiet, s (default 600)")
    ap.add_argument("--concurrent", type=int, help="simultaneous uploads (default 200, smoke 10)")
    ap.add_argument("--concurrent-mib", type=int, help="MiB per concurrent upload (default 10, smoke 1)")
    ap.add_argument("--concurrent-procs", type=int, help="client processes (default 4, smoke 2)")
    ap.add_argument("--idle", type=int, help="idle connections for the RSS-per-connection probe (default 500)")
    ap.add_argument("--small-runs", type=int, help="10 KiB uploads per mode (default 20, smoke 3)")
    ap.add_argument("--wan-mib", type=int, help="file size through the emulated links (default 256, smoke 4)")
    ap.add_argument("--wan-links", help="links as RATE_MBIT:RTT_MS,... (default 1000:0,1000:20,1000:50,1000:100,"
                                        "100:50; smoke 1000:20,100:50)")
    ap.add_argument("--wan-rows", help="rows per link (default ours,tus,gunicorn,djust)")
    ap.add_argument("--wan-runs", type=int, help="samples per WAN row, median reported (default 1)")
    ap.add_argument("--lag-mib", type=int, help="large upload during the reactor-lag probe (default 1024, smoke 8)")
    ap.add_argument("--lag-small", type=int, help="small uploads during the reactor-lag probe (default 50, smoke 5)")
    ap.add_argument("--cluster-uploads", type=int, help="concurrent uploads of the cluster rows (default 50, smoke 4)")
    ap.add_argument("--cluster-mib", type=int, help="MiB per cluster upload (default 20, smoke 1)")
    ap.add_argument("--profile", action="store_true", help="py-spy the server during one more upload")
    ap.add_argument("--threaded-writer", action="store_true",
                    help="our server writes and hashes in worker threads (TempFileStore(threaded=True), "
                         "twisted_uploads/threadedwriter.py), through bench/harness/server.py --threaded-writer")
    ap.add_argument("--warm-memory", type=int, metavar="GIB",
                    help="before the rows, touch GIB GiB of fresh memory once (a VM's first touch of new page-cache "
                         "memory is slow; a long-running server's page cache has paid it: docs/benchmarks.md run 7)")
    ap.add_argument("--json", help="result file (default OUT/results.json, smoke OUT/smoke.json)")
    ap.add_argument("--plot", help="write the throughput PNG here (needs matplotlib in the bench venv)")
    ap.add_argument("--out", default=os.path.join(HERE, "out"), help="work dir (default bench/out)")
    ap.add_argument("--no-setup", action="store_true", help="do not run setup_peers.sh")
    a = ap.parse_args()
    s = a.smoke
    a.size_mib = a.size_mib or (8 if s else 1024)
    a.only = set(a.only.split(",")) if a.only else None
    if a.only and a.only - set(GROUP_NAMES):
        ap.error(f"unknown group(s) {a.only - set(GROUP_NAMES)}; choose from {GROUP_NAMES}")
    a.chunks = parse_sizes(a.chunks or ("64K,1M" if s else "16K,64K,256K,1M"))
    a.windows = [int(w) for w in (a.windows or ("1,16" if s else "1,2,4,8,16,32,64")).split(",")]
    a.runs = a.runs or (1 if s else 3)
    a.quiet = a.quiet if a.quiet is not None else (1.0 if s else 0.15)
    a.matrix_runs = a.matrix_runs or 1
    a.concurrent = a.concurrent or (10 if s else 200)
    a.concurrent_mib = a.concurrent_mib or (1 if s else 10)
    a.concurrent_procs = a.concurrent_procs or (2 if s else 4)
    a.idle = a.idle or (20 if s else 500)
    a.small_runs = a.small_runs or (3 if s else 20)
    a.wan_mib = a.wan_mib or (4 if s else 256)
    a.wan_links = parse_links(a.wan_links or ("1000:20,100:50" if s else "1000:0,1000:20,1000:50,1000:100,100:50"))
    a.wan_rows = (a.wan_rows or "ours,tus,gunicorn,djust").split(",")
    a.wan_runs = a.wan_runs or 1
    a.lag_mib = a.lag_mib or (8 if s else 1024)
    a.lag_small = a.lag_small or (5 if s else 50)
    a.cluster_uploads = a.cluster_uploads or (4 if s else 50)
    a.cluster_mib = a.cluster_mib or (1 if s else 20)
    a.json = a.json or os.path.join(a.out, "smoke.json" if s else "results.json")
    sys.exit(main_run(a))


if __name__ == "__main__":
    main()
