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

# -- what names and declared types claim about the bytes -----------------------------------------------------------
#
# A *claim* is the set of outcomes of the magic-byte check a name or a declared MIME type is consistent with: a
# format family ("png", "zip", "ole", ...), UNRECOGNISED (filetype knows no signature in the bytes) and TEXT (a
# signature matched, but the bytes are plain text, e.g. a CSV starting "BM," that filetype calls a bitmap). ``None``
# means the name or type says nothing checkable (``pic.bin``, ``application/octet-stream``, an extension no table
# knows): only what is known can be contradicted, so an unusual but genuine file is never refused for its name.

UNRECOGNISED = "?"
TEXT = "text"
_TEXT_CLAIM = frozenset({TEXT, UNRECOGNISED})

_ALIASES = {"jpeg": "jpg", "jpe": "jpg", "jfif": "jpg", "pjpeg": "jpg", "pjp": "jpg", "tiff": "tif", "mid": "midi",
            "oga": "ogg", "ogv": "ogg", "ogx": "ogg", "opus": "ogg", "spx": "ogg", "apng": "png", "woff2": "woff",
            "otf": "ttf", "tgz": "gz", "tbz": "bz2", "tbz2": "bz2", "txz": "xz", "webm": "mkv", "mka": "mkv",
            "mk3d": "mkv", "aif": "aiff", "aifc": "aiff"}
#: ISO base media files (``ftyp`` boxes): filetype names the brand, which varies between cameras and encoders.
_ISOBMFF_FAMILY = {"mp4", "m4v", "m4a", "m4b", "m4p", "mov", "qt", "3gp", "3g2", "heic", "heif", "hif", "avif"}
#: Formats that are ZIP archives inside: filetype may report either the format or plain zip.
_ZIP_FAMILY = {"zip", "docx", "docm", "dotx", "dotm", "xlsx", "xlsm", "xltx", "xltm", "xlsb", "pptx", "pptm", "potx",
               "ppsx", "ppsm", "odt", "ods", "odp", "odg", "ott", "ots", "otp", "epub", "jar", "apk", "xpi", "crx",
               "vsdx", "xps", "oxps", "kmz", "cbz", "3mf", "whl", "nupkg", "vsix", "ipa"}
#: Formats that are OLE compound files inside (Office 97-2003, Outlook, installers).
_OLE_FAMILY = {"doc", "xls", "xlt", "ppt", "pps", "msi", "vsd", "mpp"}
#: Families whose files always start with recognisable magic bytes: a file claiming one without them is spoofed.
_MAGIC_REQUIRED = {"jpg", "png", "gif", "webp", "bmp", "tif", "pdf", "zip", "gz", "bz2", "xz", "7z", "rar", "psd",
                   "ico", "flac", "wav", "mkv", "avi", "ole", "sqlite", "wasm", "exe"}
#: Extensions whose real-world files come in more than one family.
_EXTENSION_CLAIMS: dict[str, frozenset[str]] = {
    # Word opens RTF and plain text saved as .doc, Excel CSV/TSV exports saved as .xls, and both OOXML files
    # renamed to the old extension.
    "doc": frozenset({"ole", "rtf", "zip", TEXT, UNRECOGNISED}), "xls": frozenset({"ole", "zip", TEXT, UNRECOGNISED}),
    "ppt": frozenset({"ole", "zip"}),
    # Names two unrelated formats each: Outlook message or Tcl/gettext catalogue, Word template or Graphviz graph.
    "msg": frozenset({"ole", TEXT, UNRECOGNISED}), "dot": frozenset({"ole", "zip", TEXT, UNRECOGNISED}),
    # Illustrator files are PDF inside; EPS may be PostScript text or a binary DOS EPS header.
    "ai": frozenset({"pdf", "ps", UNRECOGNISED}), "eps": frozenset({"ps", UNRECOGNISED}),
    # An ID3 tag may precede the audio data.
    "flac": frozenset({"flac", "mp3"}), "aac": frozenset({"aac", "mp3", UNRECOGNISED}),
    "wav": frozenset({"wav", "mp3"}),
    # Canon raw files are TIFF inside.
    "cr2": frozenset({"cr2", "tif"}), "tif": frozenset({"tif", "cr2"}),
}
#: Extensions of plain-text formats (besides those Python's own table calls ``text/*``).
_TEXT_EXTENSIONS = {"txt", "text", "csv", "tsv", "tab", "md", "markdown", "rst", "adoc", "log", "json", "jsonl",
                    "ndjson", "geojson", "xml", "yaml", "yml", "toml", "ini", "cfg", "conf", "env", "properties",
                    "sql", "srt", "vtt", "ics", "vcf", "eml", "mbox", "tex", "bib", "diff", "patch", "po", "asc",
                    "css", "scss", "less", "sh", "bash", "zsh", "ps1", "bat", "cmd", "py", "rb", "pl", "php", "java",
                    "kt", "swift", "go", "rs", "c", "h", "cc", "cpp", "hpp", "cs", "r", "lua", "dart", "scala",
                    "gpx", "kml", "rss", "atom", "nfo"}
