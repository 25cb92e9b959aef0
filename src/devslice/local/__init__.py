"""The local runtime: the team's services as processes on this machine, no Docker needed.

A detached supervisor (``python -m devslice.local.supervisor DIR``) starts each service in a
process group of its own, restarts crashed ones with backoff, and records pids and states in
``.devslice/local/``, so `devslice down` stops everything it started even after the CLI (or
the supervisor itself) was killed. Processes are recognised by pid and start time (a recycled
pid is never signalled); one `up`/`down` of a slice runs at a time (``flock`` on the slice
folder's ``lock``); the emulators all slices share stop with the last slice that uses them.
"""
