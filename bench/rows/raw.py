"""Row group `raw`: the limit, a raw TCP -> disk copy with plain Python sockets in two processes."""
import os

from harness.bench import PEERS
from harness.files import empty_dir, verify_stored
from harness.procs import Server, free_port, last_json, run


def run_raw(b):
    dest = os.path.join(b.out, "raw-store")
    target = os.path.join(dest, "raw.bin")

    def sample():
        empty_dir(dest)
        port = free_port()
        with Server("raw-server", [b.py, os.path.join(PEERS, "raw_tcp_disk.py"), "server", str(port), target],
                    b.out, ready_line="listening") as srv:
            res = last_json(run([b.py, os.path.join(PEERS, "raw_tcp_disk.py"), "client", str(port), b.file],
                                what="raw client"))
            srv.proc.wait(30)
        return {"seconds": res["seconds"], "nbytes": res["bytes"], "ok": res["bytes"] == b.size,
                "verified": verify_stored(dest, b.size, b.sha)}

    b.sampled("raw-tcp-disk (limit)", "raw", b.a.runs, sample,
              note="Python sockets, 1 MiB sendall / recv_into, no fsync; client CPU = both ends")
    empty_dir(dest)
