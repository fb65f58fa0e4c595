"""Row group `tus`: @tus/server + tus-js-client in Node, one PATCH (plain TCP) and 64 KiB PATCHes."""
import os

from harness import peers
from harness.files import empty_dir, empty_dir_contents, verify_stored
from harness.probes import RSSProbe
from harness.procs import KiB


def run_tus(b):
    if not b.need("node", "tus-one-patch", "tus"):
        b.need("node", "tus-64k-patches", "tus")
        return
    store = os.path.join(b.out, "tus-store")
    for row, chunk in (("tus-one-patch", None), ("tus-64k-patches", 64 * KiB)):
        try:
            with peers.tus_server(b, store, row) as srv:
                def sample():
                    empty_dir_contents(store)
                    probe = RSSProbe(srv.proc.pid)
                    res = peers.tus_upload(b, srv.port, chunk)
                    return {"seconds": res["seconds"], "nbytes": res["bytes"], "ok": res["bytes"] == b.size,
                            "verified": verify_stored(store, b.size, b.sha),
                            "rss_growth_mib": probe.growth_mib(), "server_cpu_s": probe.cpu_s()}

                b.sampled(row, "tus", b.a.runs, sample, client="tus-js-client",
                          note="one PATCH" if not chunk else "64 KiB PATCHes")
        except Exception as e:
            b.fail(row, "tus", f"{type(e).__name__}: {e}")
    empty_dir(store)
