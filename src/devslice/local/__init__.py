"""The local runtime: the team's services as processes on this machine, no Docker needed.

A detached supervisor (``python -m devslice.local.supervisor DIR``) starts each service in a
process group of its own, restarts crashed ones with backoff, and records pids and states in
``.devslice/local/``, so `devslice down` stops everything it started even after the CLI (or
the supervisor itself) was killed.
"""
