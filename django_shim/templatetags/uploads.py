"""``{% load uploads %}``: the browser client's tags and a view's upload config, for hand-written pages.

LiveView rendering adds both by itself; these tags are for pages that place them explicitly.
"""

from __future__ import annotations

import json
from typing import Any

from django import template
from django.utils.safestring import SafeString, mark_safe

from ..page import scripts_html

register = template.Library()


@register.simple_tag
def uploads_scripts() -> SafeString:
    """``<link rel=stylesheet href=…/uploads.css><script src=…/uploads.js defer>``."""
    return mark_safe(scripts_html())


@register.simple_tag(takes_context=True)
def uploads_config(context: dict[str, Any]) -> str:
    """The current LiveView's ``data-dj-uploads`` JSON (url, token, slots), auto-escaped by the template.

    Use it as ``<div data-dj-uploads="{% uploads_config %}">`` when laying out a root element by hand.
    """
    view = context.get("view")
    slots = getattr(view, "_dj_upload_slots", None)
    if view is None or not slots:
        return ""
    return json.dumps(view.upload_config(), separators=(",", ":"))
