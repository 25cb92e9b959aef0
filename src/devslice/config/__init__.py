"""The ``devslice.yaml`` document: its schema, loading with positions, and the starter file."""

from devslice.config.load import DEFAULT_FILENAME, find_config, load_config, parse_config
from devslice.config.model import Environment

__all__ = ["DEFAULT_FILENAME", "Environment", "find_config", "load_config", "parse_config"]
