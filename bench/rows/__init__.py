"""The row groups, in run order. A new row group is a module here with a function taking the run's
:class:`harness.bench.Bench`, and one line below: (group name for --only, function, what it needs).

Needs: "ours" (twisted_uploads importable by the harness's Python), "venv" (bench/out/venv: websockets for the
bench protocol client, gunicorn, Django), "node" (the tus peer), "djust" (the djust peer). setup_peers.sh builds
the parts the chosen groups need; a group needing "ours" or "venv" fails when they are missing, a peer row skips.
"""
from rows import (browser, cluster, concurrency, django_multipart, djust, lag, memory, ours, raw, small_files,
                  tus, wan)

GROUPS = [
    ("raw", raw.run_raw, set()),
    ("ours", ours.run_ours, {"ours", "venv"}),
    ("gunicorn", django_multipart.run_gunicorn, {"venv"}),
    ("twisted-wsgi", django_multipart.run_twisted_wsgi, set()),
    ("tus", tus.run_tus, {"node"}),
    ("djust", djust.run_djust, {"djust"}),
    ("chromium", browser.run_chromium, {"ours"}),
    ("memory", memory.run_memory, {"ours", "venv"}),
    ("concurrency", concurrency.run_concurrency, {"ours", "venv"}),
    ("small", small_files.run_small, {"ours", "venv"}),
    ("wan", wan.run_wan, {"ours", "venv", "node", "djust"}),
    ("lag", lag.run_lag, {"ours", "venv"}),
    ("cluster", cluster.run_cluster, {"ours", "venv"}),
]
#: Groups whose rows are peers (the ratios' denominators on loopback).
PEER_GROUPS = {"gunicorn", "twisted-wsgi", "tus", "djust"}
#: Parts a group may run without (their rows skip with a message): the peers.
OPTIONAL_NEEDS = {"node", "djust"}
