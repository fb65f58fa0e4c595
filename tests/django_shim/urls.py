"""URLs of the shim's tests: the demo's seed views plus the test app's."""

from django.urls import path
from django.views.generic import TemplateView

from demo.views import DocumentUploadView, GalleryView, ProfileView

from .testapp.views import BadStateView, DocumentView, FilesView

urlpatterns = [
    path("", TemplateView.as_view(template_name="demo/index.html"), name="index"),
    path("profile/", ProfileView.as_view(), name="profile"),
    path("gallery/", GalleryView.as_view(), name="gallery"),
    path("docs/", DocumentUploadView.as_view(), name="docs"),
    path("files/", FilesView.as_view(), name="files"),
    path("document/", DocumentView.as_view(), name="document"),
    path("document/<str:name>/", DocumentView.as_view(), name="document-named"),
    path("bad/", BadStateView.as_view(), name="bad"),
]
