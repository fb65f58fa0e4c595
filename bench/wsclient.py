"""A small benchmark client that speaks the twisted-uploads wire protocol (docs/protocol.md) directly.

It exists so the harness can measure what the product CLI does not report: per-ack latency, round trips,
many simultaneous connections, idle connections. Runs in the bench venv (needs `websockets`).

  wsclient.py single     --url U --token T --slot S --file F [--repeat K]
        one upload of F (K times over, declared as one file of K*size bytes); prints one JSON object with
        seconds, ack latencies and whether the server's SHA-256 matches.
  wsclient.py small      --url U --token-file TF --slot S --size N --runs R
        R uploads of an N-byte file, each on a fresh connection (one token per line in TF), twice:
        "sequential" (auth, wait welcome, announce, wait accepted, data, wait complete) and "pipelined"
        (auth+announce in one flight, data, wait complete); prints round trips and ms from socket open.
  wsclient.py idle       --url U --token T --count N
        opens N authenticated connections, prints "READY <json>" and holds them until stdin closes.
  wsclient.py concurrent --url U --token-file TF --slot S --file F --count N --size B --first I
        N connections (tokens = lines I..I+N-1 of TF), each uploading its own B-byte piece of F (an ASCII header
        naming the upload, then bytes from offset I*B/2 onwards); authenticates all, prints "READY", waits
        for a line on stdin, then starts every upload at once; prints one JSON object with per-upload results.
"""
import argparse
import asyncio
import collections
import hashlib
import json
import mmap
import os
import struct
import sys
import time

import websockets

SUBPROTOCOL = "twisted-uploads.v1"
HDR = struct.Struct(">IQ")


def header_bytes(label, size):
    """An ASCII prefix for synthetic files, so random bytes never look like a known file type."""
    h = f"twisted-uploads bench {label}\n".encode()
    return h[:size]


async def connect(url, cookie=None):
    """Open the socket; `cookie` ("sessionid=KEY") goes with the handshake (a Django token is bound to it)."""
    kw = dict(subprotocols=[SUBPROTOCOL], max_size=None, compression=None, ping_interval=None, open_timeout=60,
              close_timeout=5)
    if cookie:
        try:  # websockets >= 14 (the new asyncio client) calls them additional_headers
            return await websockets.connect(url, additional_headers={"Cookie": cookie}, **kw)
        except TypeError:
            return await websockets.connect(url, extra_headers={"Cookie": cookie}, **kw)
    return await websockets.connect(url, **kw)


def read_tokens(path):
    """One token per line, optionally followed by the cookie its handshake needs: [(token, cookie or None)]."""
    out = []
    for line in open(path).read().splitlines():
        parts = line.split()
        if parts:
            out.append((parts[0], parts[1] if len(parts) > 1 else None))
    return out


async def recv_json(ws):
    while True:
        raw = await ws.recv()
        if isinstance(raw, str):
            return json.loads(raw)


async def expect(ws, *types):
    m = await recv_json(ws)
    if m.get("type") not in types:
        raise RuntimeError(f"expected {types}, got {m}")
    return m


async def auth(ws, token):
    await ws.send(json.dumps({"type": "auth", "token": token}))
    return await expect(ws, "welcome")


