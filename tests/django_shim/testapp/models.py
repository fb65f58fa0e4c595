"""A model with a FileField, to prove ``entry.file`` goes into one unchanged."""

from django.db import models


class Attachment(models.Model):
    """An uploaded file kept by the application."""

    title = models.CharField(max_length=200)
    document = models.FileField(upload_to="attachments/")

    class Meta:
        app_label = "testapp"
