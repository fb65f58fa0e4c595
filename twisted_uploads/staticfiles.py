"""Where the browser client (``uploads.js``, ``uploads.css``) lives, in a checkout and in an installed wheel.

The repository keeps the files in the top-level ``static/`` folder (the design card's layout); the wheel carries
them as ``twisted_uploads/_static`` (``setup.cfg`` maps one onto the other), so twistd and Django find them the same
way in both cases.
"""

from __future__ import annotations

from pathlib import Path

STATIC_FILES = ("uploads.js", "uploads.css")


def static_root() -> Path:
    """Return the directory holding ``uploads.js`` and ``uploads.css``."""
    here = Path(__file__).resolve().parent
    installed = here / "_static"
    if (installed / "uploads.js").exists():
        return installed
    return here.parent / "static"
