"""Row group `chromium`: headless Chromium (Playwright, Debian's Chromium) in one run: our browser client
(static/uploads.js) -> our server; a bare WebSocket send loop in the same browser -> a bare Autobahn sink; and
Chromium's own fetch() multipart POST -> a plain HTTP sink. Each row reports MiB/s and the browser's CPU seconds
per GiB (its processes' /proc/PID/stat, read by bench/chromium.py around the timed part)."""
import os
import shutil

from harness.bench import HERE, PEERS, ROOT, SLOT
from harness.files import empty_dir, empty_dir_contents, verify_stored
from harness.probes import RSSProbe
from harness.procs import KiB, Server, free_port, last_json, run

CHUNK = 64 * KiB
#: Chunk sizes of our client's rows: the seed's default, and the larger chunk the seed suggests for big files.
OURS_CHUNKS = (64 * KiB, 1024 * KiB)


def chromium_binary(b):
    """The Chromium binary and Playwright, or None after skipping the rows with the reason."""
    chrome = os.environ.get("TWISTED_UPLOADS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    why = None
    if not os.access(chrome, os.X_OK):
        why = f"no Chromium at {chrome} (apt-get install chromium)"
    else:
        try:
            run([b.py, "-c", "import playwright.sync_api"], what="import playwright")
        except Exception:
            why = "python package playwright not installed (pip install -e .[test])"
    if why:
        for row in ("chromium -> ours", "chromium bare websocket loop", "chromium fetch multipart POST"):
            b.skip(row, "chromium", why)
        return None
    return chrome


def browser(b, chrome, mode, url, page_port, token=None, chunk=CHUNK, sink=None):
    argv = [b.py, os.path.join(HERE, "chromium.py"), "--mode", mode, "--url", url, "--file", b.file,
            "--chromium", chrome, "--static", os.path.join(ROOT, "static"), "--page-port", str(page_port),
            "--chunk-size", str(chunk), "--slot", SLOT]
    if token:
        argv += ["--token", token]
    if sink:
        argv += ["--sink", sink]
    return last_json(run(argv, what=f"chromium ({mode})", timeout=3600))


def result(res, ok, verified, probe=None):
    s = {"seconds": res["seconds"], "nbytes": res["bytes"], "ok": ok, "verified": verified if ok else None,
         "browser_cpu_s": res.get("browser_cpu_s"), "error": None if ok else res.get("error")}
    if probe is not None:
        s["rss_growth_mib"], s["server_cpu_s"] = probe.growth_mib(), probe.cpu_s()
    return s


def run_chromium(b):
    if not os.path.exists(os.path.join(ROOT, "static", "uploads.js")):
        b.skip("chromium -> ours", "chromium", "static/uploads.js does not exist")
        return
    chrome = chromium_binary(b)
    if chrome is None:
        return
    page_port = free_port()
    with b.ours_server("ours-chromium", extra=["--allowed-origin", f"http://127.0.0.1:{page_port}"]) as srv:
        for chunk in OURS_CHUNKS:
            def ours(chunk=chunk):
                empty_dir_contents(b.upload_dir)
                tok = b.tokens(1, chunk, b.size)[0]
                probe = RSSProbe(srv.proc.pid)
                res = browser(b, chrome, "ours", srv.url, page_port, token=tok, chunk=chunk)
                ok = res["status"] == "complete"
                return result(res, ok, ok and verify_stored(b.upload_dir, b.size, b.sha), probe)

            label = f"{chunk // KiB}K" if chunk < 1024 * KiB else f"{chunk // (1024 * KiB)}M"
            b.guarded("chromium -> ours", "chromium", lambda ours=ours, label=label, chunk=chunk: b.sampled(
                f"chromium -> ours chunk={label}, server default window", "chromium", b.a.runs, ours, chunk=chunk,
                client="Chromium + static/uploads.js", default_window=True, browser="ours"))
            empty_dir_contents(b.upload_dir)

    sink_dir = os.path.join(b.out, "browser-sink")
    port = free_port()
    with Server("bare-autobahn-sink", [b.py, os.path.join(PEERS, "bare_autobahn_sink.py"), str(port),
                                       os.path.join(sink_dir, "ws.bin"), str(max(OURS_CHUNKS))],
                b.out, ready_line="listening") as srv:
        # The bare loop at each of our chunk sizes, so each of our rows has its like-for-like baseline.
        for chunk in OURS_CHUNKS:
            def bare(chunk=chunk):
                empty_dir(sink_dir)
                probe = RSSProbe(srv.proc.pid)
                res = browser(b, chrome, "ws", f"ws://127.0.0.1:{port}/", page_port, chunk=chunk)
                ok = res["status"] == "complete"
                return result(res, ok, ok and verify_stored(sink_dir, b.size, b.sha), probe)

            label = f"{chunk // KiB} KiB" if chunk < 1024 * KiB else f"{chunk // (1024 * KiB)} MiB"
            b.guarded("chromium bare websocket loop", "chromium", lambda bare=bare, label=label, chunk=chunk: b.sampled(
                f"chromium bare websocket loop ({label} messages) -> autobahn sink", "chromium", b.a.runs, bare,
                chunk=chunk, client="Chromium WebSocket.send loop", browser="bare-ws"))

    def fetch():
        empty_dir(sink_dir)
        res = browser(b, chrome, "fetch", "/upload", page_port, sink=os.path.join(sink_dir, "post.bin"))
        ok = res["status"] == "complete"
        return result(res, ok, ok and verify_stored(sink_dir, b.size, b.sha))

    b.guarded("chromium fetch multipart POST", "chromium", lambda: b.sampled(
        "chromium fetch multipart POST -> plain HTTP sink", "chromium", b.a.runs, fetch,
        client="Chromium fetch(FormData)", browser="fetch"))
    empty_dir(sink_dir)
