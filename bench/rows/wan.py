"""Row group `wan`: uploads through emulated links (bench/harness/wanproxy.py), default 1 Gbit/s at 0/20/50/100 ms
RTT and 100 Mbit/s at 50 ms. Per link: the proxy itself validated (a raw TCP copy through it against the
configured rate, a 1-byte ping against the configured RTT), then ours (the product CLI at the seed's 64 KiB
chunks, server defaults), tus one-PATCH, Django multipart under gunicorn (curl) and djust, each on the same
file; the ratio ours / tus per link is the issue's goal (>= 0.95)."""
import os
import socket
import statistics
import threading
import time

from harness import peers
from harness.bench import PEERS
from harness.files import empty_dir, empty_dir_contents, make_file, verify_stored
from harness.procs import KiB, MiB, Server, free_port, last_json, log, run

PROXY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "harness", "wanproxy.py")


def link_name(rate, rtt):
    return f"{rate / 1000:g}G-{rtt:g}ms" if rate >= 1000 else f"{rate:g}M-{rtt:g}ms"


def proxy(b, target_port, rate, rtt, name):
    port = free_port()
    return Server(f"wanproxy-{name}", [b.py, PROXY, "--target-port", str(target_port), "--listen-port", str(port),
                                       "--rate-mbit", str(rate), "--rtt-ms", str(rtt)], b.out,
                  ready_line="listening")


