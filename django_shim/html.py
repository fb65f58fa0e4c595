"""Rewrite a rendered view so its ``dj-*`` directives also work without JavaScript.

The browser client intercepts ``dj-submit`` and ``dj-click``; without it, the same markup must still post the event
as an ordinary form. After the template is rendered (so directives written by template logic are seen too), every

* ``<form dj-submit="h">`` becomes ``method="post" enctype="multipart/form-data"`` with hidden ``dj_event=h``,
  ``dj_view`` and CSRF inputs right after its start tag;
* ``<input type="file" dj-upload="slot">`` gets ``name="slot"`` (so the browser posts it; not inside a form
  without ``dj-submit``), plus ``accept`` and ``multiple`` from the slot config (the seed: "set automatically from the upload configuration");
* ``<button dj-click="h">`` gets ``name="dj_event" value="h"`` so the button that submitted names the event.

A ``dj-click`` button or a ``dj-upload`` input that sits in no form is attached (HTML's ``form=`` attribute) to one
hidden ``<form id="dj-form-VIEW_ID">`` appended to the view, so the seed's gallery (an input and an "Upload All"
button side by side) posts its files without JavaScript too. Only start tags are edited, by offset, so the rest of
the markup is returned byte for byte.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from html.parser import HTMLParser

from twisted_uploads.slots import SlotConfig

EVENT_FIELD = "dj_event"
VIEW_FIELD = "dj_view"
CSRF_FIELD = "csrfmiddlewaretoken"

Attrs = list[tuple[str, str | None]]


@dataclass
class _StartTag:
    start: int
    end: int
    name: str
    attrs: Attrs
    self_closing: bool
    #: ``"dj"`` inside a ``dj-submit`` form, ``"plain"`` inside another form, ``None`` outside any form.
    form_kind: str | None


@dataclass
class _Scan:
    tags: list[_StartTag] = field(default_factory=list)
    head_end: int | None = None
    body_inner_start: int | None = None
    body_inner_end: int | None = None


class _Scanner(HTMLParser):
    """Collect the offsets of start tags and of the document's ``<head>``/``<body>`` boundaries."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self._line_starts = [0] + [match.end() for match in re.finditer("\n", source)]
        self._forms: list[str] = []
        self.scan = _Scan()

    def _offset(self) -> int:
        line, column = self.getpos()
        return self._line_starts[line - 1] + column

    def _start(self, tag: str, attrs: Attrs, self_closing: bool) -> None:
        start = self._offset()
        text = self.get_starttag_text() or ""
        form_kind = self._forms[-1] if self._forms else None
        self.scan.tags.append(_StartTag(start, start + len(text), tag, attrs, self_closing, form_kind))
        if tag == "form" and not self_closing:
            self._forms.append("dj" if _get(attrs, "dj-submit") is not None else "plain")
        if tag == "body" and self.scan.body_inner_start is None:
            self.scan.body_inner_start = start + len(text)

    def handle_starttag(self, tag: str, attrs: Attrs) -> None:
        self._start(tag, attrs, False)

    def handle_startendtag(self, tag: str, attrs: Attrs) -> None:
        self._start(tag, attrs, True)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self._forms:
            self._forms.pop()
        elif tag == "head" and self.scan.head_end is None:
            self.scan.head_end = self._offset()
        elif tag == "body":
            self.scan.body_inner_end = self._offset()


def _scan(source: str) -> _Scan:
    scanner = _Scanner(source)
    scanner.feed(source)
    scanner.close()
    return scanner.scan


def _get(attrs: Attrs, name: str) -> str | None:
    for key, value in attrs:
        if key == name:
            return value if value is not None else ""
    return None


def _set_default(attrs: Attrs, name: str, value: str | None) -> None:
    if _get(attrs, name) is None:
        attrs.append((name, value))


def _replace(attrs: Attrs, name: str, value: str | None) -> None:
    attrs[:] = [(key, val) for key, val in attrs if key != name]
    attrs.append((name, value))


def _render_start_tag(name: str, attrs: Attrs, self_closing: bool) -> str:
    parts = [name]
    for key, value in attrs:
        parts.append(key if value is None else f'{key}="{escape(value, quote=True)}"')
    return "<" + " ".join(parts) + (" />" if self_closing else ">")


def hidden_input(name: str, value: str) -> str:
    """An ``<input type="hidden">`` with an escaped value."""
    return f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'


def fallback_form_id(view_id: str) -> str:
    """Id of the hidden form that form-less ``dj-click`` buttons and ``dj-upload`` inputs post through."""
    return f"dj-form-{view_id}"


