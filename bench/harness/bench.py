"""The run's shared state and bookkeeping: rows, sections, errors, sampling, waiting for a quiet machine."""
import json
import os
import resource
import subprocess
import sys
import time

from harness.probes import loadavg, wait_quiet
from harness.procs import KiB, MiB, log, run

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(HERE)
PEERS = os.path.join(HERE, "peers")
SECRET = "bench-secret-not-for-production-use"
SLOT = "bench"


class Bench:
    """One run: its options (`a`), work dir, the random file, and what the rows recorded."""

    def __init__(self, a):
        self.a = a
        self.out = os.path.abspath(a.out)
        os.makedirs(self.out, exist_ok=True)
        self.py = sys.executable
        self.bpy = os.path.join(self.out, "venv", "bin", "python")
        self.dpy = os.path.join(self.out, "venv-djust", "bin", "python")
        self.rows = []
        self.sections = {}
        self.errors = []
        self.size = a.size_mib * MiB
        self.file = os.path.join(self.out, f"bench-{a.size_mib}MiB.bin")
        self.sha = None
        self.quiet_spent = 0.0
        self.upload_dir = os.path.join(self.out, "ours-uploads")

    # -- bookkeeping

    def peer_status(self, part):
        try:
            return open(os.path.join(self.out, "status", part)).read().strip()
        except OSError:
            return "not set up (run bench/setup_peers.sh)"

    def need(self, part, row, group, log_it=True):
        """Whether peer `part` is installed; otherwise the row is skipped with the reason."""
        st = self.peer_status(part)
        if st == "ok":
            return True
        if log_it:
            self.skip(row, group, f"peer not installed ({part}: {st})")
        return False

    def add(self, row, group, seconds=None, nbytes=None, ok=True, verified=None, **extra):
        r = {"row": row, "group": group, "ok": ok, "verified": verified, "seconds": seconds, "bytes": nbytes,
             "mib_s": round(nbytes / MiB / seconds, 1) if ok and seconds else None, **extra,
             "loadavg": loadavg()}
        for k in ("server_cpu_s", "client_cpu_s", "browser_cpu_s"):  # CPU per GiB: what a row costs
            if r.get(k) is not None and nbytes:
                r[k + "_per_gib"] = round(r[k] / (nbytes / (1 << 30)), 3)
        self.rows.append(r)
        mark = "ok" if ok and verified is not False else "FAILED"
        rate = f"{r['mib_s']:8.1f} MiB/s" if r["mib_s"] else " " * 14
        log(f"  {row:48s} {rate}  {mark}" + (f"  ({extra['note']})" if extra.get("note") else ""))
        if not ok or verified is False:
            self.errors.append(f"{row}: {extra.get('error') or 'verification failed'}")
        return r

    def skip(self, row, group, why):
        self.rows.append({"row": row, "group": group, "ok": None, "skipped": why})
        log(f"  {row:48s} SKIPPED: {why}")

    def fail(self, row, group, err):
        log(f"  {row:48s} ERROR: {err}")
        self.rows.append({"row": row, "group": group, "ok": False, "error": str(err)})
        self.errors.append(f"{row}: {err}")

    def guarded(self, row, group, fn):
        try:
            fn()
        except Exception as e:  # one broken row must not hide the others
            self.fail(row, group, f"{type(e).__name__}: {e}")

    def quiet(self):
        """Wait for a quiet machine before a timed sample, within a total budget for the run."""
        if self.a.quiet >= 1:
            return None
        left = self.a.quiet_budget - self.quiet_spent
        t0 = time.monotonic()
        busy = wait_quiet(self.a.quiet, max(0.0, min(self.a.quiet_wait, left)))
        self.quiet_spent += time.monotonic() - t0
        return busy

    def sampled(self, row, group, runs, sample, **common):
        """Take `runs` samples (sample() -> dict of add() fields) and add the median one (by time) as the row.

        Stops at the first failed sample (the row is then that failure)."""
        samples = []
        for _ in range(runs):
            busy = self.quiet()
            ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            s = sample()
            ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            s["client_cpu_s"] = round(ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime, 3)
            s["cpu_busy_before"] = busy
            samples.append(s)
            if not s.get("ok") or s.get("verified") is False:
                break
            if (s.get("seconds") or 0) > self.a.long_sample:
                break  # a long sample is its own average; three of them would cost minutes
        good = [s for s in samples if s.get("ok") and s.get("verified") is not False and s.get("seconds")]
        if len(good) == len(samples):
            pick = sorted(good, key=lambda s: s["seconds"])[len(good) // 2]
        else:
            pick = samples[-1]
        extra = {k: v for k, v in pick.items() if k not in ("seconds", "nbytes", "ok", "verified")}
        if len(samples) > 1:
            extra["samples_mib_s"] = [round(s["nbytes"] / MiB / s["seconds"], 1) if s in good else None
                                      for s in samples]
            extra["cpu_busy_before"] = [s["cpu_busy_before"] for s in samples]
        return self.add(row, group, pick.get("seconds"), pick.get("nbytes"), pick.get("ok"), pick.get("verified"),
                        **common, **extra)

    # -- ours: availability, tokens, the server, the CLI

    def ours_available(self):
        try:
            run([self.py, "-c", "import twisted_uploads.service, twisted_uploads.client, twisted_uploads.tokens"],
                what="import twisted_uploads", timeout=60)
            return True
        except Exception as e:
            self.ours_missing = str(e).strip().splitlines()[-1]
            return False

    def tokens(self, n, chunk_size, max_file_size, session_prefix="s"):
        code = ("import sys, json\n"
                "from twisted_uploads.tokens import make_token\nfrom twisted_uploads.slots import SlotConfig\n"
                "a = json.loads(sys.argv[1])\n"
                "slot = SlotConfig(max_file_size=a['max'], chunk_size=a['chunk'], chunk_timeout=120.0)\n"
                "for i in range(a['n']):\n"
                "    print(make_token(a['secret'], f\"{a['prefix']}{i}\", {a['slot']: slot}, 7200))\n")
        arg = json.dumps({"n": n, "chunk": chunk_size, "max": max_file_size, "secret": SECRET, "slot": SLOT,
                          "prefix": f"{session_prefix}-{os.getpid()}-{time.time_ns()}-"})
        return run([self.py, "-c", code, arg], what="token minting").split()

    def ours_server(self, name, window=None, extra=()):
        """`twistd -n uploads` on a free port, uploads into self.upload_dir (emptied); .url is its WebSocket."""
        from harness.files import empty_dir
        from harness.procs import Server, free_port
        if getattr(self.a, "threaded_writer", False):
            # The same server, built by bench/harness/server.py so its store can be the threaded one.
            options = (["--window", str(window)] if window else []) + list(extra)
            return self.instrumented_server(name, ["--threaded-writer"], options)
        port = free_port()
        empty_dir(self.upload_dir)
        argv = [self.py, "-c", "import sys; sys.argv[0] = 'twistd'; from twisted.scripts.twistd import run; run()",
                "-n", "--pidfile=", "uploads", "--listen", f"tcp:{port}:interface=127.0.0.1",
                "--upload-dir", self.upload_dir, "--secret", SECRET]
        if window:
            argv += ["--window", str(window)]
        argv += list(extra)
        srv = Server(name, argv, self.out, port=port, cwd=self.out)
        srv.url = f"ws://127.0.0.1:{port}/uploads/ws"
        return srv

    def instrumented_server(self, name, flags=(), options=()):
        """Our server through bench/harness/server.py (a lag probe, the threaded
        writer: `flags`; `twistd uploads` options: `options`), on a free port, uploads into self.upload_dir
        (emptied); .url is its WebSocket, .port its port. --threaded-writer (the run's option) applies here too."""
        from harness.files import empty_dir
        from harness.procs import Server, free_port
        port = free_port()
        empty_dir(self.upload_dir)
        flags = list(flags)
        if getattr(self.a, "threaded_writer", False) and "--threaded-writer" not in flags:
            flags.append("--threaded-writer")
        argv = [self.py, os.path.join(HERE, "harness", "server.py"), *flags, "--",
                "--listen", f"tcp:{port}:interface=127.0.0.1", "--upload-dir", self.upload_dir, "--secret", SECRET,
                *options]
        srv = Server(name, argv, self.out, cwd=self.out, ready_line="listening")
        srv.port, srv.url = port, f"ws://127.0.0.1:{port}/uploads/ws"
        return srv

    def cli_upload(self, url, token, path, window=None):
        """The product CLI uploading `path`; returns (its JSON result, wall seconds including interpreter start)."""
        from harness.procs import last_json
        argv = [self.py, "-m", "twisted_uploads", "upload", path, "--url", url, "--token", token, "--slot", SLOT,
                "--json", "--no-progress"]
        if window:
            argv += ["--window", str(window)]
        t0 = time.perf_counter()
        # a generous bound (>= 2 MiB/s) so a stalled client fails its row instead of hanging the run
        try:
            out = run(argv, what="twisted_uploads upload", timeout=60 + os.path.getsize(path) / MiB / 2)
        except subprocess.TimeoutExpired as e:
            raise RuntimeError(f"the upload CLI stalled (no completion after {e.timeout:.0f} s)") from None
        wall = time.perf_counter() - t0
        return last_json(out), wall

    def cli_sample(self, srv, chunk=64 * KiB, window=None, path=None, size=None, sha=None):
        """One timed CLI upload of the run's file to `srv`, verified: a dict for sampled()."""
        from harness.files import empty_dir_contents, verify_stored
        from harness.probes import RSSProbe
        path, size, sha = path or self.file, size or self.size, sha or self.sha
        empty_dir_contents(self.upload_dir)
        tok = self.tokens(1, chunk, size)[0]
        probe = RSSProbe(srv.proc.pid)
        res, wall = self.cli_upload(srv.url, tok, path, window)
        ok = res.get("status") == "complete" and res.get("size", size) == size
        verified = res.get("sha256") == sha and verify_stored(self.upload_dir, size, sha)
        return {"seconds": res.get("seconds") or wall, "nbytes": size, "ok": ok, "verified": verified,
                "wall_seconds": round(wall, 3), "rss_growth_mib": probe.growth_mib(), "server_cpu_s": probe.cpu_s(),
                "error": None if ok else json.dumps(res)[:300]}


def fmt_size(n):
    for unit, k in (("G", 1 << 30), ("M", MiB), ("K", KiB)):
        if n >= k and n % k == 0:
            return f"{n // k}{unit}"
    return str(n)


def fmt_x(x):
    return "" if x is None else f"{x:.2f}x"


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def ms(x):
    return None if x is None else round(x * 1000, 3)
