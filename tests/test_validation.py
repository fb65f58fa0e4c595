"""Tests for twisted_uploads.validation: announce checks, magic bytes, active content and safe names."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import TestCase

from twisted_uploads.errors import ErrorCode, UploadError
from twisted_uploads.slots import SlotConfig
from twisted_uploads.validation import (MAX_NAME_LENGTH, check_announce, check_content, format_size,
                                        is_active_content, sanitize_name)

from .support import (HTML_BYTES, SVG_BYTES, docx_bytes, fuzz, gif_bytes, jpeg_bytes, pdf_bytes, png_bytes,
                      text_bytes, webp_bytes)

ANY = SlotConfig()
ACTIVE_OK = SlotConfig(allow_active_content=True)


DOCX_MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


class ContentTests(TestCase):
    """Magic bytes must agree with the name's extension (or, without one, with the declared type)."""

    def assertMismatch(self, name: str, mime: str, head: bytes) -> None:
        error = self.assertRaises(UploadError, check_content, ANY, name, mime, head)
        self.assertEqual(error.code, ErrorCode.TYPE_MISMATCH)

    def test_png_renamed_pdf_is_type_mismatch(self) -> None:
        self.assertMismatch("report.pdf", "application/pdf", png_bytes())

    def test_type_mismatch_message_names_both_types(self) -> None:
        error = self.assertRaises(UploadError, check_content, ANY, "report.pdf", "application/pdf", png_bytes())
        self.assertIn("PNG", error.message)
        self.assertIn("PDF", error.message)

    def test_jpeg_named_jpg_passes(self) -> None:
        self.assertEqual(check_content(ANY, "me.jpg", "image/jpeg", jpeg_bytes()), "image/jpeg")

    def test_jpeg_named_jpeg_passes(self) -> None:
        self.assertEqual(check_content(ANY, "me.JPEG", "image/jpeg", jpeg_bytes()), "image/jpeg")

    def test_png_named_png_passes(self) -> None:
        self.assertEqual(check_content(ANY, "me.png", "image/png", png_bytes()), "image/png")

    def test_gif_named_gif_passes(self) -> None:
        self.assertEqual(check_content(ANY, "anim.gif", "image/gif", gif_bytes()), "image/gif")

    def test_webp_named_webp_passes(self) -> None:
        self.assertEqual(check_content(ANY, "me.webp", "image/webp", webp_bytes()), "image/webp")

    def test_pdf_named_pdf_passes(self) -> None:
        self.assertEqual(check_content(ANY, "cv.pdf", "application/pdf", pdf_bytes()), "application/pdf")

    def test_docx_named_docx_passes(self) -> None:
        mime = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        self.assertEqual(check_content(ANY, "cv.docx", mime, docx_bytes()), mime)

    def test_docx_named_zip_passes(self) -> None:
        self.assertEqual(check_content(ANY, "cv.zip", "application/zip", docx_bytes()), DOCX_MIME)

    def test_docx_renamed_pdf_is_type_mismatch(self) -> None:
        self.assertMismatch("cv.pdf", "application/pdf", docx_bytes())

    def test_jpeg_renamed_png_is_type_mismatch(self) -> None:
        self.assertMismatch("me.png", "image/png", jpeg_bytes())

    def test_gif_renamed_webp_is_type_mismatch(self) -> None:
        self.assertMismatch("me.webp", "image/webp", gif_bytes())

    def test_text_named_png_is_type_mismatch(self) -> None:
        self.assertMismatch("me.png", "image/png", text_bytes(500))

    def test_text_named_pdf_is_type_mismatch(self) -> None:
        self.assertMismatch("cv.pdf", "application/pdf", text_bytes(500))

    def test_text_named_txt_passes(self) -> None:
        self.assertIsNone(check_content(ANY, "notes.txt", "text/plain", text_bytes(500)))

    def test_text_named_csv_passes(self) -> None:
        self.assertIsNone(check_content(ANY, "data.csv", "text/csv", b"a,b\n1,2\n"))

    def test_png_named_bin_passes(self) -> None:
        self.assertEqual(check_content(ANY, "blob.bin", "application/octet-stream", png_bytes()), "image/png")

    def test_png_without_name_extension_passes(self) -> None:
        self.assertEqual(check_content(ANY, "blob", "", png_bytes()), "image/png")

    def test_declared_type_counts_when_name_has_no_extension(self) -> None:
        self.assertMismatch("photo", "image/png", text_bytes(100))

    def test_extension_wins_over_declared_type(self) -> None:
        self.assertEqual(check_content(ANY, "me.png", "application/pdf", png_bytes()), "image/png")

    def test_empty_file_named_png_is_type_mismatch(self) -> None:
        self.assertMismatch("empty.png", "image/png", b"")

    def test_empty_file_named_txt_passes(self) -> None:
        self.assertIsNone(check_content(ANY, "empty.txt", "text/plain", b""))


