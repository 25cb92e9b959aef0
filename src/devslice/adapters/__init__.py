"""Adapters: the only code that spawns processes or talks to tools, SDKs and servers.

Each takes what it needs (a command runner, an SDK client, an HTTP transport) from its caller;
the CLI builds the real ones, tests hand in fakes that work at the wire.
"""
