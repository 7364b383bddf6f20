"""Relay: webhook ingestion and verification for payment providers.

Flow, one way: http -> verify -> normalize -> dedup -> deliver -> ack.
"""

__version__ = "0.1.0"
