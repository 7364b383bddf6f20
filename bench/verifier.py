"""Micro-benchmark: our Standard Webhooks verifier against the reference ``standardwebhooks``.

Both verify the same signed vectors (bodies from 64 B to 16 KiB, fresh
timestamps) with the same secret; each is used the way its callers use it:
``verifiers.standard_webhooks.verify`` with the instance's ``KeyRing`` as Relay
calls it, the reference's ``Webhook`` built once and ``verify(...,
json_parse=False)`` so that neither parses JSON. Before timing, both must
accept every vector and refuse a tampered one.
"""

from __future__ import annotations

import base64
import os
import time
import timeit
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError

from verifiers import VerificationError, standard_webhooks
from verifiers.keys import KeyRing, Secret

SIZES = (64, 256, 1024, 4096, 16384)
VECTORS_PER_SIZE = 40
ROUNDS = 7


def _vectors(keys: KeyRing, now: float) -> list[tuple[bytes, dict[str, str]]]:
    vectors = []
    for size in SIZES:
        for index in range(VECTORS_PER_SIZE):
            filler = base64.b64encode(os.urandom(size)).decode()[: max(0, size - 40)]
            body = f'{{"type":"invoice.paid","n":{index},"pad":"{filler}"}}'.encode()
            signed = standard_webhooks.sign(body, standard_webhooks.Params(), keys, now)
            vectors.append((signed.body, {k.lower(): v for k, v in signed.headers.items()}))
    return vectors


def run(min_time_s: float = 0.3) -> dict[str, Any]:
    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    keys = KeyRing(secrets=(Secret.of(secret),))
    params = standard_webhooks.Params()
    reference = Webhook(secret)
    now = time.time()
    vectors = _vectors(keys, now)

    def ours() -> None:
        for body, headers in vectors:
            standard_webhooks.verify(body, headers, params, keys, now)

    def theirs() -> None:
        for body, headers in vectors:
            reference.verify(body, headers, json_parse=False)

    ours()
    theirs()
    body, headers = vectors[0]
    tampered = body.replace(b"invoice", b"invoise")
    try:
        standard_webhooks.verify(tampered, headers, params, keys, now)
        raise AssertionError("our verifier accepted a tampered body")
    except VerificationError:
        pass
    try:
        reference.verify(tampered, headers, json_parse=False)
        raise AssertionError("the reference accepted a tampered body")
    except WebhookVerificationError:
        pass

    # Interleaved rounds, best of each: the machine is shared, and a burst of
    # other work then hits both sides alike instead of one.
    loops, _ = timeit.Timer(ours).autorange()
    loops = max(1, int(loops * min_time_s / 0.2))
    ours_best = theirs_best = float("inf")
    for _ in range(ROUNDS):
        ours_best = min(ours_best, timeit.timeit(ours, number=loops))
        theirs_best = min(theirs_best, timeit.timeit(theirs, number=loops))
    ours_us = ours_best / loops / len(vectors) * 1e6
    theirs_us = theirs_best / loops / len(vectors) * 1e6
    return {
        "vectors": len(vectors),
        "sizes": list(SIZES),
        "ours_us": round(ours_us, 3),
        "reference_us": round(theirs_us, 3),
        "speedup": round(theirs_us / ours_us, 2),
    }
