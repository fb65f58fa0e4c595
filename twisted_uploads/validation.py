"""The rules a file must pass: at announce (name, type, size) and on its first bytes (magic bytes, active content).

Pure functions with no I/O, shared by the WebSocket server and the Django shim's no-JS fallback so that both
refuse exactly the same files with exactly the same :class:`~twisted_uploads.errors.ErrorCode`.
"""

from __future__ import annotations

import mimetypes
import os
import re
import unicodedata

import filetype

from .errors import ErrorCode, UploadError
from .slots import SlotConfig

#: How many leading bytes the content checks look at (filetype reads at most this many).
HEAD_BYTES = 8192

#: Characters kept of a client's file name; also never more than MAX_NAME_BYTES of UTF-8 (file systems count bytes).
MAX_NAME_LENGTH = 200
MAX_NAME_BYTES = 240
_WINDOWS_DEVICES = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}

_ALIASES = {"jpeg": "jpg", "jpe": "jpg", "jfif": "jpg", "tiff": "tif", "mid": "midi", "oga": "ogg", "ogv": "ogg",
            "opus": "ogg", "apng": "png", "m4v": "mp4", "m4a": "mp4", "3gp": "mp4", "mov": "mp4", "heic": "mp4",
            "avif": "mp4", "woff2": "woff", "otf": "ttf"}
#: Formats that are ZIP archives inside: filetype may report either the format or plain zip.
_ZIP_FAMILY = {"zip", "docx", "xlsx", "pptx", "odt", "ods", "odp", "epub", "jar", "apk", "xpi", "crx"}
#: Formats that are OLE compound files inside.
_OLE_FAMILY = {"doc", "xls", "ppt", "msi", "msg"}
#: Extensions whose files always start with recognisable magic bytes: a file so named without them is spoofed.
_MAGIC_REQUIRED = {"jpg", "png", "gif", "webp", "bmp", "tif", "pdf", "zip", "gz", "bz2", "xz", "7z", "rar", "docx",
                   "xlsx", "pptx", "odt", "ods", "odp", "epub", "psd", "ico", "flac", "wav", "mp4", "webm", "mkv",
                   "avi", "doc", "xls", "ppt", "sqlite", "wasm", "exe"}
#: Extensions that say nothing about the content, so any content is consistent with them.
_GENERIC = {"bin", "dat", "tmp", "raw", "octet-stream", ""}

_ACTIVE_EXTENSIONS = {"svg", "svgz", "html", "htm", "xhtml", "xht", "shtml", "js", "mjs", "cjs", "hta", "xsl",
                      "xslt"}
_ACTIVE_MIMES = {"image/svg+xml", "text/html", "application/xhtml+xml", "text/javascript", "application/javascript",
                 "application/x-javascript", "application/ecmascript", "text/ecmascript", "application/xslt+xml"}
_ACTIVE_PREFIXES = (b"<svg", b"<!doctype html", b"<html", b"<script", b"<head", b"<body", b"<iframe", b"<object")


def _family(ext: str) -> str:
    ext = _ALIASES.get(ext, ext)
    if ext in _ZIP_FAMILY:
        return "zip"
    if ext in _OLE_FAMILY:
        return "ole"
    return ext


def extension_of(name: str) -> str:
    """The lower-case extension of ``name`` without the dot ('' when there is none)."""
    return os.path.splitext(name)[1].lower().lstrip(".")


def sanitize_name(raw: str) -> str:
    """Reduce a client-supplied file name to a safe bare name.

    No directories (either separator), no control or format characters, no leading dots (hidden files, ``..``),
    nothing a Windows or POSIX file system refuses, at most :data:`MAX_NAME_LENGTH` characters with the extension
    kept — so ``default_storage.save(f"avatars/{entry.client_name}", ...)`` is safe exactly as the seed writes it.
    """
    name = unicodedata.normalize("NFC", str(raw)).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = re.sub(r'[<>:"|?*]', "_", name).strip().lstrip(".").strip()
    stem, ext = os.path.splitext(name)
    ext = ext[:20]
    if len(name) > MAX_NAME_LENGTH:
        stem = stem[: MAX_NAME_LENGTH - len(ext)]
    while len((stem + ext).encode("utf-8")) > MAX_NAME_BYTES:
        stem = stem[:-1]
    name = (stem.rstrip() + ext) if stem.strip() else ext.lstrip(".")
    if name.split(".")[0].lower() in _WINDOWS_DEVICES:
        name = "_" + name
    return name or "upload"