class ActiveContentTests(TestCase):
    """SVG, HTML and JavaScript are refused unless the slot allows active content."""

    def assertActiveAtAnnounce(self, name: str, mime: str) -> None:
        error = self.assertRaises(UploadError, check_announce, ANY, name, mime, 10)
        self.assertEqual(error.code, ErrorCode.ACTIVE_CONTENT)

    def assertActiveContent(self, name: str, mime: str, head: bytes) -> None:
        error = self.assertRaises(UploadError, check_content, ANY, name, mime, head)
        self.assertEqual(error.code, ErrorCode.ACTIVE_CONTENT)

    def test_svg_name_is_active_content(self) -> None:
        self.assertActiveAtAnnounce("logo.svg", "")

    def test_svg_mime_is_active_content(self) -> None:
        self.assertActiveAtAnnounce("logo", "image/svg+xml")

    def test_html_name_is_active_content(self) -> None:
        self.assertActiveAtAnnounce("page.HTML", "")

    def test_htm_name_is_active_content(self) -> None:
        self.assertActiveAtAnnounce("page.htm", "application/octet-stream")

    def test_html_mime_is_active_content(self) -> None:
        self.assertActiveAtAnnounce("page", "text/html; charset=utf-8")

    def test_xhtml_mime_is_active_content(self) -> None:
        self.assertActiveAtAnnounce("page", "application/xhtml+xml")

    def test_js_name_is_active_content(self) -> None:
        self.assertActiveAtAnnounce("app.js", "")

    def test_mjs_name_is_active_content(self) -> None:
        self.assertActiveAtAnnounce("app.mjs", "")

    def test_javascript_mime_is_active_content(self) -> None:
        self.assertActiveAtAnnounce("app", "text/javascript")

    def test_svg_content_in_txt_is_active_content(self) -> None:
        self.assertActiveContent("notes.txt", "text/plain", SVG_BYTES)

    def test_bare_svg_tag_is_active_content(self) -> None:
        self.assertActiveContent("notes.txt", "text/plain", b'<svg xmlns="http://www.w3.org/2000/svg"/>')

    def test_html_content_in_txt_is_active_content(self) -> None:
        self.assertActiveContent("notes.txt", "text/plain", HTML_BYTES)

    def test_uppercase_html_content_is_active_content(self) -> None:
        self.assertActiveContent("notes.txt", "text/plain", b"<HTML><BODY>hi</BODY></HTML>")

    def test_html_after_bom_and_whitespace_is_active_content(self) -> None:
        self.assertActiveContent("notes.txt", "text/plain", b"\xef\xbb\xbf \r\n\t<html></html>")

    def test_html_after_comment_is_active_content(self) -> None:
        self.assertActiveContent("notes.txt", "text/plain", b"<!-- generated --><html></html>")

    def test_script_content_is_active_content(self) -> None:
        self.assertActiveContent("notes.txt", "text/plain", b"<script>alert(1)</script>")

    def test_svg_content_named_png_is_active_content(self) -> None:
        self.assertActiveContent("logo.png", "image/png", SVG_BYTES)

    def test_plain_xml_is_not_active_content(self) -> None:
        self.assertFalse(is_active_content(b'<?xml version="1.0"?><feed><title>x</title></feed>'))

    def test_text_mentioning_html_later_is_not_active_content(self) -> None:
        self.assertFalse(is_active_content(b"This note explains the <html> element."))

    def test_svg_name_allowed_with_allow_active_content(self) -> None:
        self.assertIsNone(check_announce(ACTIVE_OK, "logo.svg", "image/svg+xml", 10))

    def test_html_name_allowed_with_allow_active_content(self) -> None:
        self.assertIsNone(check_announce(ACTIVE_OK, "page.html", "text/html", 10))

    def test_js_name_allowed_with_allow_active_content(self) -> None:
        self.assertIsNone(check_announce(ACTIVE_OK, "app.js", "text/javascript", 10))

    def test_svg_content_allowed_with_allow_active_content(self) -> None:
        self.assertIsNone(check_content(ACTIVE_OK, "logo.svg", "image/svg+xml", SVG_BYTES))

    def test_html_content_allowed_with_allow_active_content(self) -> None:
        self.assertIsNone(check_content(ACTIVE_OK, "page.html", "text/html", HTML_BYTES))


