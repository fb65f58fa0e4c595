#!/usr/bin/env python3
"""An emulated WAN link on loopback (this kernel has no netem): a TCP proxy adding one-way delay and a rate
limit per direction.

    wanproxy.py --target-port T [--listen-port P] --rate-mbit R --rtt-ms D [--queue-bytes Q]

Prints "listening PORT" once it accepts. Each accepted connection gets its own upstream connection to
127.0.0.1:T and two independent directions, each modelled as a link:

* **rate**: a serializer (a token bucket without burst): a chunk read at time t starts transmitting at
  max(t, when the link is free) and takes len/rate seconds; nothing goes faster than R Mbit/s;
* **delay**: each chunk is delivered RTT/2 after its transmission ends (propagation);
* **buffer-bounded**: at most BDP/2 (the bytes propagating, rate x RTT/2) plus Q bytes of queue (default one
  BDP, rate x RTT, at least 256 KiB: the classic router-buffer rule) are held per direction; beyond that the
  proxy stops reading, so the sender's TCP sees back-pressure, as behind a full bottleneck queue, instead of an
  infinitely fast network. The receiver's own back-pressure (a slow server) holds delivery the same way.

TCP's end-to-end behaviour is kept: the sender's kernel still acks the proxy at loopback speed, so a plain TCP
stream (tus's one PATCH, curl) fills the link as a well-tuned TCP would; an application-level window (ours)
sees the full RTT for each of its acks. Runs with the standard library only (asyncio).
"""
import argparse
import asyncio
import collections
import sys

READ = 64 * 1024


class Direction:
    """One direction of the link: reads from `reader`, delivers to `writer` after rate + delay."""

    def __init__(self, reader, writer, rate, owd, cap):
        self.reader, self.writer = reader, writer
        self.rate, self.owd, self.cap = rate, owd, cap
        self.queue = collections.deque()
        self.held = 0
        self.free_at = 0.0
        self.data_ready = asyncio.Event()
        self.room = asyncio.Event()
        self.room.set()
        self.failed = False

    async def pump_in(self):
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await self.reader.read(READ)
                while self.held and self.held + len(data) > self.cap and not self.failed:
                    self.room.clear()
                    await self.room.wait()
                if not data or self.failed:
                    break
                now = loop.time()
                start = max(now, self.free_at)
                self.free_at = start + (len(data) / self.rate if self.rate else 0.0)
                self.queue.append((self.free_at + self.owd, data))
                self.held += len(data)
                self.data_ready.set()
        except (ConnectionError, OSError):
            pass
        self.queue.append((None, None))  # end of stream
        self.data_ready.set()

    async def pump_out(self):
        loop = asyncio.get_running_loop()
        try:
            while True:
                while not self.queue:
                    self.data_ready.clear()
                    await self.data_ready.wait()
                due, data = self.queue.popleft()
                if data is None:
                    if self.writer.can_write_eof():
                        self.writer.write_eof()
                    return
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                self.writer.write(data)
                await self.writer.drain()
                self.held -= len(data)
                self.room.set()
        except (ConnectionError, OSError):
            # the receiver is gone: stop reading from the sender too (its next read ends)
            self.failed = True
            self.room.set()
            self.writer.close()


async def serve(a):
    rate = a.rate_mbit * 1e6 / 8  # bytes per second
    owd = a.rtt_ms / 2000.0
    queue = a.queue_bytes if a.queue_bytes is not None else max(256 * 1024, int(rate * 2 * owd))
    cap = int(rate * owd) + queue

    async def handle(c_reader, c_writer):
        try:
            s_reader, s_writer = await asyncio.open_connection("127.0.0.1", a.target_port)
        except OSError:
            c_writer.close()
            return
        up = Direction(c_reader, s_writer, rate, owd, cap)
        down = Direction(s_reader, c_writer, rate, owd, cap)
        tasks = [asyncio.ensure_future(t) for t in (up.pump_in(), up.pump_out(), down.pump_in(), down.pump_out())]
        await asyncio.gather(*tasks, return_exceptions=True)
        for w in (c_writer, s_writer):
            w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", a.listen_port)
    port = server.sockets[0].getsockname()[1]
    print(f"listening {port} rate={a.rate_mbit}Mbit/s rtt={a.rtt_ms}ms cap={cap}B", flush=True)
    async with server:
        await server.serve_forever()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target-port", type=int, required=True)
    ap.add_argument("--listen-port", type=int, default=0)
    ap.add_argument("--rate-mbit", type=float, required=True)
    ap.add_argument("--rtt-ms", type=float, required=True)
    ap.add_argument("--queue-bytes", type=int)
    a = ap.parse_args()
    try:
        asyncio.run(serve(a))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
