# Minimal djust project used only as a benchmark peer (loopback only).
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "djust-peer-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "channels",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "djust",
    "peerapp",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "peerproj.urls"
TEMPLATES = [
    {
        "BACKEND": "djust.template_backend.DjustTemplateBackend",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    },
]
ASGI_APPLICATION = "peerproj.asgi.application"
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ.get("DJUST_PEER_DB", "/tmp/djust-peer.sqlite3")}}
# Signed-cookie sessions: no database table needed for the WS session middleware.
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
USE_TZ = True
LIVEVIEW_ALLOWED_MODULES = ["peerapp.views"]

# DJUST_PEER_UPLOAD_RATE=default keeps djust's shipped upload-frame rate limit
# (200 frames/s, burst 400); any number raises it (frames/s and burst).
_rate = os.environ.get("DJUST_PEER_UPLOAD_RATE", "default")
if _rate != "default":
    LIVEVIEW_CONFIG = {
        "rate_limit": {
            "rate": 100, "burst": 20, "max_warnings": 3,
            "max_connections_per_ip": 10, "reconnect_cooldown": 5,
            "upload_rate": int(_rate), "upload_burst": int(_rate),
        },
    }
LOGGING = {
    "version": 1,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"djust": {"handlers": ["console"], "level": "WARNING"}},
}
