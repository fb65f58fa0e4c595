"""``python -m twisted_uploads`` (console script ``twisted-uploads``): upload files from a terminal, or mint a
standalone token.

Every run ends, within seconds when the server cannot be used, with one readable line per problem on stderr and an
exit status from :data:`EXIT_CODES` (documented in ``docs/cli.md`` and ``--help``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
import time
from typing import Any, Sequence

from tqdm import tqdm

from .. import DEFAULT_WS_PATH
from ..errors import MESSAGES, ErrorCode, UploadError
from ..tokens import make_token
from .endpoint import check_url
from .slotspec import parse_duration, parse_slot
from .uploader import (BACKOFF_FIRST, BACKOFF_MAX, CONNECT_TIMEOUT, MAX_RETRIES, STALL_TIMEOUT, FileUpload,
                       UploadClient, UploadResult)

SECRET_ENV = "TWISTED_UPLOADS_SECRET"
CONSOLE_SCRIPT = "twisted-uploads"

EXIT_OK = 0
EXIT_FILE_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_INVALID_TOKEN = 4
EXIT_MOVED = 5
EXIT_INTERRUPTED = 130

#: Exit status → when. One table for --help and docs/cli.md (tests/client/test_cli.py keeps the doc equal).
EXIT_CODES: dict[int, str] = {
    EXIT_OK: "every file complete, the server's SHA-256 equal to the local one",
    EXIT_FILE_FAILED: "a file failed (rejected, failed while uploading, cancelled, or stored with a different "
                      "SHA-256); each such file has its line on stderr",
    EXIT_USAGE: "usage error: bad option or URL, a FILE that is missing, a directory or unreadable; nothing sent",
    EXIT_UNREACHABLE: "the connection could not be used: unreachable (refused, timed out, HTTP 404 or another "
                      "refusal, given up after --retries) or forbidden_origin (HTTP 403)",
    EXIT_INVALID_TOKEN: "invalid_token: the server refused the token (forged, expired, malformed)",
    EXIT_MOVED: "no file failed, but another connection of the same upload session took some over (moved)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}

#: A run-ending connection error → exit status.
_FAILURE_EXITS = {ErrorCode.INVALID_TOKEN: EXIT_INVALID_TOKEN, ErrorCode.UNREACHABLE: EXIT_UNREACHABLE,
                  ErrorCode.FORBIDDEN_ORIGIN: EXIT_UNREACHABLE}


def _exit_table() -> str:
    return "exit status:\n" + "\n".join(
        textwrap.fill(text, 110, initial_indent=f"  {code:<4} ", subsequent_indent=" " * 7)
        for code, text in EXIT_CODES.items())


def _argument(parse: Any) -> Any:
    """An argparse type from a parser that raises ValueError: argparse then shows our message, not its own."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    convert.__name__ = parse.__name__
    return convert


