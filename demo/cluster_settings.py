"""Settings of the demo in scale-out (``scripts/cluster.sh``): Redis as the registry, S3 (or a shared directory) as
the store, Django under gunicorn with whitenoise serving static files, upload nodes behind HAProxy or nginx.

Everything else is :mod:`demo.settings`. Every process of the cluster (each gunicorn worker, each upload node)
imports this module, so they all read the same environment; ``scripts/cluster.sh`` exports it:

``CLUSTER_REDIS_URL``      ``UPLOADS_REDIS_URL`` — the registry every node and worker shares
                           (default ``redis://127.0.0.1:6379/0``)
``CLUSTER_STORAGE``        ``UPLOADS_STORAGE`` as it is (a shared directory, or ``s3://bucket/prefix/``); when unset,
                           ``s3://$CLUSTER_S3_BUCKET/uploads/``
``CLUSTER_S3_BUCKET``      bucket of the default ``UPLOADS_STORAGE`` (default ``twisted-uploads``)
``CLUSTER_S3_ENDPOINT``    ``UPLOADS_S3_OPTIONS["endpoint_url"]`` (SeaweedFS's S3 gateway in the script); unset =
                           AWS
``CLUSTER_S3_REGION``      ``region_name`` (default ``us-east-1``)
``CLUSTER_S3_ACCESS_KEY``  ``aws_access_key_id`` / ``aws_secret_access_key``; unset = boto3's own credential
``CLUSTER_S3_SECRET_KEY``  chain (environment, ``~/.aws``, instance role)
``CLUSTER_UPLOADS_DIR``    ``UPLOADS_DIR``: this process's local directory (S3 part spool, records of the
                           single-process mode); one per node, never shared
``CLUSTER_STATE_DIR``      where the database, ``STATIC_ROOT`` (``collectstatic``) and ``MEDIA_ROOT`` live
                           (default ``.cluster/`` at the checkout's root)
``CLUSTER_ALLOWED_HOSTS``  extra ``ALLOWED_HOSTS``, comma-separated (the proxy's public name)

The browser reaches everything through the proxy at one origin: pages and ``/static/`` go to gunicorn, the
WebSocket ``/uploads/ws`` (``UPLOADS_WS_URL``'s default) to a node, so no ``UPLOADS_ALLOWED_ORIGINS`` is needed.
"""

import os
from pathlib import Path

from demo.settings import *  # noqa: F403 - this module is demo.settings plus the scale-out settings below
from demo.settings import ALLOWED_HOSTS, BASE_DIR, MIDDLEWARE

_env = os.environ.get
STATE_DIR = Path(_env("CLUSTER_STATE_DIR") or BASE_DIR.parent / ".cluster")

ALLOWED_HOSTS = [*ALLOWED_HOSTS, *(h.strip() for h in _env("CLUSTER_ALLOWED_HOSTS", "").split(",") if h.strip())]

# One database for every worker (SQLite is enough for the demo on one host; use PostgreSQL across hosts).
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": STATE_DIR / "db.sqlite3",
                         "OPTIONS": {"timeout": 20}}}
MEDIA_ROOT = STATE_DIR / "media"

# Static files under gunicorn: whitenoise serves STATIC_ROOT (filled by `manage.py collectstatic`), compressed
# and with far-future caching for the hashed names. It sits right after SecurityMiddleware, as its docs ask.
STATIC_ROOT = STATE_DIR / "static"
MIDDLEWARE = [MIDDLEWARE[0], "whitenoise.middleware.WhiteNoiseMiddleware", *MIDDLEWARE[1:]]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# Scale-out: the registry in Redis, the bytes in S3 (or a shared directory), no listener in any Django process.
UPLOADS_REDIS_URL = _env("CLUSTER_REDIS_URL", "redis://127.0.0.1:6379/0")
UPLOADS_STORAGE = _env("CLUSTER_STORAGE") or f"s3://{_env('CLUSTER_S3_BUCKET', 'twisted-uploads')}/uploads/"
UPLOADS_S3_OPTIONS = {
    key: value
    for key, value in {
        "endpoint_url": _env("CLUSTER_S3_ENDPOINT"),
        "region_name": _env("CLUSTER_S3_REGION", "us-east-1"),
        "aws_access_key_id": _env("CLUSTER_S3_ACCESS_KEY"),
        "aws_secret_access_key": _env("CLUSTER_S3_SECRET_KEY"),
    }.items()
    if value
}
if _env("CLUSTER_UPLOADS_DIR"):
    UPLOADS_DIR = _env("CLUSTER_UPLOADS_DIR")
# twistd (the upload nodes) serves no media in scale-out; gunicorn serves MEDIA_URL through demo.urls when DEBUG.
UPLOADS_SERVE_MEDIA = False