#: Declared types that say nothing about the bytes (what browsers and tools send when they do not know).
_GENERIC_MIMES = {"", "application/octet-stream", "binary/octet-stream", "application/binary",
                  "application/unknown", "application/x-unknown", "unknown/unknown", "application/x-unknown-content-type",
                  "application/force-download", "application/x-download", "application/download",
                  # Windows' name for .tgz, .zip, .gz, .z ... alike.
                  "application/x-compressed", "*/*",
                  # The default of a multipart part without a Content-Type (RFC 7578 §4.4), and the default of
                  # tools built on it (Django's SimpleUploadedFile): it says nothing about a file's format.
                  "text/plain"}
#: Declared types browsers and operating systems really send, beyond the canonical ones filetype reports.
_MIME_EXTENSIONS: dict[str, str] = {
    "image/jpg": "jpg", "image/pjpeg": "jpg", "image/x-citrix-jpeg": "jpg", "image/x-png": "png",
    "image/x-citrix-png": "png", "image/x-ms-bmp": "bmp", "image/x-bmp": "bmp", "image/x-windows-bmp": "bmp",
    "image/vnd.microsoft.icon": "ico", "image/x-tiff": "tif", "image/heif": "heic", "image/heic-sequence": "heic",
    "image/heif-sequence": "heic", "image/psd": "psd", "image/x-photoshop": "psd", "application/x-photoshop": "psd",
    "application/photoshop": "psd", "application/psd": "psd",
    "application/x-zip-compressed": "zip", "application/x-zip": "zip", "application/zip-compressed": "zip",
    "multipart/x-zip": "zip", "application/java-archive": "jar", "application/x-java-archive": "jar",
    "application/vnd.android.package-archive": "apk", "application/x-pdf": "pdf", "application/acrobat": "pdf",
    "text/pdf": "pdf", "text/x-pdf": "pdf", "application/x-gzip": "gz", "application/gzip": "gz",
    "application/x-bzip": "bz2", "application/vnd.rar": "rar", "application/x-rar": "rar",
    "application/msword": "doc", "application/vnd.ms-powerpoint": "ppt",
    "application/x-msi": "msi", "application/x-ole-storage": "msi", "application/vnd.ms-outlook": "msg",
    "audio/mp3": "mp3", "audio/x-mp3": "mp3", "audio/mpeg3": "mp3", "audio/x-mpeg-3": "mp3", "audio/x-mpeg": "mp3",
    "audio/wav": "wav", "audio/wave": "wav", "audio/vnd.wave": "wav", "audio/x-pn-wav": "wav", "audio/flac": "flac",
    "audio/x-m4a": "m4a", "audio/m4a": "m4a", "audio/x-aac": "aac", "video/x-m4v": "m4v", "video/3gpp": "3gp",
    "video/3gpp2": "3gp", "audio/3gpp": "3gp", "image/avif": "avif", "audio/opus": "ogg", "video/ogg": "ogg",
    "application/ogg": "ogg", "audio/webm": "mkv", "video/webm": "mkv", "audio/x-matroska": "mkv",
    "video/avi": "avi", "video/msvideo": "avi", "audio/aiff": "aiff", "application/x-dosexec": "exe",
    "application/x-ms-dos-executable": "exe", "application/vnd.microsoft.portable-executable": "exe",
    "application/x-exe": "exe", "application/vnd.sqlite3": "sqlite",
    "font/woff": "woff", "font/woff2": "woff", "application/x-font-woff": "woff", "font/ttf": "ttf",
    "font/otf": "ttf", "font/sfnt": "ttf", "application/x-font-ttf": "ttf", "application/x-font-otf": "ttf",
    "text/rtf": "rtf", "application/illustrator": "ai",
}
#: Declared types that cover formats of several families.
_MIME_CLAIMS: dict[str, frozenset[str]] = {
    # Windows with Excel installed declares .csv files (text) as Excel's type, and .xlsx by some older setups.
    "application/vnd.ms-excel": frozenset({"ole", "zip", TEXT, UNRECOGNISED}),
    "application/postscript": frozenset({"ps", "pdf", UNRECOGNISED}),
    # Tarballs are declared as tar whether or not they are compressed.
    "application/x-tar": frozenset({"tar", "gz", "bz2", "xz", "zst", "lz", "Z", UNRECOGNISED}),
    "application/x-gtar": frozenset({"tar", "gz", "bz2", "xz", "zst", "lz", "Z", UNRECOGNISED}),
    "audio/mpeg": frozenset({"mp3", UNRECOGNISED}), "audio/aac": frozenset({"aac", "mp3", "mp4", UNRECOGNISED}),
    "application/rtf": frozenset({"rtf", TEXT, UNRECOGNISED}),
    # Debian's mime.types: .com .exe .bat .dll alike (a .bat is text).
    "application/x-msdos-program": frozenset({"exe", TEXT, UNRECOGNISED}),
}
#: Compression suffixes: a client that guesses the type from the name (Python's mimetypes) declares the *inner*
#: file's type for ``notes.txt.gz``, so for these names the declared type may also mean the compressed file.
_COMPRESSED_EXTENSIONS = {"gz", "tgz", "bz2", "tbz", "tbz2", "xz", "txz", "zst", "br", "z", "lz", "lz4", "lzma"}
#: Families of vendor types by prefix: every OOXML and OpenDocument format is a ZIP archive.
_MIME_PREFIX_FAMILIES = (("application/vnd.openxmlformats-officedocument.", "zip"),
                         ("application/vnd.oasis.opendocument.", "zip"), ("application/vnd.ms-word.", "zip"),
                         ("application/vnd.ms-excel.", "zip"), ("application/vnd.ms-powerpoint.", "zip"))
