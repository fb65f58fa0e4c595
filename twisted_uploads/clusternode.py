"""``twistd uploads --node`` / ``--redis``: the service that makes an upload server a node of the cluster."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from .cluster import SWEEP_INTERVAL, ClusterRegistry
from .clusterrecords import logged

if TYPE_CHECKING:
    from .redisstate import RedisState
    from .service import UploadServer

log = Logger()

#: Seconds a node waits before it tries Redis again after a failed connect at start-up.
RECONNECT_DELAY = 2.0


class ClusterService(Service):
    """Connects an :class:`UploadServer` to Redis as a cluster node (``twistd uploads --node``).

    The server answers ``registry_unavailable`` until Redis answers (clients retry with backoff); a node whose
    Redis is down at start keeps trying every :data:`RECONNECT_DELAY` seconds instead of exiting.
    """

    def __init__(self, server: "UploadServer", redis_url: str, store: Any, *, timeout: float = 2.0,
                 node_id: str | None = None, sweep_interval: float = SWEEP_INTERVAL) -> None:
        self.server = server
        self.redis_url = redis_url
        self.store = store
        self.timeout = timeout
        self.node_id = node_id
        self.registry = ClusterRegistry(store, server.clock, sweep_interval=sweep_interval,
                                        **server._registry_options)
        self._retry: Any = None
        self._state: RedisState | None = None

    def startService(self) -> None:
        super().startService()
        self.server.use_registry(self.registry)
        self._connect()

    def _connect(self) -> None:
        from .redisstate import RedisState

        self._retry = None

        def connected(state: "RedisState") -> None:
            if not self.running:
                logged(state.close(), "close the Redis connection of")
                return
            self._state = state
            log.info("Upload node {node} connected to Redis at {url}", node=state.node_id, url=self.redis_url)
            self.registry.connected(state)

        def failed(failure: Failure) -> None:
            if not self.running:
                return
            log.warn("Redis at {url} is unreachable ({error}); trying again in {delay:g} s", url=self.redis_url,
                     error=failure.getErrorMessage(), delay=RECONNECT_DELAY)
            self._retry = self.server.clock.callLater(RECONNECT_DELAY, self._connect)

        RedisState.connect(self.redis_url, node_id=self.node_id, timeout=self.timeout).addCallbacks(
            connected, failed)

    def stopService(self) -> Deferred[Any]:
        super().stopService()
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self.registry.shutdown()

        def close(_: object) -> Any:
            if self._state is not None:
                return logged(self._state.close(), "close the Redis connection of")
            return None

        return self.registry.stopped().addBoth(close)


def cluster_service(server: "UploadServer", redis_url: str, store: Any, *, timeout: float = 2.0,
                    node_id: str | None = None) -> ClusterService:
    """The service that makes ``server`` an upload node of the cluster on ``redis_url`` storing into ``store``."""
    return ClusterService(server, redis_url, store, timeout=timeout, node_id=node_id)
