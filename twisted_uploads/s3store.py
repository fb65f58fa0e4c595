"""Entry bytes in an S3-compatible bucket: a multipart upload per entry, fed from a spool on local disk.

Why this shape:

- ``write`` must never wait on the network (it runs in the reactor thread, straight from a WebSocket frame), and
  a 5 MiB part must never sit in RAM per entry (200 uploads would be 1 GiB). So bytes go to a *tail* spool file
  under ``spool_dir``; when the tail reaches ``part_size`` it is renamed to a part file and queued, and a thread
  of the store's pool uploads it with boto3. At most :data:`MAX_PARTS_IN_FLIGHT` parts of one writer are in
  flight, started in order; a spool never holds more than the parts waiting plus one tail.
- ``durable`` counts the bytes of the completed parts that form an unbroken prefix: exactly what another node can
  resume from (``state()`` lists those parts; ``S3Store.reopen`` continues the same multipart upload at their
  end). The connection acknowledges nothing beyond it.
- Every boto3 call runs in a thread of the store's own pool (never the reactor thread), with connect/read
  timeouts and bounded retries, so a store that is down fails the writer (its Deferreds fail with
  ``UploadError(STORAGE_FAILED)``, the next ``write`` raises ``OSError``) instead of hanging. A failure is logged
  as one line, never a traceback.

Objects are keyed ``<prefix><entry id hex>-<random>`` — never by session, so an entry moves between sessions
(a reloaded page adopts it) without a copy. Locations are ``s3://bucket/key``; :func:`location_info` splits one
into ``{"bucket": ..., "key": ...}`` so an S3-backed Django storage can copy the object server-side
(``CopyObject``) instead of downloading and re-uploading it, e.g.::

    info = location_info(entry.location)
    s3.copy({"Bucket": info["bucket"], "Key": info["key"]}, "media-bucket", "avatars/me.png")

A node that dies after creating a multipart upload but before its first part completed leaves an upload that no
record names; give the bucket a lifecycle rule ``AbortIncompleteMultipartUpload`` (a day is plenty) for those.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import secrets
import shutil
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import (BotoCoreError, ClientError, ConnectionError as BotoConnectionError,
                                 NoCredentialsError, PartialCredentialsError, ReadTimeoutError)
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from .errors import ErrorCode, UploadError
from .validation import HEAD_BYTES

log = Logger()

MiB = 1024 * 1024
#: S3's smallest part (all but the last); also the default, so a resume never loses more than 5 MiB.
MIN_PART_SIZE = 5 * MiB
#: Parts of one writer uploading at once: two keep the pipe full while one is being acknowledged.
MAX_PARTS_IN_FLIGHT = 2
#: boto3's behaviour when the store is down or slow: fail in seconds, never hang.
DEFAULT_CLIENT_CONFIG = dict(connect_timeout=5, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"})
SCHEME = "s3://"
#: Each process spools under ``<spool_dir>/<SPOOL_PREFIX><pid>`` (spool_dir is local to the host).
SPOOL_PREFIX = "process-"

T = TypeVar("T")


def make_location(bucket: str, key: str) -> str:
    """The location string of an object: ``s3://bucket/key``."""
    return f"{SCHEME}{bucket}/{key}"


