"""Bench row: headless Chromium -> our server, through the real browser client (static/uploads.js).

Runs with the project's Python (needs `playwright`, the Python package; the browser is the system Chromium, no
download). Serves a one-field page on 127.0.0.1:PAGE_PORT (the server must allow that Origin), chooses FILE in
the `dj-upload` input as a user would, and times from the input's `change` event to the client's
`djust:upload:progress` event with status `complete`. Prints one JSON line {status, seconds, bytes}.

    python bench/chromium.py --url ws://127.0.0.1:P/uploads/ws --token T --slot bench --file F \
        --chromium /usr/bin/chromium --static static/ --page-port Q --chunk-size 65536
"""
import argparse
import html
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

INIT = """
window.__bench = {t0: null, t1: null, status: null, error: null};
document.addEventListener("change", () => { if (window.__bench.t0 === null) window.__bench.t0 = performance.now(); }, true);
window.addEventListener("djust:upload:progress", (e) => {
  if (e.detail && e.detail.status === "complete" && window.__bench.t1 === null) {
    window.__bench.t1 = performance.now(); window.__bench.status = "complete";
  }
});
window.addEventListener("djust:upload:error", (e) => {
  window.__bench.status = "error"; window.__bench.error = JSON.stringify(e.detail);
});
"""


def main():
    ap = argparse.ArgumentParser()
    for k in ("--url", "--token", "--file", "--chromium", "--static"):
        ap.add_argument(k, required=True)
    ap.add_argument("--slot", default="bench")
    ap.add_argument("--page-port", type=int, required=True)
    ap.add_argument("--chunk-size", type=int, default=65536)
    ap.add_argument("--timeout", type=float, default=1800)
    a = ap.parse_args()
    size = os.path.getsize(a.file)
    cfg = {"url": a.url, "token": a.token,
           "slots": {a.slot: {"accept": "", "max_entries": 1, "max_file_size": size, "chunk_size": a.chunk_size,
                              "auto_upload": True}}}
    page_html = (f"<!doctype html><html><head><meta charset=utf-8><title>bench</title>"
                 f"<script src=\"/uploads.js\" defer></script></head><body>"
                 f"<div data-dj-view=\"bench\" data-dj-uploads=\"{html.escape(json.dumps(cfg), quote=True)}\">"
                 f"<input type=file dj-upload=\"{a.slot}\"></div></body></html>").encode()
    js = open(os.path.join(a.static, "uploads.js"), "rb").read()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body, ctype = (js, "text/javascript") if self.path.startswith("/uploads.js") else (page_html, "text/html")
            self.send_response(200)
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
        page.wait_for_function("() => !!window.djUploads")
        page.set_input_files(f"input[dj-upload='{a.slot}']", a.file)
        page.wait_for_function("() => window.__bench.status !== null", timeout=a.timeout * 1000, polling=100)
        b = page.evaluate("() => window.__bench")
        browser.close()
    httpd.shutdown()
    secs = (b["t1"] - b["t0"]) / 1000 if b["status"] == "complete" else None
    print(json.dumps({"status": b["status"], "seconds": secs, "bytes": size, "error": b["error"]}))


if __name__ == "__main__":
    main()
