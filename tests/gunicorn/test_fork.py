"""A process forked after the shim started its reactor thread gets ReactorForked at once, not a BridgeTimeout.

A real fork: a child Python process sets Django up, makes an upload call (which starts crochet's reactor thread and
the standalone listener in it), forks, and the forked child makes another call. The grandchild has no reactor
thread, so waiting would only end in a timeout; it must say why instead. The parent still answers.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import textwrap

from twisted.trial import unittest

from .support import REPO, free_port

SCRIPT = textwrap.dedent("""
    import json, os, sys, time
    import django
    django.setup()
    from django_shim import bridge

    def attempt():
        started = time.monotonic()
        try:
            bridge.get_bridge().list_entries("s")
            return {"ok": True}
        except Exception as error:
            return {"ok": False, "error": type(error).__name__, "message": str(error),
                    "seconds": time.monotonic() - started}

    before = attempt()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, json.dumps(attempt()).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = json.loads(os.read(read, 100000))
    print(json.dumps({"before": before, "child": child, "after": attempt()}))
    sys.stdout.flush()
    os._exit(0)
""")


class ForkTests(unittest.TestCase):

    timeout = 120

    def test_a_call_in_a_process_forked_after_the_reactor_started_raises_reactor_forked(self):
        scratch = tempfile.mkdtemp(prefix="tu-fork-")
        self.addCleanup(shutil.rmtree, scratch, True)
        result = subprocess.run(
            [sys.executable, "-c", SCRIPT], cwd=scratch, capture_output=True, text=True, timeout=90,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "DJANGO_SETTINGS_MODULE": "tests.gunicorn.site",
                 "TU_SCRATCH": scratch, "TU_WS_PORT": str(free_port()), "TU_PAGE_ORIGIN": "http://127.0.0.1"})
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        answers = json.loads(result.stdout.strip().splitlines()[-1])
        self.assertTrue(answers["before"]["ok"], answers)
        child = answers["child"]
        self.assertEqual(child["error"], "ReactorForked", child)
        self.assertIn("forked", child["message"])
        self.assertLess(child["seconds"], 1.0)  # at once, not after UPLOADS_BRIDGE_TIMEOUT
        self.assertTrue(answers["after"]["ok"], answers)