def location_info(location: str) -> dict[str, str]:
    """Split ``s3://bucket/key`` into ``{"bucket": ..., "key": ...}`` (for a server-side copy); ValueError else."""
    if not location.startswith(SCHEME):
        raise ValueError(f"{location!r} is not an s3:// location")
    bucket, _, key = location[len(SCHEME):].partition("/")
    if not bucket or not key:
        raise ValueError(f"{location!r} names no bucket and key")
    return {"bucket": bucket, "key": key}


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def remove_dead_spools(spool_dir: Path) -> None:
    """Remove the spool directories of processes that are gone (a node killed mid-upload leaves its tail).

    Nodes on one host may share ``spool_dir``: only directories whose process no longer runs are touched.
    """
    for directory in spool_dir.glob(f"{SPOOL_PREFIX}*"):
        try:
            pid = int(directory.name[len(SPOOL_PREFIX):])
        except ValueError:
            continue
        if pid != os.getpid() and not _process_alive(pid):
            shutil.rmtree(directory, ignore_errors=True)
            log.info("removed the spool of a process that is gone: {path}", path=str(directory))


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def describe_error(error: BaseException, *, bucket: str, endpoint: str) -> str:
    """A sentence that says what is wrong with the store (not a traceback), for logs, checks and clients."""
    if isinstance(error, (NoCredentialsError, PartialCredentialsError)):
        return ("no S3 credentials: set aws_access_key_id and aws_secret_access_key in UPLOADS_S3_OPTIONS "
                "or the AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY environment")
    if isinstance(error, BotoConnectionError):
        return f"the S3 endpoint {endpoint} cannot be reached ({type(error).__name__})"
    if isinstance(error, ReadTimeoutError):
        return f"the S3 endpoint {endpoint} did not answer in time ({type(error).__name__})"
    if isinstance(error, ClientError):
        code = _error_code(error)
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("NoSuchBucket",) or (code == "404" and error.operation_name == "HeadBucket"):
            return f"the bucket {bucket!r} does not exist at {endpoint}"
        if code == "InvalidAccessKeyId":
            return f"the S3 access key is not known to {endpoint} (check aws_access_key_id)"
        if code == "SignatureDoesNotMatch":
            return f"the S3 secret key does not match the access key at {endpoint} (check aws_secret_access_key)"
        if code in ("AccessDenied", "403") or status == 403:
            return f"the S3 credentials may not use the bucket {bucket!r} at {endpoint}"
        if code == "NoSuchUpload":
            return "the multipart upload is gone (aborted, completed or expired)"
        if code in ("NoSuchKey", "404"):
            return "the object does not exist"
        message = error.response.get("Error", {}).get("Message", "")
        return f"S3 {error.operation_name} failed at {endpoint}: {code} {message}".strip()
    if isinstance(error, BotoCoreError):
        return f"S3 request to {endpoint} failed: {error}"
    return f"S3 request to {endpoint} failed: {error!r}"


@dataclass
class _Part:
    """A cut part waiting in the spool: its number in the multipart upload, its file and its size."""

    number: int
    path: Path
    size: int


