"""Row groups `gunicorn` and `twisted-wsgi`: a Django multipart POST (curl -F) under gunicorn (1 sync worker)
and under Twisted's WSGI container."""
import os

from harness import peers
from harness.files import empty_dir, verify_stored
from harness.probes import RSSProbe


def curl_rows(b, row, group, srv, store):
    def sample():
        empty_dir(store)
        probe = RSSProbe(srv.proc.pid)
        seconds, code = peers.curl_multipart(b, srv.port)
        ok = code == "200"
        return {"seconds": seconds, "nbytes": b.size, "ok": ok, "verified": verify_stored(store, b.size, b.sha),
                "rss_growth_mib": probe.growth_mib(), "server_cpu_s": probe.cpu_s(),
                "error": None if ok else f"HTTP {code}"}

    b.sampled(row, group, b.a.runs, sample, client="curl -F (multipart)")
    empty_dir(store)


def run_gunicorn(b):
    if not b.need("venv", "gunicorn django multipart (curl)", "gunicorn"):
        return
    store = os.path.join(b.out, "django-store")
    with peers.gunicorn_server(b, store) as srv:
        peers.wait_django(srv)
        curl_rows(b, "gunicorn django multipart (curl)", "gunicorn", srv, store)


def run_twisted_wsgi(b):
    store = os.path.join(b.out, "django-store")
    with peers.twisted_wsgi_server(b, store) as srv:
        peers.wait_django(srv)
        curl_rows(b, "twisted-wsgi django multipart (curl)", "twisted-wsgi", srv, store)
