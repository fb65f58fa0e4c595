"""The demo's pages with keyboard and screen reader: axe-core finds nothing, the drop zone works from the keyboard,
and completion and errors are announced through aria-live regions."""

from __future__ import annotations

from .support import DemoTestCase, axe_violations, picture_png

PAGES = (("/profile/", "avatar", "me.png"), ("/gallery/", "photos", "p.png"), ("/docs/", "docs", "notes.txt"))


def readable(violations: list[dict]) -> str:
    return "\n".join(f"{v['id']} ({v['impact']}): {v['help']} — {', '.join(v['nodes'][:3])}" for v in violations)


class AxeAuditTests(DemoTestCase):
    """axe-core's default rules (WCAG 2 A/AA and best practices) on each page, empty and with an upload shown."""

    def audit(self, path: str, slot: str, name: str) -> None:
        page = self.open_demo(path)
        violations = axe_violations(page)
        self.assertEqual(violations, [], f"{path} before any upload:\n{readable(violations)}")
        data = picture_png(64, 64) if name.endswith(".png") else b"plain text\n" * 50
        self.choose(page, slot, [self.make_file(name, data)])
        page.locator(f'[dj-upload-progress="{slot}"] [role="progressbar"][aria-valuenow="100"]').wait_for()
        violations = axe_violations(page)
        self.assertEqual(violations, [], f"{path} with a finished upload:\n{readable(violations)}")

    def test_the_audit_objects_to_a_progress_bar_without_a_name(self) -> None:
        # An empty result above proves something only if the audit sees the client's own markup.
        page = self.open_demo("/gallery/")
        self.choose(page, "photos", [self.make_file("p.png", picture_png(16, 16))])
        bar = page.locator('[dj-upload-progress="photos"] [role="progressbar"][aria-valuenow="100"]')
        bar.wait_for()
        self.assertEqual(bar.get_attribute("aria-label"), "Upload of p.png")
        bar.evaluate("(e) => e.removeAttribute('aria-label')")
        self.assertIn("aria-progressbar-name", [v["id"] for v in axe_violations(page)])

    def test_the_avatar_page_has_no_violations(self) -> None:
        self.audit(*PAGES[0])

    def test_the_gallery_page_has_no_violations(self) -> None:
        self.audit(*PAGES[1])

    def test_the_documents_page_has_no_violations(self) -> None:
        self.audit(*PAGES[2])


class KeyboardTests(DemoTestCase):

    def intercept_file_choosers(self, page) -> None:  # type: ignore[no-untyped-def]
        """Turn Playwright's file chooser interception on before a key opens one.

        ``expect_file_chooser`` enables it only when it starts waiting, asynchronously: a key pressed right after
        can open the dialog before interception is on, and then no event ever comes.
        """
        page.on("filechooser", lambda chooser: None)
        page.evaluate("0")  # a round trip: the interception request has been handled

    def test_tab_reaches_the_drop_zone_and_it_shows_a_focus_ring(self) -> None:
        page = self.open_demo("/gallery/")
        zone = page.locator('[dj-upload-drop="photos"]')
        for _ in range(20):
            page.keyboard.press("Tab")
            if zone.evaluate("(e) => document.activeElement === e"):
                break
        self.assertTrue(zone.evaluate("(e) => document.activeElement === e"), "Tab never reached the drop zone")
        self.assertTrue(zone.evaluate("(e) => e.matches(':focus-visible')"))
        outline = zone.evaluate("(e) => getComputedStyle(e).outlineStyle")
        self.assertNotEqual(outline, "none")

    def test_enter_on_the_drop_zone_opens_the_file_dialog_and_the_chosen_file_uploads(self) -> None:
        page = self.open_demo("/gallery/")
        self.intercept_file_choosers(page)
        page.focus('[dj-upload-drop="photos"]')
        source = self.make_file("keyed.png", picture_png(32, 32))
        with page.expect_file_chooser() as chooser:
            page.keyboard.press("Enter")
        chooser.value.set_files(str(source))
        entries = self.wait_all_complete(page, 1)
        self.assertEqual(entries[0]["name"], "keyed.png")

    def test_space_on_the_drop_zone_opens_the_file_dialog(self) -> None:
        page = self.open_demo("/profile/")
        self.intercept_file_choosers(page)
        page.focus('[dj-upload-drop="avatar"]')
        with page.expect_file_chooser() as chooser:
            page.keyboard.press(" ")
        self.assertFalse(chooser.value.is_multiple())  # the avatar slot takes one file


class LiveRegionTests(DemoTestCase):

    def test_a_finished_upload_is_announced_politely(self) -> None:
        page = self.open_demo("/profile/")
        self.choose(page, "avatar", [self.make_file("me.png", picture_png(32, 32))])
        region = page.locator("#dj-upload-status")
        region.wait_for(state="attached")
        page.wait_for_function("() => document.getElementById('dj-upload-status').textContent === 'me.png uploaded.'")
        self.assertEqual(region.get_attribute("aria-live"), "polite")
        self.assertEqual(region.get_attribute("role"), "status")

    def test_a_refused_file_is_announced_assertively(self) -> None:
        page = self.open_demo("/profile/")
        self.choose(page, "avatar", [self.make_file("notes.txt", b"not an image")])
        page.wait_for_function("() => ((document.getElementById('dj-upload-alerts') || {}).textContent || '')"
                               ".startsWith('notes.txt: notes.txt is not one of the accepted types')")
        region = page.locator("#dj-upload-alerts")
        self.assertEqual(region.get_attribute("aria-live"), "assertive")
        self.assertEqual(region.get_attribute("role"), "alert")
        self.assertEqual(self.events(page, "djust:upload:error")[0]["detail"]["code"], "not_accepted")
