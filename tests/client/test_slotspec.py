"""The command line's slot, size and duration syntax: what each accepts, and the message for each mistake."""

from __future__ import annotations

from twisted.trial import unittest

from twisted_uploads.client.slotspec import parse_duration, parse_size, parse_slot


class SizeTests(unittest.TestCase):
    def test_decimal_and_binary_units_are_powers_of_1000_and_1024(self):
        self.assertEqual([parse_size(t) for t in ("10MB", "10 mb", "1GiB", "64KiB", "2TB", "500kB", "123", "7B")],
                         [10**7, 10**7, 2**30, 65536, 2 * 10**12, 500_000, 123, 7])

    def test_fractions_are_allowed_when_they_make_whole_bytes(self):
        self.assertEqual(parse_size("1.5GiB"), 1610612736)
        with self.assertRaisesRegex(ValueError, "not a whole number of bytes"):
            parse_size("1.5B")

    def test_an_ambiguous_or_unknown_unit_lists_the_units(self):
        for text in ("10M", "1g", "5 parsecs", "MB", "-3MB"):
            with self.assertRaisesRegex(ValueError, "is not a size; use bytes or a number with a unit: B, kB, MB"):
                parse_size(text)


class DurationTests(unittest.TestCase):
    def test_seconds_by_default_and_s_m_h_d_units(self):
        self.assertEqual([parse_duration(t) for t in ("90", "90s", "15m", "2h", "1d", "0.5")],
                         [90, 90, 900, 7200, 86400, 0.5])

    def test_zero_and_garbage_are_refused(self):
        with self.assertRaisesRegex(ValueError, "must be positive"):
            parse_duration("0")
        with self.assertRaisesRegex(ValueError, "is not a duration"):
            parse_duration("soon")


class SlotTests(unittest.TestCase):
    def test_a_bare_name_has_the_defaults(self):
        name, slot = parse_slot("files")
        self.assertEqual((name, slot.max_entries, slot.max_file_size, slot.accept), ("files", 1, 10_000_000, ""))

    def test_commas_inside_accept_need_no_quotes(self):
        _, slot = parse_slot("photos:accept=.png,.jpg,image/webp,max_entries=5")
        self.assertEqual((slot.accept, slot.max_entries), (".png,.jpg,image/webp", 5))

    def test_a_quoted_accept_value_is_one_value(self):
        _, slot = parse_slot("photos:accept=\".png,.jpg\",max_file_size=20MB")
        self.assertEqual((slot.accept, slot.max_file_size), (".png,.jpg", 20_000_000))
        _, slot = parse_slot("photos:accept='.png, .gif'")
        self.assertEqual(slot.accept, ".png,.gif")

    def test_semicolons_still_separate_accept_values(self):
        self.assertEqual(parse_slot("files:accept=.png;.jpg")[1].accept, ".png,.jpg")

    def test_sizes_durations_and_booleans_are_typed(self):
        _, slot = parse_slot("f:chunk_size=256KiB,chunk_timeout=1m,auto_upload=no,allow_active_content=yes")
        self.assertEqual((slot.chunk_size, slot.chunk_timeout, slot.auto_upload, slot.allow_active_content),
                         (262144, 60.0, False, True))

    def test_every_mistake_names_the_slot_and_the_field(self):
        cases = {
            "files:max_file_size=10M": "slot 'files': '10M' is not a size",
            "files:max_entries=ten": "slot 'files': max_entries must be a whole number, got 'ten'",
            "files:colour=red": "slot 'files': unknown field 'colour' (fields: accept, max_entries",
            "files:auto_upload=maybe": "slot 'files': auto_upload must be true or false, got 'maybe'",
            "files:accept=png": "slot 'files': accept entry 'png' is neither an .extension nor a MIME type",
            "files:chunk_size=16MiB": "slot 'files': chunk_size",
            "files:max_entries=2,max_entries=3": "slot 'files': max_entries given twice",
            "files:accept=\".png": "slot 'files': accept: unterminated quote",
            "files:oops": "slot 'files': expected field=value at 'oops'",
            ":max_entries=2": "a slot needs a name before the colon",
        }
        for text, message in cases.items():
            with self.assertRaises(ValueError) as raised:
                parse_slot(text)
            self.assertIn(message, str(raised.exception), text)
