"""The seed's three examples end to end in Chromium, on the demo project served by ``twistd uploads --settings``.

Set ``TWISTED_UPLOADS_SCREENSHOTS=docs/screenshots`` to have these tests refresh the README's screenshots.
"""

from __future__ import annotations

from .support import DemoTestCase, picture_png


class ProfileExampleTests(DemoTestCase):
    """Quick Start: ``ProfileView`` with a single avatar slot and a ``dj-submit`` form."""

    def test_choose_an_avatar_see_preview_and_progress_save_and_see_it(self) -> None:
        page = self.open_demo("/profile/")
        source = self.make_file("me.png", picture_png(256, 256, 30))
        self.choose(page, "avatar", [source])
        page.locator('[dj-upload-preview="avatar"] .upload-preview-item img.upload-preview-image').wait_for()
        self.assertEqual(page.text_content(".upload-preview-name"), "me.png")
        bar = page.locator('[dj-upload-progress="avatar"] .upload-progress-item .upload-progress-bar[role="progressbar"]')
        bar.and_(page.locator('[aria-valuenow="100"]')).wait_for()
        self.assertEqual(page.text_content(".upload-progress-text"), "100%")

        page.click('button[type="submit"]')
        avatar = page.locator("img.avatar")
        avatar.wait_for()
        self.assertEqual(self.fetch_bytes(page, avatar.get_attribute("src")), source.read_bytes())
        self.assertEqual((self.media_dir / "avatars" / "me.png").read_bytes(), source.read_bytes())
        self.assertEqual(page.locator(".upload-preview-item").count(), 0)

    def test_drop_an_avatar_on_the_zone_see_preview_and_progress_save_and_see_it(self) -> None:
        page = self.open_demo("/profile/")
        zone = page.locator('form[dj-submit="save_avatar"] [dj-upload-drop="avatar"].drop-zone')
        self.assertEqual(zone.locator('input[type="file"][dj-upload="avatar"]').count(), 1)
        source = self.make_file("dropped.png", picture_png(256, 256))
        data = source.read_bytes()
        self.assertTrue(1000 <= len(data) < 1_000_000)  # shown in kB
        self.assertTrue(self.drop(page, '[dj-upload-drop="avatar"] p', [(source.name, "image/png", data)]))

        item = zone.locator('[dj-upload-preview="avatar"] .upload-preview-item')
        item.locator("img.upload-preview-image").wait_for()
        self.assertEqual(item.count(), 1)
        self.assertEqual(item.locator(".upload-preview-name").text_content(), "dropped.png")
        self.assertEqual(item.locator(".upload-preview-size").text_content(), f"{len(data) / 1000:.1f} kB")
        bar = page.locator('[dj-upload-progress="avatar"] .upload-progress-item .upload-progress-bar[role="progressbar"]')
        bar.and_(page.locator('[aria-valuenow="100"]')).wait_for()
        self.assertEqual(page.text_content('[dj-upload-progress="avatar"] .upload-progress-text'), "100%")
        self.assertFalse(zone.evaluate("(e) => e.classList.contains('upload-dragover')"))
        self.screenshot(page, "profile")

        page.click('button[type="submit"]')
        avatar = page.locator("img.avatar")
        avatar.wait_for()
        self.assertTrue(avatar.get_attribute("src").endswith("/dropped.png"))
        self.assertEqual(self.fetch_bytes(page, avatar.get_attribute("src")), data)
        self.assertEqual((self.media_dir / "avatars" / "dropped.png").read_bytes(), data)
        self.assertEqual(page.locator(".upload-preview-item").count(), 0)
        self.assertEqual(self.events(page, "djust:upload:error"), [])

    def test_a_second_avatar_dropped_before_saving_replaces_the_first(self) -> None:
        page = self.open_demo("/profile/")
        self.choose(page, "avatar", [self.make_file("first.png", picture_png(64, 64, 10))])
        page.locator('.upload-progress-item:has-text("first.png") [role="progressbar"][aria-valuenow="100"]').wait_for()

        # The first is complete on the server but not yet consumed: dropping another one cancels (discards) it.
        second = picture_png(96, 96, 200)
        self.assertTrue(self.drop(page, '[dj-upload-drop="avatar"]', [("second.png", "image/png", second)]))
        self.wait_for_entries(page, "(es) => es.some((e) => e.name === 'second.png' && "
                                    "(e.status === 'complete' || e.status === 'error'))")
        # A server that kept the first would refuse the second with too_many_files.
        self.assertEqual(self.events(page, "djust:upload:error"), [])
        self.assertEqual([(e["name"], e["status"]) for e in page.evaluate("window.djUploads.entries()")],
                         [("second.png", "complete")])
        page.locator('.upload-progress-item:has-text("second.png") [role="progressbar"][aria-valuenow="100"]').wait_for()
        self.assertEqual(page.locator('[dj-upload-preview="avatar"] .upload-preview-name').all_text_contents(),
                         ["second.png"])

        page.click('button[type="submit"]')
        avatar = page.locator('img.avatar[src$="/second.png"]')
        avatar.wait_for()
        self.assertEqual(self.fetch_bytes(page, avatar.get_attribute("src")), second)
        self.assertEqual(sorted(p.name for p in (self.media_dir / "avatars").iterdir()), ["second.png"])
        self.assertEqual(self.events(page, "djust:upload:error"), [])

    def test_choose_again_after_saving_replaces_the_avatar(self) -> None:
        page = self.open_demo("/profile/")
        self.choose(page, "avatar", [self.make_file("one.png", picture_png(64, 64, 1))])
        page.locator('.upload-progress-bar[aria-valuenow="100"]').wait_for()
        page.click('button[type="submit"]')
        page.locator('img.avatar[src$="one.png"]').wait_for()
        second = self.make_file("two.png", picture_png(64, 64, 2))
        self.choose(page, "avatar", [second])
        page.locator('.upload-progress-bar[aria-valuenow="100"]').wait_for()
        page.click('button[type="submit"]')
        avatar = page.locator('img.avatar[src$="two.png"]')
        avatar.wait_for()
        self.assertEqual(self.fetch_bytes(page, avatar.get_attribute("src")), second.read_bytes())


