"""Providers: one module per provider Relay knows, each holding everything about it.

A provider module (``relay/providers/<name>.py``, its profile's name with ``_``
for ``-``) holds:

- its docstring: the payload's fields and every decision its document leaves open;
- its mapping tables (provider status to canonical status, per flow where the
  provider serves several) and ``normalize(message, ctx)``, the pure function
  from the verified payload to the canonical event (built with
  :func:`schemas.event.payment_event` or :func:`~schemas.event.webhook_event` and
  the readers in :mod:`schemas.values`);
- ``order_id(payload)`` for a payment provider: the order its events are keyed
  by, read leniently from a payload that may not normalize (dead letters);
- its ``relay send`` samples, ``SAMPLES``;
- ``PROFILE``: its :class:`~relay.providers.base.Profile` (scheme and default
  parameters, what the signature pins, ack, timeout, headers, id rule);
- for a sender that posts several notifications in one request (Adyen, GoCardless),
  ``items``: the reader of a batch's notifications, each then normalized on its own.

:mod:`relay.providers.base` holds what the modules share (the ``Profile`` and
``Ack`` types, the payload and identity readers, the helpers of the generic
webhook normalizers); :mod:`relay.samples` the sample machinery. A provider
module imports ``schemas``, ``verifiers``, these two and the standard library
(and orjson for its samples), never aiohttp, aiokafka or the rest of ``relay``:
normalizing stays pure, and ``relay.config`` can import the registry without a
circle (``tests/test_providers.py`` checks both).

Adding a provider: write its module, add its import and its ``PROFILE`` line
to the registry (:mod:`relay.profiles`), its golden cases to
``tests/golden/<profile>/`` (a payment provider needs cases with at least two
statuses per flow), a test instance to ``tests/test_profiles.py`` and
``tests/fuzz/instances.py``, and its rows to the README's provider tables. The
README's "Adding a provider" shows the whole diff for ``github``. A new
signature scheme is a ``verifiers`` module of its own, added first.
"""
