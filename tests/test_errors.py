"""Tests for twisted_uploads.errors: one set of codes, equal in Python, the protocol doc and the browser client."""

from __future__ import annotations

import json
import re
from pathlib import Path

from twisted.trial.unittest import SkipTest, TestCase

from twisted_uploads import errors
from twisted_uploads.errors import CLOSE_CODES, MESSAGES, ErrorCode, UploadError

REPO = Path(__file__).resolve().parent.parent
PROTOCOL_DOC = REPO / "docs" / "protocol.md"
BROWSER_CLIENT = REPO / "static" / "uploads.js"


def markdown_section(text: str, number: int) -> str:
    """The body of the ``## <number>.`` section of a markdown document."""
    match = re.search(rf"^## {number}\.[^\n]*\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    if match is None:
        raise AssertionError(f"docs/protocol.md has no section {number}")
    return match.group(1)


def first_column(section: str) -> list[str]:
    """The first cell of each body row of the markdown table in ``section``, without backticks."""
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return [row.split("|")[1].strip().strip("`") for row in rows[2:]]


def browser_error_messages(source: str) -> dict[str, str]:
    """The browser client's ``ERROR_MESSAGES = Object.freeze({...})`` table, which is kept one JSON object."""
    match = re.search(r"\bERROR_MESSAGES\s*=\s*Object\.freeze\((\{.*?\})\s*\)", source, re.DOTALL)
    if match is None:
        raise AssertionError("static/uploads.js has no `ERROR_MESSAGES = Object.freeze({...})` table; "
                             "update browser_error_messages() in tests/test_errors.py if it moved")
    return json.loads(match.group(1))


class ErrorCodeTests(TestCase):
    """Every code has a message, a value that reads as itself, and an exception form."""

    def test_every_code_has_a_message(self) -> None:
        self.assertEqual(set(MESSAGES), set(ErrorCode))

    def test_every_message_is_a_sentence(self) -> None:
        for code, message in MESSAGES.items():
            self.assertTrue(message[:1].isupper() and message.endswith("."), (code, message))

    def test_codes_are_lower_snake_case(self) -> None:
        for code in ErrorCode:
            self.assertRegex(code.value, r"^[a-z]+(_[a-z]+)*$")

    def test_code_string_is_its_value(self) -> None:
        self.assertEqual(str(ErrorCode.TOO_LARGE), "too_large")

    def test_code_equals_its_value(self) -> None:
        self.assertEqual(ErrorCode.TOO_LARGE, "too_large")

    def test_error_from_value_has_the_code(self) -> None:
        self.assertIs(UploadError("bad_offset").code, ErrorCode.BAD_OFFSET)

    def test_error_without_message_uses_the_default_message(self) -> None:
        self.assertEqual(str(UploadError(ErrorCode.TIMEOUT)), MESSAGES[ErrorCode.TIMEOUT])

    def test_error_keeps_a_specific_message(self) -> None:
        error = UploadError(ErrorCode.TOO_LARGE, "me.png is 12.0 MB")
        self.assertEqual((error.message, str(error)), ("me.png is 12.0 MB", "me.png is 12.0 MB"))

    def test_error_repr_shows_code_and_message(self) -> None:
        self.assertEqual(repr(UploadError("timeout", "late")), "UploadError('timeout', 'late')")

    def test_unknown_code_is_refused(self) -> None:
        self.assertRaises(ValueError, UploadError, "no_such_code")

    def test_connection_errors_close_with_their_codes(self) -> None:
        self.assertEqual(CLOSE_CODES, {ErrorCode.INVALID_TOKEN: 4001, ErrorCode.PROTOCOL_ERROR: 4002,
                                       ErrorCode.TIMEOUT: 4003, ErrorCode.REGISTRY_UNAVAILABLE: 4013})


class ProtocolDocTests(TestCase):
    """docs/protocol.md lists exactly the codes and close codes the code defines."""

    def setUp(self) -> None:
        self.doc = PROTOCOL_DOC.read_text(encoding="utf-8")

    def test_error_code_table_lists_exactly_the_error_codes(self) -> None:
        self.assertEqual(sorted(first_column(markdown_section(self.doc, 9))), sorted(c.value for c in ErrorCode))

    def test_error_code_table_is_in_enum_order(self) -> None:
        self.assertEqual(first_column(markdown_section(self.doc, 9)), [c.value for c in ErrorCode])

    def test_close_code_table_lists_exactly_the_close_codes(self) -> None:
        constants = {value for name, value in vars(errors).items() if name.startswith("CLOSE_") and
                     isinstance(value, int)}
        self.assertEqual({int(code) for code in first_column(markdown_section(self.doc, 10))}, constants)


class BrowserClientTests(TestCase):
    """static/uploads.js mirrors MESSAGES (its own comment says so)."""

    def setUp(self) -> None:
        if not BROWSER_CLIENT.exists():
            raise SkipTest("static/uploads.js does not exist yet (the browser engineer writes it)")
        self.messages = browser_error_messages(BROWSER_CLIENT.read_text(encoding="utf-8"))

    def test_browser_codes_equal_the_error_codes(self) -> None:
        self.assertEqual(sorted(self.messages), sorted(c.value for c in ErrorCode))

    def test_browser_messages_equal_the_python_messages(self) -> None:
        self.assertEqual(self.messages, {code.value: message for code, message in MESSAGES.items()})
