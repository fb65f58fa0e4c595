"""WSGI entry point for running the demo under another WSGI server (one worker: uploads live in memory).

Starts the upload WebSocket listener (``UPLOADS_STANDALONE_LISTEN``) with the application, so the first page
already points the browser at it. ``twistd -n uploads --settings demo.settings`` does not use this module.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")
application = get_wsgi_application()

from django_shim.bridge import start_standalone  # noqa: E402 - needs the settings configured above

start_standalone()