class Upload:
    """Streams one entry with the server's window, recording ack latencies."""

    def __init__(self, ws, source, size, name, slot, chunk=None):
        self.ws, self.source, self.size, self.name, self.slot = ws, source, size, name, slot
        self.chunk = chunk
        self.acked = 0
        self.latencies = []
        self.pending = collections.deque()  # (end offset, send time) of frames not yet acknowledged
        self.event = asyncio.Event()
        self.result = None
        self.window = None  # from `accepted`; an ack carrying `window` (an adaptive server) replaces it
        self.max_window = 0

    def on_message(self, m):
        t = m.get("type")
        if t == "ack":
            now = time.perf_counter()
            off = m["offset"]
            last = None
            while self.pending and self.pending[0][0] <= off:
                last = self.pending.popleft()
            if last is not None:
                self.latencies.append(now - last[1])
            self.acked = max(self.acked, off)
            if isinstance(m.get("window"), int) and m["window"] > 0:
                self.window = m["window"]
                self.max_window = max(self.max_window, self.window)
        elif t in ("complete", "error", "cancelled"):
            if t == "complete":
                self.acked = m.get("size", self.acked)
            self.result = m
        self.event.set()

    async def reader(self):
        try:
            async for raw in self.ws:
                if isinstance(raw, str):
                    m = json.loads(raw)
                    self.on_message(m)
                    if self.result is not None:
                        return
        except websockets.ConnectionClosed as e:
            self.result = {"type": "closed", "code": e.rcvd.code if e.rcvd else None}
            self.event.set()

    async def run(self, announce=True, accepted=None):
        ws = self.ws
        if announce:
            await ws.send(json.dumps({"type": "announce", "ref": "b1", "slot": self.slot, "name": self.name,
                                      "mime": "application/octet-stream", "size": self.size}))
        if accepted is None:
            accepted = await expect(ws, "accepted", "rejected", "error")
        if accepted["type"] != "accepted":
            raise RuntimeError(f"announce refused: {accepted}")
        entry = accepted["entry"]
        self.window = self.max_window = accepted["window"]
        chunk = min(self.chunk or accepted["chunk_size"], accepted["chunk_size"])
        off = accepted["offset"]
        rtask = asyncio.create_task(self.reader())
        t_first = time.perf_counter()
        while off < self.size and self.result is None:
            while off - self.acked >= self.window and self.result is None:
                self.event.clear()
                await self.event.wait()
            if self.result is not None:
                break
            n = min(chunk, self.size - off, self.window - (off - self.acked))
            payload = self.source(off, n)
            await ws.send(HDR.pack(entry, off) + payload)
            off += n
            self.pending.append((off, time.perf_counter()))
        await rtask
        t_done = time.perf_counter()
        return {"entry": entry, "window": accepted["window"], "max_window": self.max_window, "chunk_size": chunk,
                "stream_seconds": t_done - t_first,
                "result": self.result}


def file_source(path, repeat=1):
    f = open(path, "rb")
    mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    n = len(mm)

    def source(off, k):
        off %= n
        if off + k <= n:
            return mm[off:off + k]
        return mm[off:] + mm[:k - (n - off)]

    return source, n * repeat