class AnnounceTests(TestCase):
    """What can be refused before any byte is sent, in the documented order."""

    def assertCode(self, code: ErrorCode, slot: SlotConfig, name: str, mime: str, size: object) -> None:
        error = self.assertRaises(UploadError, check_announce, slot, name, mime, size)
        self.assertEqual(error.code, code)

    def test_file_at_limit_passes(self) -> None:
        self.assertIsNone(check_announce(SlotConfig(max_file_size=100), "a.txt", "text/plain", 100))

    def test_file_over_limit_is_too_large(self) -> None:
        self.assertCode(ErrorCode.TOO_LARGE, SlotConfig(max_file_size=100), "a.txt", "text/plain", 101)

    def test_too_large_message_gives_sizes(self) -> None:
        error = self.assertRaises(UploadError, check_announce, SlotConfig(max_file_size=5_000_000), "me.png",
                                  "image/png", 12_000_000)
        self.assertEqual(error.message, "me.png is 12.0 MB; the limit is 5.0 MB.")

    def test_negative_size_is_too_large(self) -> None:
        self.assertCode(ErrorCode.TOO_LARGE, ANY, "a.txt", "text/plain", -1)

    def test_float_size_is_too_large(self) -> None:
        self.assertCode(ErrorCode.TOO_LARGE, ANY, "a.txt", "text/plain", 1.5)

    def test_string_size_is_too_large(self) -> None:
        self.assertCode(ErrorCode.TOO_LARGE, ANY, "a.txt", "text/plain", "10")

    def test_boolean_size_is_too_large(self) -> None:
        self.assertCode(ErrorCode.TOO_LARGE, ANY, "a.txt", "text/plain", True)

    def test_missing_size_is_too_large(self) -> None:
        self.assertCode(ErrorCode.TOO_LARGE, ANY, "a.txt", "text/plain", None)

    def test_zero_size_passes(self) -> None:
        self.assertIsNone(check_announce(ANY, "a.txt", "text/plain", 0))

    def test_unlisted_extension_is_not_accepted(self) -> None:
        self.assertCode(ErrorCode.NOT_ACCEPTED, SlotConfig(accept=".jpg,.png"), "me.gif", "image/gif", 10)

    def test_unlisted_mime_is_not_accepted(self) -> None:
        self.assertCode(ErrorCode.NOT_ACCEPTED, SlotConfig(accept="image/*"), "cv.pdf", "application/pdf", 10)

    def test_listed_extension_passes(self) -> None:
        self.assertIsNone(check_announce(SlotConfig(accept=".jpg,.png"), "me.png", "image/png", 10))

    def test_size_is_checked_before_accept(self) -> None:
        self.assertCode(ErrorCode.TOO_LARGE, SlotConfig(accept=".png", max_file_size=5), "a.gif", "", 6)

    def test_accept_is_checked_before_active_content(self) -> None:
        self.assertCode(ErrorCode.NOT_ACCEPTED, SlotConfig(accept=".png"), "logo.svg", "image/svg+xml", 10)

    def test_svg_listed_in_accept_is_still_active_content(self) -> None:
        self.assertCode(ErrorCode.ACTIVE_CONTENT, SlotConfig(accept=".svg"), "logo.svg", "image/svg+xml", 10)


