"""WSGI entry point for running the demo under another WSGI server (one worker: uploads live in memory)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")
application = get_wsgi_application()
