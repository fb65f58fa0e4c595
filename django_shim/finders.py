"""A staticfiles finder for the browser client, so ``runserver`` and ``collectstatic`` see ``twisted_uploads/*``.

The client lives outside the Django app (``twisted_uploads.staticfiles.static_root()``); this finder exposes it
as ``twisted_uploads/uploads.js`` and ``twisted_uploads/uploads.css``. Add it to ``STATICFILES_FINDERS``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage
from twisted_uploads.staticfiles import STATIC_FILES, static_root

PREFIX = "twisted_uploads"


class UploadsClientFinder(BaseFinder):
    """Finds ``twisted_uploads/<file>`` in the browser client's directory."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.storage = FileSystemStorage(location=str(static_root()))
        self.storage.prefix = PREFIX  # type: ignore[attr-defined]  # read by collectstatic for the target path

    def check(self, **kwargs: Any) -> list[Any]:
        return []

    def find(self, path: str, find_all: bool = False, **kwargs: Any) -> str | list[str]:
        find_all = find_all or kwargs.get("all", False)
        prefix = PREFIX + "/"
        if path.startswith(prefix) and path[len(prefix):] in STATIC_FILES:
            match = str(static_root() / path[len(prefix):])
            if (static_root() / path[len(prefix):]).exists():
                return [match] if find_all else match
        return [] if find_all else ""

    def list(self, ignore_patterns: Any) -> Iterator[tuple[str, FileSystemStorage]]:
        for name in STATIC_FILES:
            if (static_root() / name).exists():
                yield name, self.storage