class SanitizeNameTests(TestCase):
    """Client file names become safe bare names."""

    def test_plain_name_is_kept(self) -> None:
        self.assertEqual(sanitize_name("holiday photo.jpg"), "holiday photo.jpg")

    def test_posix_directories_are_dropped(self) -> None:
        self.assertEqual(sanitize_name("../../etc/passwd"), "passwd")

    def test_windows_directories_are_dropped(self) -> None:
        self.assertEqual(sanitize_name("C:\\Users\\me\\cv.pdf"), "cv.pdf")

    def test_control_characters_are_dropped(self) -> None:
        self.assertEqual(sanitize_name("a\x00b\nc\x7f.txt"), "abc.txt")

    def test_bidi_override_is_dropped(self) -> None:
        self.assertEqual(sanitize_name("invoice\u202egnp.exe"), "invoicegnp.exe")

    def test_leading_dots_are_dropped(self) -> None:
        self.assertEqual(sanitize_name(".bashrc"), "bashrc")

    def test_dot_dot_alone_becomes_upload(self) -> None:
        self.assertEqual(sanitize_name(".."), "upload")

    def test_empty_name_becomes_upload(self) -> None:
        self.assertEqual(sanitize_name(""), "upload")

    def test_whitespace_name_becomes_upload(self) -> None:
        self.assertEqual(sanitize_name("  \t "), "upload")

    def test_trailing_separator_becomes_upload(self) -> None:
        self.assertEqual(sanitize_name("some/dir/"), "upload")

    def test_windows_reserved_characters_are_replaced(self) -> None:
        self.assertEqual(sanitize_name('a<b>c:d"e|f?g*h.txt'), "a_b_c_d_e_f_g_h.txt")

    def test_name_is_nfc_normalised(self) -> None:
        self.assertEqual(sanitize_name("cafe\u0301.txt"), "caf\u00e9.txt")

    def test_long_name_is_cut_to_limit(self) -> None:
        self.assertEqual(len(sanitize_name("x" * 500 + ".pdf")), MAX_NAME_LENGTH)

    def test_long_name_keeps_its_extension(self) -> None:
        self.assertTrue(sanitize_name("x" * 500 + ".pdf").endswith("x.pdf"))

    def test_long_name_without_extension_is_cut(self) -> None:
        self.assertEqual(sanitize_name("y" * 500), "y" * MAX_NAME_LENGTH)

    def test_long_multibyte_name_fits_a_posix_file_name(self) -> None:
        # NAME_MAX is 255 *bytes* on Linux/macOS: 200 CJK characters are 600 bytes and cannot be saved.
        self.assertLessEqual(len(sanitize_name("\u4e2d" * 300 + ".png").encode("utf-8")), 255)

    def test_windows_device_name_is_not_kept(self) -> None:
        self.assertNotIn(sanitize_name("CON.txt").split(".")[0].upper(), {"CON", "PRN", "AUX", "NUL"})

    @fuzz
    @given(st.text(max_size=400))
    def test_any_name_becomes_a_safe_bare_name(self, raw: str) -> None:
        name = sanitize_name(raw)
        self.assertTrue(name)
        self.assertLessEqual(len(name), MAX_NAME_LENGTH)
        self.assertFalse(name.startswith("."))
        self.assertFalse(set(name) & set('/\\<>:"|?*\x00\n\r'))


class FormatSizeTests(TestCase):
    """Sizes in messages use decimal units."""

    def test_bytes(self) -> None:
        self.assertEqual(format_size(999), "999 B")

    def test_kilobytes(self) -> None:
        self.assertEqual(format_size(1500), "1.5 kB")

    def test_megabytes(self) -> None:
        self.assertEqual(format_size(5_000_000), "5.0 MB")

    def test_gigabytes_are_the_largest_unit(self) -> None:
        self.assertEqual(format_size(5 * 10**12), "5000.0 GB")
