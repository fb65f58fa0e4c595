"""Consume is a claim: concurrent requests of one page get each entry once, and a rollback loses nothing."""

from __future__ import annotations

import threading
from pathlib import Path

from django.conf import settings
from twisted.internet.defer import inlineCallbacks

from .files import png_bytes
from .support import Browser, ShimServerTestCase, in_thread
from .testapp.models import Attachment
from .testapp.views import CONSUME_GATE


def saved_files() -> list[str]:
    folder = Path(settings.MEDIA_ROOT, "saved")
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


class ConcurrentConsumeTests(ShimServerTestCase):

    def setUp(self) -> None:
        super().setUp()
        CONSUME_GATE.update(inside=threading.Event(), proceed=threading.Event())
        self.addCleanup(CONSUME_GATE.clear)
        self.addCleanup(CONSUME_GATE["proceed"].set)  # never leave a request thread waiting

    @inlineCallbacks
    def test_two_posts_of_one_page_racing_save_each_entry_once(self):
        before = saved_files()
        browser = Browser()
        page = yield in_thread(browser.open, "/files/")
        results = yield self.upload(page, "files", ("race-a.png", png_bytes()), ("race-b.png", png_bytes(600)))
        self.assertTrue(all(r.ok for r in results))
        first = in_thread(browser.twin().event, page, "save_when_let_go")
        yield in_thread(CONSUME_GATE["inside"].wait, 10)
        # The first request holds both entries: the second finds nothing to save, though nothing is consumed yet.
        second = yield in_thread(browser.event, page, "save")
        CONSUME_GATE["proceed"].set()
        yield first
        new = sorted(set(saved_files()) - set(before))
        self.assertEqual(new, ["race-a.png", "race-b.png"])
        self.assertEqual((self.entries(), "race-" in second.html), ([], False))

    @inlineCallbacks
    def test_a_rolled_back_transaction_gives_its_entries_back(self):
        browser = Browser()
        page = yield in_thread(browser.open, "/files/")
        yield self.upload(page, "files", ("scan.png", png_bytes()))
        yield in_thread(browser.event, page, "attach_then_roll_back")
        count = yield in_thread(lambda: Attachment.objects.filter(title="scan.png").count())
        self.assertEqual((count, [e.client_name for e in self.entries()]), (0, ["scan.png"]))
        yield in_thread(browser.event, page, "attach")
        count = yield in_thread(lambda: Attachment.objects.filter(title="scan.png").count())
        self.assertEqual((count, self.entries()), (1, []))
