#!/usr/bin/env python3
"""Our server for bench rows that need to look inside it, with the server code untouched.

    server.py [--lag-log LAG_JSON] [--lag-interval S] [--threaded-writer]
              -- [twistd uploads options]

Builds the same UploadServer and Site as ``twistd uploads`` (twisted_uploads.tap's options and builder) and
prints "listening" once its port is open. Optional instruments:

``--lag-log``: a reactor-lag probe, a call every ``--lag-interval`` seconds (default 0.005) recording how late it
fired (``reactor.seconds()`` at the call minus when it was due). Anything holding the reactor thread (hashing,
writing, framing a big read) delays it by as much. On SIGTERM it writes LAG_JSON: [wall time, lag seconds]
pairs, so the harness keeps the samples of its workload's window.

``--threaded-writer``: the store is ``TempFileStore(threaded=True)``: each entry is written and hashed in a worker
thread (twisted_uploads/threadedwriter.py) instead of on the reactor.
"""
import argparse
import json
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


def main():
    argv = sys.argv[1:]
    cut = argv.index("--")
    ap = argparse.ArgumentParser()
    ap.add_argument("--lag-log")
    ap.add_argument("--lag-interval", type=float, default=0.005)
    ap.add_argument("--threaded-writer", action="store_true")
    a = ap.parse_args(argv[:cut])
    options = Options()
    options.parseOptions(argv[cut + 1:])
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
