"""False refusals of the content checks over real files: ``.venv/bin/python scripts/probe-content-checks.py [DIR...]``.

Every regular file under the directories (default: /usr/share /usr/lib/python3 /etc) is checked with
``check_content`` as the Python client would send it — its own name, and the type ``mimetypes`` guesses from that
name as the declared type — in a slot that allows active content (so only ``type_mismatch`` counts), then in one that
does not (to list what counts as active content, by extension). Prints the totals and the most common refusals.
"""

from __future__ import annotations

import collections
import mimetypes
import os
import sys

from twisted_uploads.errors import ErrorCode, UploadError
from twisted_uploads.slots import SlotConfig
from twisted_uploads.validation import HEAD_BYTES, check_content, extension_of


def main(roots: list[str]) -> None:
    lenient, strict = SlotConfig(allow_active_content=True), SlotConfig()
    files = 0
    per_extension: collections.Counter[str] = collections.Counter()
    mismatches: collections.Counter[tuple[str, str]] = collections.Counter()
    active: collections.Counter[str] = collections.Counter()
    examples: dict[object, str] = {}
    for root in roots:
        for directory, _, names in os.walk(root):
            for name in names:
                path = os.path.join(directory, name)
                if os.path.islink(path) or not os.path.isfile(path):
                    continue
                try:
                    with open(path, "rb") as source:
                        head = source.read(HEAD_BYTES)
                except OSError:
                    continue
                files += 1
                ext = extension_of(name)
                per_extension[ext] += 1
                declared = mimetypes.guess_type(name)[0] or ""
                try:
                    check_content(lenient, name, declared, head)
                except UploadError as error:
                    key = (ext, declared)
                    mismatches[key] += 1
                    examples.setdefault(key, f"{path}: {error.message}")
                try:
                    check_content(strict, name, declared, head)
                except UploadError as error:
                    if error.code is ErrorCode.ACTIVE_CONTENT:
                        active[ext] += 1
                        examples.setdefault(ext, path)
    print(f"{files} files, {sum(mismatches.values())} type_mismatch, {sum(active.values())} active_content")
    for (ext, declared), count in mismatches.most_common(20):
        print(f"  type_mismatch {count}/{per_extension[ext]} .{ext} declared {declared or '(none)'}: "
              f"{examples[(ext, declared)]}")
    for ext, count in active.most_common(20):
        print(f"  active_content {count}/{per_extension[ext]} .{ext}: e.g. {examples[ext]}")


if __name__ == "__main__":
    main(sys.argv[1:] or ["/usr/share", "/usr/lib/python3", "/etc"])
