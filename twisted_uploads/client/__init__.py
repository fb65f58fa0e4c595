"""A Python client for the upload protocol, on the same codec as the server: windowed, cancellable, resuming.

Use :class:`~twisted_uploads.client.uploader.UploadClient` from Twisted code, or the command line:
``python -m twisted_uploads upload FILE... --url ws://host:8000/uploads/ws --token TOKEN``.
"""

from .uploader import FileUpload, UploadClient, UploadResult

__all__ = ["FileUpload", "UploadClient", "UploadResult"]
