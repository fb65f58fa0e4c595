"""LiveView without uploads: rendering, state, event dispatch and its safety rules."""

from __future__ import annotations

from django.test import Client, override_settings
from twisted.internet.defer import Deferred
from twisted.trial import unittest

from django_shim.decorators import event_handler, is_event_handler
from django_shim.state import UnserializableState

from .support import Browser, Page, django_thread, in_thread


class RenderingTests(unittest.TestCase):

    @django_thread
    def test_a_whole_document_template_gets_the_root_around_its_body_and_the_client_in_its_head(self):
        page = Browser().open("/document/")
        self.assertIn('<head><title>Doc</title><link rel="stylesheet" href="/static/twisted_uploads/uploads.css">'
                      '<script src="/static/twisted_uploads/uploads.js" defer></script></head>', page.html)
        self.assertIn(f'<body><div data-dj-view="{page.view_id}">\n<p id="greeting">Hello world</p>', page.html)
        self.assertIn("</form>\n</div></body>", page.html)
        self.assertEqual(page.html.count("uploads.js"), 1)

    @django_thread
    def test_a_fragment_template_is_placed_into_the_page_template(self):
        page = Browser().open("/profile/")
        self.assertTrue(page.html.startswith("<!doctype html>"))
        self.assertEqual(page.html.count("uploads.js"), 1)
        self.assertIn('<main><div data-dj-view="', page.html)

    @django_thread
    def test_a_view_without_slots_carries_no_upload_config(self):
        page = Browser().open("/document/")
        self.assertNotIn("data-dj-uploads", page.html)

    @django_thread
    def test_url_kwargs_reach_mount(self):
        page = Browser().open("/document/Ada/")
        self.assertIn("Hello Ada", page.html)


class EventTests(unittest.TestCase):

    def setUp(self) -> Deferred:
        self.browser = Browser()

        def open_page() -> None:
            self.page = self.browser.open("/document/")

        return in_thread(open_page)

    @django_thread
    def test_a_handler_gets_the_form_fields_it_names(self):
        after = self.browser.event(self.page, "rename", name="Grace", unrelated="x")
        self.assertIn("Hello Grace", after.html)

    @django_thread
    def test_a_plain_post_redirects_to_the_stored_instance(self):
        response = self.browser.post(self.page, "rename", None, name="Linus")
        self.assertEqual(response.status_code, 303)
        again = self.browser.open(response["Location"])
        self.assertEqual(again.view_id, self.page.view_id)
        self.assertIn("Hello Linus", again.html)

    @django_thread
    def test_methods_not_marked_as_handlers_cannot_be_called(self):
        for name in ("not_a_handler", "mount", "dispatch", "_restore", "get", "__init__", "no_such"):
            response = self.browser.post(Page("/files/", self.browser.open("/files/").html), name)
            self.assertEqual(response.status_code, 400, name)

    @django_thread
    def test_a_post_without_a_view_id_mounts_a_fresh_instance(self):
        response = self.browser.client.post("/document/", {"dj_event": "rename", "name": "New",
                                                            "csrfmiddlewaretoken": self.page.csrf})
        self.assertEqual(response.status_code, 303)
        self.assertNotIn(self.page.view_id, response["Location"])

    @django_thread
    def test_events_need_the_csrf_token(self):
        client = Client(enforce_csrf_checks=True)
        client.get("/document/")
        response = client.post("/document/", {"dj_view": self.page.view_id, "dj_event": "rename", "name": "x"},
                               headers={"X-DJ-Request": "1"})
        self.assertEqual(response.status_code, 403)

    @django_thread
    def test_private_attributes_are_not_state(self):
        from django_shim.state import SESSION_KEY

        stored = self.browser.client.session[SESSION_KEY][self.page.view_id]
        self.assertEqual(stored["a"], {"name": "world"})


class StateTests(unittest.TestCase):

    @django_thread
    def test_an_attribute_the_session_cannot_store_is_named_in_the_error(self):
        with self.assertRaises(UnserializableState) as caught:
            Browser().open("/bad/")
        self.assertIn("BadStateView.when", str(caught.exception))

    @django_thread
    @override_settings(UPLOADS_MAX_VIEWS=2)
    def test_only_the_most_recent_view_states_are_kept(self):
        browser = Browser()
        first = browser.open("/document/")
        browser.open("/document/")
        browser.open("/document/")
        again = browser.open(f"/document/?dj_view={first.view_id}")
        self.assertNotEqual(again.view_id, first.view_id)

    @django_thread
    def test_a_view_id_of_another_view_class_does_not_restore(self):
        browser = Browser()
        files = browser.open("/files/")
        document = browser.open(f"/document/?dj_view={files.view_id}")
        self.assertNotEqual(document.view_id, files.view_id)


class DecoratorTests(unittest.TestCase):

    @django_thread
    def test_event_handler_works_with_and_without_parentheses(self):
        @event_handler()
        def one(self): ...

        @event_handler
        def two(self): ...

        @event_handler(description="three")
        def three(self): ...

        def four(self): ...

        self.assertEqual([is_event_handler(f) for f in (one, two, three, four)], [True, True, True, False])


class ReloadAdoptionTests(unittest.TestCase):
    """A reloaded page's token names the earlier pages of the same Django session (and only those)."""

    @staticmethod
    def grant(page: Page):
        from django.core import signing

        from django_shim.conf import uploads_settings
        from django_shim.tokens import TOKEN_SALT
        from twisted_uploads.tokens import adopt_from_payload

        config = uploads_settings()
        payload = signing.loads(page.token, key=config.secret, salt=TOKEN_SALT)
        return payload["session"], adopt_from_payload(payload)

    @django_thread
    def test_a_reloaded_page_may_continue_the_earlier_pages_uploads(self):
        browser = Browser()
        first_session, _ = self.grant(browser.open("/files/"))
        second_session, adopt = self.grant(browser.open("/files/"))
        self.assertNotEqual(first_session, second_session)
        self.assertEqual(adopt, (first_session,))

    @django_thread
    def test_another_browser_session_never_names_this_ones_uploads(self):
        mine, _ = self.grant(Browser().open("/files/"))
        _, adopt = self.grant(Browser().open("/files/"))
        self.assertNotIn(mine, adopt)

    @django_thread
    def test_pages_of_another_view_are_not_named(self):
        browser = Browser()
        browser.open("/docs/")
        _, adopt = self.grant(browser.open("/files/"))
        self.assertEqual(adopt, ())

    @django_thread
    def test_only_a_page_with_earlier_pages_asks_the_client_to_connect_at_once(self):
        browser = Browser()
        first = browser.open("/files/")
        second = browser.open("/files/")
        self.assertEqual((first.uploads.get("resumable"), second.uploads.get("resumable")), (None, True))
