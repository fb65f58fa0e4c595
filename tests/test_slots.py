"""Tests for twisted_uploads.slots: a slot's defaults, its accept rules and its validation."""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import TestCase

from twisted_uploads.slots import MAX_CHUNK_SIZE, MIN_CHUNK_SIZE, SlotConfig, slots_from_dict

from .support import fuzz


class DefaultsTests(TestCase):
    """The defaults are the seed's ``allow_upload()`` signature plus the protocol's extras."""

    def test_defaults_equal_the_seed_allow_upload_defaults(self) -> None:
        slot = SlotConfig()
        self.assertEqual((slot.accept, slot.max_entries, slot.max_file_size, slot.chunk_size, slot.auto_upload),
                         ("", 1, 10_000_000, 65536, True))

    def test_default_chunk_timeout_is_ten_seconds(self) -> None:
        self.assertEqual(SlotConfig().chunk_timeout, 10)

    def test_active_content_is_refused_by_default(self) -> None:
        self.assertFalse(SlotConfig().allow_active_content)

    def test_to_dict_lists_exactly_the_protocol_fields(self) -> None:
        self.assertEqual(set(SlotConfig().to_dict()), {"accept", "max_entries", "max_file_size", "chunk_size",
                                                       "auto_upload", "chunk_timeout", "allow_active_content"})

    def test_slot_is_immutable(self) -> None:
        self.assertRaises(dataclasses.FrozenInstanceError, setattr, SlotConfig(), "max_entries", 5)


class AcceptTests(TestCase):
    """``accept`` takes extensions, MIME types and ``type/*`` wildcards; empty accepts everything."""

    def test_empty_accept_accepts_anything(self) -> None:
        self.assertTrue(SlotConfig().accepts("whatever.bin", "application/x-whatever"))

    def test_empty_accept_accepts_file_without_name_or_type(self) -> None:
        self.assertTrue(SlotConfig().accepts("", ""))

    def test_extension_matches(self) -> None:
        self.assertTrue(SlotConfig(accept=".jpg,.png").accepts("me.png", ""))

    def test_extension_matches_case_insensitively(self) -> None:
        self.assertTrue(SlotConfig(accept=".JPG").accepts("ME.jpg", ""))

    def test_other_extension_is_refused(self) -> None:
        self.assertFalse(SlotConfig(accept=".jpg,.png").accepts("me.gif", "image/gif"))

    def test_extension_must_be_a_suffix(self) -> None:
        self.assertFalse(SlotConfig(accept=".png").accepts("png.exe", ""))

    def test_spaces_around_accept_entries_are_ignored(self) -> None:
        self.assertTrue(SlotConfig(accept=" .pdf , .docx ").accepts("cv.docx", ""))

    def test_mime_type_matches_declared_type(self) -> None:
        self.assertTrue(SlotConfig(accept="application/pdf").accepts("document", "application/pdf"))

    def test_mime_type_matches_type_guessed_from_name(self) -> None:
        # Browsers send an empty type for extensions they do not know.
        self.assertTrue(SlotConfig(accept="application/pdf").accepts("document.pdf", ""))

    def test_mime_type_matches_case_insensitively(self) -> None:
        self.assertTrue(SlotConfig(accept="Application/PDF").accepts("x", "APPLICATION/pdf"))

    def test_other_mime_type_is_refused(self) -> None:
        self.assertFalse(SlotConfig(accept="application/pdf").accepts("notes.txt", "text/plain"))

    def test_wildcard_matches_declared_subtype(self) -> None:
        self.assertTrue(SlotConfig(accept="image/*").accepts("photo", "image/webp"))

    def test_wildcard_matches_type_guessed_from_name(self) -> None:
        self.assertTrue(SlotConfig(accept="image/*").accepts("photo.jpg", ""))

    def test_wildcard_refuses_other_major_type(self) -> None:
        self.assertFalse(SlotConfig(accept="image/*").accepts("clip.mp4", "video/mp4"))

    def test_wildcard_does_not_match_type_prefix(self) -> None:
        self.assertFalse(SlotConfig(accept="image/*").accepts("x", "imagery/png"))

    def test_mixed_specs_match_any(self) -> None:
        slot = SlotConfig(accept=".pdf,image/*")
        self.assertEqual((slot.accepts("a.pdf", ""), slot.accepts("b.png", ""), slot.accepts("c.txt", "")),
                         (True, True, False))

    def test_accept_specs_are_normalised(self) -> None:
        self.assertEqual(SlotConfig(accept=" .JPG, Image/* ,").accept_specs, (".jpg", "image/*"))


