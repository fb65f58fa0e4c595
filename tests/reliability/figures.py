"""Turns a reliability run into the figures table of docs/reliability.md.

``python -m tests.reliability.figures FIGURES TRIAL_LOG [--doc docs/reliability.md]`` reads the JSON lines the
tests appended (``support.record_figures``) and trial's output (for each test's result), prints a Markdown table,
and with ``--doc`` replaces the part of the document between the figures markers. A test that failed records no
figures: it shows as FAIL with dashes, never as zero bytes lost.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

BEGIN = "<!-- figures:begin (written by scripts/reliability.sh) -->"
END = "<!-- figures:end -->"
RESULT = re.compile(r"^\s+(test_\w+) \.\.\. .*?\[(OK|FAIL|ERROR|SKIPPED|EXPECTED FAILURE|UNEXPECTED SUCCESS)\]")
MODULE = re.compile(r"^tests\.reliability\.(\w+)$")


def results_from_log(text: str) -> list[tuple[str, str, str]]:
    """(module, test method, result) for every test trial ran, in its order."""
    module = ""
    rows = []
    for line in text.splitlines():
        found = MODULE.match(line.strip())
        if found:
            module = found.group(1)
            continue
        found = RESULT.match(line)
        if found:
            rows.append((module, found.group(1), found.group(2)))
    return rows


def load_figures(path: Path) -> dict[str, dict[str, Any]]:
    """The last figures each test recorded, by test method name."""
    figures: dict[str, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                figures[record["test"].rsplit(".", 1)[-1]] = record
    return figures


def _faults(record: dict[str, Any]) -> str:
    return ", ".join(f"{kind} × {count:,}" for kind, count in record.get("faults", {}).items())


def table(results: list[tuple[str, str, str]], figures: dict[str, dict[str, Any]]) -> str:
    lines = ["| module | test | result | faults injected | inputs tried | bytes verified | bytes lost |",
             "|---|---|---|---|---:|---:|---:|"]
    totals = {"faults": 0, "inputs": 0, "bytes_verified": 0, "bytes_lost": 0}
    for module, test, result in results:
        record = figures.get(test) if result == "OK" else None
        name = test.removeprefix("test_").replace("_", " ")
        if record is None:
            lines.append(f"| {module} | {name} | {result} | — | — | — | — |")
            continue
        totals["faults"] += sum(record.get("faults", {}).values())
        for key in ("inputs", "bytes_verified", "bytes_lost"):
            totals[key] += int(record.get(key, 0))
        lines.append(f"| {module} | {name} | {result} | {_faults(record)} | {record.get('inputs', 0):,} | "
                     f"{record.get('bytes_verified', 0):,} | {record.get('bytes_lost', 0)} |")
    passed = sum(1 for *_, result in results if result == "OK")
    lines.append(f"| **total** | {passed} of {len(results)} passed | | **{totals['faults']:,}** | "
                 f"**{totals['inputs']:,}** | **{totals['bytes_verified']:,}** | **{totals['bytes_lost']}** |")
    return "\n".join(lines)


def details(figures: dict[str, dict[str, Any]]) -> str:
    """The extra numbers some tests record (hostile outcomes, walk-away answers, offsets)."""
    lines = []
    for test, record in figures.items():
        extra = {k: v for k, v in record.items()
                 if k not in ("test", "faults", "inputs", "files", "bytes_verified", "bytes_lost", "kinds")}
        if extra:
            lines.append(f"* `{test}`: " + "; ".join(f"{k} = {json.dumps(v, sort_keys=True)}"
                                                     for k, v in sorted(extra.items())))
    return "\n".join(lines)


def machine(seconds: str | None) -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                timeout=10).stdout.strip()
    except OSError:
        commit = "unknown"
    run = f"; suite wall time {seconds} s" if seconds else ""
    return (f"Run at commit `{commit or 'unknown'}` on {platform.system()} {platform.release()}, "
            f"{os.cpu_count()} CPUs, Python {platform.python_version()}, as uid {os.geteuid()}{run}.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("figures", type=Path)
    parser.add_argument("log", type=Path)
    parser.add_argument("--doc", type=Path)
    parser.add_argument("--seconds")
    args = parser.parse_args(argv)
    results = results_from_log(args.log.read_text(encoding="utf-8", errors="replace"))
    figures = load_figures(args.figures)
    block = "\n\n".join(filter(None, [machine(args.seconds), table(results, figures), details(figures)]))
    print(block)
    if args.doc is not None:
        text = args.doc.read_text(encoding="utf-8")
        if BEGIN not in text or END not in text:
            print(f"{args.doc} has no figures markers", file=sys.stderr)
            return 2
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        args.doc.write_text(f"{head}{BEGIN}\n{block}\n{END}{tail}", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
