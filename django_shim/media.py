"""Serving uploaded files (``MEDIA_ROOT`` in development) so that none of them can run in the site's origin.

Users choose what lands in ``MEDIA_ROOT``. A file served with a type the browser renders — HTML, SVG, XML, or
anything unknown that a server labels ``text/html`` (Twisted's default) or that the browser sniffs — runs its
scripts with the site's cookies: stored XSS. So every file goes out with

* its real type from its name (``mimetypes``), ``application/octet-stream`` when unknown, and never a
  ``Content-Encoding`` from a ``.gz`` suffix (``page.html.gz`` would otherwise be unpacked and rendered as HTML);
* ``X-Content-Type-Options: nosniff``, so the browser believes that type;
* ``Content-Disposition: attachment`` unless the type is one a browser only ever displays (raster images, audio,
  video, plain text, PDF): everything else is downloaded, never rendered.

:class:`MediaFile` does this for twistd's one-port site; :func:`serve` wraps Django's ``django.views.static.serve``
for ``runserver`` (``static(settings.MEDIA_URL, view=serve, document_root=settings.MEDIA_ROOT)``).
"""

from __future__ import annotations

import mimetypes
from typing import Any
from urllib.parse import quote

from twisted.web.resource import IResource, NoResource
from twisted.web.server import Request
from twisted.web.static import File

#: Types a browser displays without running anything: served inline, everything else as an attachment.
INLINE_TYPES = frozenset({"image/png", "image/apng", "image/jpeg", "image/gif", "image/webp", "image/avif",
                          "image/bmp", "image/x-icon", "image/vnd.microsoft.icon", "text/plain", "text/csv",
                          "application/pdf"})
INLINE_PREFIXES = ("audio/", "video/")
FALLBACK_TYPE = "application/octet-stream"
#: What a compressed file is when its inner type must not be used (``x.svg.gz`` is a gzip file, not an SVG).
_ENCODING_TYPES = {"gzip": "application/gzip", "bzip2": "application/x-bzip2", "xz": "application/x-xz",
                   "compress": "application/x-compress", "br": "application/x-brotli"}


def media_type(name: str) -> str:
    """The type to serve a file called ``name`` with: from its extension, never from its content."""
    guessed, encoding = mimetypes.guess_type(name, strict=False)
    if encoding is not None:
        return _ENCODING_TYPES.get(encoding, FALLBACK_TYPE)
    return guessed or FALLBACK_TYPE


def is_inline_type(content_type: str) -> bool:
    """Whether a browser only displays ``content_type`` (so it may be served inline)."""
    bare = content_type.split(";")[0].strip().lower()
    return bare in INLINE_TYPES or bare.startswith(INLINE_PREFIXES)


def content_disposition(name: str, content_type: str) -> str:
    """``inline`` or ``attachment``, with the file name in both RFC 6266 forms."""
    kind = "inline" if is_inline_type(content_type) else "attachment"
    ascii_name = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\' else "_" for ch in name) or "download"
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


def safe_headers(name: str) -> dict[str, str]:
    """Every header :func:`serve` and :class:`MediaFile` send for a file called ``name``."""
    content_type = media_type(name)
    return {"Content-Type": content_type, "X-Content-Type-Options": "nosniff",
            "Content-Disposition": content_disposition(name, content_type)}


class MediaFile(File):
    """twisted.web's ``File`` for user files: real types, ``nosniff``, attachments, no listings, no index pages."""

    #: Twisted answers ``text/html`` for unknown types and unpacks ``.gz``: neither, for user files.
    contentEncodings: dict[str, str] = {}
    indexNames: list[str] = []

    def __init__(self, path: str, defaultType: str = FALLBACK_TYPE, *args: Any, **kwargs: Any) -> None:
        super().__init__(path, FALLBACK_TYPE, *args, **kwargs)
        self.processors = {}

    def directoryListing(self) -> IResource:
        return NoResource()

    def render_GET(self, request: Request) -> Any:
        request.setHeader(b"x-content-type-options", b"nosniff")
        self.restat(False)
        if self.isfile():
            headers = safe_headers(self.basename())
            self.type, self.encoding = headers["Content-Type"], None
            request.setHeader(b"content-disposition", headers["Content-Disposition"].encode("ascii"))
        return super().render_GET(request)

    render_HEAD = render_GET


def serve(request: Any, path: str, document_root: str | None = None, show_indexes: bool = False) -> Any:
    """Django's development ``static.serve`` with the same safe headers (never a directory index)."""
    from django.views import static

    response = static.serve(request, path, document_root=document_root, show_indexes=False)
    if getattr(response, "streaming", False) or response.status_code == 304:
        name = path.rsplit("/", 1)[-1]
        for header, value in safe_headers(name).items():
            response.headers[header] = value
        if "Content-Encoding" in response.headers:
            del response.headers["Content-Encoding"]
    return response


__all__ = ["INLINE_TYPES", "MediaFile", "content_disposition", "is_inline_type", "media_type", "safe_headers",
           "serve"]
