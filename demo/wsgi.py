"""WSGI entry point for running the demo under another WSGI server (gunicorn): one worker in single-process mode,
any number in scale-out (``DJANGO_SETTINGS_MODULE=demo.cluster_settings``, docs/deploy.md).

In single-process mode it starts the upload WebSocket listener (``UPLOADS_STANDALONE_LISTEN``) with the
application, so the first page already points the browser at it; in scale-out the shim starts none (the upload
nodes serve the WebSocket). ``twistd -n uploads --settings demo.settings`` does not use this module.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")
application = get_wsgi_application()

from django_shim.bridge import start_standalone  # noqa: E402 - needs the settings configured above

start_standalone()
