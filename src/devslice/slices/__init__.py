"""Slices: handles, the names derived from them, partition allocation and ledger operations."""
