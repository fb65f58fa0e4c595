"""Row group `djust`: djust (PyPI) under uvicorn through its own WebSocket upload protocol, with its upload-frame
rate limit raised; and (full runs) as shipped, where that limit ends an unpaced upload."""
import json
import os

from harness import peers
from harness.files import empty_dir
from harness.probes import RSSProbe
from harness.procs import KiB, log


def run_djust(b):
    if not b.need("djust", "djust", "djust"):
        return
    tmp = os.path.join(b.out, "djust-tmp")
    ver = peers.djust_version(b)
    for row, rate in (("djust", "1000000"), ("djust-default-limit", "default")):
        if row == "djust-default-limit" and b.a.smoke:
            continue
        try:
            with peers.djust_server(b, tmp, rate, row) as srv:
                if row == "djust":
                    def sample():
                        probe = RSSProbe(srv.proc.pid)
                        return peers.djust_result_sample(peers.djust_upload(b, srv.port, tmp), probe)

                    b.sampled(row, "djust", b.a.runs, sample, version=ver, client="websockets (djust protocol)",
                              note="upload rate limit raised")
                else:
                    # djust as shipped: its upload-frame rate limit (200 frames/s) ends an unpaced upload
                    res = peers.djust_upload(b, srv.port, tmp, timeout=120)
                    sent = res["chunks_sent"] * 63 * KiB
                    b.rows.append({"row": row, "group": "djust-default", "ok": res["ok"], "expected_failure": True,
                                   "version": ver, "result": res["result"], "bytes_sent": sent})
                    log(f"  {row:48s} {'complete' if res['ok'] else 'refused'}: {json.dumps(res['result'])[:120]}"
                        f" after {sent / (1 << 20):.0f} MiB (djust's shipped upload rate limit)")
        except Exception as e:
            b.fail(row, "djust", f"{type(e).__name__}: {e}")
    empty_dir(tmp)
