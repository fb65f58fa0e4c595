"""Two upload nodes in one process, sharing a real redis-server and one store, for the cluster tests.

Each node is a :class:`~twisted_uploads.cluster.ClusterRegistry` on its own Redis connection (its own node id), on
the real reactor; clients speak the protocol to it through a transport that lets a test wait for a message.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, reactor

from twisted_uploads.cluster import ClusterRegistry
from twisted_uploads.codec import encode_chunk, encode_message
from twisted_uploads.connection import ConnectionLimits, UploadConnection
from twisted_uploads.redisstate import RedisState
from twisted_uploads.slots import SlotConfig
from twisted_uploads.tokens import HMACTokenVerifier, make_token

from ..engines.redis import RedisTestCase
from ..support import DEFAULT_SLOTS, SECRET, FakeTransport


class WaitingTransport(FakeTransport):
    """A FakeTransport whose messages a test can wait for on the real reactor."""

    def __init__(self) -> None:
        super().__init__()
        self._waiting: list[tuple[str, defer.Deferred[dict[str, Any]]]] = []
        self._seen = 0

    def send_text(self, text: str) -> None:
        super().send_text(text)
        # Delivered in a later reactor turn, as over a socket: a test reacting to a message never runs inside
        # the server's own call that sent it.
        reactor.callLater(0, self._deliver)

    def _deliver(self) -> None:
        while self._waiting and self._seen < len(self.sent):
            message = self.sent[self._seen]
            self._seen += 1
            kind, waiter = self._waiting[0]
            if message["type"] == kind or kind == "*":
                self._waiting.pop(0)
                waiter.callback(message)

    def next(self, kind: str) -> defer.Deferred[dict[str, Any]]:
        """The next message of type ``kind`` not waited for yet (earlier messages of other types are passed)."""
        waiter: defer.Deferred[dict[str, Any]] = defer.Deferred()
        self._waiting.append((kind, waiter))
        self._deliver()
        return waiter


class NodeClient:
    """One connection to a node."""

    def __init__(self, connection: UploadConnection, transport: WaitingTransport) -> None:
        self.connection = connection
        self.transport = transport

    def send(self, message_type: str, **fields: Any) -> None:
        self.connection.text_received(encode_message(message_type, **fields))

    def stream(self, entry_id: int, data: bytes, start: int, end: int, chunk_size: int = 1024) -> None:
        for offset in range(start, end, chunk_size):
            self.connection.binary_received(encode_chunk(entry_id, offset, data[offset:min(end, offset + chunk_size)]))

    def drop(self) -> None:
        """The socket goes away (the browser closed it, the network failed)."""
        self.connection.connection_lost()


class Node:
    """An upload node: a cluster registry on its own Redis connection."""

    def __init__(self, state: RedisState, store: Any, clock: Any = reactor, **options: Any) -> None:
        self.state = state
        self.registry = ClusterRegistry(store, clock, sweep_interval=options.pop("sweep_interval", 0.1),
                                        **options)
        #: Fires once the node listens for its events (cancels, moves).
        self.ready = self.registry.connected(state)
        self.verifier = HMACTokenVerifier(SECRET)

    @defer.inlineCallbacks
    def client(self, session: str = "page-1", slots: dict[str, SlotConfig] | None = None) -> Any:
        """A connection authenticated to ``session``; its ``welcome`` is on ``client.welcome``."""
        transport = WaitingTransport()
        connection = UploadConnection(self.registry, self.verifier, reactor, transport,
                                      ConnectionLimits(window_chunks=64))
        connection.connection_made()
        client = NodeClient(connection, transport)
        welcome = transport.next("welcome")
        client.send("auth", token=make_token(SECRET, session, DEFAULT_SLOTS if slots is None else slots, 3600))
        client.welcome = yield welcome
        return client


class ClusterTestCase(RedisTestCase):
    """A redis-server, a store, and nodes ``a`` and ``b``."""

    timeout = 30
    node_options: dict[str, Any] = {}
    #: The nodes' clock for deadlines (the reactor; a test of expiry gives a Clock it advances).
    clock: Any = reactor

    def make_store(self) -> Any:
        from twisted_uploads.storage import TempFileStore

        return TempFileStore(self.mktemp())

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        super().setUp()
        self.store = self.make_store()
        self.a = yield self.make_node("node-a")
        self.b = yield self.make_node("node-b")

    def sweeps(self) -> Any:
        """Every node's sweep, finished (nodes on a shared Clock all sweep when it advances)."""
        return defer.gatherResults([self.a.registry.sweep(), self.b.registry.sweep()])

    @defer.inlineCallbacks
    def make_node(self, name: str) -> Any:
        state = yield self.node(name)
        node = Node(state, self.store, self.clock, **dict(self.node_options))
        self.addCleanup(node.registry.shutdown)
        yield node.ready
        return node