def percentile(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def lat_summary(lat):
    return {"acks": len(lat), "p50_ms": _ms(percentile(lat, 50)), "p99_ms": _ms(percentile(lat, 99)),
            "max_ms": _ms(max(lat) if lat else None)}


def _ms(x):
    return None if x is None else round(x * 1000, 3)


async def cmd_single(a):
    source, size = file_source(a.file, a.repeat)
    h = hashlib.sha256()
    for _ in range(a.repeat):
        with open(a.file, "rb") as f:
            for b in iter(lambda: f.read(1 << 22), b""):
                h.update(b)
    t0 = time.perf_counter()
    ws = await connect(a.url, a.cookie)
    await auth(ws, a.token)
    up = Upload(ws, source, size, os.path.basename(a.file), a.slot, a.chunk)
    r = await up.run()
    dt = time.perf_counter() - t0
    await ws.close()
    res = r["result"]
    out = {"bytes": size, "seconds": dt, "stream_seconds": r["stream_seconds"], "status": res.get("type"),
           "sha256_ok": res.get("sha256") == h.hexdigest(), "window": r["window"], "max_window": r["max_window"],
           "chunk_size": r["chunk_size"],
           "result": res if res.get("type") != "complete" else None, **lat_summary(up.latencies)}
    print(json.dumps(out))
    return 0 if out["status"] == "complete" and out["sha256_ok"] else 1


async def small_once(url, token, slot, data, pipelined, cookie=None):
    """One upload of `data` on a fresh connection; returns (ms from socket open, ms after handshake, round trips)."""
    t0 = time.perf_counter()
    ws = await connect(url, cookie)
    t_open = time.perf_counter()
    announce = json.dumps({"type": "announce", "ref": "s1", "slot": slot, "name": "small.bin",
                           "mime": "application/octet-stream", "size": len(data)})
    trips = 0
    if pipelined:
        await ws.send(json.dumps({"type": "auth", "token": token}))
        await ws.send(announce)
        trips += 1
        await expect(ws, "welcome")
        accepted = await expect(ws, "accepted", "rejected", "error")
    else:
        await ws.send(json.dumps({"type": "auth", "token": token}))
        trips += 1
        await expect(ws, "welcome")
        await ws.send(announce)
        trips += 1
        accepted = await expect(ws, "accepted", "rejected", "error")
    if accepted["type"] != "accepted":
        raise RuntimeError(f"small upload refused: {accepted}")
    entry, chunk, window = accepted["entry"], accepted["chunk_size"], accepted["window"]
    off = 0
    trips += 1
    while off < len(data):
        # a 10 KiB file fits one window; a larger one would wait for acks (more round trips)
        n = min(chunk, len(data) - off)
        if off + n > window:
            raise RuntimeError("small file larger than the window: not a small-file test")
        await ws.send(HDR.pack(entry, off) + data[off:off + n])
        off += n
    while True:
        m = await recv_json(ws)
        if m["type"] == "complete":
            break
        if m["type"] in ("error", "cancelled"):
            raise RuntimeError(f"small upload failed: {m}")
    t1 = time.perf_counter()
    await ws.close()
    ok = m["sha256"] == hashlib.sha256(data).hexdigest()
    if not ok:
        raise RuntimeError("small upload: SHA-256 mismatch")
    return (t1 - t0) * 1000, (t1 - t_open) * 1000, trips


async def cmd_small(a):
    tokens = read_tokens(a.token_file)
    data = header_bytes("small", a.size) + os.urandom(max(0, a.size - len(header_bytes("small", a.size))))
    out = {"bytes": a.size}
    i = 0
    for mode in ("sequential", "pipelined"):
        opens, afters, trips, err = [], [], set(), None
        for _ in range(a.runs):
            try:
                o, af, t = await small_once(a.url, tokens[i][0], a.slot, data, mode == "pipelined", tokens[i][1])
            except Exception as e:  # pipelining is optional for a server: report, do not crash
                err = f"{type(e).__name__}: {e}"
                break
            finally:
                i += 1
            opens.append(o)
            afters.append(af)
            trips.add(t)
        out[mode] = {"runs": len(opens), "round_trips_after_open": sorted(trips),
                     "round_trips_with_handshake": sorted(t + 1 for t in trips),
                     "ms_open_to_complete_p50": round(percentile(opens, 50), 3) if opens else None,
                     "ms_after_handshake_p50": round(percentile(afters, 50), 3) if afters else None,
                     "error": err}
    print(json.dumps(out))
    return 0 if out["sequential"]["error"] is None else 1


async def cmd_idle(a):
    conns = []
    for i in range(a.count):
        ws = await connect(a.url)
        await auth(ws, a.token)
        conns.append(ws)
    print("READY " + json.dumps({"connections": len(conns)}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)
    return 0


async def cmd_concurrent(a):
    tokens = read_tokens(a.token_file)[a.first:a.first + a.count]
    src, n = file_source(a.file)
    if a.size > n:
        raise SystemExit("file smaller than one upload")

    def piece(i):
        h = header_bytes(f"upload {i}", a.size)
        start = (i * a.size // 2) % (n - a.size + 1)
        return h + src(start, a.size - len(h))

    pieces = {a.first + k: piece(a.first + k) for k in range(a.count)}
    digests = {i: hashlib.sha256(p).hexdigest() for i, p in pieces.items()}
    conns = {}

    async def open_one(i, tok):
        ws = await connect(a.url, tok[1])
        await auth(ws, tok[0])
        conns[i] = ws

    await asyncio.gather(*(open_one(a.first + k, t) for k, t in enumerate(tokens)))
    print("READY", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

    async def one(i):
        data = pieces[i]
        t0 = time.time()
        up = Upload(conns[i], lambda off, k: data[off:off + k], len(data), f"c{i}.bin", a.slot)
        try:
            r = await up.run()
            res = r["result"]
        except Exception as e:
            res = {"type": "exception", "message": str(e)}
        t1 = time.time()
        await conns[i].close()
        return {"i": i, "start": t0, "end": t1, "status": res.get("type"),
                "sha256_ok": res.get("sha256") == digests[i], "latencies": [round(x, 6) for x in up.latencies],
                "error": None if res.get("type") == "complete" else res}

    results = await asyncio.gather(*(one(i) for i in pieces))
    print(json.dumps({"uploads": results}))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["single", "small", "idle", "concurrent"])
    ap.add_argument("--url", required=True)
    ap.add_argument("--token")
    ap.add_argument("--token-file", help="one token per line, optionally followed by the cookie it needs")
    ap.add_argument("--cookie", help="Cookie header of the handshake (single): a Django token needs its session's")
    ap.add_argument("--slot", default="bench")
    ap.add_argument("--file")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--chunk", type=int, default=None, help="payload per frame (default: the slot's chunk_size)")
    ap.add_argument("--size", type=int, default=10 * 1024)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--first", type=int, default=0)
    a = ap.parse_args()
    fn = {"single": cmd_single, "small": cmd_small, "idle": cmd_idle, "concurrent": cmd_concurrent}[a.mode]
    sys.exit(asyncio.run(fn(a)))


if __name__ == "__main__":
    main()
