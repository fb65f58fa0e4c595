"""The peers, started and driven the same way by every row group (loopback throughput, the WAN links).

Each server helper returns a :class:`harness.procs.Server` (a context manager) with ``.port``; each client helper
takes the port to connect to, so a WAN row passes its delay proxy's port instead of the server's.
"""
import json
import os
import shutil
import time

from harness.bench import PEERS
from harness.files import empty_dir
from harness.procs import KiB, Server, free_port, http_ready, last_json, run


# -- Django multipart (gunicorn, Twisted WSGI), sent by curl

def gunicorn_server(b, store):
    empty_dir(store)
    port = free_port()
    argv = [b.bpy, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", "1", "--timeout", "1800",
            "--chdir", PEERS, "django_multipart_app:application"]
    return Server("gunicorn", argv, b.out, env={"BENCH_STORE": store}, port=port)


def twisted_wsgi_server(b, store):
    empty_dir(store)
    port = free_port()
    return Server("twisted-wsgi", [b.py, os.path.join(PEERS, "twisted_wsgi.py"), str(port)], b.out,
                  env={"BENCH_STORE": store}, port=port)


def wait_django(srv):
    http_ready(srv.port)


def curl_multipart(b, port, path=None):
    """curl -F of the file to a Django multipart peer; returns (seconds, HTTP status)."""
    out = run(["curl", "-s", "-o", "/dev/null", "-H", "Expect:", "-w", "%{time_total} %{http_code}",
               "-F", f"file=@{path or b.file};filename=bench.bin", f"http://127.0.0.1:{port}/up"],
              what="curl", timeout=3600)
    seconds, code = out.split()
    return float(seconds), code


# -- tus: @tus/server + tus-js-client (Node)

def tus_dir(b):
    node_dir = os.path.join(b.out, "node")
    for f in ("tus_server.mjs", "tus_client.mjs"):
        shutil.copy(os.path.join(PEERS, f), node_dir)
    return node_dir


def tus_server(b, store, name="tus"):
    empty_dir(store)
    port = free_port()
    return Server(name, ["node", "tus_server.mjs", str(port), store], b.out, cwd=tus_dir(b), port=port)


def tus_upload(b, port, chunk=None, path=None):
    """tus-js-client uploading the file (one PATCH without `chunk`); returns its JSON {bytes, seconds}."""
    argv = ["node", "tus_client.mjs", str(port), path or b.file] + ([str(chunk)] if chunk else [])
    return last_json(run(argv, cwd=tus_dir(b), what="tus-js-client", timeout=3600))


# -- djust under uvicorn, through djust's own WebSocket upload protocol

DJUST_PROJECT = os.path.join(PEERS, "djust_project")


def djust_version(b):
    return run([b.dpy, "-c", "import importlib.metadata as m; print(m.version('djust'))"]).strip()


def djust_server(b, tmp, rate="1000000", name="djust", max_size=None):
    """djust's peer app; `rate` is its upload-frame rate limit ("default": as shipped)."""
    empty_dir(tmp)
    port = free_port()
    env = {"TMPDIR": tmp, "DJANGO_SETTINGS_MODULE": "peerproj.settings", "DJUST_PEER_UPLOAD_RATE": rate,
           "DJUST_PEER_DB": os.path.join(b.out, "djust-peer.sqlite3"),
           "DJUST_PEER_MAX_FILE_SIZE": str(max_size or b.size * 2)}
    argv = [b.dpy, "-m", "uvicorn", "peerproj.asgi:application", "--app-dir", DJUST_PROJECT, "--host", "127.0.0.1",
            "--port", str(port), "--log-level", "warning"]
    return Server(name, argv, b.out, env=env, cwd=b.out, port=port)


def djust_upload(b, port, tmp, timeout=3600, origin_port=None, path=None, sha=None):
    """djust_client.py uploading the file through `port`; returns its JSON (ok, seconds, bytes, verified, ...).

    The Origin names the server's own port (`origin_port`), which djust's ALLOWED_HOSTS check accepts."""
    res = last_json(run([b.dpy, os.path.join(PEERS, "djust_client.py"), "--url", f"ws://127.0.0.1:{port}/ws/live/",
                         "--origin", f"http://127.0.0.1:{origin_port or port}", "--file", path or b.file,
                         "--tmpdir", tmp, "--sha256", sha or b.sha, "--timeout", str(timeout)],
                        what="djust client", timeout=timeout + 60))
    time.sleep(1.0)  # djust cleans up after the socket closes
    return res


def djust_result_sample(res, probe=None):
    ok = res["ok"]
    s = {"seconds": res["seconds"], "nbytes": res["bytes"], "ok": ok, "verified": res["verified"] if ok else None,
         "error": None if ok else json.dumps(res["result"])}
    if probe is not None:
        s["rss_growth_mib"], s["server_cpu_s"] = probe.growth_mib(), probe.cpu_s()
    return s


DJUST_CHUNK = 63 * KiB
