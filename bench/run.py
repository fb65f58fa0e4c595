#!/usr/bin/env python3
"""twisted-uploads benchmark harness: one command, one run, one random file, loopback only.

Run it with the project's Python (the environment where twisted_uploads is installed):

    python bench/run.py                     # full run (1 GiB), prints a table, writes bench/out/results.json
    python bench/run.py --smoke             # small sizes, same code paths (CI); no timing assertions
    python bench/run.py --only raw,ours     # some rows only

Peers and helper tools are built into bench/out/ by bench/setup_peers.sh (called automatically); nothing is
installed into the project's environment. A peer whose install failed is skipped with a message; a row that
installed but fails to run is an error (exit status 1), so the harness cannot rot silently.

Rows (groups for --only):
  raw           the limit: raw TCP -> disk copy, plain Python sockets, two processes
  ours          the product CLI (`python -m twisted_uploads upload`) -> `twistd uploads`, over a matrix of
                chunk sizes x windows; plus `ours-wsclient`, bench/wsclient.py at the default settings
  gunicorn      Django multipart POST under gunicorn (1 sync worker), sent by curl
  twisted-wsgi  the same Django app in Twisted's WSGI container, sent by curl
  tus           @tus/server + tus-js-client: one PATCH, and 64 KiB PATCHes
  djust         djust (PyPI) under uvicorn, through djust's own WebSocket upload protocol
  chromium      headless Chromium -> our server, through static/uploads.js (when the browser client exists)
  memory        our server's peak RSS growth over a 2 GiB upload (2x the file), and RSS per idle connection
  concurrency   many simultaneous uploads from several client processes: SHA-256, aggregate, ack latency
  small         a 10 KiB upload: round trips and ms from socket open to `complete`
"""
import argparse
import contextlib
import datetime
import hashlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PEERS = os.path.join(HERE, "peers")
MiB = 1 << 20
KiB = 1 << 10
SECRET = "bench-secret-not-for-production-use"
SLOT = "bench"
GROUPS = ["raw", "ours", "gunicorn", "twisted-wsgi", "tus", "djust", "chromium", "memory", "concurrency", "small"]
PEER_GROUPS = {"gunicorn", "twisted-wsgi", "tus", "djust"}


def log(*a):
    print(*a, flush=True)


# ---------------------------------------------------------------------------------------------- processes


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=60.0, what="server"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout:.0f} s")


def wait_line(proc, text, timeout=60.0, what="process"):
    """Read proc.stdout until a line containing `text` (for one-shot servers a probe connect would consume)."""
    box = {}

    def reader():
        for line in proc.stdout:
            if text in line:
                box["ok"] = True
                return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t.join(timeout)
    if not box.get("ok"):
        raise RuntimeError(f"{what} did not print {text!r} within {timeout:.0f} s")


class Server:
    """A server subprocess with a log file; stopped (SIGTERM, then SIGKILL) on exit."""

    def __init__(self, name, argv, out, env=None, cwd=None, port=None, ready_line=None, timeout=60.0):
        self.name, self.argv, self.port, self.ready_line, self.timeout = name, argv, port, ready_line, timeout
        self.log_path = os.path.join(out, "logs", f"{name}.log")
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        self.env = dict(os.environ, **(env or {}))
        self.cwd = cwd
        self.proc = None

    def __enter__(self):
        self.logf = open(self.log_path, "w")
        if self.ready_line:
            self.proc = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdout=subprocess.PIPE,
                                         stderr=self.logf, text=True)
            wait_line(self.proc, self.ready_line, self.timeout, self.name)
        else:
            self.proc = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdout=self.logf,
                                         stderr=subprocess.STDOUT)
            try:
                wait_port(self.port, self.proc, self.timeout, self.name)
            except Exception:
                self.stop()
                raise RuntimeError(f"{self.name}: did not start; log {self.log_path}:\n{tail(self.log_path)}")
        return self

    def stop(self):
        p = self.proc
        if p and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.logf.close()

    def __exit__(self, *exc):
        self.stop()


def http_ready(port, path="/ping", timeout=30.0):
    """Poll an HTTP URL until it answers 200 (gunicorn binds before its worker can answer)."""
    import urllib.request
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"http://127.0.0.1:{port}{path} did not answer within {timeout:.0f} s")


def tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def run(argv, timeout=1800, env=None, cwd=None, what=None, input=None):
    """Run a client to completion; return stdout. Raises with stderr on failure."""
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=dict(os.environ, **(env or {})),
                       cwd=cwd, input=input)
    if p.returncode != 0:
        raise RuntimeError(f"{what or argv[0]} exited {p.returncode}: {(p.stderr or p.stdout)[-2000:]}")
    return p.stdout


def last_json(text):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"no JSON in output: {text[-500:]}")


# ------------------------------------------------------------------------------------------------ memory


