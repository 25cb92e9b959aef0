"""Slices: handles, name templates and rules, partition allocation and ledger operations (the
names a slice gets from the config are `devslice.config.derive`)."""
