"""The Django app: registers the system checks and, under runserver, starts the upload server once.

Nothing here starts a reactor or binds a port except in runserver's serving child in single-process mode: in
scale-out mode Django never listens, and under any other server the bridge starts what it needs on first use, in
the process that serves (after a pre-forking server's fork). Under gunicorn, which runs no system checks, the
process-model warnings (several workers without ``UPLOADS_REDIS_URL``…) are logged at startup instead.
"""

from __future__ import annotations

import os
import sys

from django.apps import AppConfig
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV


class UploadsConfig(AppConfig):
    """``django_shim`` in ``INSTALLED_APPS``."""

    name = "django_shim"
    verbose_name = "Uploads"

    def ready(self) -> None:
        from . import checks  # noqa: F401 - registers the system checks

        from .conf import uploads_settings

        if _is_runserver_child() and not uploads_settings().scale_out:
            # runserver imports the project twice: a watcher parent that only restarts, and the child that
            # serves. Only the child may own the reactor thread and the WebSocket port.
            from .bridge import installed, start_standalone

            if installed() is None:
                start_standalone()
        elif "gunicorn" in sys.modules:
            checks.log_process_model_warnings()


def _is_runserver_child() -> bool:
    """True in the process that serves runserver's requests (the reloader's child, or --noreload)."""
    if len(sys.argv) < 2 or sys.argv[1] != "runserver":
        return False
    return os.environ.get(DJANGO_AUTORELOAD_ENV) == "true" or "--noreload" in sys.argv
