"""Providers: one module per provider Relay knows (its normalizer, for now)."""
