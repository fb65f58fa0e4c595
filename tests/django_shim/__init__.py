"""Tests of the Django shim (run with ``trial tests.django_shim``).

Django is configured here, once, with ``tests.django_shim.settings``; crochet is put in ``no_setup`` mode because
trial runs the reactor in the main thread, and Django code is run in threads (``deferToThread``) that reach it
through the bridge — the same shape as twistd.
"""

import os

os.environ["DJANGO_SETTINGS_MODULE"] = "tests.django_shim.settings"

import django  # noqa: E402

django.setup()

from django_shim.bridge import use_twistd_reactor  # noqa: E402

use_twistd_reactor()

from django.core.management import call_command  # noqa: E402

call_command("migrate", run_syncdb=True, verbosity=0)
