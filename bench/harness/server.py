#!/usr/bin/env python3
"""Our server for bench rows that need to look inside it, with the server code untouched.

    server.py [--lag-log LAG_JSON] [--lag-interval S] [--adaptive-window] [--threaded-writer]
              -- [twistd uploads options]

Builds the same UploadServer and Site as ``twistd uploads`` (twisted_uploads.tap's options and builder) and
prints "listening" once its port is open. Optional instruments:

``--lag-log``: a reactor-lag probe, a call every ``--lag-interval`` seconds (default 0.005) recording how late it
fired (``reactor.seconds()`` at the call minus when it was due). Anything holding the reactor thread (hashing,
writing, framing a big read) delays it by as much. On SIGTERM it writes LAG_JSON: [wall time, lag seconds]
pairs, so the harness keeps the samples of its workload's window.

``--threaded-writer``: the store is ``TempFileStore(threaded=True)``: each entry is written and hashed in a worker
thread (twisted_uploads/threadedwriter.py) instead of on the reactor.

``--adaptive-window``: a preview of twisted_uploads.flow wired into the connection the way docs/benchmarks.md
("Adaptive window: the hooks") describes, by wrapping three UploadConnection methods in this process only: a
WindowController per accepted entry, ``received`` per data frame, and each ack carrying the controller's
``window``. Clients that follow an ack's ``window`` (bench/wsclient.py) then use it; others keep the accepted one.
"""
import argparse
import json
import struct
import sys
import time

from twisted.internet import reactor

from twisted_uploads.service import UploadService
from twisted_uploads.storage import TempFileStore
from twisted_uploads.tap import Options, build_upload_server
from twisted_uploads.tokens import HMACTokenVerifier


class LagProbe:
    """Calls itself every `interval` seconds and records how late each call came."""

    def __init__(self, clock, interval):
        self.clock, self.interval = clock, interval
        self.samples = []
        self.due = None

    def start(self):
        self.due = self.clock.seconds() + self.interval
        self.clock.callLater(self.interval, self.tick)

    def tick(self):
        now = self.clock.seconds()
        self.samples.append((time.time(), now - self.due))
        self.due = now + self.interval
        self.clock.callLater(self.interval, self.tick)

    def dump(self, path):
        with open(path, "w") as f:
            json.dump(self.samples, f)


def install_adaptive_window():
    """Drive a WindowController per entry from UploadConnection (this process only; see the module docstring)."""
    from twisted_uploads.connection import UploadConnection
    from twisted_uploads.entries import EntryStatus
    from twisted_uploads.flow import WindowController

    entry_id_of = struct.Struct(">I").unpack_from
    original_binary = UploadConnection.binary_received
    original_send = UploadConnection._send

    def flows(conn):
        return conn.__dict__.setdefault("_bench_flows", {})

    def share(conn):
        return conn.limits.window_budget // max(1, conn.registry.uploading_count())

    def send_accepted(self, entry):
        chunk = entry.slot.chunk_size
        initial = self._entry_window(chunk)
        flow = WindowController(self.clock, chunk, initial, maximum=max(initial, self.limits.window_budget))
        flow.set_share(share(self))
        flows(self)[entry.entry_id] = flow
        window = flow.accepted(entry.received)
        self._acks[entry.entry_id] = (entry.received, flow.ack_step)
        self._send("accepted", ref=entry.ref, entry=entry.entry_id, offset=entry.received, window=window,
                   chunk_size=chunk)
        if entry.status is EntryStatus.COMPLETE:
            self._report_finished(entry)

    def binary_received(self, frame):
        original_binary(self, frame)
        flow = flows(self).get(entry_id_of(frame)[0]) if len(frame) >= 4 else None
        if flow is not None and self.session is not None:
            entry = self.session.entries.get(entry_id_of(frame)[0])
            if entry is not None:
                flow.received(entry.received)

    def send(self, message_type, **fields):
        flow = flows(self).get(fields.get("entry")) if message_type == "ack" else None
        if flow is not None:
            flow.received(fields["offset"])
            flow.set_share(share(self))
            fields["window"] = flow.acked(fields["offset"])
            self._acks[fields["entry"]] = (fields["offset"], flow.ack_step)
        elif message_type in ("complete", "error", "cancelled") and "entry" in fields:
            flows(self).pop(fields["entry"], None)
        original_send(self, message_type, **fields)

    UploadConnection._send_accepted = send_accepted
    UploadConnection.binary_received = binary_received
    UploadConnection._send = send


def main():
    argv = sys.argv[1:]
    cut = argv.index("--")
    ap = argparse.ArgumentParser()
    ap.add_argument("--lag-log")
    ap.add_argument("--lag-interval", type=float, default=0.005)
    ap.add_argument("--adaptive-window", action="store_true")
    ap.add_argument("--threaded-writer", action="store_true")
    a = ap.parse_args(argv[:cut])
    options = Options()
    options.parseOptions(argv[cut + 1:])
    if a.adaptive_window:
        install_adaptive_window()
    server = build_upload_server(options, HMACTokenVerifier(options["secret"]))
    if a.threaded_writer:
        server.use_store(TempFileStore(server.store.root, threaded=True, reactor=reactor))
    service = UploadService(server, server.standalone_site(options["ws-path"]), options["listen"])
    reactor.callWhenRunning(service.startService)
    reactor.callWhenRunning(lambda: print("listening", flush=True))
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    if a.lag_log:
        probe = LagProbe(reactor, a.lag_interval)
        reactor.callWhenRunning(probe.start)
        reactor.addSystemEventTrigger("before", "shutdown", lambda: probe.dump(a.lag_log))
    reactor.run()


if __name__ == "__main__":
    main()
