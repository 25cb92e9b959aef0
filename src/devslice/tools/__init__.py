"""External tools devslice fetches for itself on first use (into its own cache)."""
