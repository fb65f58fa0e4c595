"""Shared machinery of the benchmark harness: processes and ports, /proc probes, files, the run's bookkeeping
(:mod:`harness.bench`), our server and CLI (:mod:`harness.ours`) and the peers (:mod:`harness.peers`).

The harness runs as a script (``python bench/run.py``), so ``bench/`` is on ``sys.path`` and these import as
``harness.*``; row groups live in ``bench/rows/``.
"""
