"""Which store ``UPLOADS_STORAGE`` names: the local directory, a shared directory, or an S3 bucket.

One function so the node (twistd) and Django (system checks, ``entry.file``) read the setting the same way.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .storage import TempFileStore

S3_SCHEME = "s3://"
#: Where an S3 store spools the not-yet-uploaded tail of each entry, under the local upload directory.
SPOOL_DIRECTORY = "s3-spool"


def parse_s3_setting(value: str) -> tuple[str, str]:
    """``"s3://bucket/prefix/"`` → ``("bucket", "prefix/")``; a non-empty prefix always ends with ``/``."""
    if not value.startswith(S3_SCHEME):
        raise ValueError(f"{value!r} is not an s3:// URL")
    bucket, _, prefix = value[len(S3_SCHEME):].partition("/")
    if not bucket:
        raise ValueError(f"UPLOADS_STORAGE {value!r} names no bucket (expected s3://bucket/prefix/)")
    prefix = prefix.lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return bucket, prefix


def store_from_setting(value: str | os.PathLike[str] | None, *, local_dir: str | os.PathLike[str],
                       s3_options: dict[str, Any] | None = None, spool_dir: str | os.PathLike[str] | None = None,
                       reactor: Any = None) -> Any:
    """The store ``UPLOADS_STORAGE`` asks for.

    - ``None``: a :class:`TempFileStore` in ``local_dir`` (``UPLOADS_DIR``, the single-process default);
    - a path: a :class:`TempFileStore` there (a directory several nodes share, e.g. over NFS);
    - ``"s3://bucket/prefix/"``: an :class:`~twisted_uploads.s3store.S3Store` built with ``s3_options``
      (``UPLOADS_S3_OPTIONS``, passed to ``boto3.client("s3", ...)``), spooling under ``spool_dir`` (default
      ``<local_dir>/s3-spool``).
    """
    if value is None:
        return TempFileStore(local_dir)
    if isinstance(value, str) and value.startswith(S3_SCHEME):
        from .s3store import S3Store  # boto3 is only needed when S3 is configured
        bucket, prefix = parse_s3_setting(value)
        spool = Path(spool_dir) if spool_dir is not None else Path(local_dir) / SPOOL_DIRECTORY
        return S3Store(bucket, prefix, client_options=s3_options, spool_dir=spool, reactor=reactor)
    if isinstance(value, str) and "://" in value:
        raise ValueError(f"UPLOADS_STORAGE {value!r}: only s3:// URLs and directory paths are supported")
    return TempFileStore(value)