def _positive_int(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise ValueError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def _count(text: str) -> int:
    if not text.strip().isdigit():
        raise ValueError(f"{text!r} is not a whole number")
    return int(text)


def _seconds(text: str) -> float:
    return parse_duration(text)


UPLOAD_EPILOG = f"""\
Each FILE ends on one line: "NAME: complete, SIZE bytes, sha256 HEX" on stdout, or "NAME: CODE: message" on
stderr. A problem with the connection itself ends the run at once with one line "error: CODE: message".

connecting:
  A refusal that retrying cannot change ends the run at once: HTTP 403 (forbidden_origin), HTTP 404 (wrong path;
  the default path {DEFAULT_WS_PATH} is used when the URL has none), close 4001 (invalid_token). Anything else
  (connection refused, no answer within --connect-timeout, a dropped connection, a connection silent for
  --stall-timeout while the client waits, HTTP 5xx) is retried --retries times in a row with backoff
  ({BACKOFF_FIRST:g} s doubling up to {BACKOFF_MAX:g} s); upload progress resets the count, and files resume where
  the server has them.

{_exit_table()}
"""

TOKEN_EPILOG = f"""\
slot syntax:  NAME[:field=value,field=value,...]    (repeat --slot for several slots)
  accept=.png,.jpg,image/*      extensions and MIME types; commas inside the value need no quoting, and
                                accept=".png,.jpg" works too. ';' also separates them, but a shell ends the
                                command at an unquoted ';': quote the whole --slot value.
  max_entries=N                 files active in the slot at once (default 1)
  max_file_size=SIZE            per file (default 10MB); bytes or a number with a unit: kB MB GB TB (1000^n)
                                or KiB MiB GiB TiB (1024^n), e.g. 10MB, 1.5GiB
  chunk_size=SIZE               largest chunk, 1KiB … 8MiB (default 64KiB)
  chunk_timeout=DURATION        seconds an upload may wait for its next chunk (default 10)
  auto_upload=true|false        browser hint: start at once (default true)
  allow_active_content=true|false  allow SVG/HTML/JavaScript (default false)

example:
  python -m twisted_uploads token --slot 'photos:accept=.png,.jpg,max_entries=5,max_file_size=20MB'

The token is a bearer token: whoever holds it may upload to its session until it expires.
"""


def build_parser() -> argparse.ArgumentParser:
    # The console script and ``python -m`` are the same program; usage lines name the one the user typed.
    invoked = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    prog = CONSOLE_SCRIPT if invoked == CONSOLE_SCRIPT else "python -m twisted_uploads"
    parser = argparse.ArgumentParser(prog=prog,
                                     description="Chunked, resumable uploads over WebSocket.",
                                     epilog=_exit_table(), formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    upload = commands.add_parser("upload", help="upload files", description="Upload files to a twisted-uploads "
                                 "server.", epilog=UPLOAD_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    upload.add_argument("files", nargs="+", metavar="FILE", help="regular files to upload")
    upload.add_argument("--url", required=True,
                        help=f"WebSocket URL, e.g. ws://localhost:8000{DEFAULT_WS_PATH} (ws:// or wss://; "
                             f"a URL without a path gets {DEFAULT_WS_PATH})")
    upload.add_argument("--token", required=True, help="upload token granted by the application")
    upload.add_argument("--slot", help="upload slot name (default: the token's only slot)")
    upload.add_argument("--parallel", type=_argument(_positive_int), default=4,
                        help="files uploading at once (default 4; never more than the server's max_parallel)")
    upload.add_argument("--window", type=_argument(_positive_int), default=None,
                        help="flow-control window in chunks (default: the server's; at least a quarter of it)")
    upload.add_argument("--retries", type=_argument(_count), default=MAX_RETRIES,
                        help=f"connection attempts in a row that may fail before giving up (default {MAX_RETRIES})")
    upload.add_argument("--connect-timeout", type=_argument(_seconds), default=CONNECT_TIMEOUT, metavar="SECONDS",
                        help=f"time one attempt has to connect, open the WebSocket and be welcomed "
                             f"(default {CONNECT_TIMEOUT:g}; units s, m allowed)")
    upload.add_argument("--stall-timeout", type=_argument(_seconds), default=STALL_TIMEOUT, metavar="SECONDS",
                        help=f"time an open connection may stay silent while the client waits for the server "
                             f"before it is dropped and retried (default {STALL_TIMEOUT:g})")
    upload.add_argument("--origin", default=None, help="Origin header to send (default: none)")
    upload.add_argument("--json", action="store_true", help="print one JSON object per file on stdout")
    upload.add_argument("--no-progress", action="store_true",
                        help="no progress bar (it is shown only when stderr is a terminal)")

    token = commands.add_parser("token", help="mint a standalone token (HMAC with the server's secret)",
                                description="Mint a standalone upload token, signed with the secret that "
                                            "`twistd uploads --secret` verifies.",
                                epilog=TOKEN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    token.add_argument("--secret", default=os.environ.get(SECRET_ENV),
                       help=f"the server's token secret, at least 16 bytes (default: ${SECRET_ENV})")
    token.add_argument("--session", default=None, help="upload session id (default: random)")
    token.add_argument("--slot", action="append", type=_argument(parse_slot), required=True,
                       metavar="NAME[:field=value,...]", help="a slot the token grants (repeatable; syntax below)")
    token.add_argument("--ttl", type=_argument(parse_duration), default=3600.0, metavar="DURATION",
                       help="how long the token is valid: seconds, or a number with s, m, h, d "
                            "(default 3600 = 1h)")
    return parser


def _describe(result: UploadResult) -> str:
    if result.ok:
        return f"{result.name}: complete, {result.size} bytes, sha256 {result.sha256}"
    if result.status == "complete":
        return (f"{result.name}: stored, but the server's SHA-256 {result.sha256} "
                f"differs from ours {result.local_sha256}")
    if result.moved:
        return f"{result.name}: moved: another connection of this upload session took it over"
    code = result.code or "error"
    try:
        fallback = MESSAGES[ErrorCode(code)]
    except ValueError:
        fallback = ""
    return f"{result.name}: {code}: {result.message or fallback}"


def _fail(message: str, status: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return status


def run_upload(args: argparse.Namespace) -> int:
    try:
        url = check_url(args.url, default_path=DEFAULT_WS_PATH)
    except ValueError as error:
        return _fail(f"--url: {error}", EXIT_USAGE)
    try:
        files = [FileUpload.from_path(path, args.slot or "") for path in args.files]
    except OSError as error:
        return _fail(f"{error.filename}: {error.strerror}", EXIT_USAGE)

    from twisted.internet import reactor

    bar = None if args.no_progress or args.json else tqdm(
        total=sum(f.size for f in files), unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
        disable=None)
    shown: dict[str, int] = {}

    def progress(upload: FileUpload) -> None:
        if bar is not None:
            done = upload.acked if upload.status != "complete" else upload.size
            bar.update(done - shown.get(upload.ref, 0))
            shown[upload.ref] = done
            bar.set_description(upload.name[:30])

    client = UploadClient(url, args.token, parallel=args.parallel, window_chunks=args.window,
                          max_retries=args.retries, origin=args.origin, connect_timeout=args.connect_timeout,
                          stall_timeout=args.stall_timeout, on_progress=progress)
    outcome: dict[str, Any] = {}

    def finished(results: Any) -> None:
        outcome["results"] = results
        reactor.stop()

    def start() -> None:
        # Whatever happens inside, the reactor stops: an exception must end the run, not leave it hanging.
        try:
            client.upload(files).addBoth(finished)
        except Exception as error:  # noqa: BLE001 - reported as the run's result
            finished(error)

    started = time.perf_counter()
    started_on_clock = reactor.seconds()
    reactor.callWhenRunning(start)
    reactor.run()
    if bar is not None:
        bar.close()
    elapsed = max(time.perf_counter() - started, 1e-9)
    results = outcome.get("results")
    if results is None:
        return _fail("interrupted", EXIT_INTERRUPTED)
    if not isinstance(results, list):
        error = getattr(results, "value", results)
        return _fail(f"{type(error).__name__}: {error}", EXIT_FILE_FAILED)
    return _report(args, client, results, elapsed, started_on_clock)


def _report(args: argparse.Namespace, client: UploadClient, results: list[UploadResult], elapsed: float,
            started_on_clock: float | None = None) -> int:
    """One line per file (the run-ending connection error once, not per file), then the exit status."""
    failure = client.failure
    for result in results:
        ended_by_failure = failure is not None and _ended_by(result, failure)
        if args.json:
            # A file's time runs to its own end (the server's `complete`), not to the close handshake after it.
            seconds = elapsed
            if result.finished_at is not None and started_on_clock is not None:
                seconds = max(result.finished_at - started_on_clock, 1e-9)
            print(json.dumps({"name": result.name, "size": result.size, "status": result.status,
                              "code": result.code, "message": result.message, "sha256": result.sha256,
                              "sha256_matches": result.sha256 == result.local_sha256 if result.sha256 else False,
                              "entry": result.entry_id, "resumes": result.resumes, "seconds": round(seconds, 4),
                              "mib_per_s": round(result.size / 2**20 / seconds, 2)}), flush=True)
        elif not ended_by_failure:
            print(_describe(result), file=sys.stdout if result.ok or result.moved else sys.stderr)
    if failure is not None:
        left = sum(1 for r in results if _ended_by(r, failure))
        unsent = f" ({left} of {len(results)} files not uploaded)" if len(results) > 1 else ""
        return _fail(f"{failure.code.value}: {failure.message}{unsent}",
                     _FAILURE_EXITS.get(failure.code, EXIT_FILE_FAILED))
    if any(not (r.ok or r.moved) for r in results):
        return EXIT_FILE_FAILED
    return EXIT_MOVED if any(r.moved for r in results) else EXIT_OK


def _ended_by(result: UploadResult, failure: UploadError) -> bool:
    """Whether ``result`` is one of the files the run-ending connection error finished."""
    return result.status == "error" and result.code == failure.code.value and result.message == failure.message


def run_token(args: argparse.Namespace) -> int:
    import secrets

    if not args.secret:
        return _fail(f"token: pass --secret or set ${SECRET_ENV} (the secret the server verifies with)", EXIT_USAGE)
    try:
        print(make_token(args.secret, args.session or secrets.token_urlsafe(12), dict(args.slot), args.ttl))
    except ValueError as error:
        return _fail(str(error), EXIT_USAGE)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "upload":
        return run_upload(args)
    return run_token(args)
