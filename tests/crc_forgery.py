"""A body with any content and a chosen CRC32: what anyone can make of a PayPal transmission.

CRC32 is affine over GF(2) for messages of one length, so flipping chosen bits of a
body moves its CRC by a linear map: solving that 32-bit system gives the bits to
flip. :func:`forge` fills a run of placeholder characters with text from ``` ``
to ``~`` (no quote, no backslash, so a JSON string stays one) to reach the target.
"""

from __future__ import annotations

import zlib

PLACEHOLDER = b"````````"
"""Eight characters of 0x60: the five low bits of each are free (40 unknowns for 32)."""


def forge(body: bytes, target: int) -> bytes:
    """``body`` with its one :data:`PLACEHOLDER` rewritten so that its CRC32 is ``target``."""
    at = body.index(PLACEHOLDER)
    base = zlib.crc32(body)
    basis: dict[int, tuple[int, int]] = {}  # pivot bit -> (CRC change, bits flipped)
    for position in range(len(PLACEHOLDER)):
        for bit in range(5):
            flipped = bytearray(body)
            flipped[at + position] ^= 1 << bit
            change, combo = zlib.crc32(bytes(flipped)) ^ base, 1 << (position * 5 + bit)
            for pivot in reversed(range(32)):
                if not change >> pivot & 1:
                    continue
                if pivot not in basis:
                    basis[pivot] = (change, combo)
                    break
                change ^= basis[pivot][0]
                combo ^= basis[pivot][1]
    wanted, flips = target ^ base, 0
    for pivot in reversed(range(32)):
        if wanted >> pivot & 1:
            wanted ^= basis[pivot][0]
            flips ^= basis[pivot][1]
    forged = bytearray(body)
    for index in range(len(PLACEHOLDER) * 5):
        if flips >> index & 1:
            forged[at + index // 5] ^= 1 << index % 5
    result = bytes(forged)
    assert zlib.crc32(result) == target
    return result
