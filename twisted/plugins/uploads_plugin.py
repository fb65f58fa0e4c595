"""Registers ``twistd uploads``: standalone (:mod:`twisted_uploads.tap`) or, with ``--settings``, Django mode
(:func:`django_shim.twistd.make_django_service`; with ``--node`` an upload node of a scale-out cluster).

A refusal that needs the project's settings to be noticed (``--node`` without ``UPLOADS_REDIS_URL``) can only be
made once Django is set up, i.e. here rather than while twistd parses options; it ends twistd with its one-line
message instead of a traceback.

The dispatch lives here so that the reactor half (``twisted_uploads``) never imports the Django shim. Imports are
deferred: twistd imports every plugin file just to list them.
"""

from typing import Any

from twisted.application.service import IService, IServiceMaker
from twisted.plugin import IPlugin
from zope.interface import implementer


@implementer(IServiceMaker, IPlugin)
class UploadsServiceMaker:
    """``twistd uploads``."""

    tapname = "uploads"
    description = "Chunked, resumable, validated file uploads over WebSocket (standalone or with a Django project)."

    @property
    def options(self) -> Any:
        from twisted_uploads.tap import Options

        return Options

    def makeService(self, options: Any) -> IService:
        if options["settings"]:
            from twisted.python import usage

            from django_shim.twistd import make_django_service

            try:
                return make_django_service(options)
            except usage.UsageError as error:
                raise SystemExit(f"twistd uploads: {error}") from None
        from twisted_uploads.tap import makeService

        return makeService(options)


uploads = UploadsServiceMaker()
