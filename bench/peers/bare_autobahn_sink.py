"""Peer: a bare Autobahn WebSocket sink (after /work/shared/peers/bare_autobahn_sink.py): no protocol, no hashing.

    bare_autobahn_sink.py PORT OUT_FILE [MAX_MESSAGE]

Each connection writes its binary messages to OUT_FILE; a text message ends it: the file is closed and the sink
answers with the byte count as text. What a WebSocket upload costs with nothing of ours on top, the reference
for the browser's send loop.
"""
import sys

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet import reactor


class Sink(WebSocketServerProtocol):
    def onOpen(self):
        self.f = open(OUT, "wb")
        self.n = 0

    def onMessage(self, payload, isBinary):
        if isBinary:
            self.f.write(payload)
            self.n += len(payload)
        else:
            self.f.close()
            self.sendMessage(str(self.n).encode())

    def onClose(self, wasClean, code, reason):
        if getattr(self, "f", None) and not self.f.closed:
            self.f.close()


if __name__ == "__main__":
    port, OUT = int(sys.argv[1]), sys.argv[2]
    limit = int(sys.argv[3]) if len(sys.argv) > 3 else 1 << 20
    factory = WebSocketServerFactory(f"ws://127.0.0.1:{port}")
    factory.protocol = Sink
    factory.setProtocolOptions(maxFramePayloadSize=max(limit, 1 << 20), maxMessagePayloadSize=max(limit, 1 << 20))
    reactor.listenTCP(port, factory, interface="127.0.0.1")
    reactor.callWhenRunning(lambda: print("listening", flush=True))
    reactor.run()
