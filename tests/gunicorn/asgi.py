"""ASGI application of the test site (for uvicorn)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.gunicorn.site")
application = get_asgi_application()
