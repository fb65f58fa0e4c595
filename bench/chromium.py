"""Bench rows in headless Chromium (Playwright, the system Chromium; no download). One upload per invocation:

  --mode ours   our browser client (static/uploads.js) on a one-field page: FILE is chosen in the `dj-upload`
                input as a user would; timed from the input's `change` event to `djust:upload:progress` with
                status `complete`. The server must allow the page's Origin (http://127.0.0.1:PAGE_PORT).
  --mode ws     a bare WebSocket send loop in the page: the chosen File sent as CHUNK-byte Blob slices to URL
                (a bare Autobahn sink), keeping at most 8 MiB in `bufferedAmount`, then a text "end"; timed from
                `change` to the sink's answer (its byte count).
  --mode fetch  Chromium's own fetch() of a FormData holding the File, POSTed to this page server, which
                streams the multipart body to SINK (part headers and closing boundary stripped); timed from
                `change` to the response.

Prints one JSON line {status, seconds, bytes, error, browser_cpu_s}: browser_cpu_s is the CPU time (user +
system, /proc/PID/stat) of the Chromium processes under this one, from just before the file is chosen to the end.

    python bench/chromium.py --mode ours --url ws://127.0.0.1:P/uploads/ws --token T --slot bench --file F \
        --chromium /usr/bin/chromium --static static/ --page-port Q --chunk-size 65536
"""
import argparse
import html
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness.probes import proc_cpu, proc_tree  # noqa: E402

INIT = """
window.__bench = {t0: null, t1: null, status: null, error: null};
document.addEventListener("change", () => {
  if (window.__bench.t0 === null) window.__bench.t0 = performance.now();
}, true);
window.__done = (status, error) => {
  if (window.__bench.status !== null) return;
  window.__bench.t1 = performance.now(); window.__bench.status = status; window.__bench.error = error || null;
};
window.addEventListener("djust:upload:progress", (e) => {
  if (e.detail && e.detail.status === "complete") window.__done("complete");
});
window.addEventListener("djust:upload:error", (e) => window.__done("error", JSON.stringify(e.detail)));
"""

# The bare loop: Blob slices straight into WebSocket.send, bounded by bufferedAmount (no protocol, no hashing).
WS_LOOP = """
const input = document.querySelector("input[type=file]");
input.addEventListener("change", () => {
  const file = input.files[0], chunk = CHUNK, high = 8 * 1024 * 1024;
  const ws = new WebSocket(URL_); ws.binaryType = "arraybuffer";
  let off = 0;
  ws.onerror = () => window.__done("error", "websocket error");
  ws.onmessage = (e) => window.__done(Number(e.data) === file.size ? "complete" : "error", "sink got " + e.data);
  const pump = () => {
    while (off < file.size && ws.bufferedAmount < high) { ws.send(file.slice(off, off + chunk)); off += chunk; }
    if (off < file.size) { setTimeout(pump, 0); } else { ws.send("end"); }
  };
  ws.onopen = pump;
});
"""

FETCH = """
const input = document.querySelector("input[type=file]");
input.addEventListener("change", async () => {
  const body = new FormData(); body.append("file", input.files[0], "bench.bin");
  try {
    const r = await fetch(URL_, {method: "POST", body});
    const n = Number(await r.text());
    window.__done(r.ok && n === input.files[0].size ? "complete" : "error", "HTTP " + r.status + " " + n);
  } catch (e) { window.__done("error", String(e)); }
});
"""


def chromium_cpu(root_pid):
    """{pid: CPU seconds} of the Chromium processes descending from root_pid (the Playwright driver's children)."""
    out = {}
    for pid in proc_tree(root_pid):
        try:
            comm = open(f"/proc/{pid}/comm").read().strip()
        except OSError:
            continue
        if "chrom" in comm:
            cpu = proc_cpu(pid)
            if cpu is not None:
                out[pid] = cpu
    return out


