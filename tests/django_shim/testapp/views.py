"""Views exercising the parts of the API the seed's examples do not: get_uploads, cancel_upload, FileField."""

import threading

from django.core.files.storage import default_storage
from django.db import transaction

from django_shim import LiveView, UploadMixin, event_handler

from .models import Attachment

#: Tests put two Events here to hold a consuming request inside its loop body: ``inside`` is set when the body
#: starts, and the body waits for ``proceed`` (so a second request can race it).
CONSUME_GATE: dict[str, threading.Event] = {}


class FilesView(UploadMixin, LiveView):
    """A generic slot ``files`` with helpers the tests call as events."""

    template_name = "shimtest/files.html"

    def mount(self, request, **kwargs):
        self.saved = []
        self.listed = []
        self.cancelled = []
        self.attachment_ids = []
        self.fail_on = ""
        self.counter = 0
        self.allow_upload("files", max_entries=4, max_file_size=50_000_000)

    @event_handler()
    def save(self, **kwargs):
        for entry in self.consume_uploaded_entries("files"):
            if entry.error:
                self.saved.append({"name": entry.client_name, "error": entry.error_code})
                continue
            if entry.client_name == self.fail_on:
                raise RuntimeError(f"refusing {entry.client_name}")
            path = default_storage.save(f"saved/{entry.client_name}", entry.file)
            self.saved.append({"name": entry.client_name, "path": path, "sha256": entry.sha256,
                               "size": entry.client_size, "in_memory": not hasattr(entry.file, "temporary_file_path")})

    @event_handler()
    def save_when_let_go(self, **kwargs):
        for entry in self.consume_uploaded_entries("files"):
            CONSUME_GATE["inside"].set()
            CONSUME_GATE["proceed"].wait(10)
            path = default_storage.save(f"saved/{entry.client_name}", entry.file)
            self.saved.append({"name": entry.client_name, "path": path})

    @event_handler()
    def attach_then_roll_back(self, **kwargs):
        with transaction.atomic():
            for entry in self.consume_uploaded_entries("files"):
                attachment = Attachment(title=entry.client_name)
                attachment.document = entry.file
                attachment.save()
            transaction.set_rollback(True)

    @event_handler()
    def attach(self, title="", **kwargs):
        for entry in self.consume_uploaded_entries("files"):
            attachment = Attachment(title=title or entry.client_name)
            attachment.document = entry.file
            attachment.save()
            self.attachment_ids.append(attachment.pk)

    @event_handler()
    def refuse(self, name="", **kwargs):
        self.fail_on = name

    @event_handler()
    def list_uploads(self, **kwargs):
        self.listed = [entry.as_dict() for entry in self.get_uploads("files")]

    @event_handler()
    def cancel(self, ref="", **kwargs):
        entry = self.cancel_upload("files", ref)
        self.cancelled.append(entry.ref if entry is not None else None)

    @event_handler()
    def bump(self, by="1"):
        self.counter += int(by)

    def not_a_handler(self, **kwargs):
        self.counter = -1000


class DocumentView(LiveView):
    """A template that renders a whole HTML document, and a view with no upload slots."""

    template_name = "shimtest/document.html"

    def mount(self, request, name="world", **kwargs):
        self.name = name
        self._scratch = object()  # private: never stored

    @event_handler
    def rename(self, name):
        self.name = name


class BadStateView(LiveView):
    """Keeps something the session cannot store."""

    template_name = "shimtest/document.html"

    def mount(self, request, **kwargs):
        self.name = "bad"
        self.when = object()