#: Non-``text/*`` types of plain-text formats.
_TEXT_MIMES = {"application/json", "application/xml", "application/x-yaml", "application/yaml", "application/toml",
               "application/sql", "application/x-sql", "application/csv", "application/x-csv", "application/x-sh",
               "application/x-python", "application/x-python-code", "application/x-tex", "application/x-latex",
               "application/x-subrip", "application/x-ndjson", "application/ndjson", "application/jsonl",
               "message/rfc822", "application/mbox", "application/javascript", "application/x-javascript",
               "application/ecmascript", "application/x-httpd-php", "application/pgp-signature",
               "application/pgp-keys", "application/x-pem-file"}
#: ``text/*`` types of plain-text formats (others, like Debian's ``text/vnd.a`` for ar archives, say nothing).
_COMMON_TEXT_MIMES = {"text/plain", "text/csv", "text/x-csv", "text/comma-separated-values",
                      "text/x-comma-separated-values", "text/tab-separated-values", "text/markdown", "text/x-markdown",
                      "text/html", "text/xml", "text/css", "text/calendar", "text/vcard", "text/x-vcard",
                      "text/javascript", "text/ecmascript", "text/x-python", "text/x-script.python", "text/x-c",
                      "text/x-csrc", "text/x-chdr", "text/x-c++src", "text/x-java", "text/x-java-source", "text/x-sh",
                      "text/x-shellscript", "text/x-log", "text/yaml", "text/x-yaml", "text/x-sql", "text/richtext",
                      "text/enriched", "text/x-diff", "text/x-patch", "text/troff", "text/x-tex", "text/vtt",
                      "text/x-rst", "text/prs.fallenstein.rst", "text/x-perl", "text/x-ruby", "text/x-php",
                      "text/x-go", "text/rust", "text/x-rust", "text/x-toml", "text/x-ini", "text/x-properties"}
#: Python's built-in table only (not the host's /etc/mime.types), so the rules are the same on every machine.
_BUILTIN_TYPES = mimetypes.MimeTypes()


def _family(ext: str) -> str:
    ext = _ALIASES.get(ext, ext)
    if ext in _ISOBMFF_FAMILY:
        return "mp4"
    if ext in _ZIP_FAMILY:
        return "zip"
    if ext in _OLE_FAMILY:
        return "ole"
    return ext


_FILETYPE_FAMILIES = {_family(kind.extension): kind for kind in filetype.types}
_FILETYPE_MIMES = {kind.mime: _family(kind.extension) for kind in filetype.types}
_SIGNATURE_FAMILIES = set(_FILETYPE_FAMILIES) | {"ole"}
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def _family_claim(family: str) -> frozenset[str]:
    return frozenset({family}) if family in _MAGIC_REQUIRED else frozenset({family, UNRECOGNISED})


