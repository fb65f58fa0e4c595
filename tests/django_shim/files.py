"""File contents whose magic bytes the server recognises (re-exported from the engine's test fixtures)."""

from tests.support import docx_bytes, gif_bytes, jpeg_bytes, pdf_bytes, png_bytes, webp_bytes

__all__ = ["docx_bytes", "gif_bytes", "jpeg_bytes", "pdf_bytes", "png_bytes", "webp_bytes"]
