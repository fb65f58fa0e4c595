#!/usr/bin/env python3
"""Our server with a reactor-lag probe, for the bench's `lag` row (server code stays untouched).

    lag_server.py LAG_JSON [INTERVAL_S] -- [twistd uploads options: --listen, --upload-dir, --secret, ...]

Builds the same UploadServer and Site as ``twistd uploads`` (twisted_uploads.tap's options and builder), and
schedules a probe on the reactor: a call every INTERVAL_S seconds (default 0.005) that records how late it fired
(``reactor.seconds()`` at the call minus the time it was due). Anything that holds the reactor thread (hashing,
writing, framing a big read) delays the probe by as much. On SIGTERM it writes LAG_JSON: a list of
[wall time, lag seconds] pairs, so the harness can keep the samples of its workload's window. Prints
"listening" once the port is open.
"""
import json
import sys
import time

from twisted.internet import reactor

from twisted_uploads.service import UploadService
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
    head, rest = argv[:cut], argv[cut + 1:]
    out = head[0]
    interval = float(head[1]) if len(head) > 1 else 0.005
    options = Options()
    options.parseOptions(rest)
    server = build_upload_server(options, HMACTokenVerifier(options["secret"]))
    service = UploadService(server, server.standalone_site(options["ws-path"]), options["listen"])
    probe = LagProbe(reactor, interval)
    reactor.callWhenRunning(service.startService)
    reactor.callWhenRunning(probe.start)
    reactor.callWhenRunning(lambda: print("listening", flush=True))
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    reactor.addSystemEventTrigger("before", "shutdown", lambda: probe.dump(out))
    reactor.run()


if __name__ == "__main__":
    main()