def _extension_claim(ext: str) -> frozenset[str] | None:
    """What a file named ``*.ext`` may contain, or None when the extension says nothing checkable."""
    if ext in _EXTENSION_CLAIMS:
        return _EXTENSION_CLAIMS[ext]
    family = _family(ext)
    if family in _SIGNATURE_FAMILIES:
        return _family_claim(family)
    if ext in _TEXT_EXTENSIONS or (_BUILTIN_TYPES.guess_type(f"x.{ext}")[0] or "").startswith("text/"):
        return _TEXT_CLAIM
    return None


def declared_mime(mime: str) -> str:
    """A declared MIME type without parameters, lower-cased (``"Image/PNG; q=1"`` → ``"image/png"``)."""
    return mime.split(";")[0].strip().lower()


def _mime_claim(mime: str) -> frozenset[str] | None:
    """What a file declared as ``mime`` may contain, or None when the type says nothing checkable."""
    mime = declared_mime(mime)
    if mime in _GENERIC_MIMES:
        return None
    if mime in _MIME_CLAIMS:
        return _MIME_CLAIMS[mime]
    if mime in _MIME_EXTENSIONS:
        return _extension_claim(_MIME_EXTENSIONS[mime])
    if mime in _FILETYPE_MIMES:
        return _family_claim(_FILETYPE_MIMES[mime])
    for prefix, family in _MIME_PREFIX_FAMILIES:
        if mime.startswith(prefix):
            return _family_claim(family)
    if mime in _TEXT_MIMES or mime.endswith(("+xml", "+json")):
        return _TEXT_CLAIM
    ext = _BUILTIN_TYPES.guess_extension(mime)
    if mime.startswith("text/"):
        # Only the text types known to be text: host tables file binary formats under text/ too (text/vnd.a, .a).
        known = mime in _COMMON_TEXT_MIMES or (ext is not None and ext.lstrip(".") in _TEXT_EXTENSIONS)
        return _TEXT_CLAIM if known else None
    return _extension_claim(ext.lstrip(".")) if ext else None


