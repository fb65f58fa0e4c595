"""The demo app (templates and CSS only; no models)."""

from django.apps import AppConfig


class DemoConfig(AppConfig):
    """``demo`` in ``INSTALLED_APPS``."""

    name = "demo"
    verbose_name = "Uploads demo"
