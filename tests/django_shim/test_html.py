"""The server-side rewrite that makes dj-submit / dj-click / dj-upload work as plain HTML forms."""

from __future__ import annotations

from twisted.trial import unittest

from django_shim.html import document_shape, rewrite_directives
from twisted_uploads.slots import SlotConfig

SLOTS = {"avatar": SlotConfig(accept=".jpg,.png"), "photos": SlotConfig(max_entries=5)}


def rewrite(source: str) -> str:
    return rewrite_directives(source, "V1", "CSRF", SLOTS)


class RewriteTests(unittest.TestCase):

    def test_a_dj_submit_form_posts_multipart_with_event_view_and_csrf(self):
        out = rewrite('<form dj-submit="save" method="get"><button>Go</button></form>')
        self.assertEqual(out, '<form dj-submit="save" method="post" enctype="multipart/form-data">'
                              '<input type="hidden" name="dj_event" value="save">'
                              '<input type="hidden" name="dj_view" value="V1">'
                              '<input type="hidden" name="csrfmiddlewaretoken" value="CSRF">'
                              '<button>Go</button></form>')

    def test_a_file_input_gets_its_slot_name_accept_and_multiple(self):
        out = rewrite('<form dj-submit="s"><input type="file" dj-upload="avatar"></form>'
                      '<form dj-submit="t"><input type="file" dj-upload="photos"/></form>')
        self.assertIn('<input type="file" dj-upload="avatar" name="avatar" accept=".jpg,.png">', out)
        self.assertIn('<input type="file" dj-upload="photos" name="photos" multiple />', out)

    def test_attributes_the_author_set_are_kept(self):
        out = rewrite('<form dj-submit="s"><input type="file" dj-upload="avatar" name="pic" accept="image/*">'
                      '</form>')
        self.assertIn('name="pic" accept="image/*">', out)

    def test_form_less_inputs_and_dj_click_buttons_share_one_hidden_form(self):
        out = rewrite('<input type="file" dj-upload="photos"><button dj-click="upload">Up</button>')
        self.assertIn('form="dj-form-V1"', out.split("<button")[0])
        self.assertIn('<button dj-click="upload" name="dj_event" value="upload" type="submit" form="dj-form-V1">',
                      out)
        self.assertTrue(out.endswith('<form id="dj-form-V1" method="post" enctype="multipart/form-data" hidden>'
                                     '<input type="hidden" name="dj_view" value="V1">'
                                     '<input type="hidden" name="csrfmiddlewaretoken" value="CSRF"></form>'))

    def test_a_dj_click_button_inside_a_dj_submit_form_names_its_own_event(self):
        out = rewrite('<form dj-submit="save"><button dj-click="remove" data-id="3">x</button></form>')
        self.assertIn('<button dj-click="remove" data-id="3" name="dj_event" value="remove">', out)
        self.assertNotIn("dj-form-V1", out)

    def test_plain_forms_and_other_markup_are_left_byte_for_byte(self):
        source = ('<!-- c --><form action="/search"><button dj-click="x">go</button></form>\n'
                  '<p class=a>caf&eacute; &amp; <b>tea</b></p>'
                  '<script>if (a < b) { "<form dj-submit=\'no\'>" }</script>')
        self.assertEqual(rewrite(source), source)

    def test_a_file_input_in_a_plain_form_only_gets_accept(self):
        out = rewrite('<form action="/x"><input type="file" dj-upload="avatar"></form>')
        self.assertEqual(out, '<form action="/x"><input type="file" dj-upload="avatar" accept=".jpg,.png"></form>')

    def test_values_are_escaped(self):
        out = rewrite_directives('<form dj-submit="a&quot;b"></form>', 'V"1', "C<", {})
        self.assertIn('value="a&quot;b"', out)
        self.assertIn('value="V&quot;1"', out)
        self.assertIn('value="C&lt;"', out)

    def test_offsets_hold_across_lines_and_multibyte_text(self):
        source = "<p>é\nü</p>\n  <form\n dj-submit='s'>\n</form>"
        out = rewrite(source)
        self.assertTrue(out.startswith("<p>é\nü</p>\n  <form dj-submit=\"s\" method=\"post\""))

    def test_forms_without_an_action_post_to_the_given_view_url(self):
        out = rewrite_directives('<form dj-submit="save"></form><form dj-submit="x" action="/elsewhere/"></form>'
                                 '<input type="file" dj-upload="avatar">', "V1", "CSRF", SLOTS,
                                 action="/profile/?a=1&dj_view=V1")
        self.assertIn('<form dj-submit="save" method="post" enctype="multipart/form-data" '
                      'action="/profile/?a=1&amp;dj_view=V1">', out)
        self.assertIn('action="/elsewhere/"', out)
        self.assertIn('enctype="multipart/form-data" action="/profile/?a=1&amp;dj_view=V1" hidden>', out)

    def test_refusals_are_listed_after_the_slots_first_file_input(self):
        out = rewrite_directives('<p><input type="file" dj-upload="avatar"></p><input type="file" dj-upload="avatar">',
                                 "V1", "CSRF", SLOTS, refusals={"avatar": ["<b>.png: The file is larger than allowed."]})
        self.assertEqual(out.count('class="upload-errors"'), 1)
        self.assertIn('form="dj-form-V1"><span class="upload-errors" role="alert" data-dj-upload-errors="avatar">'
                      '<span class="upload-error">&lt;b&gt;.png: The file is larger than allowed.</span></span></p>',
                      out)

    def test_refusals_of_a_slot_without_an_input_lead_the_view(self):
        out = rewrite_directives("<p>hi</p>", "V1", "CSRF", SLOTS, refusals={"docs": ["a.pdf: Too many files."]})
        self.assertTrue(out.startswith('<span class="upload-errors" role="alert" data-dj-upload-errors="docs">'))

    def test_document_shape_finds_the_body_of_a_whole_page_and_nothing_in_a_fragment(self):
        page = "<html><head><title>t</title></head><body class=x><p>hi</p></body></html>"
        shape = document_shape(page)
        start, end = shape.body_inner
        self.assertEqual(page[start:end], "<p>hi</p>")
        self.assertEqual(page[shape.head_end:shape.head_end + 7], "</head>")
        self.assertIsNone(document_shape("<p>fragment</p>").body_inner)
