"""Row group `ours`: the product CLI over a matrix of chunk sizes x windows, the best cell again, the server's
defaults (CLI and the bench protocol client), and with --profile py-spy on both ends."""
import os
import re
import signal
import subprocess
import time

from harness.bench import HERE, SLOT, fmt_size
from harness.files import empty_dir_contents, verify_stored
from harness.probes import RSSProbe
from harness.procs import KiB, last_json, log, run


def run_ours(b):
    a = b.a
    for window in a.windows:
        with b.ours_server(f"ours-w{window}", window=window) as srv:
            for chunk in a.chunks:
                row = f"ours cli chunk={fmt_size(chunk)} window={window}"
                b.guarded(row, "ours", lambda: b.sampled(
                    row, "ours", a.matrix_runs, lambda: b.cli_sample(srv, chunk, window), chunk=chunk,
                    window=window, client="cli", matrix=True))
                empty_dir_contents(b.upload_dir)
    # the best cell of the matrix again, with as many samples as the other headline rows: the maximum of many
    # single samples is biased upwards, so the goals use this median instead
    cells = [r for r in b.rows if r["group"] == "ours" and r.get("client") == "cli" and r.get("mib_s")
             and r.get("verified") is not False and not r.get("headline")]
    if cells and a.runs > 1:
        best = max(cells, key=lambda r: r["mib_s"])
        chunk, window = best["chunk"], best["window"]
        if (chunk, window) != (64 * KiB, 16):
            with b.ours_server("ours-best", window=window) as srv:
                b.guarded("ours best", "ours", lambda: b.sampled(
                    f"ours cli best: chunk={fmt_size(chunk)} window={window}", "ours", a.runs,
                    lambda: b.cli_sample(srv, chunk, window), chunk=chunk, window=window, client="cli",
                    headline=True, matrix=False))
                empty_dir_contents(b.upload_dir)
    # the server's defaults (no --window; 64 KiB chunks, the slot default): the product CLI, and the bench
    # protocol client (ack latency; the same client the concurrency row uses)
    with b.ours_server("ours-default") as srv:
        def ws_sample():
            empty_dir_contents(b.upload_dir)
            tok = b.tokens(1, 64 * KiB, b.size)[0]
            probe = RSSProbe(srv.proc.pid)
            res = last_json(run([b.bpy, os.path.join(HERE, "wsclient.py"), "single", "--url", srv.url,
                                 "--token", tok, "--slot", SLOT, "--file", b.file], what="wsclient single"))
            return {"seconds": res["seconds"], "nbytes": b.size, "ok": res["status"] == "complete",
                    "verified": res["sha256_ok"] and verify_stored(b.upload_dir, b.size, b.sha),
                    "rss_growth_mib": probe.growth_mib(), "server_cpu_s": probe.cpu_s(),
                    "ack_p50_ms": res["p50_ms"], "ack_p99_ms": res["p99_ms"],
                    "window": res["window"] // (64 * KiB), "window_bytes": res["window"]}

        b.guarded("ours default", "ours", lambda: b.sampled(
            "ours cli chunk=64K, server default window", "ours", a.runs, lambda: b.cli_sample(srv),
            chunk=64 * KiB, client="cli", headline=True, default_window=True))
        b.guarded("ours wsclient", "ours", lambda: b.sampled(
            "ours wsclient chunk=64K, server default window", "ours", a.runs, ws_sample, chunk=64 * KiB,
            client="wsclient", headline=True, default_window=True))
        empty_dir_contents(b.upload_dir)
        if a.profile:
            profile(b, srv)


def profile(b, srv):
    """py-spy on the server and on the product CLI during one more upload (64 KiB chunks, the server's default
    window): the hot path's top functions by self time, for both ends."""
    spy = os.path.join(b.out, "venv", "bin", "py-spy")
    if not os.path.exists(spy):
        b.sections["profile"] = {"skipped": "py-spy not installed"}
        return
    empty_dir_contents(b.upload_dir)
    raw_srv = os.path.join(b.out, "profile-server.txt")
    raw_cli = os.path.join(b.out, "profile-client.txt")
    tok = b.tokens(1, 64 * KiB, b.size)[0]
    p = subprocess.Popen([spy, "record", "--pid", str(srv.proc.pid), "--rate", "200", "--format", "raw",
                          "--output", raw_srv, "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # py-spy attaches asynchronously and prints nothing when it has
    try:
        out = run([spy, "record", "--rate", "200", "--format", "raw", "--output", raw_cli, "--nonblocking", "--",
                   b.py, "-m", "twisted_uploads", "upload", b.file, "--url", srv.url, "--token", tok,
                   "--slot", SLOT, "--json", "--no-progress"], what="py-spy + upload CLI", timeout=1800)
        res = last_json(out)
    finally:
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
    prof = {"upload_mib_s_while_profiled": res.get("mib_per_s")}
    for name, path in (("server", raw_srv), ("client", raw_cli)):
        prof[name] = summarize_profile(path) if os.path.exists(path) else {"error": err.decode()[-500:]}
        top = prof[name].get("self", [])[:6]
        log(f"  profile {name} (self time): " + "; ".join(f"{t['pct']}% {t['function']}" for t in top))
    b.sections["profile"] = prof
    empty_dir_contents(b.upload_dir)


def summarize_profile(raw_path, top=25):
    """py-spy --format raw: 'frame;frame;... count' lines -> top functions by self and inclusive samples."""
    self_c, incl_c, total = {}, {}, 0
    with open(raw_path) as f:
        for line in f:
            line = line.rstrip()
            if not line:
                continue
            stack, _, n = line.rpartition(" ")
            n = int(n)
            frames = [re.sub(r" \((.*?):\d+\)$", r" (\1)", fr) for fr in stack.split(";")]
            frames = [fr for fr in frames if not fr.startswith("process ") and not fr.startswith("thread ")]
            total += n
            if frames:
                self_c[frames[-1]] = self_c.get(frames[-1], 0) + n
            for fr in set(frames):
                incl_c[fr] = incl_c.get(fr, 0) + n

    def topn(c):
        return [{"function": k, "pct": round(100 * v / total, 1)} for k, v in
                sorted(c.items(), key=lambda kv: -kv[1])[:top]]

    return {"samples": total, "self": topn(self_c), "inclusive": topn(incl_c)}
