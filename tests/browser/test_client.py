"""static/uploads.js in Chromium against the real upload server (tests/browser/testsite.py)."""

from __future__ import annotations

import hashlib
import json

from .support import BrowserTestCase, png_bytes, sha256_file

AVATAR = {"avatar": {"accept": ".jpg,.png,.webp", "max_entries": 1, "max_file_size": 5_000_000}}
PHOTOS = {"photos": {"accept": ".jpg,.png,.webp,.gif", "max_entries": 5, "max_file_size": 10_000_000}}
DOCS = {"docs": {"accept": ".pdf,.docx,.txt", "max_entries": 3, "max_file_size": 20_000_000}}


class FileInputTests(BrowserTestCase):
    """dj-upload="name" on a file input."""

    def test_accept_and_multiple_come_from_the_slot_config(self) -> None:
        page = self.open_page({**AVATAR, **PHOTOS, "any": {"max_entries": 3}})
        self.assertEqual(page.get_attribute('[dj-upload="avatar"]', "accept"), ".jpg,.png,.webp")
        self.assertFalse(page.eval_on_selector('[dj-upload="avatar"]', "e => e.multiple"))
        self.assertEqual(page.get_attribute('[dj-upload="photos"]', "accept"), ".jpg,.png,.webp,.gif")
        self.assertTrue(page.eval_on_selector('[dj-upload="photos"]', "e => e.multiple"))
        self.assertIsNone(page.get_attribute('[dj-upload="any"]', "accept"))

    def test_a_chosen_image_shows_a_preview_and_uploads_to_100_percent(self) -> None:
        page = self.open_page(AVATAR)
        source = self.make_file("me.png", png_bytes(300_000))
        self.choose(page, "avatar", [source])

        item = page.locator("#preview-avatar .upload-preview-item")
        item.wait_for()
        self.assertEqual(item.locator(".upload-preview-name").text_content(), "me.png")
        self.assertEqual(item.locator(".upload-preview-size").text_content(), "300.0 kB")
        self.assertTrue(item.locator("img.upload-preview-image").get_attribute("src").startswith("blob:"))

        entries = self.wait_all_complete(page, 1)
        self.assertEqual(entries[0]["sha256"], sha256_file(source))
        bar = page.locator("#progress-avatar .upload-progress-item .upload-progress-track > .upload-progress-bar")
        self.assertEqual(bar.get_attribute("role"), "progressbar")
        self.assertEqual(bar.get_attribute("aria-valuenow"), "100")
        self.assertEqual(bar.get_attribute("aria-valuemin"), "0")
        self.assertEqual(bar.get_attribute("aria-valuemax"), "100")
        self.assertEqual(page.locator("#progress-avatar .upload-progress-text").text_content(), "100%")
        self.assertEqual(page.get_attribute("#progress-avatar .upload-progress-item", "data-upload-ref"),
                         entries[0]["ref"])

        progress = self.events(page, "djust:upload:progress")
        statuses = [e["detail"]["status"] for e in progress]
        self.assertEqual(statuses[-1], "complete")
        self.assertTrue(set(statuses) <= {"uploading", "complete"}, statuses)
        self.assertEqual(progress[-1]["detail"]["progress"], 100)
        self.assertEqual(progress[-1]["detail"]["uploadName"], "avatar")
        self.assertEqual(progress[-1]["detail"]["ref"], entries[0]["ref"])
        # Progress follows the server's acknowledgements, so it only ever grows.
        values = [e["detail"]["progress"] for e in progress]
        self.assertEqual(values, sorted(values))
        # The event bubbled from the input to window.
        self.assertEqual(progress[-1]["target"], "input-avatar")
        self.assertEqual(self.server_state(page)["entries"][0]["status"], "complete")

    def test_a_non_image_file_gets_a_preview_without_an_image(self) -> None:
        page = self.open_page(DOCS)
        self.choose(page, "docs", [self.make_file("notes.txt", b"hello\n" * 100)])
        item = page.locator("#preview-docs .upload-preview-item")
        item.wait_for()
        self.assertEqual(item.locator(".upload-preview-image").count(), 0)
        self.assertEqual(item.locator(".upload-preview-name").text_content(), "notes.txt")
        self.assertEqual(item.locator(".upload-preview-size").text_content(), "600 B")
        self.wait_all_complete(page, 1)

    def test_several_files_upload_in_parallel_and_each_gets_a_progress_bar(self) -> None:
        page = self.open_page(PHOTOS)
        sources = [self.make_file(f"p{i}.png", png_bytes(200_000 + i)) for i in range(5)]
        self.choose(page, "photos", sources)
        entries = self.wait_all_complete(page, 5)
        self.assertEqual({e["name"]: e["sha256"] for e in entries}, {p.name: sha256_file(p) for p in sources})
        self.assertEqual(page.locator("#progress-photos .upload-progress-item").count(), 5)
        self.assertEqual(page.locator('#progress-photos [role="progressbar"][aria-valuenow="100"]').count(), 5)

    def test_an_empty_file_completes(self) -> None:
        page = self.open_page({"any": {"max_entries": 2}})
        self.choose(page, "any", [self.make_file("empty.bin", b"")])
        entries = self.wait_all_complete(page, 1)
        self.assertEqual(entries[0]["sha256"], hashlib.sha256(b"").hexdigest())