def _looks_like_text(head: bytes) -> bool:
    """Whether ``head`` reads as text (UTF-8, a legacy 8-bit encoding, or UTF-16 with a BOM) rather than binary."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return True
    if b"\x00" in head:
        return False
    controls = sum(1 for byte in head if byte < 0x20 and byte not in b"\t\n\r\f\x1b")
    return controls * 100 <= len(head)


def _detect(head: bytes) -> tuple[str, str] | None:
    """The (family, MIME type) the magic bytes say, or None."""
    kind = filetype.guess(head) if head else None
    if kind is not None:
        return _family(kind.extension), kind.mime
    if head.startswith(_OLE_MAGIC):
        # filetype recognises only some Word/Excel/PowerPoint files by their inner streams; every OLE file has this.
        return "ole", "application/x-ole-storage"
    return None


def _consistent(claim: frozenset[str], detected: tuple[str, str] | None, textual: bool) -> bool:
    if detected is None:
        return UNRECOGNISED in claim
    return detected[0] in claim or (TEXT in claim and textual)


#: Extensions that say nothing about the content, so any content is consistent with them.
_GENERIC = {"bin", "dat", "tmp", "raw", "octet-stream", "part", "download", "crdownload", ""}



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


# -- active content ------------------------------------------------------------------------------------------------

_ACTIVE_EXTENSIONS = {"svg", "svgz", "html", "htm", "xhtml", "xht", "shtml", "js", "mjs", "cjs", "hta", "xsl",
                      "xslt"}
_ACTIVE_MIMES = {"image/svg+xml", "text/html", "application/xhtml+xml", "text/javascript", "application/javascript",
                 "application/x-javascript", "application/ecmascript", "text/ecmascript", "application/xslt+xml"}
#: The WHATWG MIME Sniffing "HTML" patterns (§7.1, identifying an unknown MIME type), each followed by a
#: tag-terminating byte, plus the elements that run script or load active content in any HTML or SVG context.
_HTML_SNIFF_TAGS = ("!doctype html", "html", "head", "script", "iframe", "h1", "div", "font", "table", "a", "style",
                    "title", "b", "body", "br", "p", "!--")
_ACTIVE_TAGS = ("img", "svg", "object", "embed", "frameset", "frame", "math", "video", "audio", "link", "meta",
                "base", "form", "input", "textarea", "details", "marquee", "xmp", "plaintext", "template")
# The sniffing patterns end with a tag-terminating byte, space or ">", exactly as browsers match them; an HTML parser
# also reads "<img/src=x" or "<svg\nonload=..." as those elements, so the others end at any of these.
_SNIFFED_START = re.compile(rb"<(" + b"|".join(re.escape(tag.encode()) for tag in _HTML_SNIFF_TAGS) + rb")[ >]")
_TAG_START = re.compile(rb"<(" + b"|".join(re.escape(tag.encode()) for tag in _ACTIVE_TAGS) + rb")(?=[\s/>]|$)")
#: Inside XML (which browsers render as XML when served as such): what makes it run script — the XHTML or SVG
#: namespace, an XSLT stylesheet, or script/svg/html elements.
_XML_ACTIVE = re.compile(rb"<\s*(?:[\w.-]+:)?(?:script|svg|html)\b"
                         rb"|http://www\.w3\.org/(?:1999/xhtml|2000/svg)|<\?xml-stylesheet")
_LEADING_WHITESPACE = b"\t\n\x0c\r "


def is_active_name(name: str, mime: str) -> bool:
    """Whether the name or declared type says SVG, HTML or JavaScript."""
    return extension_of(name) in _ACTIVE_EXTENSIONS or declared_mime(mime) in _ACTIVE_MIMES


def is_active_content(head: bytes) -> bool:
    """Whether a browser would render the first bytes as HTML, SVG or script-bearing XML.

    What a browser sniffs when a file is served without a type it trusts (WHATWG MIME Sniffing: the HTML patterns
    after leading whitespace, ``<!--`` included), elements that run script in any HTML context (``<img onerror>``,
    ``<svg>``, ``<object>``...), and XML that declares or uses the XHTML or SVG namespace, a script element or an
    XSLT stylesheet. Only the start of the document counts, so text that merely mentions ``<b>`` later is fine.
    """
    text = head
    if text.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = text.decode("utf-16", "ignore").encode("utf-8")
    text = text.lstrip(b"\xef\xbb\xbf").lstrip(_LEADING_WHITESPACE).lower()
    if _SNIFFED_START.match(text) or _TAG_START.match(text):
        return True
    if text.startswith((b"<?xml", b"<!doctype", b"<!--")) or (text.startswith(b"<") and b"xmlns" in text[:1024]):
        return _XML_ACTIVE.search(text) is not None
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
    """Check the first bytes of a file against its name *and* its declared type; raises :class:`UploadError`.

    ``head`` is the first :data:`HEAD_BYTES` bytes, or the whole file if it is shorter. The extension and the
    declared MIME type are each checked when they say something checkable (``pic.bin`` and
    ``application/octet-stream`` say nothing), and the declared types browsers really send are known aliases
    (``image/jpg``, ``image/pjpeg``, ``application/x-zip-compressed``, Excel's type for a CSV...). Returns the MIME
    type the magic bytes say (``entry.detected_type``), or None when they say nothing — no signature, or only one
    that plain text happens to start with (a CSV beginning ``BM,``).
    """
    if not slot.allow_active_content and is_active_content(head):
        raise UploadError(ErrorCode.ACTIVE_CONTENT, f"{name} contains SVG or HTML, which is not accepted.")
    detected = _detect(head)
    textual = detected is not None and _looks_like_text(head)
    ext = extension_of(name)
    by_name = _extension_claim(ext) if ext and ext not in _GENERIC else None
    by_type = _mime_claim(mime)
    if by_type is not None and by_name is not None and ext in _COMPRESSED_EXTENSIONS:
        by_type = by_type | by_name
    what = detected[0].upper() if detected is not None else ""
    if by_name is not None and not _consistent(by_name, detected, textual):
        if detected is None:
            raise UploadError(ErrorCode.TYPE_MISMATCH, f"{name} does not contain {ext.upper()} data.")
        raise UploadError(ErrorCode.TYPE_MISMATCH, f"{name} contains {what} data, not {ext.upper()}.")
    if by_type is not None and not _consistent(by_type, detected, textual):
        declared = declared_mime(mime)
        if detected is None:
            raise UploadError(ErrorCode.TYPE_MISMATCH, f"{name} was sent as {declared} but contains no such data.")
        raise UploadError(ErrorCode.TYPE_MISMATCH, f"{name} contains {what} data but was sent as {declared}.")
    if detected is None:
        return None
    claims = [claim for claim in (by_name, by_type) if claim is not None]
    if textual and claims and not any(detected[0] in claim for claim in claims):
        # Accepted only because the bytes are text: the signature was a coincidence, not the file's format.
        return None
    return detected[1]


def format_size(size: int) -> str:
    """Human-readable size in decimal units, as the limits are usually written (5 MB = 5_000_000)."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")
