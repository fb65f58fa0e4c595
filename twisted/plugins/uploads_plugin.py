"""Registers ``twistd uploads`` (see :mod:`twisted_uploads.tap`)."""

from twisted.application.service import ServiceMaker

uploads = ServiceMaker(
    "twisted-uploads",
    "twisted_uploads.tap",
    "Chunked, resumable, validated file uploads over WebSocket (standalone or with a Django project).",
    "uploads",
)
