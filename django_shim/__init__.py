"""The Django side of twisted-uploads: the seed's ``LiveView`` / ``UploadMixin`` / ``@event_handler`` API.

    from django_shim import LiveView, UploadMixin, event_handler

(or the seed's module paths: ``django_shim.uploads.UploadMixin``, ``django_shim.decorators.event_handler``).
Add ``"django_shim"`` to ``INSTALLED_APPS``; settings are documented in :mod:`django_shim.conf`, the design in
``docs/django.md``. Names are imported lazily so that listing the app in ``INSTALLED_APPS`` imports no views.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LiveView", "UploadEntry", "UploadMixin", "event_handler"]

_EXPORTS = {
    "LiveView": "django_shim.liveview",
    "UploadMixin": "django_shim.uploads",
    "UploadEntry": "django_shim.entries",
    "event_handler": "django_shim.decorators",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'django_shim' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(module), name)
