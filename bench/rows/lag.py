"""Row group `lag`: the server's reactor lag (bench/harness/server.py --lag-log: our UploadServer plus a probe
that records how late a 5 ms timer fires) during one large upload (the product CLI, default 1 GiB) plus small uploads
(default 50 x 64 KiB, started together one second into it, bench/wsclient.py). Reports p50/p99/max lag in the
large upload's window, the idle lag before it, and how long the small uploads took meanwhile. Goal (issue 9):
p99 < 20 ms."""
import json
import os
import subprocess
import time

from harness.bench import SLOT, ms, pct
from harness.files import empty_dir, make_file
from harness.procs import KiB, MiB, last_json, log
from rows.concurrency import collect, go, start_concurrent

SMALL = 64 * KiB


def run_lag(b):
    a = b.a
    size = a.lag_mib * MiB
    path = b.file if size == b.size else os.path.join(b.out, f"bench-lag-{a.lag_mib}MiB.bin")
    sha = b.sha if size == b.size else make_file(path, size)
    lag_json = os.path.join(b.out, "lag.json")
    srv = b.instrumented_server("ours-lag", ["--lag-log", lag_json, "--lag-interval", "0.005"])
    url = srv.url
    with srv:
        tokfile = os.path.join(b.out, "tokens-lag.txt")
        with open(tokfile, "w") as f:
            f.write("\n".join(b.tokens(a.lag_small, 64 * KiB, SMALL)))
        small = start_concurrent(b, url, a.lag_small, 1, SMALL, tokfile)
        time.sleep(1.0)  # idle samples: the probe's own floor (timer and epoll granularity)
        t_idle = time.time()
        tok = b.tokens(1, 64 * KiB, size)[0]
        t0 = time.time()
        big = subprocess.Popen([b.py, "-m", "twisted_uploads", "upload", path, "--url", url, "--token", tok,
                                "--slot", SLOT, "--json", "--no-progress"], stdout=subprocess.PIPE, text=True)
        time.sleep(min(1.0, size / MiB / 400))  # the small uploads start once the large one is streaming
        go(small)
        uploads = collect(small)
        out, _ = big.communicate(timeout=60 + size / MiB / 2)
        t1 = time.time()
        res = last_json(out)
    with open(lag_json) as f:
        samples = json.load(f)
    idle = [lag for t, lag in samples if t_idle - 1.0 <= t < t_idle]
    busy = [lag for t, lag in samples if t0 <= t <= t1]
    small_ok = [u for u in uploads if u["status"] == "complete" and u["sha256_ok"]]
    durations = sorted(u["end"] - u["start"] for u in uploads)
    ok = res.get("status") == "complete" and res.get("sha256") == sha and len(small_ok) == len(uploads)
    sec = {"large_bytes": size, "large_mib_s": res.get("mib_per_s"), "large_ok": res.get("status") == "complete",
           "small_uploads": len(uploads), "small_bytes_each": SMALL, "small_complete": len(small_ok),
           "small_seconds_p50": round(pct(durations, 50), 3), "small_seconds_max": round(durations[-1], 3),
           "interval_ms": 5, "samples": len(busy), "p50_ms": ms(pct(busy, 50)), "p99_ms": ms(pct(busy, 99)),
           "max_ms": ms(max(busy)) if busy else None, "idle_p50_ms": ms(pct(idle, 50)),
           "idle_max_ms": ms(max(idle)) if idle else None, "ok": ok}
    b.sections["lag"] = sec
    log(f"  {'reactor lag, ' + str(a.lag_mib) + ' MiB + ' + str(a.lag_small) + ' small':34s} p50 {sec['p50_ms']} ms"
        f" p99 {sec['p99_ms']} ms max {sec['max_ms']} ms ({sec['samples']} samples; idle p50 {sec['idle_p50_ms']}"
        f" ms); small uploads p50 {sec['small_seconds_p50']} s max {sec['small_seconds_max']} s"
        f"{'' if ok else '  FAILED'}")
    if not ok:
        b.errors.append(f"lag: large {res.get('status')}, small {len(small_ok)}/{len(uploads)} complete")
    empty_dir(b.upload_dir)
