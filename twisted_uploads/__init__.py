"""Chunked, resumable, validated file uploads over WebSocket, served by Twisted.

This package is the reactor half of the project and never imports Django: any Twisted program can mount
:class:`twisted_uploads.service.UploadServer` (its ``resource``) and receive uploads. See ``docs/protocol.md``.
"""

PROTOCOL_VERSION = 1
SUBPROTOCOL = "twisted-uploads.v1"
DEFAULT_WS_PATH = "/uploads/ws"
