"""The shop's billing worker: an invoice blob for every order placed."""