MAX_RELATIVE_PATH_SEGMENTS = 32
MAX_RELATIVE_PATH_LENGTH = 1000


def sanitize_relative_path(raw: object) -> str | None:
    """Reduce a dropped folder's relative path (``photos/2024/a.png``) to safe segments, or None.

    Each segment is sanitised like a file name; empty, ``.`` and ``..`` segments are dropped, so the result can
    never climb out of a directory it is joined to.
    """
    if not isinstance(raw, str) or not raw.strip():
        return None
    segments = [s for s in str(raw).replace("\\", "/").split("/") if s.strip() not in ("", ".", "..")]
    clean = [sanitize_name(segment) for segment in segments[-MAX_RELATIVE_PATH_SEGMENTS:]]
    path = "/".join(clean)[-MAX_RELATIVE_PATH_LENGTH:].lstrip("/")
    return path or None


def is_active_name(name: str, mime: str) -> bool:
    """Whether the name or declared type says SVG, HTML or JavaScript."""
    return extension_of(name) in _ACTIVE_EXTENSIONS or mime.lower().split(";")[0].strip() in _ACTIVE_MIMES


def is_active_content(head: bytes) -> bool:
    """Whether the first bytes look like SVG or HTML (which a browser would run scripts in)."""
    text = head[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(_ACTIVE_PREFIXES):
        return True
    if text.startswith(b"<?xml") or text.startswith(b"<!--"):
        return b"<svg" in text or b"<html" in text or b"<script" in text
    return False


def check_announce(slot: SlotConfig, name: str, mime: str, size: object) -> None:
    """Refuse a file before any of its bytes are sent; raises :class:`UploadError`."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise UploadError(ErrorCode.TOO_LARGE, "The declared size must be a non-negative integer.")
    if size > slot.max_file_size:
        raise UploadError(ErrorCode.TOO_LARGE,
                          f"{name} is {format_size(size)}; the limit is {format_size(slot.max_file_size)}.")
    if not slot.accepts(name, mime):
        raise UploadError(ErrorCode.NOT_ACCEPTED, f"{name} is not one of the accepted types ({slot.accept}).")
    if not slot.allow_active_content and is_active_name(name, mime):
        raise UploadError(ErrorCode.ACTIVE_CONTENT, f"{name}: SVG, HTML and JavaScript files are not accepted.")


def check_content(slot: SlotConfig, name: str, mime: str, head: bytes) -> str | None:
    """Check the first bytes of a file against its name and declared type; raises :class:`UploadError`.

    ``head`` is the first :data:`HEAD_BYTES` bytes, or the whole file if it is shorter. Returns the MIME type the
    magic bytes say (``entry.detected_type``), or None when filetype recognises nothing.
    """
    if not slot.allow_active_content and is_active_content(head):
        raise UploadError(ErrorCode.ACTIVE_CONTENT, f"{name} contains SVG or HTML, which is not accepted.")
    kind = filetype.guess(head) if head else None
    ext = extension_of(name)
    declared = ext or (mimetypes.guess_extension(mime.split(";")[0].strip()) or "").lstrip(".")
    if kind is None:
        if _family(declared) in {_family(e) for e in _MAGIC_REQUIRED}:
            raise UploadError(ErrorCode.TYPE_MISMATCH,
                              f"{name} does not contain {declared.upper()} data.")
        return None
    if declared in _GENERIC:
        return kind.mime
    if _family(declared) != _family(kind.extension):
        raise UploadError(ErrorCode.TYPE_MISMATCH,
                          f"{name} contains {kind.extension.upper()} data, not {declared.upper()}.")
    return kind.mime


def format_size(size: int) -> str:
    """Human-readable size in decimal units, as the limits are usually written (5 MB = 5_000_000)."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")
