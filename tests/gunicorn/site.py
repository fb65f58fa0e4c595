"""Settings for the gunicorn / uvicorn tests: the demo project plus two probe views, configured by environment.

``TU_SCRATCH`` (a temp dir), ``TU_WS_PORT`` (the standalone listener's port) and ``TU_REDIS_URL`` (scale-out mode
when set) come from the test that starts the server.
"""

import os
from pathlib import Path

from demo.settings import *  # noqa: F401,F403

SCRATCH = Path(os.environ["TU_SCRATCH"])
DEBUG = False
ROOT_URLCONF = "tests.gunicorn.urls"
MEDIA_ROOT = str(SCRATCH / "media")
UPLOADS_DIR = str(SCRATCH / "uploads")
# A server-side session engine the token can be bound to (check E008), without a database to migrate.
SESSION_ENGINE = "django.contrib.sessions.backends.file"
SESSION_FILE_PATH = str(SCRATCH)
# The page is served on the server's port, the socket on another one (or via the proxy): list the page's origin.
UPLOADS_ALLOWED_ORIGINS = [os.environ["TU_PAGE_ORIGIN"]]
UPLOADS_STANDALONE_LISTEN = f"tcp:{os.environ.get('TU_WS_PORT', '0')}:interface=127.0.0.1"
if os.environ.get("TU_REDIS_URL"):
    UPLOADS_REDIS_URL = os.environ["TU_REDIS_URL"]
    UPLOADS_STORAGE = str(SCRATCH / "shared")
    if not os.environ.get("TU_KEEP_LISTEN"):
        del UPLOADS_STANDALONE_LISTEN  # scale-out ignores it (check W003 says so)
# runserver writes nothing once it listens; its server announces it here, so tests wait for that line instead of
# polling the port (gunicorn, uvicorn and twistd write their own).
from django.core.servers import basehttp  # noqa: E402

_server_activate = basehttp.WSGIServer.server_activate


def _announce_listening(server: basehttp.WSGIServer) -> None:
    _server_activate(server)
    print(f"tests: runserver listening on {server.server_address[1]}", flush=True)


basehttp.WSGIServer.server_activate = _announce_listening

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
