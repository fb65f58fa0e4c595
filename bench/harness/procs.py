"""Processes and ports: start a server and wait until it answers, run a client to completion, stop by pid."""
import json
import os
import signal
import socket
import subprocess
import threading
import time

MiB = 1 << 20
KiB = 1 << 10


def log(*a):
    print(*a, flush=True)


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
                box["ok"] = line
                return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t.join(timeout)
    if not box.get("ok"):
        raise RuntimeError(f"{what} did not print {text!r} within {timeout:.0f} s")
    return box["ok"]


class Server:
    """A server subprocess with a log file; stopped (SIGTERM, then SIGKILL) on exit."""

    def __init__(self, name, argv, out, env=None, cwd=None, port=None, ready_line=None, timeout=60.0):
        self.name, self.argv, self.port, self.ready_line, self.timeout = name, argv, port, ready_line, timeout
        self.log_path = os.path.join(out, "logs", f"{name}.log")
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        self.env = dict(os.environ, **(env or {}))
        self.cwd = cwd
        self.proc = None
        self.ready = None  # the ready line, when there is one

    def __enter__(self):
        self.logf = open(self.log_path, "w")
        if self.ready_line:
            self.proc = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdout=subprocess.PIPE,
                                         stderr=self.logf, text=True)
            try:
                self.ready = wait_line(self.proc, self.ready_line, self.timeout, self.name)
            except Exception:
                self.stop()
                raise RuntimeError(f"{self.name}: did not start; log {self.log_path}:\n{tail(self.log_path)}")
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
