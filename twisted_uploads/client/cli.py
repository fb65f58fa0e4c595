"""``python -m twisted_uploads``: upload files from a terminal, or mint a standalone token.

Exit status: 0 when every file completed with a matching SHA-256, 1 when any file failed (each failure is
printed with its error code and message), 2 for bad command-line usage.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Sequence

from tqdm import tqdm

from ..errors import MESSAGES, ErrorCode
from ..slots import SlotConfig
from ..tokens import make_token
from .uploader import FileUpload, UploadClient, UploadResult


def _parse_slot(text: str) -> tuple[str, SlotConfig]:
    """``NAME`` or ``NAME:field=value,field=value`` → (name, SlotConfig)."""
    name, _, spec = text.partition(":")
    fields: dict[str, Any] = {}
    for pair in filter(None, spec.split(",")):
        key, _, value = pair.partition("=")
        key = key.strip()
        if key in ("max_entries", "max_file_size", "chunk_size"):
            fields[key] = int(value)
        elif key == "chunk_timeout":
            fields[key] = float(value)
        elif key in ("auto_upload", "allow_active_content"):
            fields[key] = value.strip().lower() in ("1", "true", "yes")
        elif key == "accept":
            fields[key] = value.replace(";", ",")
        else:
            raise argparse.ArgumentTypeError(f"unknown slot field {key!r}")
    try:
        return name, SlotConfig(**fields)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m twisted_uploads",
                                     description="Chunked, resumable uploads over WebSocket.")
    commands = parser.add_subparsers(dest="command", required=True)

    upload = commands.add_parser("upload", help="upload files")
    upload.add_argument("files", nargs="+", metavar="FILE")
    upload.add_argument("--url", required=True, help="WebSocket URL, e.g. ws://localhost:8000/uploads/ws")
    upload.add_argument("--token", required=True, help="upload token granted by the application")
    upload.add_argument("--slot", help="upload slot name (default: the token's only slot)")
    upload.add_argument("--parallel", type=int, default=4, help="files uploading at once (default 4)")
    upload.add_argument("--window", type=int, default=None, help="flow-control window in chunks (default: server's)")
    upload.add_argument("--retries", type=int, default=8, help="reconnect attempts without progress (default 8)")
    upload.add_argument("--origin", default=None, help="Origin header to send")
    upload.add_argument("--json", action="store_true", help="print one JSON object per file")
    upload.add_argument("--no-progress", action="store_true", help="no progress bar")

    token = commands.add_parser("token", help="mint a standalone token (HMAC with the server's secret)")
    token.add_argument("--secret", required=True)
    token.add_argument("--session", default=None, help="upload session id (default: random)")
    token.add_argument("--slot", action="append", type=_parse_slot, required=True,
                       help="NAME[:accept=.png;.jpg,max_entries=N,max_file_size=N,chunk_size=N,...] (repeatable)")
    token.add_argument("--ttl", type=float, default=3600.0)
    return parser


def _describe(result: UploadResult) -> str:
    if result.ok:
        return f"{result.name}: complete, {result.size} bytes, sha256 {result.sha256}"
    if result.status == "complete":
        return (f"{result.name}: stored, but the server's SHA-256 {result.sha256} "
                f"differs from ours {result.local_sha256}")
    code = result.code or "error"
    try:
        fallback = MESSAGES[ErrorCode(code)]
    except ValueError:
        fallback = ""
    return f"{result.name}: {code}: {result.message or fallback}"


def run_upload(args: argparse.Namespace) -> int:
    from twisted.internet import reactor

    slot = args.slot or ""
    try:
        files = [FileUpload.from_path(path, slot) for path in args.files]
    except OSError as error:
        print(f"error: {error.filename}: {error.strerror}", file=sys.stderr)
        return 2
    bar = None if args.no_progress or args.json else tqdm(
        total=sum(f.size for f in files), unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr)
    shown: dict[str, int] = {}

    def progress(upload: FileUpload) -> None:
        if bar is not None:
            done = upload.acked if upload.status != "complete" else upload.size
            bar.update(done - shown.get(upload.ref, 0))
            shown[upload.ref] = done
            bar.set_description(upload.name[:30])

    client = UploadClient(args.url, args.token, parallel=args.parallel, window_chunks=args.window,
                          max_retries=args.retries, origin=args.origin, on_progress=progress)
    if not slot:
        _discover_slot(args, files)
    outcome: dict[str, Any] = {}

    def finished(results: Any) -> None:
        outcome["results"] = results
        reactor.stop()

    started = time.perf_counter()
    reactor.callWhenRunning(lambda: client.upload(files).addBoth(finished))
    reactor.run()
    if bar is not None:
        bar.close()
    elapsed = max(time.perf_counter() - started, 1e-9)
    failures = 0
    results = outcome.get("results")
    if not isinstance(results, list):
        print(f"error: {results}", file=sys.stderr)
        return 1
    for result in results:
        failures += not result.ok
        if args.json:
            print(json.dumps({"name": result.name, "size": result.size, "status": result.status,
                              "code": result.code, "message": result.message, "sha256": result.sha256,
                              "sha256_matches": result.sha256 == result.local_sha256 if result.sha256 else False,
                              "entry": result.entry_id, "resumes": result.resumes, "seconds": round(elapsed, 4),
                              "mib_per_s": round(result.size / 2**20 / elapsed, 2)}), flush=True)
        else:
            print(_describe(result), file=sys.stdout if result.ok else sys.stderr)
    return 1 if failures else 0


def _discover_slot(args: argparse.Namespace, files: Sequence[FileUpload]) -> None:
    """Read the slot names out of a standalone token without verifying it (the server verifies)."""
    import base64

    try:
        payload_part = args.token.split(".")[0]
        payload = json.loads(base64.urlsafe_b64decode(payload_part + "=" * (-len(payload_part) % 4)))
        names = list(payload["slots"])
    except (ValueError, KeyError, TypeError):
        names = []
    if len(names) != 1:
        raise SystemExit("error: cannot tell which upload slot to use; pass --slot NAME")
    for upload in files:
        upload.slot = names[0]


def run_token(args: argparse.Namespace) -> int:
    import secrets

    try:
        print(make_token(args.secret, args.session or secrets.token_urlsafe(12), dict(args.slot), args.ttl))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "upload":
        return run_upload(args)
    return run_token(args)
