"""``LiveView`` for ordinary synchronous Django: server-side state, events, and the page's upload config.

A LiveView is a class-based view whose public attributes are its state:

* **GET** creates a view instance (a random view id, a fresh upload session), runs ``mount(request, **kwargs)``,
  stores the public attributes in the Django session under the view id, and renders ``template_name`` with them.
  ``GET ?dj_view=ID`` re-renders a stored instance instead (where a no-JS POST redirects to).
* **POST** with ``dj_view`` restores the instance, records any files posted under a slot's name (the no-JS
  fallback), calls the ``@event_handler()`` named by ``dj_event`` with the other form fields as keyword
  arguments, stores the state again, and answers the browser client (``X-DJ-Request: 1``) with the re-rendered
  root element, or a plain form with a 303 redirect to ``?dj_view=ID``.

The rendered view is wrapped in ``<div data-dj-view=… data-dj-uploads=…>`` carrying the signed upload token, the
slot configs and the WebSocket URL (docs/protocol.md and the browser contract). A template that renders a fragment
(the seed's snippets) is placed into ``UPLOADS_PAGE_TEMPLATE`` (or ``page_template_name``); a template that
renders a whole document gets the root element around its ``<body>`` content. The browser client's tags are added
to the page if the template did not include ``{% uploads_scripts %}`` itself. Every POST is CSRF-checked.
"""

from __future__ import annotations

import inspect
import json
from typing import Any
from urllib.parse import urlencode

from django.core.exceptions import ImproperlyConfigured
from django.http import (HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseNotFound,
                         HttpResponseRedirect, JsonResponse)
from django.middleware.csrf import get_token
from django.template.loader import render_to_string
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.views import View
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from twisted_uploads.slots import SlotConfig

from .conf import uploads_settings
from .decorators import is_event_handler
from .fallback import ingest_posted_files, pop_refusals, remember_refusals
from .html import CSRF_FIELD, EVENT_FIELD, VIEW_FIELD, document_shape, rewrite_directives
from .page import scripts_html, websocket_url
from .state import ViewState, ViewStateStore, new_upload_session_id, new_view_id
from .tokens import MAX_ADOPT_SESSIONS, mint_token
from .uploadhandler import install_upload_handler

#: Header the browser client sets on its event POSTs; the answer is then the root element only.
LIVE_REQUEST_HEADER = "X-DJ-Request"
#: POST field (value ``renew``) by which the browser client asks for a fresh upload token for its view instance.
TOKEN_RENEWAL_FIELD = "dj_upload_token"
_RESERVED_FIELDS = frozenset({EVENT_FIELD, VIEW_FIELD, CSRF_FIELD})


def is_live_request(request: HttpRequest) -> bool:
    """Whether the request comes from the browser client (answer with the root element, not a page)."""
    return request.headers.get(LIVE_REQUEST_HEADER) == "1"