class GalleryExampleTests(DemoTestCase):
    """``GalleryView``: a drop zone, previews, progress and a ``dj-click`` "Upload All" button."""

    def test_drop_photos_see_previews_and_progress_upload_all_and_see_the_gallery(self) -> None:
        page = self.open_demo("/gallery/")
        photos = [(f"photo{i}.png", "image/png", picture_png(320, 240, i * 40)) for i in range(3)]
        self.assertTrue(self.drop(page, '[dj-upload-drop="photos"] p', photos))
        page.locator('[dj-upload-preview="photos"] .upload-preview-item').nth(2).wait_for()
        self.assertEqual(page.locator('[dj-upload-preview="photos"] img.upload-preview-image').count(), 3)
        page.locator('[dj-upload-progress="photos"] [role="progressbar"][aria-valuenow="100"]').nth(2).wait_for()

        page.click('button[dj-click="upload_photos"]')
        page.locator(".gallery img").nth(2).wait_for()
        shown = {img.get_attribute("alt"): img.get_attribute("src") for img in page.locator(".gallery img").all()}
        self.assertEqual(set(shown), {name for name, _, _ in photos})
        for name, _, data in photos:
            self.assertEqual(self.fetch_bytes(page, shown[name]), data)
        self.screenshot(page, "gallery")

    def test_chosen_photos_upload_through_the_file_dialog_too(self) -> None:
        page = self.open_demo("/gallery/")
        sources = [self.make_file(f"pick{i}.png", picture_png(48, 48, i)) for i in range(2)]
        self.choose(page, "photos", sources)
        page.locator('[role="progressbar"][aria-valuenow="100"]').nth(1).wait_for()
        page.click('button[dj-click="upload_photos"]')
        page.locator(".gallery img").nth(1).wait_for()
        for source in sources:
            self.assertEqual((self.media_dir / "gallery" / source.name).read_bytes(), source.read_bytes())

    def test_a_sixth_photo_is_refused_in_the_browser(self) -> None:
        page = self.open_demo("/gallery/")
        self.choose(page, "photos", [self.make_file(f"p{i}.png", picture_png(8, 8, i)) for i in range(6)])
        page.wait_for_function("() => window.__events.some((e) => e.type === 'djust:upload:error')")
        [error] = self.events(page, "djust:upload:error")
        self.assertEqual((error["detail"]["code"], error["detail"]["file"]), ("too_many_files", "p5.png"))
        page.locator('[role="progressbar"][aria-valuenow="100"]').nth(4).wait_for()


class DocumentsExampleTests(DemoTestCase):
    """``DocumentUploadView``: validation feedback from ``consume_uploaded_entries``."""

    def test_good_documents_are_listed_and_a_renamed_file_is_reported(self) -> None:
        page = self.open_demo("/docs/")
        notes = self.make_file("notes.txt", b"Meeting notes\n" * 2000)
        report = self.make_file("report.pdf", b"%PDF-1.4\n" + b"0" * 5000 + b"\n%%EOF\n")
        fake = self.make_file("fake.pdf", b"just text pretending to be a PDF\n" * 10)
        self.choose(page, "docs", [notes, report])
        self.drop(page, '[dj-upload-drop="docs"] p', [("fake.pdf", "application/pdf", fake.read_bytes())])
        page.wait_for_function("() => window.__events.some((e) => e.type === 'djust:upload:error')")
        [error] = self.events(page, "djust:upload:error")
        self.assertEqual((error["detail"]["code"], error["detail"]["file"]), ("type_mismatch", "fake.pdf"))
        page.locator('[role="progressbar"][aria-valuenow="100"]').nth(1).wait_for()
        # The refused file never reaches the view's loop; its progress item says why it failed.
        failed = page.locator('[dj-upload-progress="docs"] [data-upload-status="error"]')
        self.assertIn("fake.pdf", failed.text_content())

        page.click('button[type="submit"]')
        page.locator("table.files").wait_for()
        links = {a.text_content(): a.get_attribute("href") for a in page.locator("table.files a").all()}
        self.assertEqual(set(links), {"notes.txt", "report.pdf"})
        self.assertEqual(self.fetch_bytes(page, links["notes.txt"]), notes.read_bytes())
        self.assertEqual(self.fetch_bytes(page, links["report.pdf"]), report.read_bytes())
        self.screenshot(page, "docs")

    def test_client_side_rejections_send_nothing(self) -> None:
        page = self.open_demo("/docs/")
        self.choose(page, "docs", [self.make_file("picture.png", picture_png(8, 8))])
        self.choose(page, "docs", [self.make_file("empty.txt", b"")])
        page.evaluate("""() => {
          const big = new File([new Uint8Array(1)], 'huge.txt', {type: 'text/plain'});
          Object.defineProperty(big, 'size', {value: 20_000_001});
          return window.djUploads.addFiles('docs', [big]);
        }""")
        page.wait_for_function("() => window.__events.filter((e) => e.type === 'djust:upload:error').length === 2")
        codes = [e["detail"]["code"] for e in self.events(page, "djust:upload:error")]
        self.assertEqual(codes, ["not_accepted", "too_large"])
        # The empty empty.txt was fine and completed; nothing else was announced.
        self.wait_all_complete(page, 1)