def receive_multipart(rfile, length, ctype, sink):
    """Stream one multipart/form-data body of `length` bytes with one file part into `sink`; returns its size."""
    boundary = ctype.split("boundary=", 1)[1].strip().strip('"').encode()
    trailer = len(b"\r\n--" + boundary + b"--\r\n")
    head = b""
    left = length
    with open(sink, "wb") as f:
        while b"\r\n\r\n" not in head:
            more = rfile.read(min(65536, left))
            if not more:
                raise ValueError("body ended inside the part headers")
            left -= len(more)
            head += more
        f.write(head.split(b"\r\n\r\n", 1)[1])
        while left:
            block = rfile.read(min(1 << 20, left))
            if not block:
                raise ValueError("body shorter than Content-Length")
            f.write(block)
            left -= len(block)
        size = f.tell() - trailer
        f.truncate(size)
    return size


def main():
    ap = argparse.ArgumentParser()
    for k in ("--url", "--file", "--chromium", "--static"):
        ap.add_argument(k, required=True)
    ap.add_argument("--mode", choices=["ours", "ws", "fetch"], default="ours")
    ap.add_argument("--token")
    ap.add_argument("--sink", help="fetch mode: where the POSTed file goes")
    ap.add_argument("--slot", default="bench")
    ap.add_argument("--page-port", type=int, required=True)
    ap.add_argument("--chunk-size", type=int, default=65536)
    ap.add_argument("--timeout", type=float, default=1800)
    a = ap.parse_args()
    size = os.path.getsize(a.file)
    if a.mode == "ours":
        cfg = {"url": a.url, "token": a.token,
               "slots": {a.slot: {"accept": "", "max_entries": 1, "max_file_size": size, "chunk_size": a.chunk_size,
                                  "auto_upload": True}}}
        body = (f"<script src=\"/uploads.js\" defer></script></head><body>"
                f"<div data-dj-view=\"bench\" data-dj-uploads=\"{html.escape(json.dumps(cfg), quote=True)}\">"
                f"<input type=file dj-upload=\"{a.slot}\"></div>")
        ready = "() => !!window.djUploads"
    else:
        script = (WS_LOOP if a.mode == "ws" else FETCH).replace("CHUNK", str(a.chunk_size)) \
            .replace("URL_", json.dumps(a.url))
        body = f"</head><body><input type=file><script>{script}</script>"
        ready = "() => true"
    page_html = f"<!doctype html><html><head><meta charset=utf-8><title>bench</title>{body}</body></html>".encode()
    js = open(os.path.join(a.static, "uploads.js"), "rb").read() if a.mode == "ours" else b""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body, ctype = (js, "text/javascript") if self.path.startswith("/uploads.js") else (page_html, "text/html")
            self.reply(200, body, ctype)

        def do_POST(self):
            n = receive_multipart(self.rfile, int(self.headers["Content-Length"]), self.headers["Content-Type"],
                                  a.sink)
            self.reply(200, str(n).encode(), "text/plain")

        def reply(self, code, body, ctype):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", a.page_port), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()

    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=a.chromium, headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        page = browser.new_page()
        page.add_init_script(INIT)
        page.goto(f"http://127.0.0.1:{a.page_port}/")
        page.wait_for_function(ready)
        cpu0 = chromium_cpu(os.getpid())
        page.set_input_files("input[type=file]", a.file)
        page.wait_for_function("() => window.__bench.status !== null", timeout=a.timeout * 1000, polling=100)
        cpu1 = chromium_cpu(os.getpid())
        b = page.evaluate("() => window.__bench")
        browser.close()
    httpd.shutdown()
    secs = (b["t1"] - b["t0"]) / 1000 if b["status"] == "complete" else None
    cpu = sum(c - cpu0.get(pid, 0.0) for pid, c in cpu1.items())
    print(json.dumps({"status": b["status"], "seconds": secs, "bytes": size, "error": b["error"],
                      "browser_cpu_s": round(cpu, 3), "browser_processes": len(cpu1)}))


if __name__ == "__main__":
    main()