class S3Store:
    """Opens :class:`S3Writer` s into one bucket and owns the objects they complete.

    ``client_options`` go to ``boto3.client("s3", **client_options)`` (endpoint_url, region_name, credentials;
    a ``config`` there is merged over :data:`DEFAULT_CLIENT_CONFIG`). boto3 clients are thread-safe, so one is
    shared by the pool's threads and by Django threads calling :meth:`open_read`.
    """

    def __init__(self, bucket: str, prefix: str = "", *, client_options: dict[str, Any] | None = None,
                 spool_dir: str | os.PathLike[str], part_size: int = MIN_PART_SIZE, reactor: Any = None,
                 max_threads: int = 16) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (S3's minimum part)")
        if reactor is None:
            from twisted.internet import reactor as default_reactor
            reactor = default_reactor
        self.bucket = bucket
        self.prefix = prefix
        self.part_size = part_size
        #: Acknowledgements come only for bytes in uploaded parts, so the durable offset grows a part at a time.
        self.durable_step = part_size
        self.spool_dir = Path(spool_dir)
        #: This process's own spool directory: what a crashed process left in its own is removed on start-up.
        self.process_spool = self.spool_dir / f"{SPOOL_PREFIX}{os.getpid()}"
        self.process_spool.mkdir(parents=True, exist_ok=True)
        remove_dead_spools(self.spool_dir)
        self._reactor = reactor
        options = dict(client_options or {})
        config = Config(max_pool_connections=max_threads, **DEFAULT_CLIENT_CONFIG)
        if options.get("config") is not None:
            config = config.merge(options["config"])
        options["config"] = config
        self.client = boto3.client("s3", **options)
        self.endpoint = self.client.meta.endpoint_url
        self._pool = ThreadPool(minthreads=0, maxthreads=max_threads, name="twisted-uploads-s3")
        self._shutdown_trigger: Any = None

    # -- threads ----------------------------------------------------------------------------------------------

    def run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> "Deferred[T]":
        """Run a blocking boto3 call in the store's pool; the Deferred fires in the reactor thread."""
        if not self._pool.started:
            self._pool.start()
            self._shutdown_trigger = self._reactor.addSystemEventTrigger("during", "shutdown", self._reactor_stopping)
        return deferToThreadPool(self._reactor, self._pool, function, *args, **kwargs)

    def stop(self) -> None:
        """Stop the thread pool (waits for calls in progress); the reactor's shutdown does it too."""
        if self._shutdown_trigger is not None:
            self._reactor.removeSystemEventTrigger(self._shutdown_trigger)
            self._shutdown_trigger = None
        if self._pool.started:
            self._pool.stop()

    def _reactor_stopping(self) -> None:
        self._shutdown_trigger = None
        self.stop()

    def storage_error(self, error: BaseException, what: str) -> UploadError:
        """``UploadError(STORAGE_FAILED)`` saying what failed and why."""
        if isinstance(error, UploadError):
            return error
        return UploadError(ErrorCode.STORAGE_FAILED,
                           f"{what}: {describe_error(error, bucket=self.bucket, endpoint=self.endpoint)}")

    def _translate(self, what: str) -> Callable[[Failure], Failure]:
        def translate(failure: Failure) -> Failure:
            return Failure(self.storage_error(failure.value, what))
        return translate

    # -- writers ----------------------------------------------------------------------------------------------

    def new_key(self, entry_id: int) -> str:
        """A fresh object key for an entry: no session in it (entries move between sessions without a copy)."""
        return f"{self.prefix}{entry_id:08x}-{secrets.token_hex(8)}"

    def open(self, session_id: str, entry_id: int) -> "S3Writer":
        """Start a new entry (sync: the multipart upload is created by the writer's queue with its first part)."""
        return S3Writer(self, self.new_key(entry_id), entry_id)

    def reopen(self, session_id: str, entry_id: int, offset: int, state: dict[str, Any]) -> "S3Writer":
        """Continue the multipart upload in ``state`` at ``offset``, which must end one of its listed parts.

        Parts beyond ``offset`` are overwritten as the new bytes arrive. The upload's parts are checked against
        ``ListParts`` before the first new part goes; a gone or different upload fails the writer
        (STORAGE_FAILED). An ``offset`` that is not a part boundary raises ``OSError`` at once.
        """
        key = state.get("key")
        if not key:
            raise OSError(errno.EINVAL, "the entry's store state names no S3 key")
        upload_id = state.get("upload_id")
        kept: list[tuple[int, str, int]] = []
        total = 0
        for number, etag, size in sorted((int(n), str(e), int(s)) for n, e, s in state.get("parts") or ()):
            if total >= offset:
                break
            if number != len(kept) + 1:
                break
            kept.append((number, etag, size))
            total += size
        if total != offset:
            boundaries = [0]
            for _number, _etag, size in kept:
                boundaries.append(boundaries[-1] + size)
            raise OSError(errno.EINVAL, f"offset {offset} is not a part boundary of {key} "
                                        f"(the durable parts end at {boundaries})")
        if kept and not upload_id:
            raise OSError(errno.EINVAL, f"the store state of {key} lists parts but no upload id")
        if state.get("bucket", self.bucket) != self.bucket:
            raise OSError(errno.EINVAL, f"the upload of {key} is in bucket {state['bucket']!r}, not {self.bucket!r}")
        return S3Writer(self, key, entry_id, upload_id=upload_id, parts=kept, verify=bool(upload_id))

    # -- objects ----------------------------------------------------------------------------------------------

    def _object(self, location: str) -> tuple[str, str]:
        info = location_info(location)
        return info["bucket"], info["key"]

    def delete(self, location: str) -> "Deferred[None]":
        """Remove a stored object (idempotent: a missing object is not an error)."""
        bucket, key = self._object(location)
        return self.run(self.client.delete_object, Bucket=bucket, Key=key).addCallbacks(
            lambda _: None, self._translate(f"could not delete {location}"))

    def abort_state(self, state: dict[str, Any]) -> "Deferred[None]":
        """Abort the multipart upload a record's store state names (a paused entry expired, on any node)."""
        upload_id = (state or {}).get("upload_id")
        key = (state or {}).get("key")
        if not upload_id or not key:
            return succeed(None)
        bucket = state.get("bucket") or self.bucket
        return self.run(_abort_upload, self.client, bucket, key, upload_id).addErrback(
            self._translate(f"could not abort the upload of {make_location(bucket, key)}"))

    def sha256_and_head(self, location: str) -> "Deferred[tuple[str, bytes]]":
        """Stream the object once: its SHA-256 (hex) and its first HEAD_BYTES (the hash of a taken-over entry)."""
        bucket, key = self._object(location)

        def digest() -> tuple[str, bytes]:
            body = self.client.get_object(Bucket=bucket, Key=key)["Body"]
            sha256 = hashlib.sha256()
            head = b""
            try:
                for block in body.iter_chunks(MiB):
                    sha256.update(block)
                    if len(head) < HEAD_BYTES:
                        head += block[: HEAD_BYTES - len(head)]
            finally:
                body.close()
            return sha256.hexdigest(), head

        return self.run(digest).addErrback(self._translate(f"could not read {location}"))

    def adopt(self, session_id: str, entry_id: int, source_path: str) -> "Deferred[str]":
        """Upload a complete local file (the no-JavaScript POST) as a new object and unlink the file."""
        key = self.new_key(entry_id)

        def upload() -> str:
            # upload_file switches to a multipart upload for large files and aborts it itself on failure.
            self.client.upload_file(source_path, self.bucket, key)
            os.unlink(source_path)
            return make_location(self.bucket, key)

        return self.run(upload).addErrback(self._translate(f"could not store {make_location(self.bucket, key)}"))

    def open_read(self, location: str) -> "S3ReadFile":
        """SYNC (for Django threads): a readable, streaming file of the object; FileNotFoundError when gone."""
        bucket, key = self._object(location)
        return S3ReadFile(_S3Object(self, bucket, key))

    def check(self) -> "Deferred[None]":
        """The bucket exists and the credentials may list it, else UploadError(STORAGE_FAILED, what is wrong)."""
        return self.run(self.check_blocking)

    def check_blocking(self) -> None:
        """:meth:`check` for a thread that may block (a Django system check): returns or raises UploadError."""
        try:
            self.client.list_objects_v2(Bucket=self.bucket, MaxKeys=1, Prefix=self.prefix)
        except (BotoCoreError, ClientError) as error:
            raise self.storage_error(error, f"S3 storage {make_location(self.bucket, self.prefix)} is not usable")

    # Keys carry no session, so these session-level operations of the local store have nothing to do.

    def move_partial(self, from_session: str, to_session: str, entry_id: int) -> None:
        """Nothing to move: an entry's key does not depend on its session."""

    def discard_session(self, session_id: str) -> None:
        """Nothing to discard: sessions own no directory in a bucket."""


def _abort_upload(client: Any, bucket: str, key: str, upload_id: str) -> None:
    """Abort a multipart upload; one that is already gone is what we wanted."""
    try:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    except ClientError as error:
        if _error_code(error) != "NoSuchUpload":
            raise


class S3Writer:
    """One entry's multipart upload: ``write`` spools to disk, full parts upload from threads, in order.

    Lifecycle: open → (write)* → close | suspend | abort. All methods are called in the reactor thread; the
    thread functions only ever see values passed to them, never the writer's mutable state.
    """

    def __init__(self, store: S3Store, key: str, entry_id: int, *, upload_id: str | None = None,
                 parts: Iterable[tuple[int, str, int]] = (), verify: bool = False) -> None:
        self._store = store
        self.key = key
        self.location = make_location(store.bucket, key)
        self._upload_id = upload_id
        self._parts: list[tuple[int, str, int]] = list(parts)
        self.durable = sum(size for _number, _etag, size in self._parts)
        self._written = self.durable
        self._next_number = len(self._parts) + 1
        self._done: dict[int, tuple[str, int]] = {}
        self._queue: deque[_Part] = deque()
        self._in_flight = 0
        # The upload must exist (created, or verified after a reopen) before a part goes.
        self._ready = upload_id is not None and not verify
        self._verify = verify
        self._preparing = False
        self._failure: UploadError | None = None
        self._finished = False  # no more writes: closing, closed, suspended or aborted
        self._completed = False
        self._aborted = False
        self._watchers: list[Callable[[int], None]] = []
        self._failure_watchers: list[Callable[[UploadError], None]] = []
        self._idle_waiters: list[Deferred[None]] = []
        self._spool_base = store.process_spool / f"{entry_id:08x}-{secrets.token_hex(6)}"
        self._tail_path = self._spool_base.with_suffix(".tail")
        self._tail: io.FileIO | None = open(self._tail_path, "wb", buffering=0)
        self._tail_size = 0

    # -- the connection's side --------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Bytes written but not durable yet (the connection stops reading while this is large)."""
        return self._written - self.durable

    def write(self, data: bytes) -> None:
        """Append to the spool (local disk only); cut and queue a part whenever the tail is full."""
        if self._failure is not None:
            raise OSError(errno.EIO, self._failure.message)
        if self._finished or self._tail is None:
            raise OSError(errno.EBADF, "the entry's writer is no longer open")
        view = memoryview(data)
        part_size = self._store.part_size
        while view:
            piece = view[: part_size - self._tail_size]
            while piece:
                written = self._tail.write(piece)
                self._tail_size += written
                self._written += written
                view = view[written:]
                piece = piece[written:]
            if self._tail_size >= part_size:
                self._cut()

    def watch(self, callback: Callable[[int], None]) -> None:
        """Call ``callback(durable)`` in the reactor thread each time ``durable`` grows."""
        self._watchers.append(callback)

    def on_failure(self, callback: Callable[[UploadError], None]) -> None:
        """Call ``callback(error)`` in the reactor thread once, when a part (or the upload) fails.

        A connection that stopped reading because ``pending`` is large writes nothing, so it would never see
        the ``OSError`` of the next ``write``: this tells it at once.
        """
        if self._failure is not None:
            callback(self._failure)
        else:
            self._failure_watchers.append(callback)

    def state(self) -> dict[str, Any]:
        """What another process needs to continue this upload (JSON): key, upload id and the durable parts."""
        return {"bucket": self._store.bucket, "key": self.key, "upload_id": self._upload_id,
                "parts": [[number, etag, size] for number, etag, size in self._parts]}

    def suspend(self) -> "Deferred[None]":
        """Wait for the parts in flight, then drop what is not durable; no file descriptor is held afterwards.

        The multipart upload stays, so this or another node can :meth:`S3Store.reopen` it at ``durable``.
        """
        if self._completed or self._aborted:
            return succeed(None)
        self._finished = True
        self._drop_spool()
        return self._when_idle().addCallback(lambda _: self._raise_failure())

    def close(self) -> "Deferred[str]":
        """Upload the tail as the last part and complete the upload; the location ``s3://bucket/key``."""
        if self._failure is not None:
            return fail(self._failure)
        if self._finished:
            return fail(OSError(errno.EBADF, "the entry's writer is no longer open"))
        self._finished = True
        assert self._tail is not None
        if not self._parts and not self._queue and not self._in_flight and not self._preparing:
            # Everything is in the tail: one PUT instead of create + part + complete.
            tail, self._tail = self._tail, None
            tail.close()
            d: Deferred[None] = self._store.run(_put_whole, self._store.client, self._store.bucket, self.key,
                                                self._tail_path, self._upload_id)
        else:
            if self._tail_size:
                self._cut(last=True)
            else:
                self._tail.close()
                self._tail = None
                self._tail_path.unlink(missing_ok=True)
            d = self._when_idle().addCallback(lambda _: self._complete())
        return d.addCallbacks(self._closed, self._close_failed)

    def abort(self) -> "Deferred[None]":
        """Abort the multipart upload (no orphan is left) and remove the spool; waits for parts in flight."""
        if self._completed or self._aborted:
            return succeed(None)
        self._finished = True
        self._aborted = True
        self._drop_spool()

        def abort_upload(_: None) -> "Deferred[None] | None":
            if self._upload_id is None:
                return None
            return self._store.run(_abort_upload, self._store.client, self._store.bucket, self.key,
                                   self._upload_id).addErrback(
                self._store._translate(f"could not abort the upload of {self.location}"))

        return self._when_idle().addCallback(abort_upload)

    # -- the part queue ---------------------------------------------------------------------------------------

    def _cut(self, last: bool = False) -> None:
        """Turn the tail into a queued part file and, unless it was the last, start a new tail."""
        assert self._tail is not None
        self._tail.close()
        part = _Part(self._next_number, self._spool_base.with_suffix(f".{self._next_number}"), self._tail_size)
        os.replace(self._tail_path, part.path)
        self._next_number += 1
        self._queue.append(part)
        self._tail = None if last else open(self._tail_path, "wb", buffering=0)
        self._tail_size = 0
        self._pump()

    def _pump(self) -> None:
        """Start queued parts while fewer than MAX_PARTS_IN_FLIGHT are uploading (after the upload exists)."""
        if self._failure is not None or self._aborted:
            self._check_idle()
            return
        if self._queue and not self._ready:
            if not self._preparing:
                self._preparing = True
                self._prepare().addCallbacks(self._prepared, self._failed)
            return
        while self._queue and self._in_flight < MAX_PARTS_IN_FLIGHT:
            part = self._queue.popleft()
            self._in_flight += 1
            self._store.run(_upload_part, self._store.client, self._store.bucket, self.key, self._upload_id,
                            part.number, part.path, part.size).addCallbacks(
                self._part_done, self._part_failed, callbackArgs=(part,), errbackArgs=(part,))
        self._check_idle()

    def _prepare(self) -> "Deferred[str]":
        store = self._store
        if self._verify:
            return store.run(_verify_upload, store.client, store.bucket, self.key, self._upload_id,
                             list(self._parts)).addErrback(
                store._translate(f"could not continue the upload of {self.location}"))
        return store.run(_create_upload, store.client, store.bucket, self.key).addErrback(
            store._translate(f"could not start the upload of {self.location}"))

    def _prepared(self, upload_id: str) -> None:
        self._preparing = False
        self._upload_id = upload_id
        self._ready = True
        self._pump()

    def _part_done(self, etag: str, part: _Part) -> None:
        self._in_flight -= 1
        self._done[part.number] = (etag, part.size)
        grew = False
        while len(self._parts) + 1 in self._done:
            number = len(self._parts) + 1
            done_etag, size = self._done.pop(number)
            self._parts.append((number, done_etag, size))
            self.durable += size
            grew = True
        self._pump()  # before the callbacks, so a callback that raises cannot stall the queue
        if grew:
            self._notify(self._watchers, self.durable)

    def _part_failed(self, failure: Failure, part: _Part) -> None:
        self._in_flight -= 1
        part.path.unlink(missing_ok=True)
        self._failed(Failure(self._store.storage_error(
            failure.value, f"could not store part {part.number} of {self.location}")))

    def _failed(self, failure: Failure) -> None:
        """The upload cannot go on: remember why (once), say it in one log line, tell who listens."""
        self._preparing = False
        error = failure.value if isinstance(failure.value, UploadError) else self._store.storage_error(
            failure.value, f"upload of {self.location} failed")
        watchers: list[Callable[[UploadError], None]] = []
        if self._failure is None and not self._aborted:
            self._failure = error
            # Nothing more will be uploaded: the tail and the waiting parts go now (the durable parts stay, for
            # a resume from ``state()``), so a writer nobody closes holds no file descriptor or disk space.
            self._drop_spool()
            log.warn("{why}", why=error.message)
            watchers, self._failure_watchers = self._failure_watchers, []
        self._check_idle()
        self._notify(watchers, error)

    def _notify(self, callbacks: list[Callable[[Any], None]], value: Any) -> None:
        """Call each callback; one that raises is logged (it is a bug there) and does not stop the others."""
        for callback in list(callbacks):
            try:
                callback(value)
            except Exception:
                log.failure("a callback of the writer of {location} raised", location=self.location)

    # -- waiting and finishing --------------------------------------------------------------------------------

    def _idle(self) -> bool:
        stalled = self._failure is not None or self._aborted
        return self._in_flight == 0 and not self._preparing and (stalled or not self._queue)

    def _when_idle(self) -> "Deferred[None]":
        if self._idle():
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._idle_waiters.append(waiter)
        return waiter

    def _check_idle(self) -> None:
        if self._idle() and self._idle_waiters:
            waiters, self._idle_waiters = self._idle_waiters, []
            for waiter in waiters:
                waiter.callback(None)

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _complete(self) -> "Deferred[None]":
        self._raise_failure()
        return self._store.run(_complete_upload, self._store.client, self._store.bucket, self.key,
                               self._upload_id, list(self._parts))

    def _closed(self, _: Any) -> str:
        self._completed = True
        self._drop_spool()
        return self.location

    def _close_failed(self, failure: Failure) -> Failure:
        self._drop_spool()
        error = self._store.storage_error(failure.value, f"could not complete {self.location}")
        if self._failure is None:
            self._failure = error
            log.warn("{why}", why=error.message)
        return Failure(error)

    def _drop_spool(self) -> None:
        """Close the tail and remove every spool file not being uploaded right now."""
        if self._tail is not None:
            self._tail.close()
            self._tail = None
        self._tail_path.unlink(missing_ok=True)
        while self._queue:
            self._queue.popleft().path.unlink(missing_ok=True)


# -- what runs in the pool's threads (plain functions of their arguments) ----------------------------------------

def _create_upload(client: Any, bucket: str, key: str) -> str:
    return str(client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"])


def _verify_upload(client: Any, bucket: str, key: str, upload_id: str, parts: list[tuple[int, str, int]]) -> str:
    """The upload still exists and holds the parts its record names (same ETags); its id, else UploadError."""
    listed: dict[int, set[str]] = {}
    paginator = client.get_paginator("list_parts")
    for page in paginator.paginate(Bucket=bucket, Key=key, UploadId=upload_id):
        for part in page.get("Parts", ()):
            listed.setdefault(int(part["PartNumber"]), set()).add(str(part["ETag"]))
    for number, etag, _size in parts:
        if etag not in listed.get(number, ()):
            raise UploadError(ErrorCode.STORAGE_FAILED,
                              f"could not continue the upload of {make_location(bucket, key)}: part {number} "
                              "is not the one its record names")
    return upload_id


def _upload_part(client: Any, bucket: str, key: str, upload_id: str | None, number: int, path: Path,
                 size: int) -> str:
    with open(path, "rb") as body:
        etag = client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body,
                                  ContentLength=size)["ETag"]
    path.unlink(missing_ok=True)
    return str(etag)


def _complete_upload(client: Any, bucket: str, key: str, upload_id: str | None,
                     parts: list[tuple[int, str, int]]) -> None:
    client.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": number, "ETag": etag} for number, etag, _size in parts]})


def _put_whole(client: Any, bucket: str, key: str, path: Path, upload_id: str | None) -> None:
    """A small entry in one PUT; a multipart upload a reopened writer inherited with no parts is aborted."""
    if upload_id is not None:
        _abort_upload(client, bucket, key, upload_id)
    with open(path, "rb") as body:
        client.put_object(Bucket=bucket, Key=key, Body=body)
    path.unlink(missing_ok=True)


class S3ReadFile(io.BufferedReader):
    """A stored object as a read-only, streaming file (what ``entry.file`` hands Django).

    Reads stream from one GET (boto3's StreamingBody) through a small buffer, so ``read(n)``, line iteration and
    ``readline`` are cheap; ``seek`` starts a ranged GET at the new position on the next read, so Django's
    ``File.chunks()`` (which seeks to 0) and libraries that peek and rewind (Pillow) work without a local copy.
    ``size`` and ``name`` (the key) are what Django's ``File`` looks for.
    """

    def __init__(self, raw: "_S3Object", buffer_size: int = 256 * 1024) -> None:
        super().__init__(raw, buffer_size)
        self._object = raw

    @property
    def size(self) -> int:
        """The object's length in bytes (from the GET's Content-Length)."""
        return self._object.size


class _S3Object(io.RawIOBase):
    """The raw, unbuffered side of :class:`S3ReadFile`: one GET at a time, reopened (ranged) after a seek."""

    def __init__(self, store: S3Store, bucket: str, key: str) -> None:
        super().__init__()
        self._store = store
        self._bucket = bucket
        self._key = key
        self.name = key
        self.size = 0
        self._position = 0
        self._body: Any = None
        self._body = self._get(0)  # at once: a missing object is FileNotFoundError here, not at the first read

    def _get(self, start: int) -> Any:
        try:
            kwargs: dict[str, Any] = {"Bucket": self._bucket, "Key": self._key}
            if start:
                kwargs["Range"] = f"bytes={start}-"
            response = self._store.client.get_object(**kwargs)
        except ClientError as error:
            if _error_code(error) in ("NoSuchKey", "404"):
                raise FileNotFoundError(errno.ENOENT, "no such stored object", make_location(self._bucket, self._key))
            raise self._store.storage_error(error, f"could not read {make_location(self._bucket, self._key)}")
        except BotoCoreError as error:
            raise self._store.storage_error(error, f"could not read {make_location(self._bucket, self._key)}")
        if not start:
            self.size = int(response["ContentLength"])
        return response["Body"]

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if self.closed:
            raise ValueError("seek on a closed file")
        if whence == io.SEEK_CUR:
            offset += self._position
        elif whence == io.SEEK_END:
            offset += self.size
        elif whence != io.SEEK_SET:
            raise ValueError(f"invalid whence {whence}")
        if offset < 0:
            raise OSError(errno.EINVAL, "negative seek position")
        if offset != self._position:
            if self._body is not None:
                self._body.close()
                self._body = None
            self._position = offset
        return self._position

    def readinto(self, buffer: Any) -> int:
        if self.closed:
            raise ValueError("read from a closed file")
        if self._position >= self.size:
            return 0
        if self._body is None:
            self._body = self._get(self._position)
        view = memoryview(buffer).cast("B")
        try:
            data = self._body.read(len(view))
        except (BotoCoreError, OSError) as error:
            raise OSError(errno.EIO, f"reading {make_location(self._bucket, self._key)} failed: {error}") from None
        view[: len(data)] = data
        self._position += len(data)
        return len(data)

    def readall(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            block = self.read(MiB)
            if not block:
                return b"".join(chunks)
            chunks.append(block)

    def close(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None
        super().close()
