"""``python -m demo [--port 8000] [--host 127.0.0.1]``: migrate the demo database, then serve it with twistd.

This is the one command from a fresh clone (after ``pip install -e .``): Django, the upload WebSocket, static
files and uploaded media on one port.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    os.chdir(REPO_ROOT)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "demo.settings"}
    subprocess.run([sys.executable, str(REPO_ROOT / "demo" / "manage.py"), "migrate", "--noinput", "-v", "0"],
                   check=True, env=env)
    print(f"Demo: http://{args.host}:{args.port}/", flush=True)
    sys.argv = ["twistd", "--nodaemon", "--pidfile=", "uploads", "--settings", "demo.settings",
                "--listen", f"tcp:{args.port}:interface={args.host}"]
    from twisted.scripts.twistd import run

    run()


if __name__ == "__main__":
    main()
