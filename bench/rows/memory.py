"""Row group `memory`: our server's peak RSS growth over an upload of twice the file, and RSS per idle
connection."""
import os
import subprocess
import time

from harness.bench import HERE, SLOT, fmt_size
from harness.files import empty_dir_contents
from harness.probes import RSSProbe, rss_mib
from harness.procs import KiB, MiB, last_json, log, run, wait_line


def run_memory(b):
    repeat = 2
    with b.ours_server("ours-memory") as srv:
        tok = b.tokens(1, 64 * KiB, b.size * repeat)[0]
        time.sleep(0.5)  # let the fresh server's RSS settle before the baseline
        probe = RSSProbe(srv.proc.pid)
        base = rss_mib(srv.proc.pid)
        res = last_json(run([b.bpy, os.path.join(HERE, "wsclient.py"), "single", "--url", srv.url,
                             "--token", tok, "--slot", SLOT, "--file", b.file, "--repeat", str(repeat)],
                            what="wsclient single (memory)"))
        growth = probe.growth_mib()
        ok = res["status"] == "complete" and res["sha256_ok"]
        b.sections["memory_upload"] = {"bytes": b.size * repeat, "rss_before_mib": round(base, 1),
                                       "peak_rss_growth_mib": growth, "ok": ok,
                                       "mib_s": round(b.size * repeat / MiB / res["seconds"], 1)}
        log(f"  {'memory: upload ' + fmt_size(b.size * repeat):34s} peak RSS growth {growth} MiB"
            f" (from {base:.1f} MiB){'' if ok else '  FAILED'}")
        if not ok:
            b.errors.append(f"memory upload: {res}")
        empty_dir_contents(b.upload_dir)
    n = b.a.idle
    with b.ours_server("ours-idle") as srv:
        tok = b.tokens(1, 64 * KiB, 1 * MiB)[0]
        time.sleep(0.5)
        base = rss_mib(srv.proc.pid)
        p = subprocess.Popen([b.bpy, os.path.join(HERE, "wsclient.py"), "idle", "--url", srv.url,
                              "--token", tok, "--count", str(n)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
        try:
            wait_line(p, "READY", 300, "wsclient idle")
            time.sleep(0.5)
            after = rss_mib(srv.proc.pid)
        finally:
            p.stdin.close()
            p.wait(60)
        per = (after - base) * 1024 / n
        b.sections["memory_idle"] = {"connections": n, "rss_before_mib": round(base, 1),
                                     "rss_after_mib": round(after, 1), "kib_per_connection": round(per, 1)}
        log(f"  {'memory: ' + str(n) + ' idle connections':34s} {per:.1f} KiB per connection"
            f" ({base:.1f} -> {after:.1f} MiB)")
