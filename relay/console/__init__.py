"""The operator console (``relay console``): see, find and replay in a browser.

A process of its own, never the webhook server: :mod:`relay.console.index` keeps a
SQLite index of the events topic and the dead-letter topic current by consuming both
(rebuildable from the topics alone), :mod:`relay.console.metrics` scrapes the running
servers' ``/metrics`` for what the topics do not hold, :mod:`relay.console.auth` owns
operators, sessions and CSRF, and :mod:`relay.console.app` serves the pages. Replays go
through :func:`relay.replay.replay`, as ``relay replay`` does.
"""
