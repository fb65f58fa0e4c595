"""Django settings for the shim's tests: throwaway SQLite, media and upload directories."""

import atexit
import shutil
import tempfile
from pathlib import Path

SCRATCH = Path(tempfile.mkdtemp(prefix="django-shim-tests-"))
atexit.register(shutil.rmtree, SCRATCH, True)

SECRET_KEY = "tests-only-secret-key-0123456789abcdef0123456789"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "django_shim",
    "demo",
    "tests.django_shim.testapp",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]
ROOT_URLCONF = "tests.django_shim.urls"
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True, "OPTIONS": {}}]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(SCRATCH / "db.sqlite3")}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
STATIC_URL = "/static/"
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "django_shim.finders.UploadsClientFinder",
]
MEDIA_URL = "/media/"
MEDIA_ROOT = str(SCRATCH / "media")
# Small, so the tests exercise both halves of Django's in-memory / temporary-file split.
FILE_UPLOAD_MAX_MEMORY_SIZE = 4096
FILE_UPLOAD_TEMP_DIR = str(SCRATCH / "django-tmp")
Path(FILE_UPLOAD_TEMP_DIR).mkdir()
UPLOADS_DIR = str(SCRATCH / "uploads")
UPLOADS_PAGE_TEMPLATE = "demo/page.html"
UPLOADS_STANDALONE_LISTEN = None
UPLOADS_BRIDGE_TIMEOUT = 5.0