# CSRF is checked inside dispatch, once the upload handler is installed: the check reads request.POST, which parses
# the body, and a handler added after that would never see the files (Django's documented pattern for handlers).
@method_decorator(csrf_exempt, name="dispatch")
class LiveView(View):
    """Base class of the seed's views (``class ProfileView(UploadMixin, LiveView)``)."""

    #: The view's template (a fragment or a whole document).
    template_name: str | None = None
    #: The page a fragment template is placed into; ``None`` means ``UPLOADS_PAGE_TEMPLATE``.
    page_template_name: str | None = None
    http_method_names = ["get", "post", "head", "options"]

    def setup(self, request: HttpRequest, *args: Any, **kwargs: Any) -> None:
        """Remember which attributes are configuration, so only what ``mount()`` and handlers set is state."""
        super().setup(request, *args, **kwargs)
        self._dj_config_attrs = frozenset(vars(self))
        self._dj_view_id = ""
        self._dj_upload_session = ""
        self._dj_upload_slots: dict[str, SlotConfig] = {}

    # -- hooks -------------------------------------------------------------------------------------------------------
    def mount(self, request: HttpRequest, **kwargs: Any) -> None:
        """Initialise the state of a new view instance (override; ``kwargs`` are the URL's)."""

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        """The template context: the public attributes, ``view``, and ``kwargs``."""
        context: dict[str, Any] = dict(self.get_state())
        context["view"] = self
        context.update(kwargs)
        return context

    def get_template_names(self) -> list[str]:
        """``[template_name]``; override to choose per state."""
        if self.template_name is None:
            raise ImproperlyConfigured(f"{type(self).__name__} needs a template_name")
        return [self.template_name]

    def get_state(self) -> dict[str, Any]:
        """The public attributes: what is stored between requests and given to the template."""
        return {name: value for name, value in vars(self).items()
                if not name.startswith("_") and name not in self._dj_config_attrs and not callable(value)}

    @property
    def view_id(self) -> str:
        """This view instance's id (``data-dj-view``; ``dj_view`` in forms and URLs)."""
        return self._dj_view_id

    @property
    def upload_session_id(self) -> str:
        """The upload session this view instance owns (only ever from the server-side state)."""
        return self._dj_upload_session

    # -- HTTP --------------------------------------------------------------------------------------------------------
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """Every request CSRF-checked; a POST's files size-checked while they are read (django_shim.uploadhandler)."""
        handler = install_upload_handler(request, self._class_path()) if request.method == "POST" else None
        try:
            return csrf_protect(super().dispatch)(request, *args, **kwargs)
        finally:
            if handler is not None:
                # Part files of a refused (CSRF), failed or unhandled post: none outlives the request.
                handler.discard()

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """Render a new view instance, or a stored one named by ``?dj_view=``."""
        store = self._state_store()
        if not self._restore(store, request.GET.get(VIEW_FIELD)):
            self._start(request, kwargs)
        self._save(store)
        return HttpResponse(self.render_page())

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """Ingest posted files, dispatch the event, store the state, answer with the root or a redirect."""
        store = self._state_store()
        if request.POST.get(TOKEN_RENEWAL_FIELD) == "renew" and is_live_request(request):
            return self._renewed_token(store, request)
        if not self._restore(store, request.POST.get(VIEW_FIELD)):
            # The state is gone (expired session, evicted view) or the form was written by hand: a fresh instance
            # still takes the posted files and the event.
            self._start(request, kwargs)
        events = request.POST.getlist(EVENT_FIELD)
        handler = self._handler(events[-1]) if events else None
        if events and handler is None:
            return HttpResponseBadRequest(f"{type(self).__name__} has no event handler {events[-1]!r}")
        try:
            entries = ingest_posted_files(request, self._dj_upload_session, self._dj_upload_slots)
            remember_refusals(request, self._dj_view_id, entries, uploads_settings().max_views)
            response = _call_handler(handler, self.event_params(request)) if handler is not None else None
        except BaseException:
            # Entries the handler consumed before failing are gone from the server, so the state it built from
            # them must not be lost too. SessionMiddleware skips saving on a 500, hence the explicit save.
            self._save(store)
            request.session.save()
            raise
        self._save(store)
        if isinstance(response, HttpResponse):
            return response
        if is_live_request(request):
            return HttpResponse(self.render_root())
        query = request.GET.copy()
        query[VIEW_FIELD] = self._dj_view_id
        redirect = HttpResponseRedirect(f"{request.path}?{urlencode(list(query.items()))}")
        redirect.status_code = 303
        return redirect

    def _renewed_token(self, store: ViewStateStore, request: HttpRequest) -> HttpResponse:
        """``{"token": …}`` for the stored view instance named by ``dj_view``: same upload session, same slots.

        The browser client asks when the server refused its token on a reconnect (the page outlived the token's
        TTL), so paused uploads continue instead of failing. Only a view stored in *this* Django session can be
        renewed (the state store is the session's), the POST is CSRF-checked like any event, and nothing else
        runs: no ``mount()``, no handler, no state saved.
        """
        if not self._restore(store, request.POST.get(VIEW_FIELD)) or not self._dj_upload_slots:
            return HttpResponseNotFound("no such view in this session")
        return JsonResponse({"token": self._mint_token()})

    def event_params(self, request: HttpRequest) -> dict[str, Any]:
        """The event's keyword arguments: the posted fields minus the protocol ones (lists for repeated fields)."""
        params: dict[str, Any] = {}
        for name, values in request.POST.lists():
            if name in _RESERVED_FIELDS or name in self._dj_upload_slots:
                continue
            params[name] = values[0] if len(values) == 1 else values
        return params

    # -- rendering ---------------------------------------------------------------------------------------------------
    def render_root(self) -> str:
        """The root element's outer HTML (what the browser client swaps in after an event)."""
        return self._render(full_page=False)

    def render_page(self) -> str:
        """The whole page."""
        return self._render(full_page=True)

    def _render(self, full_page: bool) -> str:
        context = self.get_context_data()
        html = render_to_string(self.get_template_names(), context, request=self.request)
        shape = document_shape(html)
        start, end = shape.body_inner if shape.body_inner else (0, len(html))
        inner = rewrite_directives(html[start:end], self._dj_view_id, get_token(self.request),
                                   self._dj_upload_slots, action=self._form_action(),
                                   refusals=pop_refusals(self.request, self._dj_view_id))
        root = self._root_element(inner)
        if not full_page:
            return root
        if shape.body_inner:
            page = html[:start] + root + html[end:]
        else:
            page_template = self.page_template_name or uploads_settings().page_template
            page = render_to_string(page_template, {**context, "liveview": mark_safe(root)}, request=self.request)
        return _ensure_scripts(page)

    def _form_action(self) -> str:
        """This view instance's URL (``?dj_view=ID``): where its no-JS forms post."""
        query = self.request.GET.copy()
        query[VIEW_FIELD] = self._dj_view_id
        return f"{self.request.path}?{urlencode(list(query.items()))}"

    def _root_element(self, inner: str) -> str:
        if not self._dj_upload_slots:
            return format_html('<div data-dj-view="{}">', self._dj_view_id) + inner + "</div>"
        config = self.upload_config()
        return (format_html('<div data-dj-view="{}" data-dj-uploads="{}">', self._dj_view_id,
                            json.dumps(config, separators=(",", ":")))
                + inner + "</div>")

    def upload_config(self) -> dict[str, Any]:
        """The browser client's config (``data-dj-uploads``): socket URL, a fresh token, the slots.

        ``resumable`` says earlier pages of this view in this Django session may hold interrupted uploads, so
        the client connects at once to show them (resume after a reload, docs/browser.md).
        """
        config: dict[str, Any] = {"url": websocket_url(self.request), "token": self._mint_token(),
                                  "slots": {name: slot.to_dict() for name, slot in self._dj_upload_slots.items()}}
        if self._earlier_upload_sessions():
            config["resumable"] = True
        return config

    def _mint_token(self) -> str:
        session = self.request.session
        if session.session_key is None:
            # The token is bound to the session key, which a brand-new session only gets when first saved.
            session.save()
        config = uploads_settings()
        return mint_token(config.secret, self._dj_upload_session, self._dj_upload_slots, config.token_ttl,
                          session.session_key or "", adopt=self._earlier_upload_sessions())

    def _earlier_upload_sessions(self) -> list[str]:
        """Upload sessions of this view's earlier pages in this Django session (resume after a reload)."""
        return self._state_store().earlier_upload_sessions(self._class_path(), self._dj_view_id, MAX_ADOPT_SESSIONS)

    # -- state -------------------------------------------------------------------------------------------------------
    def _state_store(self) -> ViewStateStore:
        session = getattr(self.request, "session", None)
        if session is None:
            raise ImproperlyConfigured("LiveView keeps its state in the Django session: add "
                                       "'django.contrib.sessions.middleware.SessionMiddleware' to MIDDLEWARE")
        return ViewStateStore(session, uploads_settings().max_views)

    def _class_path(self) -> str:
        return f"{type(self).__module__}.{type(self).__qualname__}"

    def _start(self, request: HttpRequest, kwargs: dict[str, Any]) -> None:
        self._dj_view_id = new_view_id()
        self._dj_upload_session = new_upload_session_id()
        self._dj_upload_slots = {}
        self.mount(request, **kwargs)

    def _restore(self, store: ViewStateStore, view_id: str | None) -> bool:
        state = store.load(view_id, self._class_path()) if view_id else None
        if state is None:
            return False
        self._dj_view_id = view_id or ""
        self._dj_upload_session = state.upload_session
        self._dj_upload_slots = {name: SlotConfig.from_dict(config) for name, config in state.upload_slots.items()}
        for name, value in state.attributes.items():
            setattr(self, name, value)
        return True

    def _save(self, store: ViewStateStore) -> None:
        store.save(self._dj_view_id, ViewState(
            view_class=self._class_path(), attributes=self.get_state(), upload_session=self._dj_upload_session,
            upload_slots={name: slot.to_dict() for name, slot in self._dj_upload_slots.items()}))

    def _handler(self, name: str) -> Any:
        if not name.isidentifier() or name.startswith("_"):
            return None
        candidate = getattr(self, name, None)
        return candidate if is_event_handler(candidate) else None


def _call_handler(handler: Any, params: dict[str, Any]) -> Any:
    """Call ``handler`` with the params it can take (all of them if it has ``**kwargs``)."""
    signature = inspect.signature(handler)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
        return handler(**params)
    accepted = {name for name, p in signature.parameters.items()
                if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}
    return handler(**{name: value for name, value in params.items() if name in accepted})


def _ensure_scripts(page: str) -> str:
    """Add the browser client's tags unless the page already loads it."""
    if "twisted_uploads/uploads.js" in page:
        return page
    tags = scripts_html()
    head_end = document_shape(page).head_end
    if head_end is not None:
        return page[:head_end] + tags + page[head_end:]
    return tags + page


__all__ = ["LIVE_REQUEST_HEADER", "TOKEN_RENEWAL_FIELD", "LiveView", "is_live_request"]
