"""Kill the node receiving an upload: the client resumes through HAProxy on the other node, exact to the byte.

Real everything: a redis-server, SeaweedFS's S3 gateway, two ``twistd uploads --redis … --storage s3://…`` node
processes behind HAProxy from ``deploy/haproxy.cfg``, and the Python client in this process.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import signal
from pathlib import Path
from typing import Any

from twisted.internet import defer, threads
from twisted.trial.unittest import SkipTest

from twisted_uploads.client.uploader import FileUpload, UploadClient
from twisted_uploads.redisstate import RedisState
from twisted_uploads.slots import SlotConfig

from ..engines.haproxy import HAProxy, find_tool
from ..engines.redis import RedisServer, redis_server_binary
from ..engines.weed import ACCESS_KEY, SECRET_KEY, TEST_BUCKET, shared_engine, weed_binary
from ..reliability.support import ServerTestCase, token

SIZE = 200 * 1024 * 1024
MIB = 1024 * 1024


class NodeFailoverTests(ServerTestCase):
    """The upload survives the death of the node that was receiving it."""

    timeout = 240

    def setUp(self) -> None:
        super().setUp()
        if redis_server_binary() is None or find_tool("haproxy") is None or weed_binary() is None:
            raise SkipTest("needs redis-server, haproxy and weed (scripts/setup-venv.sh, .ci/run install them)")
        self.redis = RedisServer(self.workdir / "redis").start()
        self.addCleanup(self.redis.stop)
        self.weed = shared_engine()
        self.weed.create_bucket(TEST_BUCKET)
        self.prefix = f"failover-{secrets.token_hex(4)}/"

    @defer.inlineCallbacks
    def start_nodes(self) -> Any:
        env = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
               "AWS_ENDPOINT_URL": self.weed.endpoint_url, "AWS_DEFAULT_REGION": "us-east-1"}
        options = ["--redis", self.redis.url, "--storage", f"s3://{TEST_BUCKET}/{self.prefix}"]
        nodes = []
        for name in ("node-a", "node-b"):
            node = yield self.start_server(name, upload_dir=self.workdir / name, options=options, env=env)
            nodes.append(node)
        proxy = yield HAProxy.start(self.workdir / "haproxy", nodes=[f"127.0.0.1:{n.port}" for n in nodes])
        self.addCleanup(proxy.stop)
        return nodes, proxy

    @defer.inlineCallbacks
    def test_killing_the_receiving_node_mid_upload_completes_on_the_other_with_the_exact_sha256(self) -> Any:
        nodes, proxy = yield self.start_nodes()
        source = self.make_file(SIZE)
        digest = hashlib.sha256(source.read_bytes()).hexdigest()
        session = secrets.token_hex(8)
        grant = token(session, files=SlotConfig(max_file_size=SIZE, chunk_size=MIB))
        observer = yield RedisState.connect(self.redis.url, node_id="test-observer")
        self.addCleanup(observer.close)
        halfway: defer.Deferred[int] = defer.Deferred()

        def progress(upload: FileUpload) -> None:
            if upload.acked >= SIZE // 3 and not halfway.called and upload.entry_id is not None:
                halfway.callback(upload.entry_id)

        client = UploadClient(proxy.url("/uploads/ws", scheme="ws"), grant, on_progress=progress, max_retries=20)
        done = client.upload([FileUpload.from_path(source, "files")])
        entry_id = yield halfway
        record = yield observer.get(session, entry_id)
        receiving = next(n for n in nodes if f"-{n.transport.pid}-" in record.server)
        survivor = next(n for n in nodes if n is not receiving)
        yield receiving.kill(signal.SIGKILL)

        [result] = yield done
        self.assertEqual((result.status, result.sha256), ("complete", digest))
        self.assertGreaterEqual(result.resumes, 1)
        stored = yield observer.get(session, entry_id)
        self.assertEqual((stored.status, stored.server.split("-")[-2]), ("complete", str(survivor.transport.pid)))
        self.assertEqual((yield threads.deferToThread(self.object_sha256, stored.location)), digest)
        self.assertEqual(self.weed.multipart_uploads(TEST_BUCKET, self.prefix), [])
        self.assertNoCrash(survivor)

    def object_sha256(self, location: str) -> str:
        bucket, key = location.removeprefix("s3://").split("/", 1)
        body = self.weed.client().get_object(Bucket=bucket, Key=key)["Body"]
        digest = hashlib.sha256()
        for block in iter(lambda: body.read(MIB), b""):
            digest.update(block)
        return digest.hexdigest()
