"""Adapters: the only code that spawns processes or talks to tools, SDKs and servers.

Each takes what it needs (a command runner, an SDK client, an HTTP transport) from its caller;
the CLI builds the real ones, tests hand in fakes that work at the wire. Every process goes
through ``runner`` (``SubprocessRunner.run``, ``start_detached``, ``popen``);
``tests/test_runner.py`` fails on a spawn anywhere else. ``endpoint`` resolves which Docker
engine they all talk to.
"""
