"""Row group `concurrency`: many simultaneous uploads from several client processes (SHA-256, aggregate rate,
ack latency)."""
import os
import subprocess

from harness.bench import HERE, SLOT, fmt_size, ms, pct
from harness.files import empty_dir_contents, iter_files_of_size
from harness.probes import RSSProbe
from harness.procs import KiB, MiB, last_json, log


def start_concurrent(b, url, n, procs, each, tokfile):
    """`procs` wsclient processes uploading `n` pieces of `each` bytes; returns them once all are READY."""
    per = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
    ps, first = [], 0
    for k in per:
        ps.append(subprocess.Popen([b.bpy, os.path.join(HERE, "wsclient.py"), "concurrent", "--url", url,
                                    "--token-file", tokfile, "--slot", SLOT, "--file", b.file,
                                    "--count", str(k), "--size", str(each), "--first", str(first)],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
        first += k
    for p in ps:
        line = p.stdout.readline()
        if "READY" not in line:
            raise RuntimeError(f"concurrency client not ready: {line!r}")
    return ps


def go(ps):
    for p in ps:
        p.stdin.write("go\n")
        p.stdin.flush()


def collect(ps, timeout=1800):
    uploads = []
    for p in ps:
        out, _ = p.communicate(timeout=timeout)
        uploads += last_json(out)["uploads"]
    return uploads


def run_concurrency(b):
    a = b.a
    n, procs, each = a.concurrent, a.concurrent_procs, a.concurrent_mib * MiB
    with b.ours_server("ours-concurrency") as srv:
        tokfile = os.path.join(b.out, "tokens-concurrency.txt")
        with open(tokfile, "w") as f:
            f.write("\n".join(b.tokens(n, 64 * KiB, each)))
        probe = RSSProbe(srv.proc.pid)
        ps = start_concurrent(b, srv.url, n, procs, each, tokfile)
        go(ps)
        uploads = collect(ps)
        growth = probe.growth_mib()
    complete = [u for u in uploads if u["status"] == "complete"]
    sha_ok = [u for u in complete if u["sha256_ok"]]
    t0, t1 = min(u["start"] for u in uploads), max(u["end"] for u in uploads)
    lat = [x for u in uploads for x in u["latencies"]]
    agg = len(complete) * each / MiB / (t1 - t0)
    durations = sorted(u["end"] - u["start"] for u in uploads)
    stored_ok = sum(1 for _ in iter_files_of_size(b.upload_dir, each))
    sec = {"uploads": n, "client_processes": procs, "bytes_each": each, "complete": len(complete),
           "sha256_match": len(sha_ok), "stored_files": stored_ok, "seconds": round(t1 - t0, 3),
           "aggregate_mib_s": round(agg, 1), "ack_p50_ms": ms(pct(lat, 50)), "ack_p99_ms": ms(pct(lat, 99)),
           "acks": len(lat), "upload_seconds_p50": round(pct(durations, 50), 3),
           "upload_seconds_max": round(durations[-1], 3), "rss_growth_mib": growth,
           "failures": [u["error"] for u in uploads if u["status"] != "complete"][:5]}
    b.sections["concurrency"] = sec
    log(f"  {f'concurrency: {n} x {fmt_size(each)}':34s} {agg:8.1f} MiB/s aggregate, {len(complete)}/{n} complete,"
        f" {len(sha_ok)} SHA-256 match, ack p50 {sec['ack_p50_ms']} ms p99 {sec['ack_p99_ms']} ms")
    if len(sha_ok) != n:
        b.errors.append(f"concurrency: {n - len(sha_ok)} uploads incomplete or mismatched: {sec['failures']}")
    empty_dir_contents(b.upload_dir)