class ClientSideRejectionTests(BrowserTestCase):
    """Size, accept and count checks happen before anything is sent."""

    def assert_nothing_sent(self, page) -> None:  # type: ignore[no-untyped-def]
        self.assertEqual(self.server_state(page)["entries"], [])
        self.assertEqual(page.evaluate("window.djUploads.connection().sockets"), 0)
        self.assertEqual(page.evaluate("window.djUploads.entries()"), [])

    def test_an_oversized_file_is_rejected_with_too_large(self) -> None:
        page = self.open_page({"avatar": {**AVATAR["avatar"], "max_file_size": 1000}})
        self.choose(page, "avatar", [self.make_file("big.png", png_bytes(5000))])
        page.wait_for_function("() => window.__events.some((e) => e.type === 'djust:upload:error')")
        [error] = self.events(page, "djust:upload:error")
        self.assertEqual(error["detail"]["code"], "too_large")
        self.assertEqual(error["detail"]["file"], "big.png")
        self.assertEqual(error["detail"]["error"], "big.png is 5.0 kB; the limit is 1.0 kB.")
        self.assertEqual(error["detail"]["uploadName"], "avatar")
        self.assert_nothing_sent(page)
        self.assertEqual(page.locator(".upload-preview-item").count(), 0)

    def test_a_file_of_another_type_is_rejected_with_not_accepted(self) -> None:
        page = self.open_page({**AVATAR, "images": {"accept": "image/*"}, "pdfs": {"accept": "application/pdf"}})
        self.choose(page, "avatar", [self.make_file("doc.pdf", b"%PDF-1.4\n")])
        self.choose(page, "images", [self.make_file("doc2.pdf", b"%PDF-1.4\n")])
        self.choose(page, "pdfs", [self.make_file("pic.png", png_bytes())])
        page.wait_for_function("() => window.__events.filter((e) => e.type === 'djust:upload:error').length === 3")
        errors = self.events(page, "djust:upload:error")
        self.assertEqual([e["detail"]["code"] for e in errors], ["not_accepted"] * 3)
        self.assertEqual([e["detail"]["file"] for e in errors], ["doc.pdf", "doc2.pdf", "pic.png"])
        self.assert_nothing_sent(page)

    def test_mime_wildcards_and_extensions_accept_matching_files(self) -> None:
        page = self.open_page({"images": {"accept": "image/*", "max_entries": 2}})
        self.choose(page, "images", [self.make_file("pic.png", png_bytes()), self.make_file("pic2.PNG", png_bytes())])
        self.wait_all_complete(page, 2)
        self.assertEqual(self.events(page, "djust:upload:error"), [])

    def test_files_beyond_max_entries_are_rejected_with_too_many_files(self) -> None:
        page = self.open_page({"two": {"max_entries": 2}})
        sources = [self.make_file(f"f{i}.txt", b"x" * (i + 1)) for i in range(3)]
        self.choose(page, "two", sources)
        self.wait_all_complete(page, 2)
        [error] = self.events(page, "djust:upload:error")
        self.assertEqual((error["detail"]["code"], error["detail"]["file"]), ("too_many_files", "f2.txt"))
        self.assertEqual(sorted(e["name"] for e in self.server_state(page)["entries"]), ["f0.txt", "f1.txt"])
        # Still full: one more is refused too, and nothing new reaches the server.
        self.choose(page, "two", [self.make_file("f3.txt", b"more")])
        page.wait_for_function("() => window.__events.filter((e) => e.type === 'djust:upload:error').length === 2")
        self.assertEqual(len(self.server_state(page)["entries"]), 2)