def proc_tree(pid):
    """pid and all its descendants (gunicorn's worker, uvicorn's reloader-less child, ...)."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


class RSSProbe:
    """Peak RSS growth of a process tree: VmHWM reset through /proc/PID/clear_refs (5), then VmHWM - VmRSS."""

    def __init__(self, pid):
        self.pids = proc_tree(pid)
        self.before = {}
        for p in self.pids:
            try:
                with open(f"/proc/{p}/clear_refs", "w") as f:
                    f.write("5")
            except OSError:
                pass
            self.before[p] = status_kib(p, "VmRSS")
        self.cpu0 = tree_cpu(self.pids)

    def cpu_s(self):
        """CPU seconds (user + system) the process tree used since the probe was made."""
        return round(tree_cpu(self.pids) - self.cpu0, 3)

    def growth_mib(self):
        g = 0
        for p in self.pids:
            try:
                g += status_kib(p, "VmHWM") - self.before[p]
            except OSError:  # the process is gone
                pass
        return round(g / MiB, 1)


def tree_cpu(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def rss_mib(pid):
    return sum(status_kib(p, "VmRSS") for p in proc_tree(pid)) / MiB


# ------------------------------------------------------------------------------------------------- files


def make_file(path, size):
    """A random file (ASCII header, then os.urandom) reused across runs when its size matches."""
    sidecar = path + ".sha256"
    if os.path.exists(path) and os.path.getsize(path) == size and os.path.exists(sidecar):
        return open(sidecar).read().strip()
    h = hashlib.sha256()
    with open(path, "wb") as f:
        head = b"twisted-uploads bench file\n"
        f.write(head)
        h.update(head)
        left = size - len(head)
        while left > 0:
            b = os.urandom(min(4 * MiB, left))
            f.write(b)
            h.update(b)
            left -= len(b)
    with open(sidecar, "w") as f:
        f.write(h.hexdigest())
    return h.hexdigest()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(4 * MiB), b""):
            h.update(b)
    return h.hexdigest()


def verify_stored(directory, size, digest):
    """The newest file of exactly `size` bytes under `directory` has SHA-256 `digest`."""
    found = []
    for dp, _, names in os.walk(directory):
        for n in names:
            p = os.path.join(dp, n)
            with contextlib.suppress(OSError):
                if os.path.getsize(p) == size:
                    found.append((os.path.getmtime(p), p))
    if not found:
        return False
    return sha256_file(max(found)[1]) == digest


def empty_dir(d):
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d, exist_ok=True)


# ------------------------------------------------------------------------------------------------ harness


class Bench:
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

    # -- bookkeeping

    def peer_status(self, part):
        try:
            return open(os.path.join(self.out, "status", part)).read().strip()
        except OSError:
            return "not set up (run bench/setup_peers.sh)"

    def add(self, row, group, seconds=None, nbytes=None, ok=True, verified=None, **extra):
        r = {"row": row, "group": group, "ok": ok, "verified": verified, "seconds": seconds, "bytes": nbytes,
             "mib_s": round(nbytes / MiB / seconds, 1) if ok and seconds else None, **extra,
             "loadavg": loadavg()}
        for k in ("server_cpu_s", "client_cpu_s"):  # CPU per GiB: what a row costs, whatever else runs
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

    # -- ours: server and tokens

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
        port = free_port()
        self.upload_dir = os.path.join(self.out, "ours-uploads")
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

    def cli_upload(self, url, token, path, window=None):
        argv = [self.py, "-m", "twisted_uploads", "upload", path, "--url", url, "--token", token, "--slot", SLOT,
                "--json", "--no-progress"]
        if window:
            argv += ["--window", str(window)]
        t0 = time.perf_counter()
        # a generous bound (>= 5 MiB/s) so a stalled client fails its row instead of hanging the run
        try:
            out = run(argv, what="twisted_uploads upload", timeout=60 + os.path.getsize(path) / MiB / 5)
        except subprocess.TimeoutExpired as e:
            raise RuntimeError(f"the upload CLI stalled (no completion after {e.timeout:.0f} s)") from None
        wall = time.perf_counter() - t0
        res = last_json(out)
        return res, wall

    # -- rows

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

    def row_raw(self):
        dest = os.path.join(self.out, "raw-store")
        target = os.path.join(dest, "raw.bin")

        def sample():
            empty_dir(dest)
            port = free_port()
            with Server("raw-server", [self.py, os.path.join(PEERS, "raw_tcp_disk.py"), "server", str(port), target],
                        self.out, ready_line="listening") as srv:
                res = last_json(run([self.py, os.path.join(PEERS, "raw_tcp_disk.py"), "client", str(port),
                                     self.file], what="raw client"))
                srv.proc.wait(30)
            return {"seconds": res["seconds"], "nbytes": res["bytes"], "ok": res["bytes"] == self.size,
                    "verified": verify_stored(dest, self.size, self.sha)}

        self.sampled("raw-tcp-disk (limit)", "raw", self.a.runs, sample,
                     note="Python sockets, 1 MiB sendall / recv_into, no fsync; client CPU = both ends")
        empty_dir(dest)

    def row_ours(self):
        a = self.a
        for window in a.windows:
            with self.ours_server(f"ours-w{window}", window=window) as srv:
                for chunk in a.chunks:
                    row = f"ours cli chunk={fmt_size(chunk)} window={window}"

                    def sample():
                        empty_dir_contents(self.upload_dir)
                        tok = self.tokens(1, chunk, self.size)[0]
                        probe = RSSProbe(srv.proc.pid)
                        res, wall = self.cli_upload(srv.url, tok, self.file, window)
                        ok = res.get("status") == "complete" and res.get("size", self.size) == self.size
                        verified = res.get("sha256") == self.sha and verify_stored(self.upload_dir, self.size,
                                                                                   self.sha)
                        return {"seconds": res.get("seconds") or wall, "nbytes": self.size, "ok": ok,
                                "verified": verified, "wall_seconds": round(wall, 3),
                                "rss_growth_mib": probe.growth_mib(), "server_cpu_s": probe.cpu_s(), "error": None if ok else json.dumps(res)[:300]}

                    self.guarded(row, "ours", lambda: self.sampled(row, "ours", a.matrix_runs, sample, chunk=chunk,
                                                                   window=window, client="cli", matrix=True))
                    empty_dir_contents(self.upload_dir)
        # the best cell of the matrix again, with as many samples as the other headline rows: the maximum of many
        # single samples is biased upwards, so the goals use this median instead
        cells = [r for r in self.rows if r["group"] == "ours" and r.get("client") == "cli" and r.get("mib_s")
                 and r.get("verified") is not False and not r.get("headline")]
        if cells and a.runs > 1:
            best = max(cells, key=lambda r: r["mib_s"])
            chunk, window = best["chunk"], best["window"]
            if (chunk, window) != (64 * KiB, 16):
                with self.ours_server("ours-best", window=window) as srv:
                    def sample():
                        empty_dir_contents(self.upload_dir)
                        tok = self.tokens(1, chunk, self.size)[0]
                        probe = RSSProbe(srv.proc.pid)
                        res, wall = self.cli_upload(srv.url, tok, self.file, window)
                        ok = res.get("status") == "complete"
                        return {"seconds": res.get("seconds") or wall, "nbytes": self.size, "ok": ok,
                                "verified": res.get("sha256") == self.sha and verify_stored(self.upload_dir, self.size,
                                                                                            self.sha),
                                "rss_growth_mib": probe.growth_mib(), "server_cpu_s": probe.cpu_s(), "error": None if ok else json.dumps(res)[:300]}

                    self.guarded("ours best", "ours", lambda: self.sampled(
                        f"ours cli best: chunk={fmt_size(chunk)} window={window}", "ours", a.runs, sample,
                        chunk=chunk, window=window, client="cli", headline=True, matrix=False))
                    empty_dir_contents(self.upload_dir)
        # the server's defaults (no --window; 64 KiB chunks, the slot default): the product CLI, and the bench
        # protocol client (ack latency; the same client the concurrency row uses)
        with self.ours_server("ours-default") as srv:
            def cli_sample():
                empty_dir_contents(self.upload_dir)
                tok = self.tokens(1, 64 * KiB, self.size)[0]
                probe = RSSProbe(srv.proc.pid)
                res, wall = self.cli_upload(srv.url, tok, self.file)
                ok = res.get("status") == "complete"
                return {"seconds": res.get("seconds") or wall, "nbytes": self.size, "ok": ok,
                        "verified": res.get("sha256") == self.sha and verify_stored(self.upload_dir, self.size,
                                                                                    self.sha),
                        "rss_growth_mib": probe.growth_mib(), "server_cpu_s": probe.cpu_s(),
                        "error": None if ok else json.dumps(res)[:300]}

            def ws_sample():
                empty_dir_contents(self.upload_dir)
                tok = self.tokens(1, 64 * KiB, self.size)[0]
                probe = RSSProbe(srv.proc.pid)
                res = last_json(run([self.bpy, os.path.join(HERE, "wsclient.py"), "single", "--url", srv.url,
                                     "--token", tok, "--slot", SLOT, "--file", self.file], what="wsclient single"))
                return {"seconds": res["seconds"], "nbytes": self.size, "ok": res["status"] == "complete",
                        "verified": res["sha256_ok"] and verify_stored(self.upload_dir, self.size, self.sha),
                        "rss_growth_mib": probe.growth_mib(), "server_cpu_s": probe.cpu_s(),
                        "ack_p50_ms": res["p50_ms"], "ack_p99_ms": res["p99_ms"],
                        "window": res["window"] // (64 * KiB), "window_bytes": res["window"]}

            self.guarded("ours default", "ours", lambda: self.sampled(
                "ours cli chunk=64K, server default window", "ours", a.runs, cli_sample, chunk=64 * KiB,
                client="cli", headline=True, default_window=True))
            self.guarded("ours wsclient", "ours", lambda: self.sampled(
                "ours wsclient chunk=64K, server default window", "ours", a.runs, ws_sample, chunk=64 * KiB,
                client="wsclient", headline=True, default_window=True))
            empty_dir_contents(self.upload_dir)
            if self.a.profile:
                self.profile(srv)

    def profile(self, srv):
        """py-spy on the server and on the product CLI during one more upload (64 KiB chunks, the server's default
        window): the hot path's top functions by self time, for both ends."""
        spy = os.path.join(self.out, "venv", "bin", "py-spy")
        if not os.path.exists(spy):
            self.sections["profile"] = {"skipped": "py-spy not installed"}
            return
        empty_dir_contents(self.upload_dir)
        raw_srv = os.path.join(self.out, "profile-server.txt")
        raw_cli = os.path.join(self.out, "profile-client.txt")
        tok = self.tokens(1, 64 * KiB, self.size)[0]
        p = subprocess.Popen([spy, "record", "--pid", str(srv.proc.pid), "--rate", "200", "--format", "raw",
                              "--output", raw_srv, "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.0)
        try:
            out = run([spy, "record", "--rate", "200", "--format", "raw", "--output", raw_cli, "--nonblocking", "--",
                       self.py, "-m", "twisted_uploads", "upload", self.file, "--url", srv.url, "--token", tok,
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
        self.sections["profile"] = prof
        empty_dir_contents(self.upload_dir)

    def curl_rows(self, row, group, port, store, pid):
        def sample():
            empty_dir(store)
            probe = RSSProbe(pid)
            out = run(["curl", "-s", "-o", "/dev/null", "-H", "Expect:", "-w", "%{time_total} %{http_code}",
                       "-F", f"file=@{self.file};filename=bench.bin", f"http://127.0.0.1:{port}/up"],
                      what="curl", timeout=1800)
            seconds, code = out.split()
            ok = code == "200"
            return {"seconds": float(seconds), "nbytes": self.size, "ok": ok,
                    "verified": verify_stored(store, self.size, self.sha), "rss_growth_mib": probe.growth_mib(), "server_cpu_s": probe.cpu_s(),
                    "error": None if ok else f"HTTP {code}"}

        self.sampled(row, group, self.a.runs, sample, client="curl -F (multipart)")
        empty_dir(store)

    def row_gunicorn(self):
        if not self.need("venv", "gunicorn django multipart (curl)", "gunicorn"):
            return
        store = os.path.join(self.out, "django-store")
        empty_dir(store)
        port = free_port()
        argv = [self.bpy, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", "1", "--timeout", "1800",
                "--chdir", PEERS, "django_multipart_app:application"]
        with Server("gunicorn", argv, self.out, env={"BENCH_STORE": store}, port=port) as srv:
            http_ready(port)
            self.curl_rows("gunicorn django multipart (curl)", "gunicorn", port, store, srv.proc.pid)

    def row_twisted_wsgi(self):
        store = os.path.join(self.out, "django-store")
        empty_dir(store)
        port = free_port()
        with Server("twisted-wsgi", [self.py, os.path.join(PEERS, "twisted_wsgi.py"), str(port)], self.out,
                    env={"BENCH_STORE": store}, port=port) as srv:
            http_ready(port)
            self.curl_rows("twisted-wsgi django multipart (curl)", "twisted-wsgi", port, store, srv.proc.pid)

    def row_tus(self):
        if not self.need("node", "tus-one-patch", "tus"):
            self.need("node", "tus-64k-patches", "tus")
            return
        node_dir = os.path.join(self.out, "node")
        for f in ("tus_server.mjs", "tus_client.mjs"):
            shutil.copy(os.path.join(PEERS, f), node_dir)
        store = os.path.join(self.out, "tus-store")
        for row, chunk in (("tus-one-patch", None), ("tus-64k-patches", 64 * KiB)):
            empty_dir(store)
            port = free_port()
            try:
                with Server(row, ["node", "tus_server.mjs", str(port), store], self.out, cwd=node_dir,
                            port=port) as srv:
                    def sample():
                        empty_dir_contents(store)
                        probe = RSSProbe(srv.proc.pid)
                        argv = ["node", "tus_client.mjs", str(port), self.file] + ([str(chunk)] if chunk else [])
                        res = last_json(run(argv, cwd=node_dir, what="tus-js-client"))
                        return {"seconds": res["seconds"], "nbytes": res["bytes"], "ok": res["bytes"] == self.size,
                                "verified": verify_stored(store, self.size, self.sha),
                                "rss_growth_mib": probe.growth_mib(), "server_cpu_s": probe.cpu_s()}

                    self.sampled(row, "tus", self.a.runs, sample, client="tus-js-client",
                                 note="one PATCH" if not chunk else "64 KiB PATCHes")
            except Exception as e:
                self.fail(row, "tus", f"{type(e).__name__}: {e}")
        empty_dir(store)

    def row_djust(self):
        if not self.need("djust", "djust", "djust"):
            return
        proj = os.path.join(PEERS, "djust_project")
        tmp = os.path.join(self.out, "djust-tmp")
        ver = run([self.dpy, "-c", "import importlib.metadata as m; print(m.version('djust'))"]).strip()
        for row, rate in (("djust", "1000000"), ("djust-default-limit", "default")):
            if row == "djust-default-limit" and self.a.smoke:
                continue
            empty_dir(tmp)
            port = free_port()
            env = {"TMPDIR": tmp, "DJANGO_SETTINGS_MODULE": "peerproj.settings", "DJUST_PEER_UPLOAD_RATE": rate,
                   "DJUST_PEER_DB": os.path.join(self.out, "djust-peer.sqlite3"),
                   "DJUST_PEER_MAX_FILE_SIZE": str(self.size * 2)}
            argv = [self.dpy, "-m", "uvicorn", "peerproj.asgi:application", "--app-dir", proj, "--host", "127.0.0.1",
                    "--port", str(port), "--log-level", "warning"]

            def upload(srv):
                probe = RSSProbe(srv.proc.pid)
                res = last_json(run([self.dpy, os.path.join(PEERS, "djust_client.py"),
                                     "--url", f"ws://127.0.0.1:{port}/ws/live/",
                                     "--origin", f"http://127.0.0.1:{port}", "--file", self.file,
                                     "--tmpdir", tmp, "--sha256", self.sha,
                                     "--timeout", "120" if rate == "default" else "1800"], what="djust client"))
                res["rss_growth_mib"] = probe.growth_mib()
                res["server_cpu_s"] = probe.cpu_s()
                time.sleep(1.0)  # djust cleans up after the socket closes
                return res

            try:
                with Server(row, argv, self.out, env=env, cwd=self.out, port=port) as srv:
                    if row == "djust":
                        def sample():
                            res = upload(srv)
                            return {"seconds": res["seconds"], "nbytes": res["bytes"], "ok": res["ok"],
                                    "verified": res["verified"] if res["ok"] else None,
                                    "rss_growth_mib": res["rss_growth_mib"], "server_cpu_s": res["server_cpu_s"],
                                    "error": None if res["ok"] else json.dumps(res["result"])}

                        self.sampled(row, "djust", self.a.runs, sample, version=ver, client="websockets (djust protocol)",
                                     note="upload rate limit raised")
                    else:
                        # djust as shipped: its upload-frame rate limit (200 frames/s) ends an unpaced upload
                        res = upload(srv)
                        sent = res["chunks_sent"] * 63 * KiB
                        self.rows.append({"row": row, "group": "djust-default", "ok": res["ok"],
                                          "expected_failure": True, "version": ver, "result": res["result"],
                                          "bytes_sent": sent})
                        log(f"  {row:48s} {'complete' if res['ok'] else 'refused'}: {json.dumps(res['result'])[:120]}"
                            f" after {sent / MiB:.0f} MiB (djust's shipped upload rate limit)")
            except Exception as e:
                self.fail(row, "djust", f"{type(e).__name__}: {e}")
        empty_dir(tmp)

    def row_chromium(self):
        js = os.path.join(ROOT, "static", "uploads.js")
        if not os.path.exists(js):
            self.skip("chromium -> ours", "chromium", "static/uploads.js does not exist")
            return
        chrome = os.environ.get("TWISTED_UPLOADS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
        if not os.access(chrome, os.X_OK):
            self.skip("chromium -> ours", "chromium", f"no Chromium at {chrome} (apt-get install chromium)")
            return
        try:
            run([self.py, "-c", "import playwright.sync_api"], what="import playwright")
        except Exception:
            self.skip("chromium -> ours", "chromium", "python package playwright not installed (pip install -e .[test])")
            return
        page_port = free_port()
        with self.ours_server("ours-chromium", extra=["--allowed-origin", f"http://127.0.0.1:{page_port}"]) as srv:
            def sample():
                empty_dir_contents(self.upload_dir)
                tok = self.tokens(1, 64 * KiB, self.size)[0]
                probe = RSSProbe(srv.proc.pid)
                res = last_json(run([self.py, os.path.join(HERE, "chromium.py"), "--url", srv.url, "--token", tok,
                                     "--slot", SLOT, "--file", self.file, "--chromium", chrome,
                                     "--static", os.path.dirname(js), "--page-port", str(page_port),
                                     "--chunk-size", str(64 * KiB)], what="chromium", timeout=1800))
                ok = res["status"] == "complete"
                return {"seconds": res["seconds"], "nbytes": self.size, "ok": ok,
                        "verified": verify_stored(self.upload_dir, self.size, self.sha) if ok else None,
                        "rss_growth_mib": probe.growth_mib(), "server_cpu_s": probe.cpu_s(), "error": None if ok else res.get("error")}

            self.sampled("chromium -> ours chunk=64K, server default window", "chromium", self.a.runs, sample,
                         chunk=64 * KiB, client="Chromium + static/uploads.js", default_window=True)
            empty_dir_contents(self.upload_dir)

    def row_memory(self):
        repeat = 2
        with self.ours_server("ours-memory") as srv:
            tok = self.tokens(1, 64 * KiB, self.size * repeat)[0]
            time.sleep(0.5)
            probe = RSSProbe(srv.proc.pid)
            base = rss_mib(srv.proc.pid)
            res = last_json(run([self.bpy, os.path.join(HERE, "wsclient.py"), "single", "--url", srv.url,
                                 "--token", tok, "--slot", SLOT, "--file", self.file, "--repeat", str(repeat)],
                                what="wsclient single (memory)"))
            growth = probe.growth_mib()
            ok = res["status"] == "complete" and res["sha256_ok"]
            self.sections["memory_upload"] = {"bytes": self.size * repeat, "rss_before_mib": round(base, 1),
                                              "peak_rss_growth_mib": growth, "ok": ok,
                                              "mib_s": round(self.size * repeat / MiB / res["seconds"], 1)}
            log(f"  {'memory: upload ' + fmt_size(self.size * repeat):34s} peak RSS growth {growth} MiB"
                f" (from {base:.1f} MiB){'' if ok else '  FAILED'}")
            if not ok:
                self.errors.append(f"memory upload: {res}")
            empty_dir_contents(self.upload_dir)
        n = self.a.idle
        with self.ours_server("ours-idle") as srv:
            tok = self.tokens(1, 64 * KiB, 1 * MiB)[0]
            time.sleep(0.5)
            base = rss_mib(srv.proc.pid)
            p = subprocess.Popen([self.bpy, os.path.join(HERE, "wsclient.py"), "idle", "--url", srv.url,
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
            self.sections["memory_idle"] = {"connections": n, "rss_before_mib": round(base, 1),
                                            "rss_after_mib": round(after, 1), "kib_per_connection": round(per, 1)}
            log(f"  {'memory: ' + str(n) + ' idle connections':34s} {per:.1f} KiB per connection"
                f" ({base:.1f} -> {after:.1f} MiB)")

    def row_concurrency(self):
        a = self.a
        n, procs, each = a.concurrent, a.concurrent_procs, a.concurrent_mib * MiB
        with self.ours_server("ours-concurrency") as srv:
            tokfile = os.path.join(self.out, "tokens-concurrency.txt")
            with open(tokfile, "w") as f:
                f.write("\n".join(self.tokens(n, 64 * KiB, each)))
            probe = RSSProbe(srv.proc.pid)
            per = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
            ps, first = [], 0
            for k in per:
                ps.append(subprocess.Popen([self.bpy, os.path.join(HERE, "wsclient.py"), "concurrent", "--url", srv.url,
                                            "--token-file", tokfile, "--slot", SLOT, "--file", self.file,
                                            "--count", str(k), "--size", str(each), "--first", str(first)],
                                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
                first += k
            for p in ps:
                line = p.stdout.readline()
                if "READY" not in line:
                    raise RuntimeError(f"concurrency client not ready: {line!r}")
            for p in ps:  # go
                p.stdin.write("go\n")
                p.stdin.flush()
            uploads = []
            for p in ps:
                out, _ = p.communicate(timeout=1800)
                uploads += last_json(out)["uploads"]
            growth = probe.growth_mib()
        complete = [u for u in uploads if u["status"] == "complete"]
        sha_ok = [u for u in complete if u["sha256_ok"]]
        t0, t1 = min(u["start"] for u in uploads), max(u["end"] for u in uploads)
        lat = [x for u in uploads for x in u["latencies"]]
        agg = len(complete) * each / MiB / (t1 - t0)
        durations = sorted(u["end"] - u["start"] for u in uploads)
        stored_ok = sum(1 for _ in iter_files_of_size(self.upload_dir, each))
        sec = {"uploads": n, "client_processes": procs, "bytes_each": each, "complete": len(complete),
               "sha256_match": len(sha_ok), "stored_files": stored_ok, "seconds": round(t1 - t0, 3),
               "aggregate_mib_s": round(agg, 1), "ack_p50_ms": ms(pct(lat, 50)), "ack_p99_ms": ms(pct(lat, 99)),
               "acks": len(lat), "upload_seconds_p50": round(pct(durations, 50), 3),
               "upload_seconds_max": round(durations[-1], 3), "rss_growth_mib": growth,
               "failures": [u["error"] for u in uploads if u["status"] != "complete"][:5]}
        self.sections["concurrency"] = sec
        log(f"  {f'concurrency: {n} x {fmt_size(each)}':34s} {agg:8.1f} MiB/s aggregate, {len(complete)}/{n} complete,"
            f" {len(sha_ok)} SHA-256 match, ack p50 {sec['ack_p50_ms']} ms p99 {sec['ack_p99_ms']} ms")
        if len(sha_ok) != n:
            self.errors.append(f"concurrency: {n - len(sha_ok)} uploads incomplete or mismatched: {sec['failures']}")
        empty_dir_contents(self.upload_dir)

    def row_small(self):
        size = 10 * KiB
        runs = self.a.small_runs
        with self.ours_server("ours-small") as srv:
            tokfile = os.path.join(self.out, "tokens-small.txt")
            with open(tokfile, "w") as f:
                f.write("\n".join(self.tokens(2 * runs, 64 * KiB, size)))
            res = last_json(run([self.bpy, os.path.join(HERE, "wsclient.py"), "small", "--url", srv.url,
                                 "--token-file", tokfile, "--slot", SLOT, "--size", str(size), "--runs", str(runs)],
                                what="wsclient small"))
            small = os.path.join(self.out, "small-10KiB.bin")
            make_file(small, size)
            tok = self.tokens(1, 64 * KiB, size)[0]
            cli, wall = self.cli_upload(srv.url, tok, small)
            res["cli"] = {"status": cli.get("status"), "seconds": cli.get("seconds"),
                          "wall_seconds_with_interpreter_start": round(wall, 3)}
        self.sections["small"] = res
        for mode in ("sequential", "pipelined"):
            m = res[mode]
            log(f"  {'small 10 KiB, ' + mode:34s} "
                + (f"{m['round_trips_after_open']} round trips after open (+1 handshake), "
                   f"{m['ms_open_to_complete_p50']} ms from socket open (p50 of {m['runs']})"
                   if not m["error"] else f"not supported: {m['error']}"))
        log(f"  {'small 10 KiB, product CLI':34s} {cli.get('seconds')} s in-client, {wall:.3f} s with interpreter start")
        if res["sequential"]["error"]:
            self.errors.append(f"small: {res['sequential']['error']}")

    # -- plumbing

    def need(self, part, row, group, log_it=True):
        st = self.peer_status(part)
        if st == "ok":
            return True
        if log_it:
            self.skip(row, group, f"peer not installed ({part}: {st})")
        return False

    def main(self):
        a = self.a
        if not a.no_setup:
            parts = []
            if want(a, "gunicorn") or want(a, "concurrency") or want(a, "memory") or want(a, "small") \
                    or want(a, "ours") or a.plot:
                parts.append("venv")
            if want(a, "djust"):
                parts.append("djust")
            if want(a, "tus"):
                parts.append("node")
            if parts:
                subprocess.run(["bash", os.path.join(HERE, "setup_peers.sh"), *parts],
                               env=dict(os.environ, PYTHON=os.environ.get("BENCH_BASE_PYTHON", "python3")))
        log(f"bench: {'SMOKE ' if a.smoke else ''}file {fmt_size(self.size)} in {self.out}")
        self.sha = make_file(self.file, self.size)
        t_start = time.time()
        ours = self.ours_available()
        order = [("raw", self.row_raw), ("ours", self.row_ours), ("gunicorn", self.row_gunicorn),
                 ("twisted-wsgi", self.row_twisted_wsgi), ("tus", self.row_tus), ("djust", self.row_djust),
                 ("chromium", self.row_chromium), ("memory", self.row_memory),
                 ("concurrency", self.row_concurrency), ("small", self.row_small)]
        for group, fn in order:
            if not want(a, group):
                continue
            if group in ("ours", "chromium", "memory", "concurrency", "small") and not ours:
                self.fail(group, group, f"twisted_uploads server/client not importable with {self.py} "
                                        f"(run the harness with the project's Python): {self.ours_missing}")
                continue
            if group in ("ours", "memory", "concurrency", "small") and self.peer_status("venv") != "ok" \
                    and group != "ours":
                self.fail(group, group, f"bench venv missing: {self.peer_status('venv')}")
                continue
            log(f"[{group}]")
            if group in ("memory", "concurrency", "small") and a.quiet < 1:
                self.sections.setdefault("cpu_busy_before", {})[group] = self.quiet()
            self.guarded(group, group, fn)
        result = self.summarize(time.time() - t_start)
        if a.json:
            os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
            with open(a.json, "w") as f:
                json.dump(result, f, indent=2)
            log(f"wrote {a.json}")
        if a.plot and os.path.exists(self.bpy):
            subprocess.run([self.bpy, os.path.join(HERE, "plot.py"), a.json, a.plot], check=False)
        if self.errors:
            log("ERRORS:\n  " + "\n  ".join(self.errors))
            return 1
        return 0

    def summarize(self, elapsed):
        ok = [r for r in self.rows if r.get("ok") and r.get("mib_s") and r.get("verified") is not False]
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
        for r in self.rows:
            if r.get("mib_s"):
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
        mem = self.sections.get("memory_upload")
        if mem:
            goals["rss_growth_mib_2x_file"] = {"value": mem["peak_rss_growth_mib"], "goal_max": 32,
                                               "bytes": mem["bytes"]}
        conc = self.sections.get("concurrency")
        # the single stream to compare with: the same client (wsclient) and server settings as the concurrency row
        single = [r for r in headline if r.get("client") == "wsclient" and r.get("default_window")]
        if conc and single:
            s = max(r["mib_s"] for r in single)
            goals["concurrency_aggregate_vs_single"] = {
                "value": round(conc["aggregate_mib_s"] / s, 2), "goal": 0.7, "single_mib_s": s,
                "all_complete": conc["sha256_match"] == conc["uploads"]}
        small = self.sections.get("small")
        if small:
            trips = small["pipelined"]["round_trips_after_open"] or small["sequential"]["round_trips_after_open"]
            goals["small_round_trips"] = {"value": min(trips) if trips else None, "goal_max": 2}
        for k, g in goals.items():
            v = g["value"]
            met = (v <= g["goal_max"]) if "goal_max" in g else (v >= g["goal"])
            g["met"] = bool(met) if v is not None else False
            log(f"goal {k}: {v} ({'met' if g['met'] else 'NOT met'}; goal "
                f"{'<= ' + str(g['goal_max']) if 'goal_max' in g else '>= ' + str(g['goal'])})")
        meta = machine_info(self, elapsed)
        meta["quiet_wait_seconds"] = round(self.quiet_spent, 1)
        return {"meta": meta, "limit_mib_s": limit,
                "fastest_peer": fastest and {"row": fastest["row"], "mib_s": fastest["mib_s"]},
                "best_ours": best and {"row": best["row"], "mib_s": best["mib_s"]},
                "rows": self.rows, **self.sections, "goals": goals, "errors": self.errors}


# ------------------------------------------------------------------------------------------------ helpers


def loadavg():
    """The 1-minute load average when a row ends: a busy machine (other jobs) shows here."""
    try:
        return float(open("/proc/loadavg").read().split()[0])
    except OSError:
        return None


def cpu_busy(interval=0.5):
    """Fraction of all CPUs busy over `interval` seconds (from /proc/stat)."""
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]  # total, idle + iowait
    t0, i0 = snap()
    time.sleep(interval)
    t1, i1 = snap()
    return 1 - (i1 - i0) / max(1, t1 - t0)


def wait_quiet(threshold, max_wait):
    """Wait (up to max_wait s) until the machine is quiet (CPU busy < threshold) before a timed sample: other
    jobs on a shared 2-core machine would otherwise be measured too. Returns the last busy fraction seen."""
    deadline = time.monotonic() + max_wait
    busy = cpu_busy()
    while busy >= threshold and time.monotonic() < deadline:
        busy = cpu_busy(1.0)
    return round(busy, 2)


def want(a, group):
    return not a.only or group in a.only


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


def empty_dir_contents(d):
    if not os.path.isdir(d):
        return
    for name in os.listdir(d):
        p = os.path.join(d, name)
        if os.path.isdir(p):
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(p)


def iter_files_of_size(d, size):
    for dp, _, names in os.walk(d):
        for n in names:
            p = os.path.join(dp, n)
            with contextlib.suppress(OSError):
                if os.path.getsize(p) == size:
                    yield p


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
    versions["curl"] = sh("curl --version | head -1")
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "smoke": b.a.smoke, "file_bytes": b.size, "elapsed_seconds": round(elapsed, 1),
            "git": sh(f"git -C {ROOT} rev-parse --short HEAD"), "nproc": os.cpu_count(),
            "cpu": cpu.group(1) if cpu else platform.processor(), "kernel": platform.release(),
            "memory": sh("free -h | sed -n 2p"), "versions": versions,
            "argv": sys.argv[1:]}


def parse_sizes(s):
    out = []
    for part in s.split(","):
        part = part.strip().upper()
        mult = {"K": KiB, "M": MiB}.get(part[-1:], 1)
        out.append(int(part[:-1] if mult != 1 else part) * mult)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="small sizes for CI (8 MiB, 10 concurrent uploads)")
    ap.add_argument("--size-mib", type=int, help="test file size (default 1024, smoke 8)")
    ap.add_argument("--only", help="comma-separated groups: " + ",".join(GROUPS))
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
    ap.add_argument("--profile", action="store_true", help="py-spy the server during one more upload")
    ap.add_argument("--json", help="result file (default OUT/results.json, smoke OUT/smoke.json)")
    ap.add_argument("--plot", help="write the throughput PNG here (needs matplotlib in the bench venv)")
    ap.add_argument("--out", default=os.path.join(HERE, "out"), help="work dir (default bench/out)")
    ap.add_argument("--no-setup", action="store_true", help="do not run setup_peers.sh")
    a = ap.parse_args()
    s = a.smoke
    a.size_mib = a.size_mib or (8 if s else 1024)
    a.only = set(a.only.split(",")) if a.only else None
    if a.only and a.only - set(GROUPS):
        ap.error(f"unknown group(s) {a.only - set(GROUPS)}; choose from {GROUPS}")
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
    a.json = a.json or os.path.join(a.out, "smoke.json" if s else "results.json")
    sys.exit(Bench(a).main())


if __name__ == "__main__":
    main()
