"""Tests for twisted_uploads.validation: announce checks, magic bytes, active content and safe names."""

from __future__ import annotations

import gzip
import io
import struct
import zipfile

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import TestCase

from twisted_uploads.errors import ErrorCode, UploadError
from twisted_uploads.slots import SlotConfig
from twisted_uploads.validation import (MAX_NAME_LENGTH, check_announce, check_content, format_size,
                                        is_active_content, sanitize_name)

from .support import (HTML_BYTES, SVG_BYTES, docx_bytes, fuzz, gif_bytes, jpeg_bytes, pdf_bytes, png_bytes,
                      text_bytes, webp_bytes)


def zip_bytes() -> bytes:
    """A plain ZIP archive with one text member."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "hello")
    return buffer.getvalue()


def gzip_bytes() -> bytes:
    """A gzip stream (what a .tar.gz starts with)."""
    return gzip.compress(b"not really a tarball" * 10)


def iso_bmff(brand: bytes, compatible: bytes = b"") -> bytes:
    """An ISO base media file start: an ftyp box with ``brand``, then an empty mdat box."""
    body = brand + b"\x00\x00\x00\x00" + brand + compatible
    return struct.pack(">I", 8 + len(body)) + b"ftyp" + body + struct.pack(">I", 8) + b"mdat"


def heic_bytes() -> bytes:
    return iso_bmff(b"heic", b"mif1")


def mov_bytes() -> bytes:
    return iso_bmff(b"qt  ")

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

    def test_declared_type_is_checked_even_when_the_extension_agrees(self) -> None:
        self.assertMismatch("me.png", "application/pdf", png_bytes())

    def test_empty_file_named_png_is_type_mismatch(self) -> None:
        self.assertMismatch("empty.png", "image/png", b"")

    def test_empty_file_named_txt_passes(self) -> None:
        self.assertIsNone(check_content(ANY, "empty.txt", "text/plain", b""))


class DeclaredTypeTests(TestCase):
    """The declared MIME type is checked against the bytes too, without refusing what browsers really send."""

    def assertMismatch(self, name: str, mime: str, head: bytes) -> None:
        error = self.assertRaises(UploadError, check_content, ANY, name, mime, head)
        self.assertEqual(error.code, ErrorCode.TYPE_MISMATCH)

    def test_pdf_bytes_named_bin_and_declared_png_are_type_mismatch(self) -> None:
        self.assertMismatch("pic.bin", "image/png", pdf_bytes())

    def test_pdf_bytes_with_a_generic_name_and_declared_png_are_type_mismatch(self) -> None:
        self.assertMismatch("upload.dat", "image/png; charset=binary", pdf_bytes())

    def test_mismatch_message_names_the_declared_type(self) -> None:
        error = self.assertRaises(UploadError, check_content, ANY, "pic.bin", "image/png", pdf_bytes())
        self.assertIn("PDF", error.message)
        self.assertIn("image/png", error.message)

    def test_png_bytes_named_png_but_declared_jpeg_are_type_mismatch(self) -> None:
        self.assertMismatch("me.png", "image/jpeg", png_bytes())

    def test_text_declared_as_pdf_is_type_mismatch(self) -> None:
        self.assertMismatch("cv.bin", "application/pdf", text_bytes(300))

    def test_text_plain_says_nothing_as_it_is_the_multipart_default(self) -> None:
        # RFC 7578: a part without a Content-Type is text/plain; Django's SimpleUploadedFile declares it by default.
        self.assertEqual(check_content(ANY, "blob", "text/plain", png_bytes()), "image/png")

    def test_png_declared_as_csv_is_type_mismatch(self) -> None:
        self.assertMismatch("blob", "text/csv", png_bytes())

    def test_octet_stream_says_nothing(self) -> None:
        self.assertEqual(check_content(ANY, "me.png", "application/octet-stream", png_bytes()), "image/png")

    def test_empty_declared_type_says_nothing(self) -> None:
        self.assertEqual(check_content(ANY, "cv.pdf", "", pdf_bytes()), "application/pdf")

    def test_unknown_vendor_type_says_nothing(self) -> None:
        self.assertEqual(check_content(ANY, "scan.pdf", "application/x-vendor-scan", pdf_bytes()), "application/pdf")

    def test_pjpeg_declared_jpeg_passes(self) -> None:
        self.assertEqual(check_content(ANY, "me.jpg", "image/pjpeg", jpeg_bytes()), "image/jpeg")

    def test_image_jpg_declared_jpeg_passes(self) -> None:
        self.assertEqual(check_content(ANY, "me.jpeg", "image/jpg", jpeg_bytes()), "image/jpeg")

    def test_jfif_named_jpeg_passes(self) -> None:
        self.assertEqual(check_content(ANY, "download.jfif", "image/jpeg", jpeg_bytes()), "image/jpeg")

    def test_x_png_declared_png_passes(self) -> None:
        self.assertEqual(check_content(ANY, "me.png", "image/x-png", png_bytes()), "image/png")

    def test_windows_zip_type_passes(self) -> None:
        self.assertEqual(check_content(ANY, "a.zip", "application/x-zip-compressed", zip_bytes()), "application/zip")

    def test_docx_declared_as_zip_passes(self) -> None:
        self.assertEqual(check_content(ANY, "cv.docx", "application/zip", docx_bytes()), DOCX_MIME)

    def test_docx_declared_as_windows_zip_passes(self) -> None:
        self.assertEqual(check_content(ANY, "cv.docx", "application/x-zip-compressed", docx_bytes()), DOCX_MIME)

    def test_docx_declared_as_docx_passes(self) -> None:
        self.assertEqual(check_content(ANY, "cv.docx", DOCX_MIME, docx_bytes()), DOCX_MIME)

    def test_xlsm_declared_macro_enabled_passes(self) -> None:
        self.assertIsNotNone(check_content(ANY, "book.xlsm", "application/vnd.ms-excel.sheet.macroEnabled.12",
                                           docx_bytes()))

    def test_csv_declared_text_plain_passes(self) -> None:
        self.assertIsNone(check_content(ANY, "data.csv", "text/plain", b"a,b\n1,2\n"))

    def test_csv_declared_as_excel_by_windows_passes(self) -> None:
        self.assertIsNone(check_content(ANY, "data.csv", "application/vnd.ms-excel", b"a,b\n1,2\n"))

    def test_csv_declared_application_csv_passes(self) -> None:
        self.assertIsNone(check_content(ANY, "data.csv", "application/csv", b"a,b\n1,2\n"))

    def test_csv_starting_like_a_bitmap_passes(self) -> None:
        # filetype calls anything starting "BM" a BMP: a CSV of car sales must not be refused for it.
        self.assertIsNone(check_content(ANY, "sales.csv", "text/csv", b"BMW,2024,17\nAudi,2024,12\n"))

    def test_text_starting_like_an_executable_passes(self) -> None:
        self.assertIsNone(check_content(ANY, "notes.txt", "text/plain", b"MZ notes from the meeting\n"))

    def test_latin1_text_starting_like_mp3_passes(self) -> None:
        self.assertIsNone(check_content(ANY, "tags.txt", "text/plain", "ID3 balises \xe9t\xe9\n".encode("latin-1")))

    def test_utf16_text_passes(self) -> None:
        self.assertIsNone(check_content(ANY, "notes.txt", "text/plain", "h\u00e9llo".encode("utf-16")))

    def test_json_declared_application_json_passes(self) -> None:
        self.assertIsNone(check_content(ANY, "data.json", "application/json", b'{"a": 1}'))

    def test_markdown_declared_text_markdown_passes(self) -> None:
        self.assertIsNone(check_content(ANY, "README.md", "text/markdown", b"# Title\n\nSome *text*.\n"))

    def test_typescript_declared_as_mpeg_ts_passes(self) -> None:
        # Browsers map .ts to video/mp2t; a TypeScript file has no MPEG-TS signature and must not be refused.
        self.assertIsNone(check_content(ANY, "app.ts", "video/mp2t", b"export const a: number = 1;\n"))

    def test_ole_word_document_not_recognised_by_filetype_passes(self) -> None:
        ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600
        self.assertEqual(check_content(ANY, "old.doc", "application/msword", ole), "application/x-ole-storage")

    def test_rtf_saved_as_doc_passes(self) -> None:
        self.assertEqual(check_content(ANY, "letter.doc", "application/msword", b"{\\rtf1\\ansi hello}"),
                         "application/rtf")

    def test_illustrator_file_is_pdf_inside(self) -> None:
        self.assertEqual(check_content(ANY, "logo.ai", "application/postscript", pdf_bytes()), "application/pdf")

    def test_heic_declared_heif_passes(self) -> None:
        self.assertEqual(check_content(ANY, "IMG_1.HEIC", "image/heif", heic_bytes()), "image/heic")

    def test_mov_declared_quicktime_passes(self) -> None:
        self.assertEqual(check_content(ANY, "clip.MOV", "video/quicktime", mov_bytes()), "video/quicktime")

    def test_tarball_declared_as_tar_passes(self) -> None:
        self.assertEqual(check_content(ANY, "src.tar.gz", "application/x-tar", gzip_bytes()), "application/gzip")

    def test_tgz_declared_as_windows_compressed_passes(self) -> None:
        self.assertEqual(check_content(ANY, "src.tgz", "application/x-compressed", gzip_bytes()), "application/gzip")

    def test_camera_raw_with_unknown_extension_passes(self) -> None:
        # A DNG is TIFF inside; an extension no table knows says nothing checkable.
        self.assertEqual(check_content(ANY, "IMG_0001.DNG", "image/x-adobe-dng", b"II*\x00\x08\x00\x00\x00" + b"\x00" * 64),
                         "image/tiff")

    def test_gzipped_text_declared_as_its_inner_type_passes(self) -> None:
        # Python's mimetypes (and so the CLI) declares notes.txt.gz as text/plain, with gzip as its "encoding".
        self.assertEqual(check_content(ANY, "notes.txt.gz", "text/plain", gzip_bytes()), "application/gzip")

    def test_png_bytes_named_gz_are_type_mismatch_whatever_the_declared_type(self) -> None:
        self.assertMismatch("notes.txt.gz", "text/plain", png_bytes())

    def test_batch_file_declared_as_a_dos_program_passes(self) -> None:
        self.assertIsNone(check_content(ANY, "build.bat", "application/x-msdos-program", b"@echo off\r\n"))

    def test_ssh_public_key_passes(self) -> None:
        self.assertIsNone(check_content(ANY, "id_ed25519.pub", "", b"ssh-ed25519 AAAAC3Nza me@host\n"))

    def test_text_message_catalogue_named_msg_passes(self) -> None:
        self.assertIsNone(check_content(ANY, "it.msg", "", b'namespace eval ::tk { ::msgcat::mcset it "&Abort" }\n'))

    def test_graphviz_file_named_dot_passes(self) -> None:
        self.assertIsNone(check_content(ANY, "deps.dot", "text/vnd.graphviz", b"digraph { a -> b }\n"))

    def test_tab_separated_export_named_xls_passes(self) -> None:
        self.assertIsNone(check_content(ANY, "export.xls", "application/vnd.ms-excel", b"name\tsize\na\t1\n"))

    def test_png_bytes_named_xls_are_type_mismatch(self) -> None:
        self.assertMismatch("export.xls", "application/vnd.ms-excel", png_bytes())

    def test_an_unfamiliar_text_type_says_nothing(self) -> None:
        # Debian's mime.types files ar archives (.a) under text/vnd.a, so a CLI guessing from it declares that.
        self.assertEqual(check_content(ANY, "libfoo.a", "text/vnd.a", b"!<arch>\n" + b"\x00" * 60),
                         "application/x-unix-archive")

    def test_png_declared_apng_passes(self) -> None:
        self.assertEqual(check_content(ANY, "anim.png", "image/apng", png_bytes()), "image/png")

    def test_webp_declared_webp_passes(self) -> None:
        self.assertEqual(check_content(ANY, "me.webp", "image/webp", webp_bytes()), "image/webp")

    def test_gif_declared_gif_passes(self) -> None:
        self.assertEqual(check_content(ANY, "anim.gif", "image/gif", gif_bytes()), "image/gif")


class ContentFuzzTests(TestCase):
    """Whatever the bytes, name and declared type, the check answers with a detected type or an UploadError."""

    @fuzz
    @given(st.binary(max_size=600), st.sampled_from(["a.png", "a.csv", "a", "a.bin", "a.doc", "a.tar.gz"]),
           st.sampled_from(["", "image/png", "text/plain", "application/vnd.ms-excel", "x/y", "text/html"]))
    def test_any_input_gets_a_type_or_a_named_refusal(self, head: bytes, name: str, mime: str) -> None:
        try:
            result = check_content(ANY, name, mime, head)
        except UploadError as error:
            self.assertIn(error.code, {ErrorCode.TYPE_MISMATCH, ErrorCode.ACTIVE_CONTENT})
        else:
            self.assertTrue(result is None or "/" in result)


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

    def test_extensionless_img_onerror_is_active_content(self) -> None:
        self.assertActiveContent("avatar", "", b"<img src=x onerror=alert(document.cookie)>")

    def test_img_onerror_named_bin_is_active_content(self) -> None:
        self.assertActiveContent("blob.bin", "application/octet-stream", b"<IMG SRC=x ONERROR=alert(1)>")

    def test_every_whatwg_html_sniffing_pattern_is_active_content(self) -> None:
        for tag in ("!DOCTYPE HTML", "HTML", "HEAD", "SCRIPT", "IFRAME", "H1", "DIV", "FONT", "TABLE", "A", "STYLE",
                    "TITLE", "B", "BODY", "BR", "P", "!--"):
            for terminator in (" ", ">"):
                head = f"\n <{tag}{terminator}x".encode()
                self.assertTrue(is_active_content(head), head)
                self.assertTrue(is_active_content(head.lower()), head.lower())

    def test_comment_start_is_active_content(self) -> None:
        self.assertActiveContent("readme", "", b"<!-- a comment --> then plain words")

    def test_svg_with_slash_onload_is_active_content(self) -> None:
        self.assertActiveContent("x", "", b"<svg/onload=alert(1)>")

    def test_object_and_embed_are_active_content(self) -> None:
        self.assertTrue(is_active_content(b"<object data=x.swf>"))
        self.assertTrue(is_active_content(b"<embed src=x>"))

    def test_utf16_html_is_active_content(self) -> None:
        self.assertActiveContent("page", "", "<html><script>alert(1)</script>".encode("utf-16"))

    def test_xml_with_an_xhtml_script_is_active_content(self) -> None:
        self.assertActiveContent("feed.xml", "text/xml", b'<?xml version="1.0"?><x:script '
                                 b'xmlns:x="http://www.w3.org/1999/xhtml">alert(1)</x:script>')

    def test_xml_with_a_stylesheet_is_active_content(self) -> None:
        self.assertActiveContent("data.xml", "text/xml", b'<?xml version="1.0"?>\n'
                                 b'<?xml-stylesheet type="text/xsl" href="#x"?><doc/>')

    def test_xml_without_a_declaration_using_the_svg_namespace_is_active_content(self) -> None:
        self.assertActiveContent("x.xml", "text/xml", b'<g xmlns="http://www.w3.org/2000/svg"><script/></g>')

    def test_rss_feed_mentioning_javascript_is_not_active_content(self) -> None:
        self.assertFalse(is_active_content(b'<?xml version="1.0"?><rss><channel><title>JavaScript tips</title>'
                                           b'<description>Scripts on the web</description></channel></rss>'))

    def test_text_mentioning_bold_later_is_not_active_content(self) -> None:
        self.assertIsNone(check_content(ANY, "notes.txt", "text/plain", b"Use <b> for bold and <p> for text."))

    def test_csv_is_not_active_content(self) -> None:
        self.assertIsNone(check_content(ANY, "data.csv", "text/csv", b'name,html\n"a","<b>x</b>"\n'))

    def test_angle_bracket_placeholder_text_is_not_active_content(self) -> None:
        self.assertFalse(is_active_content(b"<name> is replaced by the user's name.\n"))

    def test_comment_on_its_own_line_is_not_sniffed_as_html(self) -> None:
        # WHATWG: "<!--" counts only when followed by a space or ">"; Markdown often starts with "<!--\n".
        self.assertFalse(is_active_content(b"<!--\n  maintainer notes\n-->\n# Title\n"))

    def test_xml_with_elements_named_object_is_not_active_content(self) -> None:
        self.assertFalse(is_active_content(b'<?xml version="1.0"?><interface><object class="GtkWindow"/>'
                                           b'</interface>'))

    def test_tag_name_prefix_is_not_a_tag(self) -> None:
        self.assertFalse(is_active_content(b"<bold claim> and <abbreviations> are words here"))

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