class InvalidConfigTests(TestCase):
    """A slot that could not work is refused when built, with ValueError."""

    def test_accept_entry_without_dot_or_slash_is_refused(self) -> None:
        self.assertRaises(ValueError, SlotConfig, accept="jpg")

    def test_non_string_accept_is_refused(self) -> None:
        self.assertRaises(ValueError, SlotConfig, accept=[".jpg"])

    def test_zero_max_entries_is_refused(self) -> None:
        self.assertRaises(ValueError, SlotConfig, max_entries=0)

    def test_boolean_max_entries_is_refused(self) -> None:
        self.assertRaises(ValueError, SlotConfig, max_entries=True)

    def test_float_max_file_size_is_refused(self) -> None:
        self.assertRaises(ValueError, SlotConfig, max_file_size=1e6)

    def test_zero_max_file_size_is_refused(self) -> None:
        self.assertRaises(ValueError, SlotConfig, max_file_size=0)

    def test_chunk_size_below_minimum_is_refused(self) -> None:
        self.assertRaises(ValueError, SlotConfig, chunk_size=MIN_CHUNK_SIZE - 1)

    def test_chunk_size_above_maximum_is_refused(self) -> None:
        self.assertRaises(ValueError, SlotConfig, chunk_size=MAX_CHUNK_SIZE + 1)

    def test_chunk_size_bounds_are_the_documented_ones(self) -> None:
        self.assertEqual((MIN_CHUNK_SIZE, MAX_CHUNK_SIZE), (1024, 8388608))

    def test_chunk_size_at_bounds_is_allowed(self) -> None:
        self.assertEqual((SlotConfig(chunk_size=1024).chunk_size, SlotConfig(chunk_size=8388608).chunk_size),
                         (1024, 8388608))

    def test_non_boolean_auto_upload_is_refused(self) -> None:
        self.assertRaises(ValueError, SlotConfig, auto_upload="yes")

    def test_non_boolean_allow_active_content_is_refused(self) -> None:
        self.assertRaises(ValueError, SlotConfig, allow_active_content=1)

    def test_zero_chunk_timeout_is_refused(self) -> None:
        self.assertRaises(ValueError, SlotConfig, chunk_timeout=0)

    def test_negative_chunk_timeout_is_refused(self) -> None:
        self.assertRaises(ValueError, SlotConfig, chunk_timeout=-1)

    def test_chunk_timeout_above_an_hour_is_refused(self) -> None:
        self.assertRaises(ValueError, SlotConfig, chunk_timeout=3601)

    def test_boolean_chunk_timeout_is_refused(self) -> None:
        self.assertRaises(ValueError, SlotConfig, chunk_timeout=True)

    def test_string_chunk_timeout_is_refused(self) -> None:
        self.assertRaises(ValueError, SlotConfig, chunk_timeout="10")

    def test_integer_chunk_timeout_is_allowed(self) -> None:
        self.assertEqual(SlotConfig(chunk_timeout=3).chunk_timeout, 3)


SLOTS = st.builds(
    SlotConfig,
    accept=st.lists(st.sampled_from([".jpg", ".png", ".pdf", "image/*", "application/pdf", "text/plain"]),
                    max_size=3).map(",".join),
    max_entries=st.integers(1, 1000),
    max_file_size=st.integers(1, 2**40),
    chunk_size=st.integers(MIN_CHUNK_SIZE, MAX_CHUNK_SIZE),
    auto_upload=st.booleans(),
    chunk_timeout=st.floats(0.001, 3600) | st.integers(1, 3600),
    allow_active_content=st.booleans(),
)


class SerialisationTests(TestCase):
    """``to_dict`` / ``from_dict`` are the JSON form carried by tokens."""

    @fuzz
    @given(SLOTS)
    def test_any_slot_round_trips_through_dict(self, slot: SlotConfig) -> None:
        self.assertEqual(SlotConfig.from_dict(slot.to_dict()), slot)

    def test_from_partial_dict_fills_defaults(self) -> None:
        self.assertEqual(SlotConfig.from_dict({"accept": ".png"}), SlotConfig(accept=".png"))

    def test_from_dict_refuses_unknown_fields(self) -> None:
        self.assertRaises(ValueError, SlotConfig.from_dict, {"max_entries": 2, "window": 100})

    def test_from_dict_validates_values(self) -> None:
        self.assertRaises(ValueError, SlotConfig.from_dict, {"chunk_size": 10})

    def test_slots_from_dict_builds_each_named_slot(self) -> None:
        self.assertEqual(slots_from_dict({"avatar": {"accept": ".png"}, "docs": {}}),
                         {"avatar": SlotConfig(accept=".png"), "docs": SlotConfig()})

    def test_slots_from_dict_refuses_non_object(self) -> None:
        self.assertRaises(ValueError, slots_from_dict, [("avatar", {})])

    def test_slots_from_dict_refuses_non_object_slot(self) -> None:
        self.assertRaises(ValueError, slots_from_dict, {"avatar": ".png"})

    def test_slots_from_dict_refuses_empty_slot_name(self) -> None:
        self.assertRaises(ValueError, slots_from_dict, {"": {}})

    def test_slots_from_dict_refuses_overlong_slot_name(self) -> None:
        self.assertRaises(ValueError, slots_from_dict, {"x" * 101: {}})
