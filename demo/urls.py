"""The demo's URLs: an index and the seed's three views."""

from django.conf import settings
from django.conf.urls.static import static
from django.urls import path
from django.views.generic import TemplateView

from django_shim.media import serve

from .views import DocumentUploadView, GalleryView, ProfileView

urlpatterns = [
    path("", TemplateView.as_view(template_name="demo/index.html"), name="index"),
    path("profile/", ProfileView.as_view(), name="profile"),
    path("gallery/", GalleryView.as_view(), name="gallery"),
    path("docs/", DocumentUploadView.as_view(), name="docs"),
]

# Under twistd, MEDIA_URL is served by Twisted (UPLOADS_SERVE_MEDIA); this covers runserver. django_shim's serve
# view adds what Django's lacks for users' files: nosniff, and attachment for anything a browser could run.
urlpatterns += static(settings.MEDIA_URL, view=serve, document_root=settings.MEDIA_ROOT)
