"""Several POSTs of one page racing to consume its uploads: each entry is claimed, and saved, exactly once."""

from __future__ import annotations

import re
from collections import Counter

from twisted.internet.defer import DeferredList, inlineCallbacks

from ..support import png_bytes
from .django_site import DjangoServerTestCase
from .support import record_figures, sha256_bytes, sha256_file

PHOTOS = 5
RACERS = 6


class ConcurrentConsumeTests(DjangoServerTestCase):

    @inlineCallbacks
    def test_racing_posts_of_one_page_save_each_uploaded_photo_exactly_once(self):
        server = yield self.start_django()
        browser = self.browser_for(server)
        page = yield self.open_page(browser, "/gallery/")
        client = yield self.socket_for(browser, server, page)
        photos = {f"photo{i}.png": png_bytes(pad_to=900_000 + i) for i in range(PHOTOS)}
        for name, image in photos.items():
            accepted = yield client.announce(name, len(image), slot="photos", mime="image/png")
            self.assertEqual(accepted["type"], "accepted", accepted)
            complete = yield client.stream(accepted, image)
            self.assertEqual(complete["sha256"], sha256_bytes(image))

        outcomes = yield DeferredList([self.send_event(browser, "/gallery/", page, "upload_photos")
                                       for _ in range(RACERS)], consumeErrors=True)
        responses = [result for ok, result in outcomes if ok]
        self.assertEqual(len(responses), RACERS, [r for ok, r in outcomes if not ok])
        self.assertEqual([status for status, _ in responses], [200] * RACERS,
                         [body[:300] for status, body in responses if status != 200])
        shown = Counter(name.decode() for _, body in responses for name in re.findall(rb'alt="([^"]+)"', body))
        self.assertEqual(shown, Counter(list(photos)), "a photo was consumed by more than one request, or by none")
        saved = sorted((self.workdir / "media" / "gallery").iterdir())
        self.assertEqual(Counter(sha256_file(p) for p in saved), Counter(sha256_bytes(i) for i in photos.values()))
        self.assertNoCrash(server)
        record_figures(self, faults={"racing consume POSTs": RACERS}, inputs=RACERS, files=PHOTOS,
                       bytes_verified=sum(map(len, photos.values())), bytes_lost=0, duplicates=0)
