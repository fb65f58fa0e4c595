"""``UploadMixin``: the seed's server-side upload API for LiveViews (seed path ``djust.uploads``).

A view declares slots with :meth:`~UploadMixin.allow_upload` in ``mount()``; the LiveView keeps them, and the
view's upload session id, in its server-side state and signs them into the page's token. The other methods reach
the upload server through the bridge, always with the view's own upload session id — never one from the request —
so a view can only see, consume or cancel its own entries.
"""

from __future__ import annotations

from collections.abc import Iterator
from twisted_uploads.errors import ErrorCode, UploadError
from twisted_uploads.slots import SlotConfig

from . import claims
from .bridge import get_bridge
from .entries import UploadEntry

__all__ = ["UploadEntry", "UploadMixin"]


class UploadMixin:
    """Adds upload slots to a :class:`~django_shim.LiveView` (put it first: ``class V(UploadMixin, LiveView)``)."""

    #: Set by LiveView: the upload session id (from the view state) and the declared slots.
    _dj_upload_session: str
    _dj_upload_slots: dict[str, SlotConfig]

    def allow_upload(self, name: str, accept: str = "", max_entries: int = 1, max_file_size: int = 10_000_000,
                     chunk_size: int = 65536, auto_upload: bool = True, chunk_timeout: float = 10.0,
                     allow_active_content: bool = False) -> SlotConfig:
        """Declare (or redeclare) the upload slot ``name``; call it in ``mount()``.

        Raises ``ValueError`` for an impossible configuration (``max_entries=0``, a chunk size outside
        1 KiB…8 MiB, an ``accept`` entry that is neither ``.ext`` nor a MIME type), at declaration time rather than
        when the first file arrives.
        """
        if not isinstance(name, str) or not name or len(name) > 100:
            raise ValueError("an upload slot name must be a non-empty string of at most 100 characters")
        config = SlotConfig(accept=accept, max_entries=max_entries, max_file_size=max_file_size,
                            chunk_size=chunk_size, auto_upload=auto_upload, chunk_timeout=chunk_timeout,
                            allow_active_content=allow_active_content)
        self._upload_slots()[name] = config
        return config

    def consume_uploaded_entries(self, name: str) -> Iterator[UploadEntry]:
        """Yield the slot's *complete* entries, oldest first; uploading and failed entries stay.

        The entries are claimed, atomically, before the first is yielded, so two requests can never both get one.
        Each is deleted once the loop body for it returns — after the transaction commits when the loop runs
        inside ``transaction.atomic()``. If the body raises, or the loop is left with ``break``, that entry and the
        rest are released untouched for a later call. Failed entries are reported through ``get_uploads()``
        (``entry.error``) and the browser's ``djust:upload:error``; they expire with their TTL.
        """
        self._require_slot(name)
        session_id = self._upload_session_id()
        bridge = get_bridge()
        pending = bridge.claim_complete(session_id, name)
        claims.hold(bridge, session_id, [info.entry_id for info in pending])
        try:
            while pending:
                entry = UploadEntry(pending[0])
                try:
                    yield entry
                finally:
                    entry.close()
                # Reached only when the loop asked for the next entry, i.e. the body for this one returned.
                done = pending.pop(0)
                claims.consume_after_commit(bridge, session_id, done.entry_id)
        finally:
            if pending:
                claims.release(bridge, session_id, [info.entry_id for info in pending])

    def get_uploads(self, name: str) -> list[UploadEntry]:
        """Every unconsumed entry of the slot, in progress or finished (nothing is consumed)."""
        self._require_slot(name)
        return [UploadEntry(info) for info in get_bridge().list_entries(self._upload_session_id(), name)]

    def cancel_upload(self, name: str, ref: str) -> UploadEntry | None:
        """Cancel the slot's entry with client ref ``ref``; return it, or ``None`` if there is no such entry.

        A finished entry is dropped (its file deleted); an uploading one is stopped and its browser told.
        """
        self._require_slot(name)
        session_id = self._upload_session_id()
        bridge = get_bridge()
        match = next((info for info in bridge.list_entries(session_id, name) if info.ref == ref), None)
        if match is None:
            return None
        try:
            return UploadEntry(bridge.cancel(session_id, match.entry_id))
        except UploadError as error:
            if error.code is ErrorCode.UNKNOWN_ENTRY:  # consumed or expired in between
                return None
            raise

    # -- state plumbing ---------------------------------------------------------------------------------------------
    @property
    def upload_slots(self) -> dict[str, SlotConfig]:
        """The declared slots, by name (read-only view for templates and the token)."""
        return dict(self._upload_slots())

    def _upload_slots(self) -> dict[str, SlotConfig]:
        slots = getattr(self, "_dj_upload_slots", None)
        if slots is None:
            slots = self._dj_upload_slots = {}
        return slots

    def _upload_session_id(self) -> str:
        session_id = getattr(self, "_dj_upload_session", "")
        if not session_id:
            raise RuntimeError(f"{type(self).__name__} has no upload session: UploadMixin must be combined with "
                               "django_shim.LiveView, which creates one per page")
        return session_id

    def _require_slot(self, name: str) -> None:
        if name not in self._upload_slots():
            raise KeyError(f"{type(self).__name__} has no upload slot {name!r}; declare it with "
                           f"self.allow_upload({name!r}, ...) in mount()")