class ServerSideErrorTests(BrowserTestCase):
    def test_a_renamed_file_fails_with_type_mismatch_on_the_page(self) -> None:
        page = self.open_page(AVATAR)
        self.choose(page, "avatar", [self.make_file("fake.png", b"this is text, not a PNG at all\n" * 20)])
        page.wait_for_function("() => window.__events.some((e) => e.type === 'djust:upload:error')")
        [error] = self.events(page, "djust:upload:error")
        self.assertEqual(error["detail"]["code"], "type_mismatch")
        self.assertEqual(error["detail"]["file"], "fake.png")
        self.assertIn("fake.png", error["detail"]["error"])
        self.assertEqual(self.events(page, "djust:upload:progress")[-1]["detail"]["status"], "error")
        item = page.locator("#progress-avatar .upload-progress-item")
        self.assertEqual(item.get_attribute("data-upload-status"), "error")
        self.assertEqual(item.locator(".upload-progress-text").text_content(), error["detail"]["error"])
        # The view still gets to report it (consume_uploaded_entries yields errored entries).
        page.click("#save")
        page.locator('#errors li[data-code="type_mismatch"]').wait_for()

    def test_active_content_is_refused_at_announce(self) -> None:
        page = self.open_page({"any": {}})
        self.choose(page, "any", [self.make_file("x.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>")])
        page.wait_for_function("() => window.__events.some((e) => e.type === 'djust:upload:error')")
        self.assertEqual(self.events(page, "djust:upload:error")[0]["detail"]["code"], "active_content")
        self.assertEqual(self.server_state(page)["entries"], [])


class SubmitTests(BrowserTestCase):
    """dj-submit and dj-click: uploads first, then the event, then the re-rendered view swapped in."""

    def test_submit_saves_the_upload_and_shows_it_in_the_new_view(self) -> None:
        page = self.open_page(AVATAR)
        source = self.make_file("me.png", png_bytes(120_000))
        self.choose(page, "avatar", [source])
        page.fill("#title", "hello")
        self.wait_all_complete(page, 1)
        preview_url = page.get_attribute(".upload-preview-image", "src")
        page.click("#save")
        saved = page.locator('#saved li[data-name="me.png"]')
        saved.wait_for()
        self.assertEqual(saved.get_attribute("data-sha256"), sha256_file(source))
        [record] = self.server_state(page)["saved"]
        self.assertEqual(open(record["path"], "rb").read(), source.read_bytes())
        self.assertEqual(page.text_content("#renders"), "2")
        self.assertEqual(json.loads(page.text_content("#fields")), {"dj_event": "save", "title": "hello"})
        # Delivered entries leave the page, and their object URLs are revoked.
        self.assertEqual(page.locator(".upload-preview-item, .upload-progress-item").count(), 0)
        self.assertEqual(page.evaluate("window.djUploads.entries()"), [])
        self.assertFalse(page.evaluate("(url) => fetch(url).then(() => true, () => false)", preview_url))
        self.assertEqual(self.server_state(page)["entries"], [])

        # Directives keep working in the swapped-in DOM, on the same connection.
        second = self.make_file("again.png", png_bytes(50_000))
        self.assertEqual(page.get_attribute('[dj-upload="avatar"]', "accept"), ".jpg,.png,.webp")
        self.choose(page, "avatar", [second])
        self.wait_all_complete(page, 1)
        page.click("#save")
        page.locator('#saved li[data-name="again.png"]').wait_for()
        self.assertTrue(self.drop(page, "#drop-avatar .hint", [("dropped.png", "image/png", png_bytes(9000))]))
        self.wait_for_entries(page, "(es) => es.length === 1 && es[0].name === 'dropped.png' && es[0].status === 'complete'")
        self.assertEqual(page.locator("#preview-avatar .upload-preview-item").count(), 1)
        self.assertEqual(page.evaluate("window.djUploads.connection().sockets"), 1)

    def test_submit_waits_for_running_uploads_before_sending_the_event(self) -> None:
        page = self.open_page({"docs": {"max_entries": 3, "max_file_size": 50_000_000}})
        source = self.make_big_file("big.bin", 20_000_000)
        self.choose(page, "docs", [source])
        page.click("#save")  # at once, while the upload runs
        page.locator('#saved li[data-name="big.bin"]').wait_for()
        self.assertEqual(page.get_attribute('#saved li[data-name="big.bin"]', "data-sha256"), sha256_file(source))

    def test_auto_upload_false_shows_previews_and_uploads_only_on_submit(self) -> None:
        page = self.open_page({"photos": {**PHOTOS["photos"], "auto_upload": False}})
        sources = [self.make_file("a.png", png_bytes(70_000)), self.make_file("b.png", png_bytes(80_000))]
        self.choose(page, "photos", sources)
        page.locator("#preview-photos .upload-preview-item").nth(1).wait_for()
        self.assertEqual(page.locator(".upload-progress-item").count(), 0)
        self.assertEqual([e["status"] for e in page.evaluate("window.djUploads.entries()")], ["pending", "pending"])
        self.assertEqual(self.server_state(page)["entries"], [])
        self.assertEqual(page.evaluate("window.djUploads.connection().sockets"), 0)

        page.click("#save")
        page.locator("#saved li").nth(1).wait_for()
        saved = {li["name"]: li["sha256"] for li in self.server_state(page)["saved"]}
        self.assertEqual(saved, {p.name: sha256_file(p) for p in sources})
        # The event was sent after both finished: the progress events say complete before the view update.
        types = [(e["type"], e["detail"].get("status")) for e in self.events(page)]
        updated = types.index(("djust:view:updated", None))
        self.assertEqual(types[:updated].count(("djust:upload:progress", "complete")), 2)

    def test_click_sends_the_event_with_the_elements_data_values(self) -> None:
        page = self.open_page(PHOTOS)
        source = self.make_file("p.png", png_bytes(10_000))
        self.choose(page, "photos", [source])
        page.click("#click-save")
        page.locator('#saved li[data-name="p.png"]').wait_for()
        self.assertEqual(json.loads(page.text_content("#fields")), {"dj_event": "save", "item_id": "7"})


    def test_a_handler_that_redirects_navigates_the_page(self) -> None:
        page = self.open_page(PHOTOS)
        page.click("#click-redirect")
        page.locator("#elsewhere").wait_for()
        self.assertTrue(page.url.endswith("/elsewhere"))


