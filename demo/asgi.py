"""ASGI entry point for running the demo under uvicorn (``uvicorn demo.asgi:application``).

Like :mod:`demo.wsgi`: in single-process mode (no ``UPLOADS_REDIS_URL``) the one worker also starts the upload
WebSocket listener (``UPLOADS_STANDALONE_LISTEN``); in scale-out (``DJANGO_SETTINGS_MODULE=demo.cluster_settings``)
it starts none, any number of workers may run, and the upload nodes serve the WebSocket (docs/deploy.md). The
views stay synchronous; Django runs them in its thread pool.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")
application = get_asgi_application()

from django_shim.bridge import start_standalone  # noqa: E402 - needs the settings configured above

start_standalone()
