"""``@event_handler()``: marks the view methods a page may call (seed path ``djust.decorators``).

Only marked methods are dispatched: the event name comes from the browser, so an unmarked method (``mount``,
``dispatch``, ``delete``…) must never be reachable through it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, overload

F = TypeVar("F", bound=Callable[..., Any])

#: Attribute set on a decorated function; :func:`is_event_handler` reads it.
HANDLER_MARK = "_dj_event_handler"


@overload
def event_handler(function: F) -> F: ...


@overload
def event_handler(function: None = None, **options: Any) -> Callable[[F], F]: ...


def event_handler(function: Any = None, **options: Any) -> Any:
    """Mark a LiveView method as an event handler; usable as ``@event_handler()`` (the seed's form) or bare.

    ``options`` (djust's ``description=`` and the like) are kept on the function as ``_dj_event_options`` for
    introspection and otherwise ignored.
    """

    def mark(func: F) -> F:
        setattr(func, HANDLER_MARK, True)
        setattr(func, "_dj_event_options", dict(options))
        return func

    if callable(function):
        return mark(function)
    return mark


def is_event_handler(candidate: object) -> bool:
    """Tell whether ``candidate`` (a bound or plain function) was marked with :func:`event_handler`."""
    return callable(candidate) and getattr(candidate, HANDLER_MARK, False) is True
