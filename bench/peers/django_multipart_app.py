"""Peer: a minimal Django app taking a multipart POST, as a Django site does it today.

Django's MultiPartParser streams the body into a TemporaryUploadedFile (FILE_UPLOAD_TEMP_DIR); the view then
moves that temp file into the store with os.replace (what FileSystemStorage does for temp uploads: no copy).
Served by gunicorn (`gunicorn django_multipart_app:application`) or by Twisted's WSGI container
(twisted_wsgi.py). Env: BENCH_STORE = directory for temp and stored files (one filesystem).
"""
import os

from django.conf import settings

STORE = os.environ.get("BENCH_STORE", "/tmp")
settings.configure(
    DEBUG=False,
    SECRET_KEY="bench-not-secret",
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["*"],
    DATA_UPLOAD_MAX_MEMORY_SIZE=None,
    FILE_UPLOAD_TEMP_DIR=STORE,
    MIDDLEWARE=[],
)

import django  # noqa: E402

django.setup()

from django.http import HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402


@csrf_exempt
def up(request):
    f = request.FILES["file"]
    dest = os.path.join(STORE, "stored-" + os.path.basename(f.name))
    if hasattr(f, "temporary_file_path"):
        os.replace(f.temporary_file_path(), dest)
    else:  # small files stay in memory
        with open(dest, "wb") as out:
            for c in f.chunks():
                out.write(c)
    return HttpResponse(str(f.size))


def ping(request):
    return HttpResponse("ok")


urlpatterns = [path("up", up), path("ping", ping)]

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
