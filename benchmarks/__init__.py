"""Benchmarks for devslice: claim latency under contention, and CLI start-up time.

Run all of them from the repository root with ``.venv/bin/python -m benchmarks``
(``--quick`` for a smaller run). Results and how to read them: benchmarks/RESULTS.md.
"""
