"""Peer client: upload one file through djust's own LiveView WebSocket upload protocol (djust 1.2.x).

  connect ws://HOST/ws/live/ (Origin in ALLOWED_HOSTS)             <- {"type":"connect",...}
  -> {"type":"mount","view":VIEW,"params":{},"url":"/upload/",...}  <- {"type":"mount",...,"upload_configs":{...}}
  -> {"type":"upload_register","upload_name":"file","ref":UUID,...} <- {"type":"upload_registered",...}
  -> binary [0x01][uuid 16][u32 BE chunk index][<= 63 KiB]  ...      <- {"type":"upload_progress",...}*
  -> binary [0x02][uuid 16]                                          <- {"type":"upload_progress","status":"complete"}

Timed from connect to "complete" (like every other row). Prints one JSON line:
{"bytes", "seconds", "ok", "chunks_sent", "result"}; "result" holds the close code when djust hangs up
(its shipped upload-frame rate limit closes unpaced uploads with 4429).
"""
import argparse
import asyncio
import glob
import hashlib
import json
import os
import mmap
import struct
import time
import uuid

import websockets


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--origin", required=True)
    ap.add_argument("--file", required=True)
    ap.add_argument("--view", default="peerapp.views.UploadPeerView")
    ap.add_argument("--page", default="/upload/")
    ap.add_argument("--slot", default="file")
    ap.add_argument("--chunk", type=int, default=63 * 1024)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--tmpdir", help="the server's TMPDIR: check the stored temp file before disconnecting "
                                     "(djust deletes it when the socket closes)")
    ap.add_argument("--sha256", help="expected SHA-256 of the file")
    args = ap.parse_args()

    with open(args.file, "rb") as f:
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    n = len(data)
    ref = uuid.uuid4()
    t0 = time.perf_counter()
    idx = 0
    async with websockets.connect(args.url, origin=args.origin, max_size=None, compression=None) as ws:
        hello = json.loads(await ws.recv())
        assert hello["type"] == "connect", hello
        await ws.send(json.dumps({"type": "mount", "view": args.view, "params": {}, "url": args.page,
                                  "has_prerendered": False, "client_timezone": "UTC"}))
        while True:
            m = json.loads(await ws.recv())
            if m.get("type") == "mount":
                break
            if m.get("type") == "error":
                raise SystemExit(f"mount failed: {m}")
        await ws.send(json.dumps({"type": "upload_register", "upload_name": args.slot, "ref": str(ref),
                                  "client_name": "bench.bin", "client_type": "application/octet-stream",
                                  "client_size": n}))
        while True:
            m = json.loads(await ws.recv())
            if m.get("type") == "upload_registered":
                break
            if m.get("type") == "error":
                raise SystemExit(f"upload_register refused: {m}")

        done = asyncio.get_running_loop().create_future()

        async def reader():
            try:
                async for raw in ws:
                    if isinstance(raw, bytes):
                        continue
                    m = json.loads(raw)
                    if m.get("type") == "upload_progress" and m.get("status") in ("complete", "error", "cancelled"):
                        if not done.done():
                            done.set_result(m)
                    elif m.get("type") == "error" and not done.done():
                        done.set_result(m)
            except websockets.ConnectionClosed as e:
                if not done.done():
                    done.set_result({"closed": True, "code": e.rcvd.code if e.rcvd else None})

        rtask = asyncio.create_task(reader())
        hdr = bytes([0x01]) + ref.bytes
        mv = memoryview(data)
        try:
            for off in range(0, n, args.chunk):
                await ws.send(b"".join((hdr, struct.pack(">I", idx), mv[off:off + args.chunk])))
                idx += 1
                if done.done():
                    break
            if not done.done():
                await ws.send(bytes([0x02]) + ref.bytes)
        except websockets.ConnectionClosed:
            pass
        res = await asyncio.wait_for(done, timeout=args.timeout)
        dt = time.perf_counter() - t0
        rtask.cancel()
        verified = None
        if res.get("status") == "complete" and args.tmpdir and args.sha256:
            verified = stored_sha256(args.tmpdir, n) == args.sha256
    mv.release()
    ok = res.get("status") == "complete"
    print(json.dumps({"bytes": n, "seconds": dt, "ok": ok, "chunks_sent": idx, "verified": verified,
                      "result": res}))


def stored_sha256(tmpdir, size):
    files = [p for p in glob.glob(os.path.join(tmpdir, "djust_uploads_*", "*"))
             if os.path.isfile(p) and os.path.getsize(p) == size]
    if not files:
        return None
    h = hashlib.sha256()
    with open(max(files, key=os.path.getmtime), "rb") as f:
        for b in iter(lambda: f.read(1 << 22), b""):
            h.update(b)
    return h.hexdigest()


if __name__ == "__main__":
    asyncio.run(main())