class DropZoneTests(BrowserTestCase):
    """dj-upload-drop="name"."""

    def test_dropped_files_upload_like_chosen_ones(self) -> None:
        page = self.open_page(PHOTOS)
        data = png_bytes(90_000)
        highlighted = self.drop(page, "#drop-photos .deeper", [("dropped.png", "image/png", data)])
        self.assertTrue(highlighted)
        entries = self.wait_all_complete(page, 1)
        self.assertEqual(entries[0]["sha256"], hashlib.sha256(data).hexdigest())
        self.assertEqual(page.locator("#preview-photos .upload-preview-name").text_content(), "dropped.png")
        self.assertFalse(page.eval_on_selector("#drop-photos", "e => e.classList.contains('upload-dragover')"))
        self.assertEqual(self.events(page, "djust:upload:progress")[-1]["target"], "drop-photos")

    def test_dropped_files_go_through_the_same_checks(self) -> None:
        page = self.open_page(AVATAR)
        self.drop(page, "#drop-avatar", [("a.pdf", "application/pdf", b"%PDF-1.4\n")])
        page.wait_for_function("() => window.__events.some((e) => e.type === 'djust:upload:error')")
        self.assertEqual(self.events(page, "djust:upload:error")[0]["detail"]["code"], "not_accepted")
        self.assertEqual(page.evaluate("window.djUploads.connection().sockets"), 0)

    def test_the_dragover_class_follows_the_drag_across_nested_elements(self) -> None:
        page = self.open_page(PHOTOS)
        result = page.evaluate("""() => {
          const zone = document.querySelector('#drop-photos');
          const hint = zone.querySelector('.hint'), nested = zone.querySelector('.nested');
          const t = new DataTransfer(); t.items.add(new File(['x'], 'x.png', {type: 'image/png'}));
          const fire = (el, type, related) => el.dispatchEvent(new DragEvent(type,
              {bubbles: true, cancelable: true, dataTransfer: t, relatedTarget: related || null}));
          const has = () => zone.classList.contains('upload-dragover');
          const seen = [];
          fire(zone, 'dragenter'); seen.push(has());
          // Browser order when moving into a child: dragenter on the child, then dragleave on the parent.
          fire(hint, 'dragenter'); fire(zone, 'dragleave'); seen.push(has());
          fire(nested, 'dragenter'); fire(hint, 'dragleave'); seen.push(has());
          fire(hint, 'dragenter'); fire(nested, 'dragleave'); seen.push(has());
          fire(zone, 'dragenter'); fire(hint, 'dragleave'); seen.push(has());
          fire(zone, 'dragleave'); seen.push(has());   // left the zone
          fire(zone, 'dragenter'); fire(zone, 'dragover'); seen.push(has());
          fire(zone, 'dragleave'); seen.push(has());
          return seen;
        }""")
        self.assertEqual(result, [True, True, True, True, True, False, True, False])

    def test_the_zone_keeps_working_after_the_file_dialog_and_after_an_error(self) -> None:
        page = self.open_page(PHOTOS)
        self.choose(page, "photos", [self.make_file("chosen.png", png_bytes(5000))])
        self.wait_all_complete(page, 1)
        self.drop(page, "#drop-photos", [("bad.txt", "text/plain", b"nope")])
        page.wait_for_function("() => window.__events.some((e) => e.type === 'djust:upload:error')")
        self.assertFalse(page.eval_on_selector("#drop-photos", "e => e.classList.contains('upload-dragover')"))
        self.assertTrue(self.drop(page, "#drop-photos .hint", [("second.png", "image/png", png_bytes(6000))]))
        self.wait_all_complete(page, 2)
        self.assertFalse(page.eval_on_selector("#drop-photos", "e => e.classList.contains('upload-dragover')"))

    def test_a_click_on_the_zone_opens_its_file_input(self) -> None:
        page = self.open_page(PHOTOS)
        with page.expect_file_chooser() as chooser:
            page.click("#drop-photos .hint")
        chooser.value.set_files([str(self.make_file("via-zone.png", png_bytes(4000)))])
        self.wait_all_complete(page, 1)