def echo_server():
    """A 1-byte echo on loopback (a thread), for the ping through the proxy; returns (port, stop)."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)

    def serve():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while (d := c.recv(1)):
                c.sendall(d)
            c.close()

    threading.Thread(target=serve, daemon=True).start()
    return srv.getsockname()[1], srv.close


def ping(port, n=15):
    """Median round trip, ms, of 1-byte messages through 127.0.0.1:port."""
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        s.sendall(b"x")
        if s.recv(1) != b"x":
            raise RuntimeError("echo through the proxy failed")
        times.append((time.perf_counter() - t0) * 1000)
    s.close()
    return statistics.median(times[1:])


def validate(b, rate, rtt, name, path, size):
    """The link as configured? A raw TCP copy of the WAN file through it, and a ping."""
    dest = os.path.join(b.out, "wan-raw")
    empty_dir(dest)
    port = free_port()
    with Server("wan-raw-server", [b.py, os.path.join(PEERS, "raw_tcp_disk.py"), "server", str(port),
                                   os.path.join(dest, "raw.bin")], b.out, ready_line="listening") as srv, \
            proxy(b, port, rate, rtt, name + "-raw") as px:
        pport = int(px_port(px))
        res = last_json(run([b.py, os.path.join(PEERS, "raw_tcp_disk.py"), "client", str(pport), path],
                            what="raw client through the proxy", timeout=3600))
        srv.proc.wait(30)
    eport, stop = echo_server()
    try:
        with proxy(b, eport, rate, rtt, name + "-ping") as px:
            rtt_ms = ping(int(px_port(px)))
    finally:
        stop()
    empty_dir(dest)
    configured = rate * 1e6 / 8 / MiB
    got = res["bytes"] / MiB / res["seconds"]
    return {"configured_mib_s": round(configured, 1), "raw_tcp_mib_s": round(got, 1),
            "raw_vs_configured": round(got / configured, 3), "configured_rtt_ms": rtt,
            "ping_rtt_ms": round(rtt_ms, 2), "raw_ok": res["bytes"] == size}


def px_port(px):
    return px.ready.split()[1]


def run_wan(b):
    a = b.a
    size = a.wan_mib * MiB
    if size == b.size:
        path, sha = b.file, b.sha
    else:
        path = os.path.join(b.out, f"bench-wan-{a.wan_mib}MiB.bin")
        sha = make_file(path, size)
    links = []
    b.sections["wan"] = {"bytes": size, "links": links}
    for rate, rtt in a.wan_links:
        name = link_name(rate, rtt)
        link = {"name": name, "rate_mbit": rate, "rtt_ms": rtt}
        links.append(link)
        log(f"  link {name}")
        try:
            link["proxy"] = v = validate(b, rate, rtt, name, path, size)
            log(f"  {'  proxy: raw TCP copy, ping':46s} {v['raw_tcp_mib_s']:8.1f} MiB/s of {v['configured_mib_s']}"
                f" ({v['raw_vs_configured']:.2f}x), ping {v['ping_rtt_ms']} ms of {rtt:g}")
        except Exception as e:
            b.fail(f"wan {name} proxy", "wan", f"{type(e).__name__}: {e}")
            continue
        for which in a.wan_rows:
            row = f"wan {name} {which}"
            b.guarded(row, "wan", lambda: ROWS[which](b, row, link, rate, rtt, path, size, sha))
        by = {r.get("wan_row"): r for r in b.rows if r.get("link") == name and r.get("mib_s")}
        for which, r in by.items():
            link[f"{which}_mib_s"] = r["mib_s"]
        if "ours" in by and "tus" in by:
            link["ours_vs_tus"] = round(by["ours"]["mib_s"] / by["tus"]["mib_s"], 3)
            log(f"  {'  ours / tus':46s} {link['ours_vs_tus']:.2f}x")


def sample_args(link, which, rate, rtt):
    return {"link": link["name"], "wan_row": which, "rate_mbit": rate, "rtt_ms": rtt}


def wan_ours(b, row, link, rate, rtt, path, size, sha):
    with b.ours_server("wan-ours") as srv, proxy(b, srv.port, rate, rtt, link["name"]) as px:
        url = f"ws://127.0.0.1:{px_port(px)}/uploads/ws"

        class Via:  # the server, reached through the proxy
            proc = srv.proc
        Via.url = url
        b.sampled(row, "wan", b.a.wan_runs, lambda: b.cli_sample(Via, 64 * KiB, path=path, size=size, sha=sha),
                  client="cli chunk=64K, server default window", **sample_args(link, "ours", rate, rtt))
        empty_dir_contents(b.upload_dir)


def wan_tus(b, row, link, rate, rtt, path, size, sha):
    if not b.need("node", row, "wan"):
        return
    store = os.path.join(b.out, "tus-store")
    with peers.tus_server(b, store, "wan-tus") as srv, proxy(b, srv.port, rate, rtt, link["name"]) as px:
        def sample():
            empty_dir_contents(store)
            res = peers.tus_upload(b, int(px_port(px)), path=path)
            return {"seconds": res["seconds"], "nbytes": res["bytes"], "ok": res["bytes"] == size,
                    "verified": verify_stored(store, size, sha)}

        b.sampled(row, "wan", b.a.wan_runs, sample, client="tus-js-client, one PATCH",
                  **sample_args(link, "tus", rate, rtt))
    empty_dir(store)


def wan_gunicorn(b, row, link, rate, rtt, path, size, sha):
    if not b.need("venv", row, "wan"):
        return
    store = os.path.join(b.out, "django-store")
    with peers.gunicorn_server(b, store) as srv, proxy(b, srv.port, rate, rtt, link["name"]) as px:
        peers.wait_django(srv)

        def sample():
            empty_dir(store)
            seconds, code = peers.curl_multipart(b, int(px_port(px)), path)
            return {"seconds": seconds, "nbytes": size, "ok": code == "200",
                    "verified": verify_stored(store, size, sha), "error": None if code == "200" else f"HTTP {code}"}

        b.sampled(row, "wan", b.a.wan_runs, sample, client="curl -F -> gunicorn django multipart",
                  **sample_args(link, "gunicorn", rate, rtt))
    empty_dir(store)


def wan_djust(b, row, link, rate, rtt, path, size, sha):
    if not b.need("djust", row, "wan"):
        return
    tmp = os.path.join(b.out, "djust-tmp")
    with peers.djust_server(b, tmp, name="wan-djust", max_size=size * 2) as srv, \
            proxy(b, srv.port, rate, rtt, link["name"]) as px:
        pport = int(px_port(px))
        b.sampled(row, "wan", b.a.wan_runs,
                  lambda: peers.djust_result_sample(peers.djust_upload(b, pport, tmp, path=path, sha=sha)),
                  client="websockets (djust protocol), rate limit raised", **sample_args(link, "djust", rate, rtt))
    empty_dir(tmp)


ROWS = {"ours": wan_ours, "tus": wan_tus, "gunicorn": wan_gunicorn,
        "djust": wan_djust}
