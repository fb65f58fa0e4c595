"""The limit: a raw TCP -> disk copy with plain Python sockets, sender and receiver in separate processes.

  raw_tcp_disk.py server PORT OUT_FILE   accept one connection, write every byte to OUT_FILE, and when the
                                         sender half-closes, close the file and answer the byte count (8 bytes)
  raw_tcp_disk.py client PORT IN_FILE    send IN_FILE, half-close, wait for the count; print one JSON line

Timed in the client from connect() to the receiver's answer (the bytes are in the receiver's file).
No framing, no hashing, no protocol: nothing a real upload server can do is cheaper than this.
"""
import json
import socket
import struct
import sys
import time

BLOCK = 1 << 20


def server(port, out):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(1)
    print("listening", flush=True)
    conn, _ = srv.accept()
    buf = bytearray(BLOCK)
    mv = memoryview(buf)
    n = 0
    with open(out, "wb") as f:
        while True:
            k = conn.recv_into(buf)
            if not k:
                break
            f.write(mv[:k])
            n += k
    conn.sendall(struct.pack(">Q", n))
    conn.close()


def client(port, path):
    with open(path, "rb") as f:
        t0 = time.perf_counter()
        s = socket.create_connection(("127.0.0.1", port))
        while True:
            b = f.read(BLOCK)
            if not b:
                break
            s.sendall(b)
        s.shutdown(socket.SHUT_WR)
        answer = b""
        while len(answer) < 8:
            more = s.recv(8 - len(answer))
            if not more:
                raise SystemExit("receiver closed without answering")
            answer += more
        dt = time.perf_counter() - t0
    s.close()
    print(json.dumps({"bytes": struct.unpack(">Q", answer)[0], "seconds": dt}))


if __name__ == "__main__":
    mode, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    (server if mode == "server" else client)(port, path)
