"""Resume after a reload, end to end on the demo: the new page is given the same file and continues the earlier
page's entry (``adopt``) from the server's offset. Needs the server half (``adoptable`` in ``welcome``, the
``adopt`` message); a tree without it skips these tests and says so."""

from __future__ import annotations

import json

from twisted.trial.unittest import SkipTest

from twisted_uploads.connection import UploadConnection

from .support import WAIT_MS, DemoTestCase, png_bytes, sha256_file

# Holds back the page's data after 5 MB (a 9.5 MB file fits in one first window of an idle server, so it would
# otherwise all be sent before the first ack), and at the first acknowledged progress the page reloads itself: the
# socket goes with it and the server pauses the entry. An upload that completed before the old page was gone would
# leave nothing to resume.
HOLD_AFTER_BYTES = 5_000_000
RELOAD_MID_UPLOAD = """() => {
  const send = WebSocket.prototype.send;
  let sent = 0;
  WebSocket.prototype.send = function (data) {
    if (typeof data !== 'string') {
      if (sent >= %d) return;
      sent += data.byteLength ?? data.size ?? 0;
    }
    return send.call(this, data);
  };
  window.addEventListener('djust:upload:progress', function cut(event) {
    if (event.detail.status !== 'uploading' || event.detail.progress < 5) return;
    window.removeEventListener('djust:upload:progress', cut);
    WebSocket.prototype.send = function () {};
    location.reload();
  });
}""" % HOLD_AFTER_BYTES
RELOADED = "() => performance.getEntriesByType('navigation')[0].type === 'reload' && window.djUploads !== undefined"


class ReloadResumeTests(DemoTestCase):

    def setUp(self) -> None:
        if not hasattr(UploadConnection, "_on_adopt"):
            raise SkipTest("the server half of resume after a reload (adopt) is not in this tree")
        super().setUp()

    def watch_socket(self, page) -> tuple[list[dict], list[dict]]:  # type: ignore[no-untyped-def]
        sent: list[dict] = []
        received: list[dict] = []

        def on_socket(ws) -> None:  # type: ignore[no-untyped-def]
            ws.on("framesent", lambda p: sent.append(json.loads(p)) if isinstance(p, str) else None)
            ws.on("framereceived", lambda p: received.append(json.loads(p)) if isinstance(p, str) else None)

        page.on("websocket", on_socket)
        return sent, received

    def reload_mid_upload(self, source):  # type: ignore[no-untyped-def]
        """The reloaded page, showing the interrupted upload, and what its socket sends and receives from then on
        (a resumable page connects at once, so the frames are watched from before the reload)."""
        page = self.open_demo("/gallery/")
        sent, received = self.watch_socket(page)
        page.evaluate(RELOAD_MID_UPLOAD)
        self.choose(page, "photos", [source])
        page.wait_for_function(RELOADED, timeout=WAIT_MS)
        # The reloaded page shows the interrupted upload (test_reload_ghosts.py) before a file is chosen again.
        try:
            page.locator('[dj-upload-progress="photos"] [data-upload-status="interrupted"]').wait_for(timeout=15_000)
        except Exception as error:  # noqa: BLE001
            raise AssertionError(f"no ghost: {error}\nwelcomes: {[m for m in received if m['type'] == 'welcome']}\n"
                                 f"sent: {[m for m in sent if m['type'] != 'auth']}\nconsole: {self.console}\n"
                                 f"sessionStorage: {page.evaluate('JSON.stringify(sessionStorage)')}\n"
                                 f"connection: {page.evaluate('window.djUploads.connection()')}\n"
                                 f"server log: {self.site.read_log()[-3000:]}") from None
        del sent[:], received[:]
        return page, sent, received

    def test_the_same_file_picked_after_a_reload_continues_from_the_servers_offset(self) -> None:
        source = self.make_file("holiday.png", png_bytes(9_500_000))
        page, sent, received = self.reload_mid_upload(source)
        self.choose(page, "photos", [source])
        [entry] = self.wait_all_complete(page, 1)
        self.assertEqual(entry["sha256"], sha256_file(source))
        [adopt] = [m for m in sent if m["type"] == "adopt"]
        self.assertEqual([m for m in sent if m["type"] == "announce"], [])
        [accepted] = [m for m in received if m["type"] == "accepted"]
        self.assertEqual((accepted["ref"], accepted["entry"]), (adopt["ref"], adopt["entry"]))
        self.assertGreater(accepted["offset"], 0)
        page.click('button[dj-click="upload_photos"]')
        page.locator('.gallery img[alt="holiday.png"]').wait_for()

    def test_another_file_of_the_same_name_and_size_is_not_adopted(self) -> None:
        source = self.make_file("holiday.png", png_bytes(9_500_000))
        page, sent, _ = self.reload_mid_upload(source)
        impostor = self.files_dir / "elsewhere" / "holiday.png"
        impostor.parent.mkdir()
        impostor.write_bytes(png_bytes(9_500_000))
        self.choose(page, "photos", [impostor])
        self.wait_for_entries(page, "(es) => es.some((e) => e.status === 'complete')")
        entries = {e["status"]: e for e in page.evaluate("window.djUploads.entries()")}
        self.assertEqual(sorted(entries), ["complete", "interrupted"])  # the earlier page's upload waits on
        self.assertEqual(entries["complete"]["sha256"], sha256_file(impostor))
        self.assertEqual([m["type"] for m in sent if m["type"] in ("adopt", "announce")], ["announce"])

    def test_another_django_session_is_never_offered_the_entry(self) -> None:
        source = self.make_file("holiday.png", png_bytes(9_500_000))
        self.reload_mid_upload(source)
        stranger_context = self.browser.browser.new_context()
        self.addCleanup(stranger_context.close)
        stranger = stranger_context.new_page()
        stranger.goto(self.base_url + "/gallery/")
        stranger.wait_for_function("() => window.djUploads !== undefined")
        sent, received = self.watch_socket(stranger)
        stranger.set_input_files('input[dj-upload="photos"]', str(source))
        stranger.wait_for_function("() => window.djUploads.entries().every((e) => e.status === 'complete')"
                                   " && window.djUploads.entries().length === 1")
        [welcome] = [m for m in received if m["type"] == "welcome"]
        self.assertEqual(welcome.get("adoptable", []), [])
        self.assertEqual([m["type"] for m in sent if m["type"] in ("adopt", "announce")], ["announce"])
