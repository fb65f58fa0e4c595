"""Registers ``twistd uploads``: standalone (:mod:`twisted_uploads.tap`) or, with ``--settings``, Django mode
(:func:`django_shim.twistd.make_django_service`).

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
            from django_shim.twistd import make_django_service

            return make_django_service(options)
        from twisted_uploads.tap import makeService

        return makeService(options)


uploads = UploadsServiceMaker()