def refusals_html(slot_name: str, messages: Sequence[str]) -> str:
    """The list of a slot's refused files shown after a no-JS post (phrasing content: valid inside a ``<p>``)."""
    items = "".join(f'<span class="upload-error">{escape(message)}</span>' for message in messages)
    return f'<span class="upload-errors" role="alert" data-dj-upload-errors="{escape(slot_name)}">{items}</span>'


def rewrite_directives(source: str, view_id: str, csrf_token: str, slots: Mapping[str, SlotConfig],
                       action: str | None = None, refusals: Mapping[str, Sequence[str]] | None = None) -> str:
    """Return ``source`` with ``dj-submit`` / ``dj-click`` / ``dj-upload`` made to work as plain HTML forms.

    ``action`` (the view's URL with ``?dj_view=``) becomes the ``action`` of the forms that have none, so the
    upload handler knows the posted view before it reads the body. ``refusals`` (``{slot: ["name: message"]}``)
    are listed right after the slot's first file input.
    """
    scan = _scan(source)
    form_id = fallback_form_id(view_id)
    edits: list[tuple[int, int, str]] = []
    needs_fallback_form = False
    unshown = dict(refusals or {})
    for tag in scan.tags:
        attrs = list(tag.attrs)
        suffix = ""
        handler = _get(attrs, "dj-submit")
        if tag.name == "form" and handler is not None:
            _replace(attrs, "method", "post")
            _replace(attrs, "enctype", "multipart/form-data")
            if action is not None:
                _set_default(attrs, "action", action)
            suffix = (hidden_input(EVENT_FIELD, handler) + hidden_input(VIEW_FIELD, view_id)
                      + hidden_input(CSRF_FIELD, csrf_token))
        elif tag.name == "input" and _get(attrs, "dj-upload") is not None and \
                (_get(attrs, "type") or "").lower() == "file":
            slot_name = _get(attrs, "dj-upload") or ""
            if tag.form_kind != "plain":  # another form's fields are its author's business
                _set_default(attrs, "name", slot_name)
            config = slots.get(slot_name)
            if config is not None:
                if config.accept:
                    _set_default(attrs, "accept", config.accept)
                if config.max_entries > 1:
                    _set_default(attrs, "multiple", None)
            if tag.form_kind is None and _get(attrs, "form") is None:
                attrs.append(("form", form_id))
                needs_fallback_form = True
            if unshown.get(slot_name):
                suffix = refusals_html(slot_name, unshown.pop(slot_name))
        elif _get(attrs, "dj-click") is not None and _is_button(tag.name, attrs) and tag.form_kind != "plain":
            _set_default(attrs, "name", EVENT_FIELD)
            _set_default(attrs, "value", _get(attrs, "dj-click"))
            if tag.form_kind is None and _get(attrs, "form") is None:
                _set_default(attrs, "type", "submit")
                attrs.append(("form", form_id))
                needs_fallback_form = True
        else:
            continue
        edits.append((tag.start, tag.end, _render_start_tag(tag.name, attrs, tag.self_closing) + suffix))
    result = source
    for start, end, replacement in reversed(edits):
        result = result[:start] + replacement + result[end:]
    if needs_fallback_form:
        action_attr = f' action="{escape(action, quote=True)}"' if action is not None else ""
        result += (f'<form id="{escape(form_id)}" method="post" enctype="multipart/form-data"{action_attr} hidden>'
                   + hidden_input(VIEW_FIELD, view_id) + hidden_input(CSRF_FIELD, csrf_token) + "</form>")
    # A slot whose input the template does not render: its refusals still show, at the top of the view.
    leading = "".join(refusals_html(name, messages) for name, messages in unshown.items() if messages)
    return leading + result


def _is_button(name: str, attrs: Attrs) -> bool:
    if name == "button":
        return (_get(attrs, "type") or "submit").lower() in {"submit", "button", ""}
    return name == "input" and (_get(attrs, "type") or "").lower() in {"submit", "button"}


@dataclass(frozen=True)
class DocumentShape:
    """Where a rendered template's ``</head>`` and ``<body>`` content are, when it is a whole document."""

    head_end: int | None
    body_inner: tuple[int, int] | None


def document_shape(source: str) -> DocumentShape:
    """Locate the head end and the body content of a full HTML document (``None`` for a fragment)."""
    scan = _scan(source)
    body = None
    if scan.body_inner_start is not None:
        end = scan.body_inner_end if scan.body_inner_end is not None else len(source)
        body = (scan.body_inner_start, end)
    return DocumentShape(head_end=scan.head_end, body_inner=body)