class CancelTests(BrowserTestCase):
    def test_cancel_stops_the_upload_and_cancels_it_on_the_server(self) -> None:
        page = self.open_page({"docs": {"max_entries": 3, "max_file_size": 100_000_000}})
        page.evaluate("""() => window.djUploads.on('progress', (d) => {
          if (d.status === 'uploading' && d.progress > 0) window.djUploads.cancel(d.ref);
        })""")
        self.choose(page, "docs", [self.make_big_file("big.bin", 50_000_000)])
        page.wait_for_function(
            "() => window.__events.some((e) => e.type === 'djust:upload:progress' && e.detail.status === 'cancelled')")
        self.wait_for_entries(page, "(es) => es.length === 0")
        self.assertEqual(page.locator(".upload-progress-item, .upload-preview-item").count(), 0)
        [entry] = self.server_state(page)["entries"]  # kept briefly so late frames are dropped quietly
        self.assertEqual(entry["status"], "cancelled")
        self.assertLess(entry["received"], 50_000_000)

    def test_the_remove_control_in_a_preview_cancels_that_file(self) -> None:
        page = self.open_page({"photos": {**PHOTOS["photos"], "auto_upload": False}})
        self.choose(page, "photos", [self.make_file("keep.png", png_bytes(1000)),
                                     self.make_file("drop.png", png_bytes(1000))])
        page.click('.upload-preview-item:has-text("drop.png") [dj-upload-cancel]')
        self.assertEqual([e["name"] for e in page.evaluate("window.djUploads.entries()")], ["keep.png"])
        page.click("#save")
        page.locator('#saved li[data-name="keep.png"]').wait_for()
        self.assertEqual([s["name"] for s in self.server_state(page)["saved"]], ["keep.png"])

    def test_choosing_again_in_a_single_file_slot_replaces_the_previous_file(self) -> None:
        page = self.open_page(AVATAR)
        self.choose(page, "avatar", [self.make_file("first.png", png_bytes(20_000))])
        self.wait_all_complete(page, 1)
        second = self.make_file("second.png", png_bytes(30_000))
        self.choose(page, "avatar", [second])
        self.wait_for_entries(page, "(es) => es.length === 1 && es[0].name === 'second.png' && "
                                    "(es[0].status === 'complete' || es[0].status === 'error')")
        self.assertEqual(self.events(page, "djust:upload:error"), [])
        self.assertEqual([e["name"] for e in self.server_state(page)["entries"]], ["second.png"])
        self.assertEqual(page.locator(".upload-preview-item").count(), 1)
        page.click("#save")
        page.locator('#saved li[data-name="second.png"]').wait_for()
        self.assertEqual([s["name"] for s in self.server_state(page)["saved"]], ["second.png"])



class ErrorCodeTests(BrowserTestCase):
    def test_the_client_knows_every_error_code_with_the_same_message(self) -> None:
        from twisted_uploads.errors import MESSAGES

        page = self.open_page(AVATAR)
        self.assertEqual(page.evaluate("window.djUploads.errorMessages"),
                         {code.value: text for code, text in MESSAGES.items()})
